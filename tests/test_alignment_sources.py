"""The SFT and DPO loaders: one chat schema, every dropped row counted under its rule."""

from __future__ import annotations

import json

import pytest

from stablelm2 import facts
from stablelm2.alignment import sources

# What the shipped samples were written to contain (per source: read, kept, and the dropped rows).
SFT_EXPECTED = {
    "ultrachat": dict(read=30, kept=24, missing_field=1, unknown_role=1, empty_content=1, too_many_turns=3),
    "wizardlm": dict(read=25, kept=23, missing_field=1, unknown_role=1),
    "slimorca": dict(read=24, kept=22, empty_content=1, bad_order=1),
    "sharegpt": dict(read=26, kept=21, missing_field=1, unknown_role=1, bad_order=1, too_many_turns=2),
    "capybara": dict(read=22, kept=18, missing_field=1, empty_content=1, too_many_turns=2),
    "deita": dict(read=18, kept=15, unknown_role=1, bad_order=1, too_many_turns=1),
    "metamathqa": dict(read=32, kept=30, missing_field=1, empty_content=1),
}
DPO_EXPECTED = {
    "ultrafeedback": dict(read=40, kept=27, missing_score=1, empty_content=1, broken_pair=1, tied_ranking=3,
                          duplicated_content=2, low_chosen_score=5),
    "orca_pairs": dict(read=24, kept=20, missing_field=1, empty_content=1, duplicated_content=2),
}


def _as_dict(report):
    return {r["source"]: {k: v for k, v in r.items() if k != "source" and v} for r in report.rows()}


def test_sft_sources_are_the_papers_seven_with_their_hub_ids():
    assert [s.paper_name for s in sources.SFT_SOURCES.values()] == facts.value("sft.datasets")
    assert [s.hub_id for s in sources.SFT_SOURCES.values()] == facts.value("sft.hf_datasets")
    assert [s.hub_id for s in sources.DPO_SOURCES.values()] == facts.value("dpo.hf_datasets_card_text")


def test_sft_filter_counts_per_rule_on_the_shipped_samples():
    data = sources.load_sft(mode="local", max_turns=8)
    assert _as_dict(data.report) == SFT_EXPECTED
    assert data.report.totals()["kept"] == len(data.rows) == 153
    for row in data.rows:  # one chat schema; every kept row obeys the paper's rule
        assert {m["role"] for m in row["messages"]} <= set(sources.ROLES)
        assert row["messages"][-1]["role"] == "assistant"
        assert sources.count_turns(row["messages"]) <= facts.value("sft.max_turns")


def test_turn_definition_changes_what_the_filter_drops():
    convo = [{"role": "system", "content": "s"}] + [
        {"role": r, "content": "x"} for _ in range(5) for r in ("user", "assistant")]
    assert sources.count_turns(convo, "exchange") == 5
    assert sources.count_turns(convo, "message") == 10
    by_message = sources.load_sft(mode="local", max_turns=8, turn_unit="message")
    assert by_message.report.totals()["too_many_turns"] == 15
    with pytest.raises(sources.AlignmentDataError, match="turn unit"):
        sources.load_sft(mode="local", turn_unit="sentence")


def test_dpo_filter_counts_per_rule_and_unscored_pairs():
    data = sources.load_dpo(mode="local", min_chosen_score=facts.value("dpo.min_chosen_score"))
    assert _as_dict(data.report) == DPO_EXPECTED
    assert sources.unscored(data.rows) == {"orca_pairs": 20}
    for r in data.rows:
        assert r["chosen"][-1]["content"].strip() != r["rejected"][-1]["content"].strip()
        if r["score_chosen"] is not None:
            assert r["score_chosen"] >= 8 and r["score_chosen"] != r["score_rejected"]


def test_max_samples_caps_the_kept_rows_per_source():
    data = sources.load_sft(["capybara", "metamathqa"], mode="local", max_samples=5)
    assert [r["kept"] for r in data.report.rows()] == [5, 5]


def test_unknown_source_and_source_without_usable_rows_stop_with_a_clear_error(tmp_path):
    with pytest.raises(sources.AlignmentDataError, match="unknown SFT source.*'alpaca'.*known: ultrachat"):
        sources.load_sft(["alpaca"], mode="local")
    rows = [{"query": "What is 2+2?"}, {"query": "", "response": "4"}, "not json {"]
    (tmp_path / "metamathqa.jsonl").write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    with pytest.raises(sources.AlignmentDataError, match=r"no usable rows: read 3, dropped missing_field 1, "
                                                         r"empty_content 1, unreadable 1"):
        sources.load_sft(["metamathqa"], mode="local", sample_dir=tmp_path)
    with pytest.raises(sources.AlignmentDataError, match="not 'hub' or 'local'"):
        sources.load_dpo(mode="s3")


