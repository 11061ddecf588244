import json

import pytest

from stablelm2 import ledger as L
from stablelm2.ledger import Ledger, LedgerError


def test_derive_within_tolerance_is_rederived_and_cites_the_fact():
    led = Ledger("00_overview")
    c = led.derive("x.emissions", "30 MWh × 0.385", fact="carbon.emissions_t", ours=11.55, rel_tol=0.06)
    assert c.status == L.DERIVED and c.paper == 11 and c.source.startswith("11 ")
    assert c.rel_delta == pytest.approx(0.05)


def test_out_of_tolerance_is_a_conflict_with_evidence():
    led = Ledger("00_overview")
    c = led.derive("x.emissions", "too strict", fact="carbon.emissions_t", ours=11.55, rel_tol=0.01)
    assert c.status == L.CONFLICT
    assert "ours 11.55 vs paper 11" in c.evidence and "+5.0% off" in c.evidence


def test_measure_and_finding_statuses():
    led = Ledger("05")
    assert led.measure("a", "exact", paper=3, ours=3).status == L.REPRODUCED
    assert led.finding("b", "cosine beats rsqrt", holds=True, evidence="val 4.1 < 4.3").status == L.REDUCED
    assert led.finding("c", "cosine beats rsqrt", holds=False, evidence="val 4.4 > 4.3").status == L.CONFLICT
    assert led.measure("d", "strings", paper="silu", ours="silu").status == L.REPRODUCED


def test_reported_only_and_conflict_need_their_reason():
    led = Ledger("07")
    with pytest.raises(LedgerError, match="needs its reason"):
        led.report_only("a", "MT-Bench", why="", fact="eval.mtbench.stablelm_2_zephyr_1_6b")
    with pytest.raises(LedgerError, match="needs its evidence"):
        led.conflict("b", "x", evidence=" ")
    c = led.report_only("a", "MT-Bench", why="GPT-4 judge is outside this companion",
                        fact="eval.mtbench.stablelm_2_zephyr_1_6b")
    assert c.status == L.REPORTED and c.paper == 5.42


def test_unknown_paper_value_cannot_be_compared():
    with pytest.raises(LedgerError, match="unknown; use report_only"):
        Ledger("09").derive("p", "avg power", fact="carbon.avg_power_w", ours=296)


def test_rerecording_replaces_and_notifies():
    calls = []
    led = Ledger("00", on_change=lambda: calls.append(1))
    led.derive("a", "x", paper=1, ours=1)
    led.derive("a", "x", paper=1, ours=2)
    assert len(led.claims) == 1 and led.claims[0].status == L.CONFLICT and len(calls) == 2


def test_scoreboard_aggregates_chapters(tmp_path):
    for ch, statuses in {"00_a": [L.DERIVED, L.CONFLICT], "01_b": [L.REDUCED]}.items():
        (tmp_path / ch).mkdir()
        claims = [{"id": f"{ch}.{i}", "chapter": ch, "status": s} for i, s in enumerate(statuses)]
        (tmp_path / ch / "metrics.json").write_text(json.dumps({"claims": claims}))
    board = L.scoreboard(tmp_path)
    assert len(board["claims"]) == 3
    assert board["counts"][L.DERIVED] == 1 and board["counts"][L.CONFLICT] == 1 and board["counts"][L.REDUCED] == 1
    assert board["by_chapter"]["01_b"][L.REDUCED] == 1
