"""Chapter 09: the footprint formula, implied power, projector, aggregation of our own energy, bad input."""

from __future__ import annotations

import json

import pytest

from stablelm2 import carbon, config, facts, files, ledger, record, runner
from stablelm2.carbon import results as carbon_results
from stablelm2.config import ConfigError
from stablelm2.ledger import Ledger


def test_paper_inputs_give_about_30_mwh_and_11_t():
    fp = carbon.footprint(gpu_hours=92_000, power_w=296, pue=1.1, intensity=0.385)
    assert fp.energy_kwh == pytest.approx(92_000 * 296 * 1.1 / 1000)
    assert fp.energy_mwh == pytest.approx(30.0, rel=0.01)
    assert fp.emissions_t == pytest.approx(11.5, rel=0.01)
    assert fp.emissions_t == pytest.approx(facts.value("carbon.emissions_t"), rel=0.06)


def test_implied_power_inverts_the_formula_and_sits_below_the_a100_tdp():
    p = carbon.implied_power_w(energy_kwh=30_000, gpu_hours=92_000, pue=1.1)
    assert p == pytest.approx(296.4427, abs=1e-3)
    assert carbon.paper_implied_power_w() == pytest.approx(p)
    assert carbon.footprint(92_000, p, 1.1, 0.385).energy_kwh == pytest.approx(30_000)
    assert facts.value("carbon.a100_tdp_w") == 400 and facts.get("carbon.a100_tdp_w").source == ("NVIDIA",)
    assert p / carbon.GPUS["A100-40GB"].tdp_w == pytest.approx(0.741, abs=1e-3)


def test_gpu_table_matches_facts_and_the_configs_gpu_choices():
    a100 = carbon.gpu_type("A100-40GB")
    assert (a100.peak_tflops, a100.tdp_w) == (312.0, 400.0)
    for name in config.choices()["train.gpu"]:
        if name != "cpu":
            assert carbon.gpu_type(name).name == name


def test_grid_regions_come_from_codecarbon():
    assert carbon.grid_intensity("USA") == pytest.approx(0.369, abs=0.002)
    assert carbon.grid_intensity("france") == carbon.grid_intensity("FRA") < 0.1
    assert carbon.region_name("fra").startswith("France (FRA, ")


BASE = dict(tokens=1e12, flops_per_token=1e10, gpu="A100-40GB", n_gpus=64, mfu=0.5, power_w=300.0, pue=1.2,
            intensity=0.4, price_per_gpu_hour=2.0)


def test_projector_arithmetic():
    p = carbon.project(**BASE)
    assert p.flops == 1e22
    assert p.achieved_tflops == pytest.approx(156.0)
    assert p.gpu_hours == pytest.approx(1e22 / 156e12 / 3600)
    assert p.wall_hours == pytest.approx(p.gpu_hours / 64)
    assert p.energy_kwh == pytest.approx(p.gpu_hours * 0.3 * 1.2)
    assert p.emissions_t == pytest.approx(p.energy_kwh * 0.4 / 1000)
    assert p.cost_usd == pytest.approx(p.gpu_hours * 2.0)
    same = carbon.project(**{**BASE, "mfu": None, "tflops": 156.0})
    assert same.gpu_hours == pytest.approx(p.gpu_hours)
    by_size = carbon.project(**{**BASE, "flops_per_token": None, "n_params": 1e10 / 6})
    assert by_size.flops == pytest.approx(p.flops)


@pytest.mark.parametrize("field,factor,scales,inverse,fixed", [
    ("tokens", 2, ("flops", "gpu_hours", "wall_hours", "energy_kwh", "emissions_t", "cost_usd"), (), ()),
    ("flops_per_token", 3, ("flops", "gpu_hours", "energy_kwh", "emissions_t", "cost_usd"), (), ()),
    ("n_gpus", 4, (), ("wall_hours",), ("gpu_hours", "energy_kwh", "emissions_t", "cost_usd")),
    ("mfu", 1.5, (), ("gpu_hours", "wall_hours", "energy_kwh", "emissions_t", "cost_usd"), ("flops",)),
    ("power_w", 2, ("energy_kwh", "emissions_t"), (), ("gpu_hours", "cost_usd")),
    ("intensity", 0.5, ("emissions_t",), (), ("energy_kwh", "cost_usd")),
    ("price_per_gpu_hour", 5, ("cost_usd",), (), ("emissions_t",)),
])
def test_projector_scales_linearly(field, factor, scales, inverse, fixed):
    a = carbon.project(**BASE)
    b = carbon.project(**{**BASE, field: BASE[field] * factor})
    for q in scales:
        assert getattr(b, q) == pytest.approx(factor * getattr(a, q)), q
    for q in inverse:
        assert getattr(b, q) == pytest.approx(getattr(a, q) / factor), q
    for q in fixed:
        assert getattr(b, q) == pytest.approx(getattr(a, q)), q


