import os

import pytest

from stablelm2 import config, record


def test_provenance_has_git_versions_hardware_preset_seed():
    p = record.provenance(config.load("smoke", seed=5))
    assert set(p) >= {"git", "python", "packages", "hardware", "preset", "seed", "time_utc"}
    assert p["preset"] == "smoke" and p["seed"] == 5
    assert len(p["git"]["commit"]) == 40 and isinstance(p["git"]["dirty"], bool)
    assert p["packages"]["torch"].startswith("2.") and p["hardware"]["cores"] >= 1


def test_run_records_metrics_timings_claims_atomically_and_reads_back(build_dir):
    cfg = config.load("smoke", **{"carbon.meter": False})
    run = record.start(cfg, "00_overview")
    run.log(loss=1.5)
    run.timing(step_s=0.1)
    run.ledger.derive("t.one", "one", paper=1, ours=1)
    data = record.read("smoke", "00_overview")
    assert data["status"] == "running" and data["metrics"] == {"loss": 1.5}
    assert data["claims"][0]["status"] == "re-derived"
    run.finish()
    data = record.read("smoke", "00_overview")
    assert data["status"] == "finished" and data["timings"] == {"step_s": 0.1}
    assert not [p for p in (build_dir / "smoke" / "00_overview").iterdir() if p.name.endswith(".tmp")]
    assert "preset `smoke`" in run.header_markdown()


def test_start_seeds_and_goes_offline(build_dir, monkeypatch):
    import torch

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cfg = config.load("smoke", seed=11, **{"carbon.meter": False})
    record.start(cfg, "00")
    a = torch.rand(3)
    record.start(cfg, "00")
    assert torch.equal(a, torch.rand(3))
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_energy_meter_records_codecarbon_fields(build_dir):
    run = record.start(config.load("smoke"), "09")
    sum(i * i for i in range(200_000))
    e = run.finish()["energy"]
    assert e["tool"] == "codecarbon" and e["energy_kwh"] > 0 and e["emissions_kg"] > 0
    assert 0.1 < e["intensity_kg_per_kwh"] < 1.0
    assert e["method"].startswith(("estimate", "hardware counters"))


def test_read_missing_names_the_command(build_dir):
    with pytest.raises(FileNotFoundError, match="python -m stablelm2 run 42_none --preset smoke"):
        record.read("smoke", "42_none")


def test_deterministic_part_drops_timings_energy_provenance():
    rec = {"metrics": {"a": 1}, "timings": {"t": 2}, "energy": {"e": 3}, "provenance": {}, "claims": [],
           "figures": [], "duration_s": 1.0}
    assert record.deterministic_part(rec) == {"metrics": {"a": 1}, "claims": []}
