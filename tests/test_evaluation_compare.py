"""Chapter 07 · regression against the published raw JSON: name mapping, deltas, drift flags, bad input."""

from __future__ import annotations

import copy
import json

import pytest

from stablelm2.evaluation import compare, published

BASE = "stabilityai/stablelm-2-1_6b"


@pytest.fixture(scope="module")
def pub():
    return published.load(BASE)


def test_old_task_names_map_to_todays():
    assert compare.map_task("arc_challenge") == ("arc_challenge", {}, "")
    assert compare.map_task("hendrycksTest-college_physics")[0] == "mmlu_college_physics"
    assert compare.map_task("arc_challenge_mt_de")[0] == "arc_de"
    assert compare.map_task("hellaswag_mt_nl")[0] == "hellaswag_nl"
    assert compare.map_task("hendrycksTest_mt_it")[0] == "m_mmlu_it"
    assert compare.map_task("truthfulqa_mc")[:2] == ("truthfulqa_mc2", {"mc2": "acc"})
    assert compare.map_task("lambada_openai_mt_deepl_nl")[0] == "lambada_openai_mt_stablelm_nl"
    assert compare.map_task("lambada_openai_mt_fr")[:2] == ("lambada_openai_mt_fr", {"ppl": "perplexity"})
    for old in ("arc_challenge_mt_pt", "truthfulqa_mc_mt_es", "hendrycksTest-anatomy"):
        assert compare.map_task(old)[2], old  # a known harness change is described
    table = compare.name_map(["truthfulqa_mc", "hellaswag"])
    assert list(table["today (lm-eval 0.4)"]) == ["truthfulqa_mc2", "hellaswag"]


def test_canonical_reads_both_harness_generations(pub):
    can, drift, shape = compare.canonical(pub)
    assert shape == "v0.3"
    assert can[("truthfulqa_mc2", "acc")][0] == pub["results"]["truthfulqa_mc"]["mc2"]
    assert can[("truthfulqa_mc1", "acc")][0] == pub["results"]["truthfulqa_mc"]["mc1"]
    assert can[("arc_de", "acc_norm")] == (pub["results"]["arc_challenge_mt_de"]["acc_norm"],
                                          pub["results"]["arc_challenge_mt_de"]["acc_norm_stderr"])
    assert ("lambada_openai", "perplexity") in can
    assert "arc_de" in drift and "arc_challenge" not in drift
    v04 = {"results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.2,
                                 "exact_match_stderr,strict-match": 0.01},
                       "arc_de": {"alias": "arc_de", "acc,none": 0.3, "acc_stderr,none": "N/A"}}}
    can4, drift4, shape4 = compare.canonical(v04)
    assert shape4 == "v0.4" and not drift4
    assert can4[("gsm8k", "exact_match,strict-match")] == (0.2, 0.01)
    assert can4[("arc_de", "acc")][0] == 0.3 and can4[("arc_de", "acc")][1] != can4[("arc_de", "acc")][1]  # NaN


def test_published_file_against_itself_has_zero_deltas(pub):
    table = compare.compare(pub, pub)
    assert (table["delta"] == 0).all() and set(table["flag"]) == {"ok"}
    assert ("mmlu (mean of 57 subjects)", "acc") in table.index
    # 28 multilingual cells + 57 subjects + 9 English/LAMBADA extras − EN MMLU (as subjects) + the MMLU mean
    assert len(table) == 7 * 4 - 1 + 57 + 5 + 4 + 1
    assert len(compare.compare(pub, pub, metrics="all")) > len(table)


def test_planted_deltas_are_found_in_a_perturbed_copy(pub, tmp_path):
    plants = {("arc_challenge", "acc_norm"): 0.08, ("hendrycksTest_mt_de", "acc"): -0.06,
              ("truthfulqa_mc_mt_fr", "mc2"): 0.07, ("hendrycksTest-anatomy", "acc"): -0.2}
    bad = copy.deepcopy(pub)
    for (task, metric), d in plants.items():
        bad["results"][task][metric] += d
    path = tmp_path / "ours.json"
    path.write_text(json.dumps(bad))
    table = compare.compare(path)  # reference inferred from config.model_args
    moved = table[table["delta"] != 0]
    expected = {"arc_challenge": 0.08, "m_mmlu_de": -0.06, "truthfulqa_fr_mc2": 0.07, "mmlu_anatomy": -0.2,
                "mmlu (mean of 57 subjects)": -0.2 / 57}
    assert {t for t, _ in moved.index} == set(expected)
    for (task, _), row in moved.iterrows():
        assert row["delta"] == pytest.approx(expected[task])
    flagged = compare.flagged(table)
    assert {t for t, _ in flagged.index} == {"arc_challenge", "m_mmlu_de", "truthfulqa_fr_mc2", "mmlu_anatomy"}
    assert set(flagged["flag"]) == {"improvement", "regression"}  # same harness on both sides: no drift


