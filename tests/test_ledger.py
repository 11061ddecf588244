import inspect
import json
import statistics

import pytest

from stablelm2 import facts
from stablelm2 import ledger as L
from stablelm2.ledger import Interval, Ledger, LedgerError

EMISSIONS = {"energy": "carbon.energy_mwh", "intensity": "carbon.intensity_kg_per_kwh"}


def mul(energy, intensity):
    return energy * intensity


# ------------------------------------------------------------------ printed digits and intervals


@pytest.mark.parametrize("printed, lo, hi", [(11, 10.5, 11.5), ("54.5%", 0.5445, 0.5455), (0.0002529, 2.5285e-4, 2.5295e-4),
                                             ("92k", 91_500, 92_500), (5.6e22, 5.55e22, 5.65e22), (30, 29.5, 30.5)])
def test_a_printed_number_means_the_interval_of_its_last_digit(printed, lo, hi):
    got = facts.printed_interval(printed)
    assert got == pytest.approx((lo, hi), rel=1e-12)


def test_a_hedged_fact_carries_a_named_tolerance_with_its_reason():
    f = facts.get("quant.speedup")
    assert f.approx and f.tolerance["hedge"] == "almost" and f.tolerance["reason"]
    assert f.interval() == (1.5, 2.0)


def test_a_hedged_fact_without_a_tolerance_cannot_be_compared(monkeypatch):
    f = facts.get("carbon.gpu_hours")
    bare = facts.Fact(**{**f.__dict__, "tolerance": None})
    monkeypatch.setattr(facts, "get", lambda fid: bare if fid == "carbon.gpu_hours" else f)
    with pytest.raises(LedgerError, match="hedged .* no named tolerance"):
        Ledger("09").measure("x", "hours", fact="carbon.gpu_hours", ours=92_000)


def test_interval_arithmetic():
    a, b = Interval(29.5, 30.5), Interval(0.3845, 0.3855)
    assert (a * b).lo == pytest.approx(11.34275) and (a * b).hi == pytest.approx(11.75775)
    assert (a - 30) == Interval(-0.5, 0.5)
    assert (1 / Interval(2, 4)) == Interval(0.25, 0.5)
    assert (Interval(-1, 2) * Interval(-3, 1)) == Interval(-6, 3)
    with pytest.raises(LedgerError, match="containing zero"):
        Interval(1, 2) / Interval(-1, 1)


def test_no_call_site_tolerance_in_the_api():
    for name in ("derive", "measure", "check", "fit", "finding"):
        params = inspect.signature(getattr(Ledger, name)).parameters
        assert "rel_tol" not in params and "abs_tol" not in params, name


# ------------------------------------------------------------------ derivations


def test_interval_verdict_fails_where_a_relative_tolerance_passed():
    # 30 MWh × 0.385 = 11.55 t was 're-derived' against the printed 11 with rel_tol=0.06
    c = Ledger("09").derive("x.emissions", "30 MWh × 0.385", fact="carbon.emissions_t", ours=11.55)
    assert c.kind == L.DERIVATION and c.status == L.CONFLICT
    assert c.paper_interval == [10.5, 11.5]
    assert "lies outside the paper's printed 11 tCO2eq ([10.5, 11.5))" in c.evidence


def test_conditional_verdict_names_the_condition():
    c = Ledger("09").derive("x.emissions", "energy × intensity", fact="carbon.emissions_t", inputs=EMISSIONS, formula=mul)
    assert c.status == L.CONDITIONAL and c.kind == L.DERIVATION
    assert c.ours == pytest.approx(11.55) and c.ours_interval == pytest.approx([11.34275, 11.75775])
    assert c.condition == "energy (printed 30 MWh) below 29.87 MWh"  # 11.5 / 0.385 = 29.87
    assert "consistent only if energy (printed 30 MWh) below 29.87 MWh" in c.evidence


