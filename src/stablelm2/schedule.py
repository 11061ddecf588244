"""Chapter 04 · The learning-rate scheduler of Sec. 2.5 (Eq. 1) and the baselines of Appendix B.

Three stages, all pure functions of the optimizer step and the resolved config:

1. linear warm-up from 0 to η_max over ``schedule.warmup_steps`` (9,720 at paper scale);
2. the main phase, by ``schedule.kind``:

   * ``hybrid`` (Eq. 1, "hyb"): a cosine from η_max towards η_min until the turning point
     t₀ = T/4, then α/√(t+β), with α, β fixed by continuity of value *and* slope at t₀;
   * ``hybrid2`` ("hyb2"): the same with the cosine period doubled and t₀ moved to T/2;
   * ``cosine``: η_min + ½(η_max − η_min)(1 + cos(πt/T)), η_min after T;
   * ``rsqrt`` (Eq. 2): η_max·√(W/step) after a warm-up of W steps;
   * ``constant``: η_max;

3. a linear cool-down to zero over the last ``schedule.cooldown_steps`` of ``train.steps``
   (80k steps ≈ 670B tokens at paper scale), starting from whatever the main phase gives there.

The stripped text leaves four choices open; each is a documented ``schedule`` field:
``cosine_period`` (1: a full cosine period over T, so the T/4 switch is its midpoint; 2: the usual
half-cosine over T), ``t_origin`` (t is the global step or counts from the end of warm-up),
``horizon_excludes_warmup`` (T or T − W) and ``rsqrt_min`` (η_min added to, absent from, or a floor
under the rsqrt branch). :func:`readings_at` evaluates the plausible readings at one step — chapter
04 uses it against the released ``global_step420000`` checkpoint's lr = 2.529e-4.

``step`` is the number of optimizer updates already made (``LambdaLR``'s ``last_epoch``), so the
rate at step 0 is 0 and the rate at ``train.steps`` is 0.

>>> from stablelm2 import config, schedule
>>> cfg = config.load("paper")
>>> schedule.learning_rate(0, cfg), schedule.learning_rate(9720, cfg)
(0.0, 0.001)
>>> round(schedule.learning_rate(420_000, cfg), 8)
0.00026344
>>> import torch
>>> opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=cfg.schedule.peak_lr)
>>> sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule.lr_lambda(cfg))
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np

from .config import Config, ScheduleConfig

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("hybrid", "hybrid2", "cosine", "rsqrt", "constant")


class ScheduleError(ValueError):
    """A step outside the run, or a schedule that cannot be evaluated."""


# ------------------------------------------------------------------------------ Eq. 1 pieces


@dataclasses.dataclass(frozen=True)
class Hybrid:
    """Eq. 1 resolved to numbers: cosine (period ``period``) until ``t0``, then ``floor`` + α/√(t+β)."""

    peak: float
    low: float
    period: float
    t0: float
    alpha: float
    beta: float
    rsqrt_min: str
    origin: float
    """Global step at which t = 0."""

    def cosine(self, t: np.ndarray | np.float64) -> np.ndarray | np.float64:
        """Eq. 1's cosine branch at ``t`` (steps from ``origin``, any shape): η_min + ½(η_max − η_min)(1 +
        cos(2πt/period)); no switch applied."""
        return self.low + 0.5 * (self.peak - self.low) * (1.0 + np.cos(2.0 * np.pi * t / self.period))

    def cosine_slope(self, t: np.ndarray | np.float64) -> np.ndarray | np.float64:
        """d/dt of :meth:`cosine` at ``t`` (learning rate per step, same shape as ``t``)."""
        return -0.5 * (self.peak - self.low) * (2.0 * np.pi / self.period) * np.sin(2.0 * np.pi * t / self.period)

    def rsqrt(self, t: np.ndarray | np.float64) -> np.ndarray | np.float64:
        """Eq. 1's second branch at ``t`` (steps from ``origin``): α/√(t+β) plus η_min (``rsqrt_min``
        ``additive``), floored at η_min (``clip``) or alone (``none``); t+β is clamped at 1e-12."""
        g = self.alpha / np.sqrt(np.maximum(t + self.beta, 1e-12))
        if self.rsqrt_min == "additive":
            return self.low + g
        if self.rsqrt_min == "clip":
            return np.maximum(self.low, g)
        return g

    def __call__(self, step: np.ndarray | np.float64) -> np.ndarray:
        t = np.asarray(step, dtype=np.float64) - self.origin
        return np.where(t < self.t0, self.cosine(t), self.rsqrt(t))


def horizon(s: ScheduleConfig) -> float:
    """T of Eq. 1 in steps (``total_steps``, or minus the warm-up when the horizon excludes it)."""
    return float(s.total_steps - (s.warmup_steps if s.horizon_excludes_warmup else 0))


def hybrid(s: ScheduleConfig, *, doubled: bool | None = None, total_steps: float | None = None) -> Hybrid:
    """Resolve Eq. 1 (or hyb2 when ``doubled``) for a schedule section: t₀, α and β.

    With f the cosine branch (minus η_min when ``rsqrt_min='additive'``), equal value and slope of
    α/√(t+β) at t₀ give t₀ + β = −f(t₀)/(2 f′(t₀)) and α = f(t₀)·√(t₀ + β). ``total_steps``
    overrides ``s.total_steps`` with a real number (for root finding). Sec. 2.5, Eq. 1; hyb2: App. B.

    Raises:
        ScheduleError: at t₀ the cosine branch (less η_min when additive) is not positive or not falling,
            so no α/√(t+β) can continue it.
    """
    doubled = (s.kind == "hybrid2") if doubled is None else doubled
    mult = 2.0 if doubled else 1.0
    T = (float(s.total_steps) if total_steps is None else float(total_steps)) - (
        s.warmup_steps if s.horizon_excludes_warmup else 0)
    period = s.cosine_period * mult * T
    t0 = s.switch_frac * mult * T
    base = Hybrid(peak=s.peak_lr, low=s.min_lr, period=period, t0=t0, alpha=0.0, beta=0.0,
                  rsqrt_min=s.rsqrt_min, origin=float(s.warmup_steps if s.t_origin == "warmup_end" else 0))
    value = float(base.cosine(np.float64(t0))) - (s.min_lr if s.rsqrt_min == "additive" else 0.0)
    slope = float(base.cosine_slope(np.float64(t0)))
    if value <= 0 or slope >= 0:
        raise ScheduleError(
            f"Eq. 1 cannot switch at t0 = {t0:.0f}: the cosine branch there has value {value:.3g} and slope "
            f"{slope:.3g}; α/√(t+β) needs a positive value and a negative slope — move schedule.switch_frac "
            "before the cosine's minimum or change schedule.cosine_period"
        )
    t_plus_beta = -value / (2.0 * slope)
    return dataclasses.replace(base, alpha=value * math.sqrt(t_plus_beta), beta=t_plus_beta - t0)


def _main(steps: np.ndarray, s: ScheduleConfig) -> np.ndarray:
    """The main phase (after warm-up, before cool-down) at global ``steps``."""
    if s.kind in ("hybrid", "hybrid2"):
        return hybrid(s)(steps)
    if s.kind == "cosine":
        origin = s.warmup_steps if s.t_origin == "warmup_end" else 0
        t = np.clip(steps - origin, 0.0, horizon(s))
        return s.min_lr + 0.5 * (s.peak_lr - s.min_lr) * (1.0 + np.cos(np.pi * t / horizon(s)))
    if s.kind == "rsqrt":
        return s.peak_lr * np.sqrt(s.warmup_steps / np.maximum(steps, s.warmup_steps))
    if s.kind == "constant":
        return np.full_like(steps, s.peak_lr)
    raise ScheduleError(f"schedule.kind = {s.kind!r} is not one of {', '.join(KINDS)}")


# ------------------------------------------------------------------------------ the entry points


def curve(cfg: Config, steps: Any = None) -> np.ndarray:
    """Learning rate at every step in ``steps`` (default: 0 … ``train.steps``), vectorised.

    Warm-up, the main phase of ``schedule.kind`` (Sec. 2.5: Eq. 1, or an App. B baseline) and the linear
    cool-down; returns float64 rates with the shape of ``steps`` (``[train.steps + 1]`` by default).

    Raises:
        ScheduleError: a step outside [0, ``train.steps``], an unknown ``schedule.kind``, or an Eq. 1
            that cannot switch (:func:`hybrid`).
    """
    s, end = cfg.schedule, cfg.train.steps
    x = np.arange(end + 1, dtype=np.float64) if steps is None else np.asarray(steps, dtype=np.float64)
    if x.size and (x.min() < 0 or x.max() > end):
        raise ScheduleError(f"step must lie in [0, train.steps = {end}]; got {x.min():g} … {x.max():g}")
    w, cd = s.warmup_steps, s.cooldown_steps
    c0 = end - cd
    main = _main(np.clip(x, w, c0), s)
    out = np.where(x < w, s.peak_lr * x / max(w, 1), main)
    if cd:
        start = float(_main(np.array([float(c0)]), s)[0])
        out = np.where(x > c0, start * (end - x) / cd, out)
    return out


def learning_rate(step: float, cfg: Config) -> float:
    """The learning rate after ``step`` optimizer updates (Sec. 2.5; the engine's and notebook's entry)."""
    return float(curve(cfg, np.array([step], dtype=np.float64))[0])


def lr_lambda(cfg: Config) -> Callable[[int], float]:
    """Multiplier of ``schedule.peak_lr`` for ``torch.optim.lr_scheduler.LambdaLR``."""
    peak = cfg.schedule.peak_lr

    def factor(step: int) -> float:
        return learning_rate(min(step, cfg.train.steps), cfg) / peak

    return factor


def with_schedule(cfg: Config, **fields: Any) -> Config:
    """``cfg`` with some ``schedule`` fields replaced (e.g. ``kind="cosine"``)."""
    return dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, **fields))


def milestones(cfg: Config) -> dict[str, float]:
    """Steps where the stages change and the rates there."""
    s = cfg.schedule
    out: dict[str, float] = {"warmup_end": float(s.warmup_steps),
                             "cooldown_start": float(cfg.train.steps - s.cooldown_steps),
                             "end": float(cfg.train.steps)}
    if s.kind in ("hybrid", "hybrid2"):
        h = hybrid(s)
        out.update(switch=h.t0 + h.origin, alpha=h.alpha, beta=h.beta)
    for k in ("warmup_end", "cooldown_start", "switch"):
        if k in out:
            out[f"lr_{k}"] = learning_rate(out[k], cfg)
    return out


def average_lr(cfg: Config) -> float:
    """Mean learning rate over the run (the schedule integrated over steps, divided by the steps; App. B)."""
    lr = curve(cfg)
    return float(np.trapezoid(lr) / cfg.train.steps)


def switch_continuity(cfg: Config) -> dict[str, float]:
    """Value and slope of both branches of Eq. 1 at the turning point t₀ (they must agree)."""
    h = hybrid(cfg.schedule)
    t0 = np.float64(h.t0)
    rs = h.alpha / np.sqrt(t0 + h.beta)
    right = float(h.rsqrt(t0))
    return {"step": float(h.t0 + h.origin), "value_cosine": float(h.cosine(t0)), "value_rsqrt": right,
            "slope_cosine": float(h.cosine_slope(t0)), "slope_rsqrt": float(-0.5 * rs / (t0 + h.beta)),
            "alpha": h.alpha, "beta": h.beta}


def torch_lrs(cfg: Config, steps: int | None = None) -> list[float]:
    """Learning rates a real ``torch.optim.AdamW`` sees under ``LambdaLR(lr_lambda(cfg))``, step by step.

    ``steps`` defaults to the whole run, capped at 20,000 steps (the paper's 500k would take minutes).
    """
    import torch

    steps = min(cfg.train.steps, 20_000) if steps is None else steps
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.schedule.peak_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    out = []
    for _ in range(steps + 1):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def key_steps(cfg: Config) -> list[dict[str, Any]]:
    """The rate at the steps the exact-value tests pin down (start, warm-up end, switch, cool-down, end)."""
    ms = milestones(cfg)
    points = {"start": 0.0, "half of warm-up": ms["warmup_end"] / 2, "end of warm-up": ms["warmup_end"]}
    if "switch" in ms:
        points["switch (t₀)"] = ms["switch"]
    points.update({"cool-down starts": ms["cooldown_start"],
                   "half of cool-down": (ms["cooldown_start"] + ms["end"]) / 2, "end": ms["end"]})
    return [{"where": k, "step": v, "lr": learning_rate(v, cfg)} for k, v in points.items()]


# ------------------------------------------------------------------------------ readings of Eq. 1


def readings_at(cfg: Config, step: int, horizons: dict[str, int]) -> list[dict[str, Any]]:
    """The main-phase rate of Eq. 1 at ``step`` under every plausible reading of the stripped text.

    Each row varies one open choice: the horizon T (named entries of ``horizons``), whether T
    excludes the warm-up, what t counts from, the cosine's period (full over T, or the usual
    half-cosine over T) and how η_min enters the rsqrt branch.
    """
    rows = []
    origins: tuple[Literal["zero", "warmup_end"], ...] = ("zero", "warmup_end")
    floors: tuple[Literal["additive", "none", "clip"], ...] = ("additive", "none", "clip")
    grid = itertools.product(horizons.items(), (False, True), origins, (1.0, 2.0), floors)
    for (name, T), excl, origin, period, rmin in grid:
        s = dataclasses.replace(cfg.schedule, kind="hybrid", total_steps=int(T), horizon_excludes_warmup=excl,
                                t_origin=origin, cosine_period=period, rsqrt_min=rmin)
        h = hybrid(s)
        rows.append({"T": name, "T_steps": int(T), "T_minus_warmup": excl, "t_origin": origin,
                     "cosine": "full period over T" if period == 1.0 else "half-cosine over T",
                     "rsqrt_min": rmin, "switch_step": h.t0 + h.origin, "lr": float(h(np.float64(step)))})
    return rows


def solve_horizon(cfg: Config, step: int, target: float, lo: float = 100_000,
                  hi: float = 2_000_000) -> float | None:
    """The T (in steps) for which Eq. 1 under ``cfg``'s reading gives ``target`` at ``step`` (None if none).

    Scans [lo, hi] for a sign change and refines it with ``scipy.optimize.brentq``.
    """
    from scipy.optimize import brentq

    s = cfg.schedule

    def gap(T: float) -> float:
        return float(hybrid(s, total_steps=T)(np.float64(step))) - target

    grid = np.linspace(lo, hi, 60)
    vals = [gap(T) for T in grid]
    for a, b, ga, gb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
        if ga == 0:
            return float(a)
        if ga * gb < 0:
            return float(brentq(gap, a, b, xtol=1e-3))
    return None


# ------------------------------------------------------------------------------ the chapter's checks


def check_released(paper: Config) -> dict[str, Any]:
    """Eq. 1 against the released ``global_step420000`` checkpoint's cool-down start lr (2.529e-4).

    Every reading of :func:`readings_at` with T in {config ``train-iters``, 420k + 80k, 420k} is
    evaluated at the pre-cool-down step; ``best`` is the closest, ``default`` this config's reading,
    ``naive`` the half-cosine, no-η_min, t-from-0 reading FACTS.md mentions, and ``solved_T`` the
    horizon for which the default reading would hit the released value exactly.
    """
    from . import facts as F

    step = int(F.value("schedule.precooldown_step"))
    target = float(F.value("schedule.lr_at_cooldown_start"))
    horizons = {"train-iters": int(F.value("schedule.train_iters")),
                "420k + 80k": int(F.value("schedule.total_steps_derived")),
                "420k": step}
    rows = readings_at(paper, step, horizons)
    for r in rows:
        r["rel_diff"] = r["lr"] / target - 1.0
    rows.sort(key=lambda r: abs(r["rel_diff"]))
    naive = with_schedule(paper, kind="hybrid", total_steps=horizons["train-iters"], cosine_period=2.0,
                          rsqrt_min="none", t_origin="zero", horizon_excludes_warmup=False)
    return {"step": step, "target": target, "readings": rows, "best": rows[0],
            "default": float(hybrid(paper.schedule)(np.float64(step))),
            "naive": float(hybrid(naive.schedule)(np.float64(step))),
            "solved_T": solve_horizon(paper, step, target),
            "modernbert": modernbert_at(paper, step),
            "n_readings": len(rows)}


def compare_kinds(cfg: Config, kinds: tuple[str, ...] = ("cosine", "hybrid", "hybrid2", "rsqrt")) -> dict[str, Any]:
    """Curves and average learning rates of the App. B schedules under ``cfg``'s other settings."""
    out = {}
    for kind in kinds:
        c = with_schedule(cfg, kind=kind)
        out[kind] = {"curve": curve(c), "average": average_lr(c), "milestones": milestones(c)}
    return out