def test_a_todays_harness_file_is_compared_under_todays_names_with_drift_flags(pub):
    can, _, _ = compare.canonical(pub)
    results: dict[str, dict] = {}
    for (task, metric), (value, se) in can.items():
        results.setdefault(task, {"alias": task})[f"{metric},none"] = value
        results[task][f"{metric}_stderr,none"] = se
    results["arc_de"]["acc_norm,none"] += 0.1           # an Okapi set: the dataset copy changed since 2024
    results["winogrande"]["acc,none"] -= 0.1            # no known harness change: a regression
    results["hellaswag_it"]["acc_norm,none"] += 0.001   # within noise
    ours = {"results": results, "config": {"model_args": {"pretrained": BASE}}}
    table = compare.compare(ours)
    assert table.loc[("arc_de", "acc_norm"), "flag"] == "harness drift?"
    assert "alexandrainst" in table.loc[("arc_de", "acc_norm"), "drift"]
    assert table.loc[("winogrande", "acc"), "flag"] == "regression"
    assert table.loc[("hellaswag_it", "acc_norm"), "flag"] == "ok"
    assert table.loc[("winogrande", "acc"), "z"] < -2
    assert len(compare.flagged(table)) == 2


@pytest.mark.parametrize("bad, match", [
    ([1, 2], "no non-empty 'results'"),
    ({"config": {}}, "no non-empty 'results'"),
    ({"results": {}}, "no non-empty 'results'"),
    ({"results": {"arc_challenge": 0.4}}, "expected a"),
    ({"results": {"arc_challenge": {"alias": "x"}}}, "no numeric metrics"),
    ({"results": {"not_a_task": {"acc": 0.5}}, "config": {"model_args": f"pretrained={BASE}"}}, "share no task"),
    ({"results": {"arc_challenge": {"acc_norm": 0.5}}}, "pass reference="),
])
def test_results_of_the_wrong_shape_are_refused_clearly(bad, match):
    with pytest.raises(compare.ResultsShapeError, match=match):
        compare.compare(bad)


def test_missing_or_non_json_files_are_refused(tmp_path):
    with pytest.raises(compare.ResultsShapeError, match="does not exist"):
        compare.compare(tmp_path / "nope.json")
    p = tmp_path / "x.json"
    p.write_text("not json")
    with pytest.raises(compare.ResultsShapeError, match="not JSON"):
        compare.compare(p)
    with pytest.raises(ValueError, match="metrics="):
        compare.compare(published.load(BASE), BASE, metrics="some")


@pytest.mark.parametrize(("ours", "ref", "flag"), [
    ((float("nan"), 0.01), (0.5, 0.01), "not finite"),
    ((0.5, 0.01), (float("nan"), 0.01), "not finite"),
    ((float("inf"), 0.01), (0.5, 0.01), "not finite"),
    ((float("nan"), float("nan")), (0.5, 0.01), "not finite"),
    ((0.6, float("nan")), (0.5, 0.01), "no stderr"),  # a missing stderr is read as NaN: no verdict
    ((0.5, float("nan")), (0.5, 0.01), "ok"),
    ((0.6, 0.0), (0.5, 0.0), "improvement"),
    ((0.5, 0.01), (0.6, 0.01), "regression"),
    ((0.51, 0.01), (0.5, 0.01), "ok"),
])
def test_a_non_finite_score_or_stderr_is_never_a_verdict(ours, ref, flag):
    def results(value, se):
        row = {"acc_norm,none": value}
        if se == se:  # a NaN stderr stands for a file without one
            row["acc_norm_stderr,none"] = se
        return {"results": {"arc_easy": row}}

    table = compare.compare(results(*ours), results(*ref))
    assert table.loc[("arc_easy", "acc_norm"), "flag"] == flag


@pytest.mark.parametrize(("factor", "flag"), [(0.5, "improvement"), (2.0, "regression"), (1.0, "ok")])
def test_a_lower_perplexity_than_published_is_not_a_regression(pub, factor, flag):
    ours = copy.deepcopy(pub)
    ours["results"]["lambada_openai"]["ppl"] *= factor
    ours["results"]["lambada_openai"]["acc"] *= factor if factor <= 1 else 1.0  # lower accuracy: worse
    table = compare.compare(ours, pub, metrics="all")
    row = table.loc[("lambada_openai", "perplexity")]
    assert row["flag"] == flag
    assert (row["delta"] < 0) == (factor < 1)  # delta keeps the sign of ours − published
    if factor < 1:
        assert table.loc[("lambada_openai", "acc"), "flag"] == "regression"


@pytest.mark.parametrize(("metric", "lower"), [
    ("perplexity", True), ("word_perplexity", True), ("byte_perplexity", True), ("bits_per_byte", True),
    ("ppl", True), ("perplexity,none", True), ("loss", True), ("ter", True),
    ("acc", False), ("acc_norm", False), ("exact_match,strict-match", False), ("mc2", False), ("f1", False),
])
def test_the_direction_of_each_metric(metric, lower):
    assert compare.lower_is_better(metric) is lower
