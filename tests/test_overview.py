import pytest

from stablelm2 import ledger, overview, record, runner
from stablelm2.ledger import Ledger


def test_self_checks_rederive_the_papers_arithmetic():
    led = Ledger("00_overview")
    claims = {c.id: c for c in overview.self_checks(led)}
    assert all(c.status == ledger.DERIVED for c in claims.values()), [c.evidence for c in claims.values()]
    assert claims["overview.cooldown_tokens"].ours == 80_000 * 8_388_608 == 671_088_640_000
    assert claims["overview.emissions"].ours == pytest.approx(11.55)
    assert claims["overview.mfu"].ours == pytest.approx(0.5449, abs=1e-4)
    assert claims["overview.vocab_padding"].ours == 100_352


def test_presets_table_lists_only_differing_fields():
    rows = {r["field"]: r for r in overview.presets_table()}
    assert rows["model.n_layers"]["paper"] == 24 and rows["model.n_layers"]["smoke"] == 2
    assert "model.rope_theta" not in rows


@pytest.mark.notebook
def test_notebook_00_runs_offline_and_is_deterministic(build_dir, offline_kernels, tmp_path):
    first = runner.execute("00_overview", "smoke", root=build_dir)
    assert first["status"] == "finished", first["error"]
    a = record.read("smoke", "00_overview", root=build_dir)
    assert a["metrics"]["n_claims"] == 8 and a["metrics"]["n_conflicts"] == 0
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