def reading_label(r: dict[str, Any]) -> str:
    """A short unique name of one reading of Eq. 1 (a row of :func:`readings_at`)."""
    return (f"T={r['T']}{' − warm-up' if r['T_minus_warmup'] else ''}, t from {r['t_origin']}, {r['cosine']}, "
            f"η_min {r['rsqrt_min']}")


def record_claims(led: Any, paper: Config, check: dict[str, Any], kinds: dict[str, Any]) -> None:
    """Record chapter 04's claims in a ledger.

    The warm-up steps and the cool-down tokens are the paper's own arithmetic, checked once in
    chapter 00 (referenced here). The rate at step 420k is a **fit**: of the readings of Eq. 1 tried,
    the closest to the released 2.529e-4 is chosen, so the claim records how many were tried and the
    best and runner-up residuals; ModernBERT's independent reading is reported beside it.
    """
    led.refer("overview.warmup_steps", "00_overview", "warm-up steps = warm-up share × train-iters")
    led.refer("overview.cooldown_tokens", "00_overview", "cool-down tokens = 80k steps × global batch")
    led.derive("schedule.lr_peak_after_warmup", "Learning rate at the end of warm-up (Fig. 2)",
               ours=learning_rate(paper.schedule.warmup_steps, paper), fact="schedule.peak_lr")
    led.derive("schedule.naive_420k", "Eq. 1 read naively (half-cosine over T = 540k, α/√(t+β), t from step 0) at 420k",
               ours=check["naive"], fact="schedule.lr_at_420k_naive_reconstruction")
    mb = check["modernbert"]
    solved = check["solved_T"]
    led.fit("schedule.lr_at_cooldown_start", "Eq. 1 at step 420k vs the released global_step420000 cool-down lr",
            candidates={reading_label(r): r["lr"] for r in check["readings"]}, fact="schedule.lr_at_cooldown_start",
            note=(f"ModernBERT's reading (CosineInverseSqrtScheduler, t_c = a quarter of the run) gives "
                  f"{mb['lr']:.4e} (residual {mb['lr'] - check['target']:+.3e}); this chapter's default reading "
                  f"gives {check['default']:.4e}, and would need T = "
                  + (f"{solved:,.0f} steps" if solved else "no T in 100k–2M") + f" to give {check['target']:.4g}"))
    for kind, fact in (("cosine", "schedule.avg_lr_cosine"), ("hybrid", "schedule.avg_lr_hyb"),
                       ("hybrid2", "schedule.avg_lr_hyb2")):
        led.report_only(f"schedule.avg_lr_{kind}", f"Average learning rate of {kind} over the run (App. B)", fact=fact,
                        kind="derivation",
                        why=f"the paper's value is stripped from the text; ours at paper scale: {kinds[kind]['average']:.3e} "
                            "(App. B's ablation runs are smaller and their settings unknown)")


