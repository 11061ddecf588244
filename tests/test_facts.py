import pytest

from stablelm2 import facts
from stablelm2.facts import UnknownFact


def test_every_fact_has_provenance_and_known_sources():
    all_ = facts.all_facts()
    assert len(all_) > 300
    srcs = facts.sources()
    for f in all_.values():
        if f.known:
            assert f.source, f"{f.id} has a value but no source"
        assert all(s in srcs for s in f.source)
        assert f.confidence in facts.CONFIDENCE
        assert f.text


def test_key_values_match_facts_md():
    assert facts.value("tokenizer.n_vocab") == 100_289
    assert facts.value("tokenizer.vocab_padded") == 100_352
    assert facts.value("train.global_batch_tokens") == 8_388_608
    assert facts.value("schedule.warmup_steps") == 9720
    assert facts.value("carbon.pue") == 1.1
    assert facts.value("carbon.intensity_kg_per_kwh") == 0.385
    assert facts.value("model.n_params_card") == 1_644_417_024
    assert facts.get("carbon.gpu_hours").approx is True


def test_unknown_values_are_explicit_and_never_invented():
    f = facts.get("carbon.avg_power_w")
    assert not f.known and f.confidence == "unknown"
    with pytest.raises(UnknownFact, match="not known from the sources"):
        facts.value("carbon.avg_power_w")
    unknown = [f for f in facts.all_facts().values() if not f.known]
    assert len(unknown) >= 20


def test_unknown_id_suggests_close_matches():
    with pytest.raises(UnknownFact, match="did you mean carbon.pue"):
        facts.get("carbon.pu")


def test_cite_carries_source_and_confidence():
    assert facts.get("carbon.pue").cite() == "1.1 (S0, high)"
    assert facts.get("carbon.gpu_hours").cite().startswith("~92000 GPU-hours (S0")


def test_table_filters_by_prefix():
    rows = facts.table("carbon.")
    assert rows and all(r["id"].startswith("carbon.") for r in rows)
    assert {"id", "value", "unit", "source", "confidence", "what"} <= set(rows[0])