def test_a_changed_input_changes_the_verdict_and_its_sentence():
    led = Ledger("09")
    before = led.derive("x.e", "e", fact="carbon.emissions_t", inputs=EMISSIONS, formula=mul).evidence
    after = led.derive("x.e", "e", fact="carbon.emissions_t",
                       inputs={**EMISSIONS, "energy": 28.0}, formula=mul)
    assert after.status == L.DERIVED and after.condition is None
    assert "10.78 tCO2eq (inputs as printed; range [10.766, 10.794]) lies in" in after.evidence
    assert after.evidence != before
    far = led.derive("x.e", "e", fact="carbon.emissions_t", inputs={**EMISSIONS, "energy": 40.0}, formula=mul)
    assert far.status == L.CONFLICT and "does not meet" in far.evidence


def test_a_target_that_is_facts_md_arithmetic_makes_a_consistency_check():
    c = Ledger("09").derive("x.cost", "92k × 3.5", fact="carbon.cost_total_derived",
                            inputs={"h": "carbon.gpu_hours", "p": "carbon.cost_per_gpu_hour"}, formula=lambda h, p: h * p)
    assert c.kind == L.CONSISTENCY and c.status == L.CONSISTENT and not c.is_finding


def test_check_is_a_consistency_claim():
    led = Ledger("07")
    assert led.check("a", "avg", paper=61.32, ours=61.3233).status == L.CONSISTENT
    c = led.check("b", "avg", paper=61.32, ours=61.34)
    assert c.kind == L.CONSISTENCY and c.status == L.CONFLICT


# ------------------------------------------------------------------ measurements, fits, findings


def test_measure_uses_the_hedged_interval():
    led = Ledger("08")
    assert led.measure("a", "speed-up", fact="quant.speedup", ours=1.9).status == L.REPRODUCED
    for ours in (2.59, 2.70):  # once 'reproduced' or 'conflict' from run to run under ± 30 %
        c = led.measure("b", "speed-up", fact="quant.speedup", ours=ours, setting="another runtime")
        assert c.status == L.CONFLICT and "'almost' 2 x throughput ([1.5, 2]" in c.evidence
    assert led.measure("c", "strings", paper="silu", ours="silu").status == L.REPRODUCED


def test_a_fit_is_labelled_fit_with_candidates_and_residuals():
    c = Ledger("04").fit("x.lr", "Eq. 1 at 420k", fact="schedule.lr_at_cooldown_start",
                         candidates={"A": 2.2e-4, "B": 2.5291e-4, "C": 5.8e-4})
    assert c.kind == L.FIT and c.status == L.FITTED
    assert c.fit["n_candidates"] == 3 and c.fit["chosen"] == "B" and c.fit["runner_up"] == "A"
    assert c.fit["best_residual"] == pytest.approx(1e-8) and c.fit["runner_up_residual"] == pytest.approx(-3.29e-5)
    assert "best of 3 readings tried: B" in c.evidence
    miss = Ledger("04").fit("x.lr", "Eq. 1", fact="schedule.lr_at_cooldown_start", candidates={"A": 2.2e-4, "B": 2.6e-4})
    assert miss.status == L.CONFLICT and "no tried reading reproduces it" in miss.evidence


def test_a_tie_is_never_agreement():
    led = Ledger("05")
    c = led.finding("t", "a < b", a=[4.0, 4.0, 4.0], b=[4.0, 4.0, 4.0], expect="a < b")
    assert c.status == L.INCONCLUSIVE and "a tie is not agreement" in c.evidence
    one = led.finding("t1", "a < b", a=[4.0], b=[4.0], expect="a < b")
    assert one.status == L.INCONCLUSIVE and "a tie" in one.evidence


def test_one_seed_is_inconclusive_whatever_the_gap():
    c = Ledger("05").finding("s", "rsqrt ends worse", a=[10.46], b=[10.18], expect="a > b", names=("rsqrt", "cosine"))
    assert c.status == L.INCONCLUSIVE and c.stats["n_seeds"] == 1 and c.stats["p_value"] is None
    assert "needs at least 3" in c.evidence