# ------------------------------------------------------------------------------ ModernBERT's reading


def modernbert_lr(step: Any, *, peak: float, floor: float, warmup: int, total: int,
                  switch: int | None = None) -> np.ndarray:
    """ModernBERT's reading of the Stable LM 2 schedule (its ``CosineInverseSqrtScheduler``, PR #66).

    Implemented here from its description: a linear warm-up over ``warmup`` steps; then, with t the
    steps since warm-up, a cosine from ``peak`` that reaches the midpoint (peak + floor)/2 at
    t = ``switch`` (half of a cosine decay to ``floor`` over 2·``switch`` steps); then γ/√(t + δ)
    with γ, δ fixed by continuity of value and slope at ``switch``. ``switch`` defaults to a quarter
    of ``total`` (the run's steps). No cool-down: the rate the cool-down would start from.

    ``step``: an optimizer step or an array of them; returns the rate(s), a float array.
    Raises :class:`ScheduleError` for non-positive ``warmup``/``total``/``switch``.
    """
    switch = total // 4 if switch is None else switch
    if min(warmup, total, switch) <= 0:
        raise ScheduleError(f"warmup, total and switch must be positive (got {warmup}, {total}, {switch})")
    x = np.asarray(step, dtype=np.float64)
    t = x - warmup
    mid = (peak + floor) / 2
    slope = -(peak - floor) / 2 * math.pi / (2 * switch)  # d/dt of the cosine at t = switch
    t_plus_delta = -mid / (2 * slope)  # equal slope of γ/√(t+δ): −γ/(2(t+δ)^{3/2}) = slope, γ/√(t+δ) = mid
    gamma = mid * math.sqrt(t_plus_delta)
    delta = t_plus_delta - switch
    cosine = floor + (peak - floor) / 2 * (1 + np.cos(math.pi * np.clip(t, 0, None) / (2 * switch)))
    rsqrt = gamma / np.sqrt(np.maximum(t, switch) + delta)
    out = np.where(x < warmup, peak * x / warmup, np.where(t <= switch, cosine, rsqrt))
    return out