def test_projector_defaults_come_from_the_paper_and_the_gpu():
    p = carbon.project(tokens=1e9, flops_per_token=1e10)
    assert p.power_w == 400.0 and "TDP" in p.power_basis
    assert p.pue == facts.value("carbon.pue") and p.intensity_kg_per_kwh == facts.value("carbon.intensity_kg_per_kwh")
    assert p.price_per_gpu_hour == facts.value("carbon.cost_per_gpu_hour")
    assert p.achieved_tflops == pytest.approx(facts.value("train.tflops_per_gpu"))
    h100 = carbon.project(tokens=1e9, flops_per_token=1e10, gpu="H100-80GB", intensity="FRA")
    assert h100.power_w == 700.0 and h100.mfu == pytest.approx(p.mfu)
    assert h100.intensity_kg_per_kwh == carbon.grid_intensity("FRA") and "France" in h100.intensity_basis


def test_paper_run_through_the_projector_gives_back_the_papers_numbers():
    fpts = carbon.paper_flops_per_token()
    assert fpts["gpt-neox"] > fpts["all_params"] > fpts["model"] > fpts["gpt-neox-no-ckpt"]
    p = carbon.paper_run()
    assert p.tokens == 4e12 and p.n_gpus == 512 and p.gpu == "A100-40GB" and p.achieved_tflops == 170
    assert p.gpu_hours == pytest.approx(facts.value("carbon.gpu_hours"), rel=0.01)
    assert p.energy_mwh == pytest.approx(facts.value("carbon.energy_mwh"), rel=0.01)
    assert p.emissions_t == pytest.approx(11.55, rel=0.01)
    assert p.cost_usd == pytest.approx(facts.value("carbon.cost_total_derived"), rel=0.01)
    assert p.wall_days == pytest.approx(p.gpu_hours / 512 / 24)


def test_paper_claims_and_the_flop_convention_fit():
    led = Ledger("09_carbon")
    out = carbon.paper_claims(led)
    claims = {c.id: c for c in out["claims"]}
    assert claims["carbon.implied_power"].ours == pytest.approx(296.44, abs=0.01)
    assert claims["carbon.implied_power"].kind == ledger.CONSISTENCY  # FACTS.md's own 296 W
    em = claims["carbon.emissions"]
    assert em.ours == pytest.approx(11.55) and em.status == ledger.CONDITIONAL
    assert em.condition == "energy (printed 30 MWh) below 29.87 MWh"
    assert claims["carbon.cost"].ours == 322_000 and claims["carbon.cost"].status == ledger.CONSISTENT
    assert claims["carbon.avg_power_printed"].status == ledger.REPORTED
    # which FLOP count the ~92k GPU-hours correspond to is a choice: a fit over the conventions
    fit = claims["carbon.gpu_hours"]
    assert fit.kind == ledger.FIT and fit.status == ledger.FITTED and fit.fit["chosen"] == "gpt-neox"
    assert fit.ours == pytest.approx(92_275, abs=50) and fit.fit["n_candidates"] == len(out["conventions"])
    assert fit.fit["n_in_interval"] == 1
    conv = {r["convention"]: r for r in out["conventions"]}
    assert conv["gpt-neox"]["needed_over_booked"] == pytest.approx(1.003, abs=0.001)
    assert conv["model"]["gpu_hours_needed"] == pytest.approx(72_208, abs=50)


def test_compute_check_is_the_projector_inverted():
    c = carbon.compute_check(flops_per_token=1e10, tokens=1e12, tflops=100, gpu_hours=50_000)
    assert c["gpu_hours_needed"] == pytest.approx(1e22 / 1e14 / 3600)
    assert c["booked_flops"] == pytest.approx(50_000 * 3600 * 1e14)
    assert c["needed_over_booked"] == pytest.approx(c["gpu_hours_needed"] / 50_000)