def test_a_non_significant_difference_is_inconclusive():
    c = Ledger("05").finding("n", "a < b", a=[4.0, 4.3, 4.1, 4.2], b=[4.1, 4.2, 4.2, 4.15], expect="a < b")
    assert c.status == L.INCONCLUSIVE and c.stats["p_value"] > L.ALPHA
    assert "no significant difference" in c.evidence


def test_a_significant_effect_over_seeds_is_reproduced_at_reduced_scale_with_its_statistics():
    from scipy import stats

    a, b = [4.0, 4.1, 3.9, 4.05], [4.4, 4.45, 4.3, 4.5]
    c = Ledger("05").finding("y", "a < b", a=a, b=b, expect="a < b", seeds=[1, 2, 3, 4])
    assert c.status == L.REDUCED and c.kind == L.MEASUREMENT
    want = stats.ttest_rel(b, a, alternative="greater")
    assert c.stats["p_value"] == pytest.approx(want.pvalue, rel=1e-6)
    assert c.stats["effect"] == pytest.approx(0.4, abs=1e-9) and c.stats["ci"][0] > 0
    assert c.stats["seeds"] == [1, 2, 3, 4] and c.stats["a"] == a
    opposite = Ledger("05").finding("z", "a > b", a=a, b=b, expect="a > b")
    assert opposite.status == L.CONFLICT



def test_a_reason_the_runs_cannot_decide_keeps_a_significant_test_inconclusive():
    a, b = [4.0, 4.1, 3.9, 4.05], [4.4, 4.45, 4.3, 4.5]
    why = "the baseline never left the unigram plateau"
    c = Ledger("05").finding("y", "a < b", a=a, b=b, expect="a < b", cannot_decide=why)
    assert c.status == L.INCONCLUSIVE and c.stats["p_value"] < 0.01 and c.stats["ci"][0] > 0
    assert "not counted (agreement)" in c.evidence and why in c.evidence and c.stats["cannot_decide"] == why
    opposite = Ledger("05").finding("z", "a > b", a=a, b=b, expect="a > b", cannot_decide=why)
    assert opposite.status == L.INCONCLUSIVE and "not counted (a conflict)" in opposite.evidence
    plain = Ledger("05").finding("w", "a < b", a=a, b=b, expect="a < b", cannot_decide="")
    assert plain.status == L.REDUCED


# ------------------------------------------------------------------ recording rules


def test_reported_only_and_conflict_need_their_reason():
    led = Ledger("07")
    with pytest.raises(LedgerError, match="needs its reason"):
        led.report_only("a", "MT-Bench", why="", fact="eval.mtbench.stablelm_2_zephyr_1_6b")
    with pytest.raises(LedgerError, match="needs its evidence"):
        led.conflict("b", "x", evidence=" ", kind=L.CONSISTENCY)
    c = led.report_only("a", "MT-Bench", why="GPT-4 judge is outside this companion",
                        fact="eval.mtbench.stablelm_2_zephyr_1_6b")
    assert c.status == L.REPORTED and c.paper == 5.42


def test_unknown_paper_value_cannot_be_compared():
    with pytest.raises(LedgerError, match="unknown; use report_only"):
        Ledger("09").derive("p", "avg power", fact="carbon.avg_power_w", ours=296)


def test_a_fact_is_recorded_once():
    led = Ledger("09")
    led.derive("a", "x", fact="carbon.emissions_t", ours=11.0)
    with pytest.raises(LedgerError, match="already recorded as claim 'a'"):
        led.derive("b", "y", fact="carbon.emissions_t", ours=11.2)
    assert "recorded once, as claim a of chapter 09" in led.refer("a", "09", "the emissions")


def test_rerecording_replaces_and_notifies():
    calls = []
    led = Ledger("00", on_change=lambda: calls.append(1))
    led.derive("a", "x", paper=1, ours=1)
    led.derive("a", "x", paper=1, ours=2)
    assert len(led.claims) == 1 and led.claims[0].status == L.CONFLICT and len(calls) == 2


