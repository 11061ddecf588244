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
    "ultrafeedback": dict(read=40, kept=27, missing_field=1, empty_content=1, broken_pair=1, tied_ranking=3,
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
