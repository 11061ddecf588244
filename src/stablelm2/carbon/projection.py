"""Any planned run priced in GPU-hours, days, energy, tCO2eq and cost; the paper's own run checked.

:func:`project` turns tokens × FLOPs per token at a throughput into GPU-hours and everything that
follows from them; :func:`what_if` and :func:`scenarios` vary one plan; :func:`paper_run`,
:func:`compute_check`, :func:`flop_conventions` and :func:`paper_claims` rebuild the paper's numbers.

>>> from stablelm2.carbon import projection
>>> p = projection.project(tokens=4e12, flops_per_token=1.2e10, gpu="A100-40GB", n_gpus=512, tflops=170)
>>> round(p.gpu_hours)
78431
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .. import facts as F
from ..config import Config, ConfigError
from ..ledger import Ledger
from .formula import (
    GPUS,
    _intensity,
    _nonneg,
    _positive,
    _pue,
    footprint,
    gpu_type,
    grid_intensity,
    paper_implied_power_w,
    region_name,
)

# ------------------------------------------------------------------------------------ the projector


@dataclass(frozen=True)
class Projection:
    """A planned run: inputs (as resolved) and what it costs."""

    gpu: str
    n_gpus: int
    tokens: float
    flops_per_token: float
    achieved_tflops: float
    mfu: float
    power_w: float
    power_basis: str
    pue: float
    intensity_kg_per_kwh: float
    intensity_basis: str
    price_per_gpu_hour: float
    flops: float
    gpu_hours: float
    wall_hours: float
    energy_kwh: float
    emissions_t: float
    cost_usd: float

    @property
    def wall_days(self) -> float:
        """Wall time in days (``wall_hours`` / 24; no overheads)."""
        return self.wall_hours / 24.0

    @property
    def energy_mwh(self) -> float:
        """The energy in MWh (``energy_kwh`` / 1000)."""
        return self.energy_kwh / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus ``wall_days`` and ``energy_mwh`` (JSON-ready)."""
        return {**asdict(self), "wall_days": self.wall_days, "energy_mwh": self.energy_mwh}

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{quantity, value, unit}`` for display."""
        rows = [
            ("GPU type", self.gpu, ""), ("GPUs", self.n_gpus, ""), ("tokens", self.tokens, "tokens"),
            ("training FLOPs per token", self.flops_per_token, "FLOP"),
            ("achieved throughput per GPU", self.achieved_tflops, "TFLOP/s"), ("MFU", self.mfu, "fraction"),
            ("average power per GPU", self.power_w, f"W ({self.power_basis})"), ("PUE", self.pue, ""),
            ("grid intensity", self.intensity_kg_per_kwh, f"kg CO2eq/kWh ({self.intensity_basis})"),
            ("price", self.price_per_gpu_hour, "USD/GPU-hour"), ("compute", self.flops, "FLOP"),
            ("GPU-hours", self.gpu_hours, "GPU-hours"), ("wall time", self.wall_days, "days (no overheads)"),
            ("energy", self.energy_mwh, "MWh"), ("emissions", self.emissions_t, "tCO2eq"),
            ("cost", self.cost_usd, "USD"),
        ]
        return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


def project(
    *,
    tokens: float,
    flops_per_token: float | None = None,
    n_params: float | None = None,
    gpu: str = "A100-40GB",
    n_gpus: int = 1,
    mfu: float | None = None,
    tflops: float | None = None,
    power_w: float | None = None,
    pue: float | None = None,
    intensity: float | str | None = None,
    price_per_gpu_hour: float | None = None,
) -> Projection:
    """Project a training run: FLOPs, GPU-hours, wall time, energy, tCO2eq and cost.

    Args (keyword only):
        tokens: training tokens processed (all epochs).
        flops_per_token: training FLOPs per token (e.g. ``model.flops_per_token(cfg)["total"]``);
            or give ``n_params`` instead and the dense estimate 6·N is used.
        gpu: a key of :data:`GPUS` (``"A100-40GB"``, ``"A100-80GB"``, ``"H100-80GB"``).
        n_gpus: GPUs running in parallel (wall time = GPU-hours / n_gpus, no overheads).
        mfu / tflops: achieved utilisation of the GPU's bf16 peak, or achieved TFLOP/s per GPU
            (give at most one; default: the paper's 170 TFLOP/s over the A100's 312 peak, as MFU).
        power_w: average power per GPU (default: the GPU's rated TDP, an upper bound).
        pue: data-centre PUE ≥ 1 (default: the paper's 1.1).
        intensity: kg CO2eq/kWh, or a grid region code such as ``"USA"`` (default: the paper's 0.385).
        price_per_gpu_hour: USD per GPU-hour (default: the paper's ~3.5).

    Energy and emissions as :func:`formula.footprint` (Sec. 7); GPU-hours = FLOPs / achieved FLOP/s / 3600.

    Raises:
        ConfigError: not exactly one of ``flops_per_token`` / ``n_params``, both ``mfu`` and ``tflops``,
            ``n_gpus`` not a positive integer, ``tflops`` above the GPU's peak, ``mfu`` above 1, an unknown
            GPU, or another input out of range (non-positive, PUE < 1, unknown grid region).
    """
    toks = _positive("tokens", tokens)
    if (flops_per_token is None) == (n_params is None):
        raise ConfigError("give exactly one of flops_per_token (training FLOPs per token) or n_params (6·N is used)")
    fpt = _positive("flops_per_token", flops_per_token) if flops_per_token is not None else \
        6.0 * _positive("n_params", n_params)
    dev = gpu_type(gpu)
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus <= 0:
        raise ConfigError(f"n_gpus = {n_gpus!r} must be a positive integer")
    if mfu is not None and tflops is not None:
        raise ConfigError("give at most one of mfu (fraction of the GPU's peak) or tflops (achieved TFLOP/s per GPU)")
    if tflops is not None:
        achieved = _positive("tflops", tflops)
        if achieved > dev.peak_tflops:
            raise ConfigError(f"tflops = {tflops!r} exceeds the {dev.name}'s bf16 peak of {dev.peak_tflops} TFLOP/s")
    else:
        u = F.value("train.tflops_per_gpu") / F.value("train.a100_peak_tflops_bf16") if mfu is None else mfu
        u = _positive("mfu", u)
        if u > 1.0:
            raise ConfigError(f"mfu = {mfu!r} is above 1; it is a fraction of the GPU's peak")
        achieved = u * dev.peak_tflops
    power = dev.tdp_w if power_w is None else _positive("power_w", power_w)
    basis = f"rated TDP of the {dev.name}" if power_w is None else "given"
    u_pue = _pue(F.value("carbon.pue") if pue is None else pue)
    ci, ci_basis = _intensity(F.value("carbon.intensity_kg_per_kwh") if intensity is None else intensity)
    if intensity is None:
        ci_basis = "paper: US average"
    price = _nonneg("price_per_gpu_hour",
                    F.value("carbon.cost_per_gpu_hour") if price_per_gpu_hour is None else price_per_gpu_hour)
    flops = toks * fpt
    gpu_hours = flops / (achieved * 1e12) / 3600.0
    fp = footprint(gpu_hours, power, u_pue, ci)
    return Projection(
        gpu=dev.name, n_gpus=n_gpus, tokens=toks, flops_per_token=fpt, achieved_tflops=achieved,
        mfu=achieved / dev.peak_tflops, power_w=power, power_basis=basis, pue=u_pue,
        intensity_kg_per_kwh=ci, intensity_basis=ci_basis, price_per_gpu_hour=price, flops=flops,
        gpu_hours=gpu_hours, wall_hours=gpu_hours / n_gpus, energy_kwh=fp.energy_kwh,
        emissions_t=fp.emissions_t, cost_usd=gpu_hours * price,
    )


def plan(cfg: Config, flops_per_token: float, *, tokens: float | None = None, mfu: float | None = None,
         tflops: float | None = None, power_w: float | None = None) -> Projection:
    """:func:`project` for a config's run: its GPU type and count, carbon section, and
    ``train.steps × train.global_batch_tokens`` tokens unless ``tokens`` is given."""
    return project(
        tokens=cfg.train.steps * cfg.train.global_batch_tokens if tokens is None else tokens,
        flops_per_token=flops_per_token, gpu=cfg.train.gpu, n_gpus=cfg.train.n_procs, mfu=mfu, tflops=tflops,
        power_w=power_w, pue=cfg.carbon.pue, intensity=cfg.carbon.intensity_kg_per_kwh,
        price_per_gpu_hour=cfg.carbon.price_per_gpu_hour,
    )


CONVENTIONS = {
    "model": "model FLOPs: 6 × matmul parameters + 12·L·d·s attention (chapter 03's total)",
    "all_params": "6 × all parameters + 12·L·d·s (FACTS.md's cross-check)",
    "gpt-neox": "GPT-NeoX's logged FLOPs with activation checkpointing (recomputed forward counted; public config)",
    "gpt-neox-no-ckpt": "GPT-NeoX's logged FLOPs without activation checkpointing (as the paper's text says)",
}
"""Ways of counting training FLOPs per token; a throughput in TFLOP/s means something only in one of them."""


def paper_flops_per_token() -> dict[str, float]:
    """FLOPs per token of the 1.6B model in each of :data:`CONVENTIONS` (chapter 03's arithmetic)."""
    from .. import config, model

    cfg = config.load("paper")
    f = model.flops_per_token(cfg)
    return {"model": f["total"], "all_params": f["dense_all_params"] + f["attention"],
            "gpt-neox": model.megatron_flops_per_token(cfg, checkpointing=True),
            "gpt-neox-no-ckpt": model.megatron_flops_per_token(cfg, checkpointing=False)}


def paper_run(flops_per_token: float | None = None) -> Projection:
    """The paper's pre-training run through the projector: 2 epochs of the ~2T-token mix at
    170 TFLOP/s on 512 A100-40GB, at the paper's implied power, PUE, intensity and price.

    FLOPs and throughput must be counted alike. The 170 TFLOP/s is a GPT-NeoX throughput, and
    GPT-NeoX counts the recomputed forward pass when activation checkpointing is on (the public
    config's setting), so ``flops_per_token`` defaults to that count, ``paper_flops_per_token()["gpt-neox"]``.
    """
    from .. import config

    cfg = config.load("paper")
    if flops_per_token is None:
        flops_per_token = paper_flops_per_token()["gpt-neox"]
    p = plan(cfg, flops_per_token, tokens=cfg.data.total_tokens * cfg.data.epochs,
             tflops=F.value("train.tflops_per_gpu"), power_w=paper_implied_power_w())
    return replace(p, power_basis="implied by the paper's 30 MWh", intensity_basis="paper: US average")


def compute_check(flops_per_token: float, tokens: float, tflops: float, gpu_hours: float) -> dict[str, float]:
    """Model FLOPs of ``tokens`` at ``tflops`` per GPU versus the GPU-hours actually booked."""
    fpt, toks = _positive("flops_per_token", flops_per_token), _positive("tokens", tokens)
    tf, booked = _positive("tflops", tflops), _positive("gpu_hours", gpu_hours)
    needed = fpt * toks / (tf * 1e12) / 3600.0
    return {"tokens": toks, "flops_per_token": fpt, "model_flops": fpt * toks,
            "booked_flops": booked * 3600.0 * tf * 1e12, "gpu_hours_needed": needed,
            "gpu_hours_booked": booked, "needed_over_booked": needed / booked}


def what_if(base: Projection, **changes: Any) -> Projection:
    """Re-project ``base`` with some inputs changed, e.g. ``what_if(p, gpu="H100-80GB", n_gpus=256)``.

    Keys are :func:`project`'s arguments. ``tflops`` replaces the MFU and ``n_params`` the FLOPs per
    token; a new ``gpu`` without ``power_w`` falls back to that GPU's rated TDP (so does ``power_w=None``).

    Raises:
        ConfigError: a key that is not one of :func:`project`'s inputs, or a value :func:`project` refuses.
    """
    allowed = {"tokens", "flops_per_token", "n_params", "gpu", "n_gpus", "mfu", "tflops", "power_w", "pue",
               "intensity", "price_per_gpu_hour"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ConfigError(f"what_if: unknown input(s) {unknown}; use {', '.join(sorted(allowed))}")
    args: dict[str, Any] = {"tokens": base.tokens, "flops_per_token": base.flops_per_token, "gpu": base.gpu,
                            "n_gpus": base.n_gpus, "mfu": base.mfu, "power_w": base.power_w, "pue": base.pue,
                            "intensity": base.intensity_kg_per_kwh, "price_per_gpu_hour": base.price_per_gpu_hour}
    if "tflops" in changes:
        args.pop("mfu")
    if "n_params" in changes:
        args.pop("flops_per_token")
    if "gpu" in changes and "power_w" not in changes:
        args.pop("power_w")
    args.update(changes)
    return project(**args)


def scenarios(base: Projection, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The paper's run beside a few what-ifs (and ``extra``, a dict of changes), one row each.

    Each row: ``plan`` (its name), the inputs, ``gpu_hours``, ``wall_days``, ``energy_mwh``, ``emissions_t``
    (tCO2eq) and ``cost_usd``.

    Raises:
        ConfigError: ``extra`` is not a dict, or a change :func:`what_if` refuses.
    """
    todo: list[tuple[str, dict[str, Any]]] = [
        ("the paper's run (projector)", {}),
        ("at the A100's rated power (TDP)", {"power_w": None}),
        ("at the 200 TFLOP/s layout", {"tflops": F.value("train.tflops_per_gpu_high")}),
        ("on a low-carbon grid (France)", {"intensity": "FRA"}),
        ("on as many H100-80GB: same MFU and price, TDP", {"gpu": "H100-80GB"}),
    ]
    if extra is not None and not isinstance(extra, dict):
        raise ConfigError(f"what_if = {extra!r} must be a dict of project() inputs, e.g. {{'gpu': 'H100-80GB'}}")
    if extra:
        todo.append(("your plan: " + ", ".join(f"{k}={v}" for k, v in extra.items()), dict(extra)))
    rows = []
    for name, changes in todo:
        p = what_if(base, **changes)
        rows.append({"plan": name, "gpu": p.gpu, "n_gpus": p.n_gpus, "tokens": p.tokens, "mfu": p.mfu,
                     "power_w": p.power_w, "pue": p.pue, "intensity": p.intensity_kg_per_kwh,
                     "gpu_hours": p.gpu_hours, "wall_days": p.wall_days, "energy_mwh": p.energy_mwh,
                     "emissions_t": p.emissions_t, "cost_usd": p.cost_usd})
    return rows


# ------------------------------------------------------------------------------------ claims


def flop_conventions(fpts: dict[str, float], tokens: float, tflops: float, gpu_hours: float) -> list[dict[str, Any]]:
    """GPU-hours that ``tokens`` need at ``tflops`` in each FLOP convention, against the booked hours."""
    rows = []
    for name, fpt in fpts.items():
        c = compute_check(fpt, tokens, tflops, gpu_hours)
        rows.append({"convention": name, "what": CONVENTIONS.get(name, name), "flops_per_token": fpt,
                     "flops": c["model_flops"], "gpu_hours_needed": c["gpu_hours_needed"],
                     "needed_over_booked": c["needed_over_booked"]})
    return rows


def paper_claims(ledger: Ledger, fpts: dict[str, float] | None = None) -> dict[str, Any]:
    """Rebuild the paper's footprint, cost and compute (Sec. 7) from its inputs and record every check.

    ``fpts`` are the 1.6B model's FLOPs per token by convention (default: :func:`paper_flops_per_token`).
    Every comparison uses the printed inputs' intervals (``ledger.Ledger.derive``); the GPU-hours are a
    **fit** over the FLOP conventions (which one the paper's ~92k corresponds to is a choice we make).
    Returns the numbers for the notebook's tables; the claims are under ``"claims"``.
    """
    v = F.value
    fpts = paper_flops_per_token() if fpts is None else fpts
    hours, pue, ci = v("carbon.gpu_hours"), v("carbon.pue"), v("carbon.intensity_kg_per_kwh")
    tflops, tdp = v("train.tflops_per_gpu"), GPUS["A100-40GB"].tdp_w
    power = paper_implied_power_w()
    fp = footprint(hours, power, pue, ci)
    paper = paper_run(fpts["gpt-neox"])
    tokens = paper.tokens
    conv = {r["convention"]: r for r in flop_conventions(fpts, tokens, tflops, hours)}
    why_neox = ("GPT-NeoX logs throughput with 4 passes per step when activation checkpointing is on (public "
                "config: on; the paper's text: removed)")
    claims = [
        ledger.derive("carbon.implied_power", "30 MWh / (92k GPU-hours × PUE 1.1) = average power per GPU",
                      fact="carbon.avg_power_w_derived",
                      inputs={"energy": "carbon.energy_mwh", "hours": "carbon.gpu_hours", "pue": "carbon.pue"},
                      formula=lambda energy, hours, pue: energy * 1e6 / (hours * pue)),
        ledger.report_only("carbon.avg_power_printed", "average power per GPU as printed in the paper",
                           fact="carbon.avg_power_w", kind="derivation",
                           why="the table cell is stripped from the text we have; "
                           f"re-derived as {power:.0f} W ({power / tdp:.0%} of the A100-40GB's {tdp:.0f} W TDP)"),
        ledger.derive("carbon.emissions", "30 MWh × 0.385 kg CO2eq/kWh against the printed 11 tCO2eq",
                      fact="carbon.emissions_t",
                      inputs={"energy": "carbon.energy_mwh", "intensity": "carbon.intensity_kg_per_kwh"},
                      formula=lambda energy, intensity: energy * intensity,
                      note=f"the projector on the paper's run (GPT-NeoX FLOPs) gives {paper.emissions_t:.2f} t"),
        ledger.derive("carbon.cost", "92k GPU-hours × ~3.5 USD per GPU-hour", fact="carbon.cost_total_derived",
                      inputs={"hours": "carbon.gpu_hours", "price": "carbon.cost_per_gpu_hour"},
                      formula=lambda hours, price: hours * price),
        ledger.derive("carbon.flops_booked", "92k GPU-hours × 170 TFLOP/s = compute the booked hours deliver",
                      fact="carbon.flops_hw_derived", inputs={"hours": "carbon.gpu_hours", "tflops": "train.tflops_per_gpu"},
                      formula=lambda hours, tflops: hours * 3600 * tflops * 1e12),
        ledger.derive("carbon.flops_model", "(6 × all parameters + 12·L·d·s) × ~4.19T tokens seen",
                      fact="carbon.flops_model_derived",
                      inputs={"per_token": fpts["all_params"], "tokens": "carbon.flops_tokens_assumed"},
                      formula=lambda per_token, tokens: per_token * tokens),
        ledger.fit("carbon.gpu_hours", "GPU-hours that 2 epochs × ~2T tokens need at 170 TFLOP/s, by FLOP convention",
                   fact="carbon.gpu_hours", candidates={name: r["gpu_hours_needed"] for name, r in conv.items()},
                   note=why_neox),
        ledger.report_only("carbon.us_intensity", "the paper's US grid intensity beside codecarbon's table",
                           fact="carbon.intensity_kg_per_kwh", kind="consistency",
                           why=(f"two reference tables, nothing measured here: codecarbon's energy mix for "
                                f"{region_name('USA')} gives {grid_intensity('USA'):.4g} kg/kWh; the paper's year "
                                "and source for its US average are not stated, so the two cannot be checked "
                                "against each other")),
    ]
    return {"footprint": fp, "at_tdp": footprint(hours, tdp, pue, ci), "implied_power_w": power, "tdp_w": tdp,
            "paper_run": paper, "conventions": list(conv.values()), "claims": claims}