# ------------------------------------------------------------------ the scoreboard


def _chapter(tmp_path, name, led):
    (tmp_path / name).mkdir()
    (tmp_path / name / "metrics.json").write_text(json.dumps({"claims": led.to_list(), "references": led.references}))


def test_scoreboard_keeps_consistency_apart_counts_kinds_and_finds_duplicates(tmp_path):
    a = Ledger("00_a")
    a.check("00.batch", "batch", fact="train.global_batch_tokens", ours=8_388_608)
    a.derive("00.em", "emissions", fact="carbon.emissions_t", inputs=EMISSIONS, formula=mul)
    b = Ledger("05_b")
    b.finding("05.f", "a < b", a=[1.0], b=[2.0], expect="a < b", fact="schedule.fig4_finding")
    b.derive("05.em", "emissions again", fact="carbon.emissions_t", ours=11.0)
    _chapter(tmp_path, "00_a", a)
    _chapter(tmp_path, "05_b", b)
    board = L.scoreboard(tmp_path)
    assert [c["id"] for c in board["consistency"]] == ["00.batch"]
    assert {c["id"] for c in board["findings"]} == {"00.em", "05.f", "05.em"}
    assert board["counts_by_kind"][L.DERIVATION][L.CONDITIONAL] == 1
    assert board["counts_by_kind"][L.MEASUREMENT][L.INCONCLUSIVE] == 1
    assert board["duplicate_facts"] == {"carbon.emissions_t": ["00.em", "05.em"]}

    path = L.write_scoreboard(tmp_path)
    data = json.loads(path.read_text())
    assert path.name == "scoreboard.json" and data["n_consistency"] == 1 and data["n_findings"] == 3
    rec = {r["id"]: r for r in data["claims"]}
    em = rec["00.em"]
    assert {"id", "chapter", "fact", "kind", "status", "paper", "ours", "n_seeds", "test", "evidence"} <= set(em)
    assert em["paper"]["interval"] == [10.5, 11.5] and em["ours"]["interval"] == pytest.approx([11.34275, 11.75775])
    assert em["evidence"]["page"] == "00_a.html" and "metrics.json" in em["evidence"]["metrics"]
    f = rec["05.f"]
    assert f["n_seeds"] == 1 and f["test"].startswith("one-sided paired t-test")


def test_the_expectation_names_both_arms():
    c = Ledger("05").finding("h", "hyb vs hyb2", a=[1.0], b=[2.0], expect="a < b", names=("hyb2", "hyb (Eq. 1)"))
    assert c.stats["expect"] == "hyb2 < hyb (Eq. 1)" and "whether hyb2 < hyb (Eq. 1)" in c.evidence


# ------------------------------------------------------------------ review fixes: edges that overstated


def test_a_printed_interval_excludes_its_upper_end():
    led = Ledger("09")
    assert led.measure("a", "x", paper=11, ours=11.5).status == L.CONFLICT  # 11 means [10.5, 11.5)
    assert led.measure("b", "x", paper=11, ours=10.5).status == L.REPRODUCED
    assert led.derive("c", "x", paper=11, inputs={"n": 23}, formula=lambda n: n * 0.5).status == L.CONFLICT
    assert led.derive("d", "x", paper=11, inputs={"n": 22.98}, formula=lambda n: n * 0.5).status == L.DERIVED
    assert not Interval(11.5, 12).meets(Interval(10.5, 11.5, hi_open=True))
    assert Interval(11.4, 12).meets(Interval(10.5, 11.5, hi_open=True))


def test_a_negative_power_of_an_interval_touching_zero_is_a_ledger_error():
    with pytest.raises(LedgerError, match="contains zero"):
        Interval(0, 2) ** -1