def test_sensitivity_grid_dominates_and_brackets_the_base():
    base = carbon.footprint(92_000, carbon.paper_implied_power_w(), 1.1, 0.385)
    rows = carbon.sensitivity(base)
    assert [r["input"] for r in rows][0] == "intensity"
    for r in rows:
        assert r["emissions_low_t"] <= base.emissions_t <= r["emissions_high_t"], r
    pue = next(r for r in rows if r["input"] == "pue")
    assert pue["emissions_high_t"] == pytest.approx(base.emissions_t * 1.6 / 1.1)
    with pytest.raises(ConfigError, match="unknown input"):
        carbon.sensitivity(base, {"price": (1, 2)})


def test_what_if_changes_only_what_it_is_told():
    p = carbon.project(**BASE)
    same = carbon.what_if(p)
    assert same.emissions_t == pytest.approx(p.emissions_t) and same.cost_usd == pytest.approx(p.cost_usd)
    h = carbon.what_if(p, gpu="H100-80GB", n_gpus=32)
    assert h.power_w == 700.0 and h.mfu == pytest.approx(0.5) and h.n_gpus == 32
    assert carbon.what_if(p, tflops=78.0).gpu_hours == pytest.approx(2 * p.gpu_hours)
    rows = carbon.scenarios(p, {"n_gpus": 128})
    assert rows[-1]["plan"] == "your plan: n_gpus=128" and rows[-1]["wall_days"] == pytest.approx(p.wall_days / 2)
    with pytest.raises(ConfigError, match="unknown input"):
        carbon.what_if(p, gpus=3)


@pytest.mark.parametrize("call,field", [
    (lambda: carbon.footprint(92_000, 296, 0.9, 0.385), "pue"),
    (lambda: carbon.footprint(92_000, 0, 1.1, 0.385), "power_w"),
    (lambda: carbon.footprint(92_000, -5, 1.1, 0.385), "power_w"),
    (lambda: carbon.footprint(0, 296, 1.1, 0.385), "gpu_hours"),
    (lambda: carbon.footprint(-1, 296, 1.1, 0.385), "gpu_hours"),
    (lambda: carbon.footprint(92_000, 296, 1.1, "Atlantis"), "intensity"),
    (lambda: carbon.footprint(92_000, 296, 1.1, -0.1), "intensity"),
    (lambda: carbon.implied_power_w(0, 92_000, 1.1), "energy_kwh"),
    (lambda: carbon.project(**{**BASE, "tokens": 0}), "tokens"),
    (lambda: carbon.project(**{**BASE, "tokens": -1e9}), "tokens"),
    (lambda: carbon.project(**{**BASE, "gpu": "A100-40G"}), "gpu"),
    (lambda: carbon.project(**{**BASE, "n_gpus": 0}), "n_gpus"),
    (lambda: carbon.project(**{**BASE, "n_gpus": 2.5}), "n_gpus"),
    (lambda: carbon.project(**{**BASE, "mfu": 1.5}), "mfu"),
    (lambda: carbon.project(**{**BASE, "mfu": None, "tflops": 400.0}), "tflops"),
    (lambda: carbon.project(**{**BASE, "tflops": 100.0}), "mfu"),
    (lambda: carbon.project(**{**BASE, "flops_per_token": None}), "flops_per_token"),
    (lambda: carbon.project(**{**BASE, "power_w": 0}), "power_w"),
    (lambda: carbon.project(**{**BASE, "pue": 0.95}), "pue"),
    (lambda: carbon.project(**{**BASE, "intensity": "XYZ"}), "intensity"),
    (lambda: carbon.project(**{**BASE, "price_per_gpu_hour": -1}), "price_per_gpu_hour"),
])
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ConfigError, match=field):
        call()


def test_unknown_gpu_and_region_suggest_the_fix():
    with pytest.raises(ConfigError, match="did you mean 'A100-40GB'"):
        carbon.gpu_type("A100-40G")
    with pytest.raises(ConfigError, match="ISO-3166"):
        carbon.grid_intensity("Atlantis")


def _fake_chapter(root, chapter, energy, status="finished"):
    d = root / "smoke" / chapter
    d.mkdir(parents=True, exist_ok=True)
    files.atomic_write_json(d / "metrics.json", {"chapter": chapter, "status": status, "energy": energy,
                                                  "duration_s": 12.0, "claims": []})


def _energy(kwh, method, gpu_kwh=0.0):
    return {"tool": "codecarbon", "energy_kwh": kwh, "cpu_energy_kwh": kwh * 0.6 - gpu_kwh,
            "ram_energy_kwh": kwh * 0.4, "gpu_energy_kwh": gpu_kwh, "emissions_kg": kwh * 0.37,
            "intensity_kg_per_kwh": 0.37, "duration_s": 10.0, "country": "USA", "method": method}


