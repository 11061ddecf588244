"""Chapter 04: exact values of the scheduler, its continuity, the baselines, bad input, the notebook."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from stablelm2 import config, facts, record, runner, schedule
from stablelm2.config import ConfigError


@pytest.fixture(scope="module")
def paper():
    return config.load("paper")


# ------------------------------------------------------------------ exact values at paper scale


def test_rate_at_start_and_end_of_warmup(paper):
    assert schedule.learning_rate(0, paper) == 0.0
    assert schedule.learning_rate(4860, paper) == pytest.approx(5e-4, rel=1e-12)
    assert schedule.learning_rate(9720, paper) == pytest.approx(facts.value("schedule.peak_lr"), rel=1e-12)


def test_switch_point_and_alpha_beta(paper):
    # T = 540k − 9,720 (GPT-NeoX decay span), t from the end of warm-up, full cosine period over T:
    # the turn at T/4 is the cosine's midpoint, value (η_max + η_min)/2.
    h = schedule.hybrid(paper.schedule)
    assert h.t0 + h.origin == pytest.approx(9720 + 530_280 / 4)
    assert schedule.learning_rate(h.t0 + h.origin, paper) == pytest.approx(5.5e-4, rel=1e-12)
    # closed forms: t0 + β = −f/(2f′), f = 4.5e-4 above η_min, f′ = −4.5e-4·2π/T
    slope = -4.5e-4 * 2 * math.pi / 530_280
    assert h.t0 + h.beta == pytest.approx(4.5e-4 / (2 * abs(slope)), rel=1e-12)
    assert h.alpha == pytest.approx(4.5e-4 * math.sqrt(h.t0 + h.beta), rel=1e-12)


@pytest.mark.parametrize("preset", ["smoke", "cpu", "paper"])
def test_value_and_slope_continuous_at_switch(preset):
    c = schedule.switch_continuity(config.load(preset))
    assert c["value_cosine"] == pytest.approx(c["value_rsqrt"], rel=1e-12, abs=0)
    assert c["slope_cosine"] == pytest.approx(c["slope_rsqrt"], rel=1e-12, abs=0)
    # and the assembled schedule is continuous there (finite differences on both sides)
    cfg = config.load(preset)
    h = 1e-6 * c["step"]
    left, mid, right = (schedule.learning_rate(c["step"] + d, cfg) for d in (-h, 0.0, h))
    assert abs(right - left) / (2 * h) == pytest.approx(-c["slope_cosine"], rel=1e-4)
    assert mid == pytest.approx(c["value_cosine"], rel=1e-12)


def test_cooldown_start_and_end(paper):
    start = schedule.learning_rate(420_000, paper)
    assert start == pytest.approx(2.6343588660786765e-4, rel=1e-12)
    assert schedule.learning_rate(460_000, paper) == pytest.approx(start / 2, rel=1e-12)
    assert schedule.learning_rate(500_000, paper) == 0.0
    assert schedule.milestones(paper)["cooldown_start"] == facts.value("schedule.precooldown_step")


@pytest.mark.parametrize("kind", schedule.KINDS)
@pytest.mark.parametrize("preset", ["smoke", "cpu", "paper"])
def test_never_negative_and_monotone_after_warmup(kind, preset):
    cfg = schedule.with_schedule(config.load(preset), kind=kind)
    lr = schedule.curve(cfg)
    assert (lr >= 0).all()
    after = lr[cfg.schedule.warmup_steps:]
    assert (np.diff(after) <= 1e-15).all()
    assert lr[cfg.schedule.warmup_steps] == pytest.approx(cfg.schedule.peak_lr)


def test_readings_change_the_rate_as_documented(paper):
    naive = schedule.with_schedule(paper, cosine_period=2.0, rsqrt_min="none", t_origin="zero",
                                   horizon_excludes_warmup=False)
    # the half-cosine reading switches at 540k/4 and stays far above the released value
    assert schedule.milestones(naive)["switch"] == 135_000
    assert schedule.learning_rate(420_000, naive) == pytest.approx(5.833045336836961e-4, rel=1e-9)
    clip = schedule.with_schedule(paper, rsqrt_min="clip")
    none = schedule.with_schedule(paper, rsqrt_min="none")
    assert schedule.learning_rate(420_000, none) < schedule.learning_rate(420_000, paper)
    assert schedule.learning_rate(420_000, clip) >= paper.schedule.min_lr


def test_baselines_exact(paper):
    rsqrt = schedule.with_schedule(paper, kind="rsqrt")
    assert schedule.learning_rate(4 * 9720, rsqrt) == pytest.approx(1e-3 / 2, rel=1e-12)  # η_max·√(W/4W)
    cosine = schedule.with_schedule(paper, kind="cosine")
    mid = 9720 + 530_280 / 2
    assert schedule.learning_rate(mid, cosine) == pytest.approx(5.5e-4, rel=1e-12)
    hyb2 = schedule.with_schedule(paper, kind="hybrid2")
    assert schedule.milestones(hyb2)["switch"] == pytest.approx(9720 + 530_280 / 2)
    assert schedule.learning_rate(schedule.milestones(hyb2)["switch"], hyb2) == pytest.approx(5.5e-4, rel=1e-12)
    constant = schedule.with_schedule(paper, kind="constant")
    assert schedule.learning_rate(300_000, constant) == 1e-3


def test_average_lr_orders_the_schedulers(paper):
    avg = {k: v["average"] for k, v in schedule.compare_kinds(paper).items()}
    # hyb2 keeps the high-lr cosine twice as long as hyb; rsqrt leaves the peak fastest
    assert avg["rsqrt"] < avg["hybrid"] < avg["cosine"] < avg["hybrid2"]
    assert avg["hybrid"] == pytest.approx(4.413018847e-4, rel=1e-6)


def test_lambda_lr_drives_a_torch_optimizer():
    cfg = config.load("cpu")
    seen = schedule.torch_lrs(cfg)
    assert np.allclose(seen, schedule.curve(cfg), rtol=0, atol=1e-15)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.schedule.peak_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule.lr_lambda(cfg))
    for _ in range(cfg.schedule.warmup_steps):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.schedule.peak_lr)


def test_released_checkpoint_check(paper):
    check = schedule.check_released(paper)
    assert check["n_readings"] == 72
    assert check["target"] == facts.value("schedule.lr_at_cooldown_start")
    assert check["best"]["lr"] == pytest.approx(2.5324011687e-4, rel=1e-8)
    assert abs(check["best"]["rel_diff"]) > 1e-3  # no reading reproduces all four digits
    assert check["solved_T"] == pytest.approx(486_950.9, abs=1.0)
    cfg_T = schedule.with_schedule(paper, total_steps=round(check["solved_T"]))
    assert schedule.learning_rate(420_000, cfg_T) == pytest.approx(2.529e-4, rel=2e-5)


def test_the_released_rate_is_recorded_as_a_fit(paper):
    from stablelm2.ledger import FIT, FITTED, Ledger

    led = Ledger("04_lr_schedule")
    check = schedule.check_released(paper)
    schedule.record_claims(led, paper, check, schedule.compare_kinds(paper))
    c = next(c for c in led.claims if c.id == "schedule.lr_at_cooldown_start")
    assert c.kind == FIT and c.fit["n_candidates"] == 72 and c.fit["best"] == pytest.approx(2.5324011687e-4)
    assert c.status != FITTED  # +0.13 % is outside the four printed digits' [2.5285e-4, 2.5295e-4)
    assert "ModernBERT's reading" in c.evidence and "2.2015e-04" in c.evidence
    assert {r["claim"] for r in led.references} >= {"overview.warmup_steps", "overview.cooldown_tokens"}


def test_modernbert_reading_of_the_schedule(paper):
    mb = schedule.modernbert_at(paper, 420_000)
    assert mb["lr"] == pytest.approx(2.20e-4, abs=0.005e-4) and mb["switch_step"] == 9_720 + 135_000
    kw = {k: mb[k] for k in ("peak", "floor", "warmup", "total")}
    sw, eps = mb["switch_step"], 1e-3
    assert float(schedule.modernbert_lr(sw, **kw)) == pytest.approx((1e-3 + 1e-4) / 2)  # the midpoint at t_c
    left = (schedule.modernbert_lr(sw, **kw) - schedule.modernbert_lr(sw - eps, **kw)) / eps
    right = (schedule.modernbert_lr(sw + eps, **kw) - schedule.modernbert_lr(sw, **kw)) / eps
    assert float(right) == pytest.approx(float(left), rel=1e-4)  # slope continuous at t_c
    assert float(schedule.modernbert_lr(9_720, **kw)) == pytest.approx(1e-3)
    assert float(schedule.modernbert_lr(4_860, **kw)) == pytest.approx(5e-4)
    rows = {r["schedule"]: r for r in schedule.schedule_comparison(paper, schedule.check_released(paper))}
    assert rows["ModernBERT's CosineInverseSqrtScheduler"]["residual"] == pytest.approx(2.2015e-4 - 2.529e-4, abs=1e-8)
    with pytest.raises(schedule.ScheduleError, match="must be positive"):
        schedule.modernbert_lr(1, peak=1e-3, floor=1e-4, warmup=0, total=10)


# ------------------------------------------------------------------ bad input


def test_step_outside_the_run_is_refused(paper):
    with pytest.raises(schedule.ScheduleError, match=r"step must lie in \[0, train.steps = 500000\]"):
        schedule.learning_rate(500_001, paper)
    with pytest.raises(schedule.ScheduleError, match="step must lie"):
        schedule.learning_rate(-1, paper)


@pytest.mark.parametrize("overrides, message", [
    ({"schedule.warmup_steps": 600_000}, "schedule.warmup_steps = 600000 is not shorter than schedule.total_steps"),
    ({"schedule.warmup_steps": 450_000}, "schedule.warmup_steps = 450000 plus schedule.cooldown_steps = 80000"),
    ({"schedule.min_lr": 2e-3}, "schedule.min_lr = 0.002 is above schedule.peak_lr = 0.001"),
    ({"schedule.t_origin": "zero", "schedule.switch_frac": 0.001}, "schedule.switch_frac = 0.001 puts the switch at step 530,"),
    ({"schedule.switch_frac": 1.0}, "schedule.switch_frac = 1.0 puts the switch at step 540000"),
    ({"schedule.switch_frac": 0.0}, "schedule.switch_frac = 0.0 must lie strictly between 0 and schedule.cosine_period / 2"),
    ({"schedule.kind": "hybrid2", "schedule.switch_frac": 0.6}, "schedule.switch_frac = 0.6 puts the switch"),
    ({"schedule.cooldown_steps": 500_000}, "schedule.cooldown_steps = 500000 is not shorter than train.steps"),
    ({"schedule.cosine_period": 0.0}, "schedule.cosine_period = 0.0 must be positive"),
    ({"schedule.peak_lr": -1e-3}, "schedule.peak_lr = -0.001 must be positive"),
    ({"schedule.t_origin": "one"}, "schedule.t_origin = 'one' is not allowed"),
    ({"schedule.rsqrt_min": "floor"}, "schedule.rsqrt_min = 'floor' is not allowed"),
    ({"schedule.kind": "rsqrt", "schedule.warmup_steps": 0}, "needs schedule.warmup_steps > 0"),
])
def test_bad_schedule_config_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load("paper", **overrides)


def test_switch_past_the_cosine_minimum_is_refused(paper):
    bad = schedule.with_schedule(paper, cosine_period=0.4)  # t0 = T/4 lies past the minimum at 0.2·T
    with pytest.raises(schedule.ScheduleError, match="cannot switch at t0"):
        schedule.learning_rate(200_000, bad)


# ------------------------------------------------------------------ the notebook


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("04_lr_schedule", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "04_lr_schedule", root=build_dir)
    metrics = m["metrics"]
    assert set(metrics) == schedule.ScheduleMetrics.__optional_keys__  # the library's schema: every part ran
    assert metrics["switch_value_gap"] < 1e-15 and metrics["switch_slope_gap"] < 1e-20
    assert metrics["lambdalr_max_abs_gap"] < 1e-15
    assert metrics["lr_420k_default"] == pytest.approx(2.6343588660786765e-4, rel=1e-9)
    assert metrics["lr_420k_naive"] == pytest.approx(5.833e-4, rel=1e-3)
    claims = {c["id"]: c for c in m["claims"]}
    fit = claims["schedule.lr_at_cooldown_start"]
    assert fit["kind"] == "fit" and fit["status"] == "conflict" and fit["fit"]["n_candidates"] == 72
    assert "best of 72 readings tried" in fit["evidence"] and "no tried reading reproduces it" in fit["evidence"]
    assert claims["schedule.naive_420k"]["status"] == "consistent"
    assert "schedule.warmup_steps" not in claims  # chapter 00 owns it
    assert claims["schedule.avg_lr_hybrid"]["status"] == "reported only"
    assert metrics["lr_420k_modernbert"] == pytest.approx(2.2015e-4, rel=1e-4)
    assert {f["name"] for f in m["figures"]} >= {"fig2_lr_schedule", "fig4_schedulers_avg_lr", "fig_lr420k_readings",
                                                  "fig2_lr_schedule_modernbert"}