def test_no_spread_across_seeds_is_not_a_test():
    led = Ledger("05")
    for paired in (True, False):
        c = led.finding(f"d{paired}", "iterations", a=[1, 1, 1], b=[1.1, 1.1, 1.1], expect="a < b", paired=paired)
        assert c.status == L.INCONCLUSIVE and "no spread across seeds" in c.evidence
    moved = led.finding("m", "iterations", a=[1, 1.02, 0.99], b=[1.1, 1.13, 1.12], expect="a < b")
    assert moved.status == L.REDUCED


def test_measuring_a_number_facts_md_derived_is_a_consistency_check():
    c = Ledger("03").measure("p", "parameters of the HF class", fact="model.n_params_with_norm_bias", ours=1_644_515_328)
    assert c.kind == L.CONSISTENCY and c.status == L.CONSISTENT and not c.is_finding


def test_a_fit_prefers_a_reading_inside_the_interval_to_a_closer_one_outside():
    c = Ledger("08").fit("s", "speed-up reading", fact="quant.speedup", candidates={"over": 2.05, "under": 1.85})
    assert c.status == L.FITTED and c.fit["chosen"] == "under"


def test_derive_refuses_an_input_fact_that_is_not_a_number():
    with pytest.raises(LedgerError, match="input 'energy': fact 'paper.title' is not a number"):
        Ledger("09").derive("x.e", "e", fact="carbon.emissions_t",
                            inputs={**EMISSIONS, "energy": "paper.title"}, formula=mul)


def test_power_of_the_paired_test_matches_a_simulation_and_gives_the_detectable_effect():
    import numpy as np
    from scipy import stats as st

    from stablelm2.ledger import detectable_effect, paired_power, seeds_needed

    # the detectable effect at 3 seeds: simulated paired t-tests reject 80 % of the time at that effect
    sd = 0.02
    eff = detectable_effect(sd, 3)
    rng = np.random.default_rng(0)
    diffs = rng.normal(eff, sd, size=(40_000, 3))
    reject = st.ttest_1samp(diffs, 0.0, axis=1, alternative="greater").pvalue < 0.05
    assert reject.mean() == pytest.approx(0.8, abs=0.01)
    assert paired_power(eff / sd, 3) == pytest.approx(0.8, abs=1e-6)
    # more seeds resolve smaller effects; a large n approaches the normal approximation
    assert detectable_effect(sd, 10) < eff
    z = st.norm.ppf(0.95) + st.norm.ppf(0.8)
    assert detectable_effect(1.0, 400) == pytest.approx(z / 20, rel=0.01)
    # seeds needed: the smallest n with power ≥ 0.8
    n = seeds_needed(0.5, 1.0)
    assert paired_power(0.5, n) >= 0.8 > paired_power(0.5, n - 1)
    big = seeds_needed(0.05, 1.0)  # about (2.49 / 0.05)² ≈ 2,480: past the unit steps
    assert big is not None and paired_power(0.05, big) >= 0.8 > paired_power(0.05, big - 1)
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(1e-4, 1.0) is None  # > 10,000
    with pytest.raises(LedgerError, match="sd > 0"):
        detectable_effect(0.0, 3)
    with pytest.raises(LedgerError, match="n ≥ 2"):
        paired_power(1.0, 1)


def test_an_inconclusive_paired_finding_says_what_this_design_can_detect():
    c = Ledger("05").finding("n", "a < b", a=[4.0, 4.3, 4.1, 4.2], b=[4.1, 4.2, 4.2, 4.15], expect="a < b")
    s = c.stats
    assert c.status == L.INCONCLUSIVE and s["power"] == 0.8
    diffs = [0.1, -0.1, 0.1, -0.05]
    assert s["sd_paired"] == pytest.approx(statistics.stdev(diffs))
    assert s["detectable_effect"] == pytest.approx(L.detectable_effect(statistics.stdev(diffs), 4), rel=1e-6)
    assert "4 seeds detect an effect of" in c.evidence and "would need" in c.evidence