def test_own_footprint_sums_the_chapters_and_says_how_they_were_measured(tmp_path):
    _fake_chapter(tmp_path, "01_a", _energy(0.002, "estimate (cpu_load: TDP × load, no power counters)"))
    _fake_chapter(tmp_path, "02_b", _energy(0.003, "hardware counters (intel_rapl)", gpu_kwh=0.001))
    _fake_chapter(tmp_path, "03_c", {}, status="running")
    rows = carbon.own_footprint(tmp_path / "smoke")
    by = {r["chapter"]: r for r in rows}
    assert by["01_a"]["energy_wh"] == pytest.approx(2.0) and by["01_a"]["emissions_g"] == pytest.approx(0.74)
    assert by["01_a"]["measured_by"].startswith("CPU: estimate") and "GPU: none" in by["01_a"]["measured_by"]
    assert by["02_b"]["measured_by"] == "CPU: counters · RAM: estimate · GPU: NVML counters"
    assert by["03_c"]["metered"] is False and by["03_c"]["energy_wh"] is None
    assert by["02_b"]["emissions_g_paper_basis"] == pytest.approx(3.0 * 1.1 * 0.385)
    total = carbon.own_total(rows)
    assert total["energy_wh"] == pytest.approx(5.0) and total["emissions_g"] == pytest.approx(1.85)
    assert total["duration_s"] == 20.0 and (total["n_metered"], total["n_estimated"], total["n_counters"]) == (2, 1, 1)
    assert "2 metered chapters used **5 Wh**" in carbon.own_summary(total, 30_000, "USA")
    assert carbon.own_summary(carbon.own_total(rows[2:]), 30_000, "USA").startswith("No chapter")
    fig = carbon.plot_own_footprint(rows)
    assert "total 5 Wh" in fig.axes[0].get_title()


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    _fake_chapter(build_dir, "01_fake", _energy(0.004, "estimate (cpu_load: TDP × load, no power counters)"))
    rec = runner.execute("09_carbon", "smoke", parameters={"what_if": {"gpu": "H100-80GB", "n_gpus": 256}},
                         root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "09_carbon", root=build_dir)
    assert set(m["metrics"]) == carbon_results.CarbonMetrics.__optional_keys__  # the library's schema: every part ran
    assert m["metrics"]["implied_power_w"] == pytest.approx(296.443, abs=1e-3)
    assert m["metrics"]["emissions_t"] == pytest.approx(11.55, abs=1e-3)
    assert m["metrics"]["paper_run"]["gpu_hours"] == pytest.approx(92_274.69, abs=1)
    assert m["timings"]["own_n_metered"] == 1 and m["timings"]["own_energy_wh"] == pytest.approx(4.0)
    statuses = {c["id"]: c["status"] for c in m["claims"]}
    assert len(statuses) == 8 and statuses["carbon.gpu_hours"] == ledger.FITTED
    assert statuses["carbon.emissions"] == ledger.CONDITIONAL
    figs = {f["name"] for f in m["figures"]}
    assert figs == {"fig9_footprint_sensitivity", "fig9_own_footprint"}
    assert m["energy"]["energy_kwh"] > 0
    nb = json.loads((build_dir / "smoke" / "notebooks" / "09_carbon.ipynb").read_text())
    assert "your plan: gpu=H100-80GB, n_gpus=256" in json.dumps(nb)


def test_own_footprint_names_the_grid_each_record_was_booked_on(tmp_path):
    _fake_chapter(tmp_path, "01_a", _energy(0.002, "estimate"))
    old = _energy(0.002, "estimate")
    old["country"] = "US"  # written before carbon.country was checked: codecarbon used the world average
    _fake_chapter(tmp_path, "02_b", old)
    by = {r["chapter"]: r for r in carbon.own_footprint(tmp_path / "smoke")}
    assert by["01_a"]["grid"].startswith("United States (USA, ")
    assert by["02_b"]["grid"] == "world average (codecarbon does not know 'US')"
    lower = _energy(0.002, "estimate")
    lower["country"] = "fra"  # codecarbon reads codes in capitals: metered on France's grid
    _fake_chapter(tmp_path, "03_c", lower)
    assert carbon.own_footprint(tmp_path / "smoke")[2]["grid"].startswith("France (FRA, ")
