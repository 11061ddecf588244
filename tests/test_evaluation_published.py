"""Chapter 07 · the published results: hash-checked raw JSON, tables rendered from data, re-derived claims."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from stablelm2 import facts
from stablelm2.evaluation import published
from stablelm2.ledger import Ledger

BASE = "stabilityai/stablelm-2-1_6b"


def test_every_published_file_is_listed_hashed_and_named_after_its_model():
    ids = published.model_ids()
    assert len(ids) == len(published.manifest()) == len(list(published.DATA_DIR.glob("*.json")))
    assert BASE in ids and "stabilityai/stablelm-2-zephyr-1_6b" in ids
    raw = published.load("stablelm-2-1_6b")  # short names resolve too
    assert raw["config"]["num_fewshot"] == 0 and len(raw["results"]) == 93
    raw["results"].clear()  # a copy: the cache is untouched
    assert published.load(BASE)["results"]


def test_an_altered_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "published"
    shutil.copytree(published.DATA_DIR, copy)
    path = copy / "stabilityai_stablelm-2-1_6b.json"
    data = json.loads(path.read_text())
    data["results"]["arc_challenge"]["acc_norm"] += 0.01
    path.write_text(json.dumps(data))
    monkeypatch.setattr(published, "DATA_DIR", copy)
    for fn in (published.manifest, published._index, published._load_checked):
        fn.cache_clear()
    try:
        with pytest.raises(published.PublishedError, match="altered"):
            published.load(BASE)
        with pytest.raises(published.PublishedError, match="no published results"):
            published.load("no-such-model")
    finally:
        monkeypatch.undo()
        for fn in (published.manifest, published._index, published._load_checked):
            fn.cache_clear()


def test_multilingual_table_reads_the_report_metrics_from_the_raw_json():
    res = published.load(BASE)["results"]
    t = published.multilingual_table(BASE)
    assert list(t.index) == ["en", "de", "es", "fr", "it", "nl", "pt"]
    assert t.loc["de", "ARC-c"] == pytest.approx(100 * res["arc_challenge_mt_de"]["acc_norm"])
    assert t.loc["pt", "TruthfulQA"] == pytest.approx(100 * res["truthfulqa_mc_mt_pt"]["mc2"])
    assert t.loc["nl", "MMLU"] == pytest.approx(100 * res["hendrycksTest_mt_nl"]["acc"])
    subjects = [v["acc"] for k, v in res.items() if k.startswith("hendrycksTest-")]
    assert len(subjects) == 57
    assert t.loc["en", "MMLU"] == pytest.approx(100 * sum(subjects) / 57)
    assert t.loc["fr", "mean"] == pytest.approx(t.loc["fr", ["ARC-c", "HellaSwag", "TruthfulQA", "MMLU"]].mean())
    value, se = published.score(res, "MMLU", "en")
    assert se == pytest.approx(math.sqrt(sum(v["acc_stderr"] ** 2 for k, v in res.items()
                                             if k.startswith("hendrycksTest-"))) / 57)


def test_headline_average_reproduces_the_published_tip_values():
    for key in ("stablelm_2_1_6b", "stablelm_2_zephyr_1_6b", "gemma_2b", "phi_2"):
        model = published._fact_key_to_model(key)
        assert published.headline_average(model) == pytest.approx(facts.value(f"eval.s7_headline_avg.tip.{key}"), abs=0.005)
    assert len(published.headline_columns(published.load(BASE)["results"])) == 37


def test_table4_and_mtbench_come_from_the_facts():
    t4 = published.table4()
    assert "stabilityai/stablelm-2-1_6b" in t4.index and len(t4) == len(published.table4_models())
    for model, row in t4.iterrows():
        assert row["avg (recomputed)"] == pytest.approx(row["avg (card)"], abs=0.0101), model
    mt = published.mtbench()
    assert list(mt["MT-Bench"]) == sorted(mt["MT-Bench"], reverse=True)
    assert mt.loc["stablelm-2-zephyr-1.6b", "MT-Bench"] == facts.value("eval.mtbench.stablelm_2_zephyr_1_6b")
    assert "gen_judgment.py" in published.MTBENCH_HOWTO


def test_self_checks_are_consistency_checks_without_conflict():
    led = Ledger("07_evaluation")
    claims = published.self_checks(led)
    assert len(claims) == len(published.table4_models()) + 1 + 4 + 20
    assert {c.status for c in claims} == {"consistent"} and {c.kind for c in claims} == {"consistency"}
    avg = next(c for c in claims if ".tab4_avg." in c.id)
    assert avg.ours_interval[1] - avg.ours_interval[0] == pytest.approx(0.01)  # six cells ± 0.005 each, averaged


def test_figures_have_one_panel_per_task():
    import matplotlib.pyplot as plt

    fig = published.plot_multilingual([BASE, "stabilityai/stablelm-2-zephyr-1_6b"])
    assert len(fig.axes) == 5 and fig.axes[0].get_ylabel() == "score (%)"
    fig2 = published.plot_mtbench()
    assert len(fig2.axes[0].patches) == len(published.mtbench())
    plt.close("all")
