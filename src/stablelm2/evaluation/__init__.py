"""Chapter 07 · evaluation: the harness tasks, the published results, needle-in-a-haystack.

* :mod:`.published` — the paper's tables rendered from the raw harness JSON and ``facts.yaml``;
* :mod:`.compare` — any results file checked task by task against the published raw JSON;
* :mod:`.tasks` — the paper's suites as lm-evaluation-harness task lists, the offline tasks of
  ``smoke``/``cpu`` (task YAML over local JSONL), and :func:`.tasks.evaluate` over ``simple_evaluate``;
* :mod:`.needle` — the seeded needle-in-a-haystack of Appendix C.

>>> from stablelm2.evaluation import published
>>> len(published.model_ids())
21
"""
