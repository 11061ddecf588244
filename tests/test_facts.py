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


def test_no_non_zero_fact_renders_as_zero():
    from stablelm2 import shown

    for f in facts.all_facts().values():
        if isinstance(f.value, (int, float)) and not isinstance(f.value, bool) and f.value != 0:
            text = shown.fact(f.id)
            assert float(text.lstrip("~").replace(",", "")) != 0, (f.id, text)
    assert shown.fact("train.adam_eps") == "1e-08"
    rows = {r["id"]: r for r in facts.table("train.")}
    assert rows["train.adam_eps"]["value"] == "1e-08"


def test_computed_numbers_are_shown_to_significant_digits_never_zero():
    from stablelm2 import shown

    assert shown.number(61.323333) == "61.32"
    assert shown.number(3e-9) == "3e-09" and shown.number(0.0002529) == "2.529e-04"
    assert shown.number(8_388_608, "tokens") == "8,388,608 tokens" and shown.number(None) == "—"
    for x in (1e-12, 4.9e-4, 0.00051, 123.45678, 9.99995e5):
        assert float(shown.number(x).replace(",", "")) != 0
    df = shown.frame([{"avg": 61.323333, "eps": 1e-8, "name": "x"}], units={"avg": "%"})
    assert df.iloc[0].tolist() == ["61.32 %", "1e-08", "x"]


def test_tolerances_are_complete_and_named():
    for f in facts.all_facts().values():
        if f.tolerance is not None:
            lo, hi = f.tolerance["interval"]
            assert f.approx and lo <= f.value <= hi and f.tolerance["reason"] and f.tolerance["hedge"], f.id
    assert facts.get("quant.q4_1_gguf_size").value == 1.07 and facts.get("quant.q5_k_m_gguf_size").value == 1.19


@pytest.mark.parametrize("text", ["nan", "Infinity", "-inf"])
def test_printed_interval_refuses_a_number_that_is_not_finite(text):
    with pytest.raises(ValueError, match="not a finite printed number"):
        facts.printed_interval(text)
