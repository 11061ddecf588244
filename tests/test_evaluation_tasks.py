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
