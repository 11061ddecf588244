"""Chapter 07 · harness task lists, the offline tasks, the pre-flight checks and a real harness run."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from stablelm2 import config, facts
from stablelm2.evaluation import tasks


def tiny_model(tmp_path_factory) -> Path:
    """A random smoke-size StableLM with Arcade100k, shared by the chapter-07 test modules of a session."""
    d = tmp_path_factory.getbasetemp() / "eval_tiny_stablelm"
    if not (d / "model.safetensors").is_file():
        from stablelm2 import model, tokenizer

        model.build(config.load("smoke")).save_pretrained(d)
        tokenizer.save_transformers(d)
    return d


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory)


def test_table4_suite_takes_its_shots_and_metrics_from_the_facts():
    text = facts.value("eval.tab4.metrics")
    shots = [int(n) for n in re.findall(r"\((\d+)-shot\)", text)]
    specs = tasks.table4_suite()
    assert [s.num_fewshot for s in specs] == shots
    assert [s.name for s in specs] == ["arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k"]
    assert {s.name: s.metric for s in specs}["gsm8k"] == "exact_match,strict-match"


def test_multilingual_and_lambada_suites_cover_the_paper_languages():
    ml = tasks.multilingual_suite()
    assert all(s.num_fewshot == 0 for s in ml)
    langs = [code.lower() for code in facts.value("data.languages_non_english")]
    for lang in langs:
        assert {f"arc_{lang}", f"hellaswag_{lang}", f"truthfulqa_{lang}_mc2", f"m_mmlu_{lang}"} <= {s.name for s in ml}
    assert len(ml) == 4 * (1 + len(langs))
    lam = tasks.lambada_paper_suite()
    assert [s.name.rsplit("_", 1)[1] for s in lam] == facts.value("eval.lambada_deepl.languages")


def test_every_paper_task_is_in_the_harness_index_of_its_folder():
    specs = [s for name in ("table4", "multilingual", "lambada_paper", "s7") for s in tasks.suite(name)]
    tm = tasks.task_manager(specs)
    tasks.check_tasks(specs, tm)  # raises on a name lm-eval 0.4.13 does not know
    with pytest.raises(tasks.EvalError, match="did you mean arc_challenge"):
        tasks.check_tasks([tasks.TaskSpec("arc_challenge_mt", 0, "acc", "arc")], tm)


def test_unknown_tasks_and_suites_are_refused_with_a_hint():
    with pytest.raises(tasks.EvalError, match="did you mean hellaswag"):
        tasks.resolve(["hellaswagg"])
    with pytest.raises(tasks.EvalError, match="unknown suite"):
        tasks.suite("open_llm")
    assert [s.name for s in tasks.default_tasks(config.load("paper"))][:6] == [s.name for s in tasks.table4_suite()]


def test_offline_tasks_are_built_from_the_shipped_text_deterministically(tmp_path):
    a, b = tasks.cloze_docs(1), tasks.cloze_docs(1)
    assert a == b and a != tasks.cloze_docs(2)
    paragraphs = [p for _, ps in tasks.essays() for p in ps]
    for doc in a[:20]:
        truth = doc["choices"][doc["label"]].strip()
        assert len(doc["choices"]) == 4
        assert any(f"{doc['context']} {truth}" in p for p in paragraphs)
    for doc in tasks.lastword_docs()[:20]:
        assert doc["text"].split(" ")[-1].isalpha()
    train, test = tasks.qa_docs()
    assert len({d["lang"] for d in train}) == len(train) == 7 and len(test) > len(train)
    out = tasks.write_local_tasks(tmp_path / "t", seed=1)
    tm = tasks.task_manager(list(tasks.LOCAL), out)
    assert set(tm.all_tasks) == {s.name for s in tasks.LOCAL}
    lines = (out / "slm2_cloze_mc.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == a


def _built(tmp_path, seed=1, limit=None):
    out = tasks.write_local_tasks(tmp_path / "t", seed=seed)
    tm = tasks.task_manager(list(tasks.LOCAL), out)
    return tasks.build_requests(tm, list(tasks.LOCAL), limit, seed)


def test_every_offline_task_splits_context_and_continuation_as_the_harness_does(tmp_path):
    """The harness's own built requests, every one of every offline task: the context ends on a
    non-space, the continuation is exactly one space and the text that follows it in the source."""
    reqs = _built(tmp_path)
    assert set(reqs) == {s.name for s in tasks.LOCAL}
    for name, instances in reqs.items():
        assert instances and tasks.boundary_problems(instances) == [], name
    # multiple choice: one request per choice, "<context>" | " <choice>", the true one rejoining the essay
    docs = tasks.cloze_docs(1)
    paragraphs = [p for _, ps in tasks.essays() for p in ps]
    mc = reqs["slm2_cloze_mc"]
    assert len(mc) == 4 * len(docs)
    for inst in mc:
        ctx, cont = inst.args
        doc = docs[inst.doc_id]
        assert ctx == doc["context"] and not ctx[-1].isspace()
        assert cont == " " + doc["choices"][inst.idx] and not cont[1].isspace()
        if inst.idx == doc["label"]:
            assert any(ctx + cont in p for p in paragraphs)
    # loglikelihood (LAMBADA's own split): "<passage minus last word>" | " <last word>"
    lw = reqs["slm2_lastword"]
    for inst, doc in zip(lw, tasks.lastword_docs(), strict=True):
        ctx, cont = inst.args
        assert ctx + cont == doc["text"] and cont == " " + doc["text"].split(" ")[-1] and not ctx[-1].isspace()
    # generation, 3-shot: each shot "Question: q\nAnswer: a" (one space), the prompt ends on "Answer:"
    train, test = tasks.qa_docs()
    qa = reqs["slm2_qa"]
    assert len(qa) == len(test)
    for inst, doc in zip(qa, test, strict=True):
        ctx = inst.args[0]
        shots = "".join(f"Question: {d['question']}\nAnswer: {d['answer']}\n\n" for d in train[:3])
        assert ctx == shots + f"Question: {doc['question']}\nAnswer:"


def test_whitespace_doubled_at_the_boundary_is_refused(tmp_path):
    from types import SimpleNamespace as NS

    def inst(ctx, second, kind="loglikelihood"):
        return NS(args=(ctx, second), doc_id=0, request_type=kind)

    assert tasks.boundary_problems([inst("The cat", " sat")]) == []
    assert "doubled whitespace" in tasks.boundary_problems([inst("The cat", "  Many makers")])[0]
    assert "both sides" in tasks.boundary_problems([inst("The cat ", " sat")])[0]
    assert "empty continuation" in tasks.boundary_problems([inst("The cat", " ")])[0]
    assert "ends with a space" in tasks.boundary_problems([inst("Answer: ", {"until": ["\n"]}, "generate_until")])[0]
    # the fault of issue 14: choices that carry their own space behind the harness's delimiter
    out = tasks.write_local_tasks(tmp_path / "t", seed=1)
    bad = out / "slm2_cloze_mc.jsonl"
    rows = [json.loads(x) for x in bad.read_text().splitlines()]
    bad.write_text("".join(json.dumps({**r, "choices": [" " + c for c in r["choices"]]}) + "\n" for r in rows))
    tm = tasks.task_manager(list(tasks.LOCAL), out)
    reqs = tasks.build_requests(tm, [tasks.LOCAL[0]], 2, 1)
    assert reqs["slm2_cloze_mc"][0].args[1].startswith("  ")
    with pytest.raises(tasks.EvalError, match="slm2_cloze_mc: 8 requests.*doubled whitespace"):
        tasks.check_requests(reqs)


def test_a_bad_request_fails_before_any_model_loads(tiny, tmp_path, build_dir):
    cfg = config.load("smoke")
    with pytest.raises(tasks.EvalError, match="unknown task"):
        tasks.evaluate(tmp_path, ["no_such_task"], cfg)
    with pytest.raises(tasks.EvalError, match="not a model directory"):
        tasks.evaluate(tmp_path / "missing", ["slm2_qa"], cfg)
    # a directory with a config and a tokenizer but no weights: loading the model would fail differently
    short = tmp_path / "short"
    short.mkdir()
    for f in tiny.glob("*.json"):
        (short / f.name).write_bytes(f.read_bytes())
    (short / "config.json").write_text(json.dumps({"model_type": "stablelm", "max_position_embeddings": 24}))
    with pytest.raises(tasks.EvalError, match="longer than the model's context of 24 tokens"):
        tasks.evaluate(short, ["slm2_cloze_mc", "slm2_qa"], cfg)


def test_harness_runs_the_offline_tasks_on_a_tiny_random_model(tiny, build_dir):
    cfg = config.load("smoke", **{"eval.limit": 2})
    t0 = time.time()
    res = tasks.evaluate(tiny, list(tasks.LOCAL), cfg, out=build_dir / "res.json")
    rows = {r["task"]: r for r in tasks.summary(res)}
    assert set(rows) == {s.name for s in tasks.LOCAL}
    for r in rows.values():
        assert 0.0 <= r["value"] <= 1.0 and r["n"] == 2
    assert res["n-shot"]["slm2_qa"] == 3 and res["n-shot"]["slm2_cloze_mc"] == 0
    assert "perplexity,none" in res["results"]["slm2_lastword"]
    on_disk = json.loads((build_dir / "res.json").read_text())
    assert on_disk["results"] == res["results"]
    assert time.time() - t0 < 300


def test_documents_with_special_token_text_are_scored_as_text(tiny):
    """The harness tokenizes plain strings: every special token's text inside a document gets the
    ids pre-training gives it, never the control token."""
    from stablelm2 import tokenizer

    tok = tasks.data_tokenizer(tiny)
    for special in tokenizer.special_tokens():
        text = f"A document quoting {special} in its text.{special}"
        assert tok(text, add_special_tokens=False)["input_ids"] == tokenizer.encode(text), special
        assert tok.encode(text, add_special_tokens=False) == tokenizer.encode(text), special
    assert tok.eos_token_id == tokenizer.EOT_ID  # generation still stops at the real end-of-text id


def test_tasks_prepared_once_score_every_model_as_a_fresh_call_does(tiny, build_dir):
    """evaluate(prepared=...) (the stage comparison's path) gives the results of a call that prepares itself."""
    cfg = config.load("smoke", **{"eval.limit": 2})
    specs = [tasks.LOCAL[0], tasks.LOCAL[1]]
    prepared = tasks.prepare(specs, cfg)
    assert set(prepared.requests) == {"slm2_cloze_mc", "slm2_lastword"}
    reused = [tasks.evaluate(tiny, specs, cfg, prepared=prepared) for _ in range(2)]
    fresh = tasks.evaluate(tiny, specs, cfg)
    assert reused[0]["results"] == reused[1]["results"] == fresh["results"]
    assert len(prepared.longest) == 1  # one tokenizer file, tokenised once for both calls
    with pytest.raises(tasks.EvalError, match="prepared for other tasks"):
        tasks.evaluate(tiny, list(tasks.LOCAL), cfg, prepared=prepared)
    with pytest.raises(tasks.EvalError, match="prepared for other tasks, limit or seed"):
        tasks.evaluate(tiny, specs, config.load("smoke", **{"eval.limit": 3}), prepared=prepared)
