import pytest

from stablelm2 import ledger, overview, record, runner
from stablelm2.ledger import Ledger


def test_self_checks_are_consistency_checks_of_the_papers_arithmetic():
    led = Ledger("00_overview")
    claims = {c.id: c for c in overview.self_checks(led)}
    assert all(c.status == ledger.CONSISTENT and c.kind == ledger.CONSISTENCY for c in claims.values()), \
        [c.evidence for c in claims.values()]
    assert claims["overview.cooldown_tokens"].ours == 80_000 * 8_388_608 == 671_088_640_000
    assert claims["overview.cooldown_tokens"].paper_interval == [665e9, 675e9]  # the named tolerance of '~670B'
    assert claims["overview.mfu"].ours == pytest.approx(0.5449, abs=1e-4)
    assert claims["overview.mfu"].paper_interval == pytest.approx([0.5445, 0.5455])
    rows = overview.elsewhere(led)
    assert {r["claim"] for r in rows} >= {"carbon.emissions", "carbon.gpu_hours", "tok.vocab_padded"}
    assert len(led.references) == len(rows) and not {"overview.emissions", "overview.cost"} & set(claims)


def test_no_fact_is_recorded_twice_across_the_chapters_that_need_no_run():
    from stablelm2 import carbon, config, facts, model_study, schedule
    from stablelm2.training import plan

    paper = config.load("paper")
    leds = {ch: Ledger(ch) for ch in ("00", "03", "04", "05", "09")}
    overview.self_checks(leds["00"])
    model_study.record_claims(leds["03"], model_study.sizing(paper))
    check = schedule.check_released(paper)
    schedule.record_claims(leds["04"], paper, check, schedule.compare_kinds(paper))
    plan.claims(leds["05"], plan.build(paper))
    carbon.paper_claims(leds["09"])
    seen: dict[str, str] = {}
    for led in leds.values():
        for c in led.claims:
            if c.fact:
                assert c.fact not in seen, f"{c.fact} recorded by {seen[c.fact]} and {c.id}"
                seen[c.fact] = c.id
        for ref in led.references:  # every reference points at a claim some chapter records
            owner = {"00": "overview.", "09": "carbon.", "04": "schedule.", "02": "tok."}
            assert any(ref["claim"].startswith(p) for p in owner.values()), ref
    assert facts.get("carbon.gpu_hours").id in seen


def test_presets_table_lists_only_differing_fields():
    rows = {r["field"]: r for r in overview.presets_table()}
    assert rows["model.n_layers"]["paper"] == 24 and rows["model.n_layers"]["smoke"] == 2
    assert "model.rope_theta" not in rows


@pytest.mark.notebook
def test_notebook_00_runs_offline_and_is_deterministic(build_dir, offline_kernels, tmp_path):
    first = runner.execute("00_overview", "smoke", root=build_dir)
    assert first["status"] == "finished", first["error"]
    a = record.read("smoke", "00_overview", root=build_dir)
    assert set(a["metrics"]) == overview.OverviewMetrics.__required_keys__  # the library's schema
    assert a["metrics"]["n_claims"] == 5 and a["metrics"]["n_conflicts"] == 0
    assert {c["kind"] for c in a["claims"]} == {"consistency"} and len(a["references"]) == 4
    assert (build_dir / "smoke" / "scoreboard.json").is_file()
    assert a["energy"]["energy_kwh"] > 0 and a["provenance"]["offline"] is True
    assert (build_dir / "smoke" / "00_overview" / "figures" / "fig0_facts_and_claims.png").is_file()
    second = runner.execute("00_overview", "smoke", root=build_dir)
    assert second["status"] == "finished", second["error"]
    b = record.read("smoke", "00_overview", root=build_dir)
    assert record.deterministic_part(a) == record.deterministic_part(b)


def test_kernel_network_is_really_blocked(offline_kernels):
    import subprocess
    import sys

    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\nexcept OSError as e:\n    print('BLOCKED', e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert "BLOCKED network blocked by the test suite" in out