def modernbert_at(paper: Config, step: int) -> dict[str, Any]:
    """ModernBERT's reading with the official config's numbers (peak, floor, warm-up, train-iters) at ``step``."""
    s = paper.schedule
    total = int(s.total_steps)
    kw: dict[str, Any] = {"peak": s.peak_lr, "floor": s.min_lr, "warmup": int(s.warmup_steps), "total": total}
    return {"lr": float(modernbert_lr(step, **kw)), "switch_step": int(s.warmup_steps) + total // 4, **kw}


# ------------------------------------------------------------------------------ figures


def _plot_steps(n: int, points: int = 5000) -> np.ndarray:
    """At most ~``points`` evenly spaced step indices (first and last included) for plotting."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int))


def plot_schedule(cfg: Config, check: dict[str, Any] | None = None) -> Any:
    """Fig. 2: the full schedule (warm-up, Eq. 1, cool-down) with its milestones."""
    import matplotlib.pyplot as plt

    lr = curve(cfg)
    ms = milestones(cfg)
    x = _plot_steps(lr.size)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(x, lr[x], lw=1.6, label=f"{cfg.schedule.kind} (this chapter's reading of Eq. 1)")
    for key, label, style in (("warmup_end", "end of warm-up", ":"), ("switch", "cosine → rsqrt", "--"),
                              ("cooldown_start", "cool-down starts", "-.")):
        if key in ms:
            ax.axvline(ms[key], color="grey", ls=style, lw=1)
            ax.annotate(label, (ms[key], lr.max() * 0.97), rotation=90, va="top", ha="right", fontsize=8)
    if check is not None:
        ax.scatter([check["step"]], [check["target"]], color="crimson", zorder=3,
                   label=f"released global_step{check['step']}: {check['target']:.4g}")
    ax.set(title=f"Fig. 2 · learning-rate schedule ({cfg.run.preset} preset)", xlabel="optimizer step",
           ylabel="learning rate")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_kinds(kinds: dict[str, Any], preset: str) -> Any:
    """App. B: cosine, hyb, hyb2 and rsqrt side by side, each with its average learning rate."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for kind, k in kinds.items():
        x = _plot_steps(k["curve"].size)
        ax.plot(x, k["curve"][x], lw=1.4, label=f"{kind} (average {k['average']:.2e})")
    ax.set(title=f"App. B · schedulers compared, with their average learning rate ({preset} preset)",
           xlabel="optimizer step", ylabel="learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_readings(check: dict[str, Any], top: int = 12) -> Any:
    """How far Eq. 1 at 420k lands from the released 2.529e-4 under the closest readings (in %)."""
    import matplotlib.pyplot as plt

    rows = check["readings"][:top][::-1]
    labels = [f"T={r['T']}{' − W' if r['T_minus_warmup'] else ''} · t from {r['t_origin']} · "
              f"{'full' if r['cosine'].startswith('full') else 'half'} cosine · η_min {r['rsqrt_min']}" for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.4))
    ax.barh(range(len(rows)), [100 * r["rel_diff"] for r in rows], color="steelblue")
    ax.axvline(0, color="crimson", lw=1.5, label=f"released global_step{check['step']}: {check['target']:.4g}")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set(title=f"Eq. 1 at step {check['step']:,}: the {top} closest of {check['n_readings']} readings",
           xlabel="difference from the released learning rate (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def schedule_comparison(paper: Config, check: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows: the rate at the pre-cool-down step under this chapter's default reading, the closest reading
    tried (a fit), ModernBERT's reading, and the released value, each with its residual."""
    target = check["target"]
    rows = [("this chapter's default reading of Eq. 1", check["default"]),
            (f"closest of {check['n_readings']} readings tried (fitted)", check["best"]["lr"]),
            ("ModernBERT's CosineInverseSqrtScheduler", check["modernbert"]["lr"]),
            (f"released global_step{check['step']} (model card)", target)]
    return [{"schedule": name, "lr": lr, "residual": lr - target, "relative": lr / target - 1.0} for name, lr in rows]


def plot_modernbert(paper: Config, check: dict[str, Any]) -> Any:
    """Our default reading of Eq. 1 and ModernBERT's reading over the main phase, with the released rate."""
    import matplotlib.pyplot as plt

    mb = check["modernbert"]
    steps = np.linspace(0, check["step"], 2000)
    ours = curve(paper, steps.round().astype(int))
    theirs = modernbert_lr(steps, peak=mb["peak"], floor=mb["floor"], warmup=mb["warmup"], total=mb["total"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(steps, ours, lw=1.6, label=f"ours ({paper.schedule.kind}): {check['default']:.3e} at {check['step']:,}")
    ax.plot(steps, theirs, lw=1.6, ls="--", label=f"ModernBERT's reading: {mb['lr']:.3e} at {check['step']:,}")
    ax.scatter([check["step"]], [check["target"]], color="crimson", zorder=3,
               label=f"released global_step{check['step']}: {check['target']:.4g}")
    ax.axvline(mb["switch_step"], color="grey", ls=":", lw=1)
    ax.set(title="Eq. 1 read two ways: ours and ModernBERT's (up to the cool-down)", xlabel="optimizer step",
           ylabel="learning rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


class ScheduleMetrics(TypedDict, total=False):
    """Chapter 04's numbers in ``metrics.json`` (Eq. 1, App. B, Fig. 2); a part is there once its cell ran.

    Learning rates as the optimizer sees them; steps are optimizer steps.
    """

    switch_step: float
    """Step of the turning point t₀ where Eq. 1 switches from cosine to rsqrt (paper configuration)."""
    switch_value_gap: float
    """|cosine − rsqrt| learning rate at t₀ (0 when the branches meet)."""
    switch_slope_gap: float
    """|cosine − rsqrt| slope at t₀, per step."""
    alpha: float
    beta: float
    """Eq. 1's rsqrt constants α and β."""
    average_lr: dict[str, float]
    """Schedule kind → learning rate averaged over the paper's steps (App. B)."""
    lr_420k_default: float
    """This configuration's reading of Eq. 1 at the released pre-cool-down step."""
    lr_420k_best: float
    """The closest reading's rate there."""
    lr_420k_naive: float
    """The naive reading's rate there (:func:`check_released`)."""
    lr_420k_solved_T: float
    """The horizon T for which the default reading hits the released rate."""
    n_readings: int
    """Readings of Eq. 1 tried."""
    lr_420k_modernbert: float
    """ModernBERT's schedule at that step."""
    schedule_comparison: dict[str, float]
    """Schedule → its rate at that step (:func:`schedule_comparison`)."""
    preset_steps: int
    """Optimizer steps at this preset."""
    preset_average_lr: float
    """Learning rate averaged over this preset's steps."""
    lambdalr_max_abs_gap: float
    """Largest |torch ``LambdaLR`` rate − :func:`curve`| over this preset's steps."""


def metrics(*, continuity: Mapping[str, float] | None = None, kinds: Mapping[str, Mapping[str, Any]] | None = None,
            check: Mapping[str, Any] | None = None, modernbert: Mapping[str, Any] | None = None,
            comparison: pd.DataFrame | None = None, preset: Config | None = None, lambdalr_max_abs_gap: float | None = None) -> ScheduleMetrics:
    """The parts of chapter 04's numbers given (a part left ``None`` is left out).

    ``continuity``: :func:`switch_continuity`; ``kinds``: :func:`compare_kinds`; ``check``:
    :func:`check_released` (its readings at 420k); ``modernbert`` (its ``modernbert``, :func:`modernbert_at`)
    with ``comparison`` (the :func:`schedule_comparison` frame indexed by schedule); ``preset`` (this
    preset's config) with ``lambdalr_max_abs_gap`` (torch against :func:`curve`). Raises ``ValueError``
    when a part's two arguments come apart.
    """
    if (modernbert is None) != (comparison is None):
        raise ValueError("metrics: give modernbert and comparison together (one cell computes them)")
    if (preset is None) != (lambdalr_max_abs_gap is None):
        raise ValueError("metrics: give preset and lambdalr_max_abs_gap together (one cell computes them)")
    out: ScheduleMetrics = {}
    if continuity is not None:
        out["switch_step"] = continuity["step"]
        out["switch_value_gap"] = abs(continuity["value_cosine"] - continuity["value_rsqrt"])
        out["switch_slope_gap"] = abs(continuity["slope_cosine"] - continuity["slope_rsqrt"])
        out["alpha"], out["beta"] = continuity["alpha"], continuity["beta"]
    if kinds is not None:
        out["average_lr"] = {k: v["average"] for k, v in kinds.items()}
    if check is not None:
        out["lr_420k_default"], out["lr_420k_best"] = check["default"], check["best"]["lr"]
        out["lr_420k_naive"], out["lr_420k_solved_T"] = check["naive"], check["solved_T"]
        out["n_readings"] = check["n_readings"]
    if modernbert is not None and comparison is not None:
        out["lr_420k_modernbert"] = modernbert["lr"]
        out["schedule_comparison"] = comparison["lr"].to_dict()
    if preset is not None and lambdalr_max_abs_gap is not None:
        out["preset_steps"], out["preset_average_lr"] = preset.train.steps, average_lr(preset)
        out["lambdalr_max_abs_gap"] = lambdalr_max_abs_gap
    return out