def test_paper_mode_streams_each_source_from_the_hub(monkeypatch):
    """At `paper` the same loader streams the Hub; here `datasets.load_dataset` is replaced by a recorder."""
    import datasets

    calls = []

    def fake_load_dataset(path, split, streaming, **kw):
        calls.append((path, split, streaming, kw))
        return iter([{"conversation": [{"input": "Hi", "output": "Hello!"}], "source": "Dove"},
                     {"conversation": []}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = sources.load_sft(["capybara"], mode="hub")
    assert calls == [("LDJnr/Capybara", "train", True, {})]
    assert data.rows[0]["messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert _as_dict(data.report) == {"capybara": {"read": 2, "kept": 1, "missing_field": 1}}
    calls.clear()
    monkeypatch.setattr(datasets, "load_dataset", lambda path, split, streaming, **kw: calls.append(kw) or iter(
        [{"items": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}]))
    sources.load_sft(["sharegpt"], mode="hub")
    assert calls == [{"data_files": "sharegpt_gpt4.json"}]


def _uf_row(score_chosen, score_rejected, chosen="Paris.", rejected="Lyon."):
    prompt = [{"role": "user", "content": "What is the capital of France?"}]
    return {"prompt": "What is the capital of France?", "prompt_id": "p",
            "chosen": prompt + [{"role": "assistant", "content": chosen}],
            "rejected": prompt + [{"role": "assistant", "content": rejected}],
            "score_chosen": score_chosen, "score_rejected": score_rejected}


# (score_chosen, score_rejected) → the rule that must drop the pair; every comparison with NaN is false,
# so before the score rules a NaN pair passed both the tie filter and the "chosen below 8" filter.
BAD_SCORES = [
    ((float("nan"), float("nan")), "non_finite_score"),
    ((9.0, float("nan")), "non_finite_score"),
    ((float("nan"), 2.0), "non_finite_score"),
    ((float("inf"), 2.0), "non_finite_score"),
    ((9.0, float("-inf")), "non_finite_score"),
    (("9", 2.0), "non_numeric_score"),
    ((9.0, "low"), "non_numeric_score"),
    ((True, 2.0), "non_numeric_score"),
    (([9.0], 2.0), "non_numeric_score"),
    (({"overall": 9}, 2.0), "non_numeric_score"),
    ((None, 2.0), "missing_score"),
    ((9.0, None), "missing_score"),
    ((11.0, 2.0), "score_out_of_scale"),
    ((9.0, 0.0), "score_out_of_scale"),
    ((9.0, -3.0), "score_out_of_scale"),
    ((100.0, 95.0), "score_out_of_scale"),
    ((8.0, 9.5), "inverted_ranking"),
]


@pytest.mark.parametrize(("scores", "rule"), BAD_SCORES)
def test_every_malformed_score_is_dropped_and_counted_under_its_own_rule(tmp_path, scores, rule):
    good = _uf_row(9.0, 3.0)
    bad = _uf_row(*scores)
    # json.dumps writes NaN/Infinity literals, which json.loads (and so the local reader) accepts
    (tmp_path / "ultrafeedback_binarized.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    data = sources.load_dpo(["ultrafeedback"], mode="local", sample_dir=tmp_path)
    assert _as_dict(data.report) == {"ultrafeedback": {"read": 2, "kept": 1, rule: 1}}
    assert [r["score_chosen"] for r in data.rows] == [9.0]
    assert rule in sources.DPO_RULES


def test_a_missing_score_key_is_missing_not_malformed(tmp_path):
    row = _uf_row(9.0, 3.0)
    del row["score_rejected"]
    (tmp_path / "ultrafeedback_binarized.jsonl").write_text(json.dumps(_uf_row(9.0, 3.0)) + "\n" + json.dumps(row))
    data = sources.load_dpo(["ultrafeedback"], mode="local", sample_dir=tmp_path)
    assert _as_dict(data.report)["ultrafeedback"] == {"read": 2, "kept": 1, "missing_score": 1}


def test_scores_on_the_edges_of_the_scale_are_kept_and_each_filter_compares_numbers(tmp_path):
    rows = [_uf_row(10.0, 1.0), _uf_row(8, 1), _uf_row(8.0, 8.0), _uf_row(7.999, 1.0)]
    (tmp_path / "ultrafeedback_binarized.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = sources.load_dpo(["ultrafeedback"], mode="local", sample_dir=tmp_path, min_chosen_score=8.0)
    assert _as_dict(data.report) == {"ultrafeedback": {"read": 4, "kept": 2, "tied_ranking": 1,
                                                       "low_chosen_score": 1}}
    assert [(r["score_chosen"], r["score_rejected"]) for r in data.rows] == [(10.0, 1.0), (8.0, 1.0)]
    assert all(isinstance(r["score_chosen"], float) for r in data.rows)


def test_check_score_names_the_reason():
    scale = sources.ULTRAFEEDBACK_SCALE
    assert sources.check_score(1, scale) == 1.0 and sources.check_score(10.0, scale) == 10.0
    for value, rule in ((None, "missing_score"), ("8", "non_numeric_score"), (False, "non_numeric_score"),
                        (float("nan"), "non_finite_score"), (10.5, "score_out_of_scale"),
                        (0.99, "score_out_of_scale")):
        with pytest.raises(sources.Malformed) as err:
            sources.check_score(value, scale, "score_chosen")
        assert err.value.rule == rule and "score_chosen" in err.value.detail


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), 11.0, 0.0, -1.0, "8", None, True])
def test_a_threshold_that_cannot_be_compared_stops_before_reading(threshold):
    with pytest.raises(sources.AlignmentDataError, match=r"min_chosen_score.*fix: give a finite threshold on its "
                                                         r"scale \[1, 10\].*align.dpo_min_chosen_score"):
        sources.load_dpo(["ultrafeedback"], mode="local", min_chosen_score=threshold)
    # a source without scores has no scale to check the threshold against
    assert sources.load_dpo(["orca_pairs"], mode="local", min_chosen_score=8.0).report.totals()["kept"] == 20
