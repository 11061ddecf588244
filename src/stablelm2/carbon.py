"""Chapter 09: the paper's carbon footprint and cost rebuilt, ours measured, any run projected.

The paper accounts for its pre-training as *energy = GPU-hours × average power per GPU × PUE* and
*emissions = energy × grid carbon intensity*, priced at a cloud rate per GPU-hour. This module
holds that formula (:func:`footprint`), the average power the paper's numbers imply
(:func:`implied_power_w`), a sensitivity study over power, PUE and intensity (:func:`sensitivity`),
a projector for any planned run (:func:`project`), the cross-chapter compute check
(:func:`compute_check`) and the aggregation of the codecarbon measurements that every chapter's
run records (:func:`own_footprint`).

>>> from stablelm2 import carbon
>>> fp = carbon.footprint(gpu_hours=92_000, power_w=296, pue=1.1, intensity=0.385)
>>> round(fp.energy_mwh, 1), round(fp.emissions_t, 1)
(30.0, 11.5)
>>> p = carbon.project(tokens=4e12, flops_per_token=1.2e10, gpu="A100-40GB", n_gpus=512, tflops=170)
>>> round(p.gpu_hours), round(p.wall_days, 1)
(78431, 6.4)

Grid regions are ISO-3166 alpha-3 codes (or country names) looked up in codecarbon's energy-mix
data, so ``intensity="FRA"`` works offline. Bad input raises :class:`~stablelm2.config.ConfigError`
naming the field.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import facts as F
from .config import Config, ConfigError
from .ledger import Ledger

# ------------------------------------------------------------------------------------ tables


@dataclass(frozen=True)
class GPU:
    name: str
    peak_tflops: float
    """Dense bf16 Tensor Core peak (TFLOP/s)."""
    tdp_w: float
    """Rated maximum board power (W)."""
    memory_gb: int
    source: str


def _gpu_table() -> dict[str, GPU]:
    """The accelerators a plan can be priced for (names as ``config.train.gpu`` spells them)."""
    a100 = "NVIDIA A100 datasheet (SXM4)"
    table = {
        # the paper's part: both numbers come from facts.yaml with their provenance
        "A100-40GB": GPU("A100-40GB", float(F.value("train.a100_peak_tflops_bf16")),
                         float(F.value("carbon.a100_tdp_w")), 40, a100 + " via facts.yaml"),
        "A100-80GB": GPU("A100-80GB", 312.0, 400.0, 80, a100),
        "H100-80GB": GPU("H100-80GB", 989.0, 700.0, 80, "NVIDIA H100 datasheet (SXM5, dense bf16)"),
    }
    for g in table.values():
        if not (g.peak_tflops > 0 and g.tdp_w > 0 and g.memory_gb > 0):
            raise ValueError(f"GPU table entry {g} has a non-positive number")
    return table


GPUS: dict[str, GPU] = _gpu_table()

SENSITIVITY_REGIONS = ("NOR", "IND")
"""Grid regions spanning the sensitivity study: among the cleanest and dirtiest grids in codecarbon."""
PUE_RANGE = (1.0, 1.6)
"""PUE from the ideal (no overhead) to an older, air-cooled data centre."""


def gpu_type(name: str) -> GPU:
    """The :class:`GPU` called ``name``; ConfigError naming the known ones otherwise."""
    if name not in GPUS:
        hint = difflib.get_close_matches(str(name), list(GPUS), n=1)
        raise ConfigError(
            f"gpu = {name!r} is not a GPU type this projector knows; choose one of: {', '.join(GPUS)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    return GPUS[name]


@lru_cache(maxsize=1)
def _energy_mix() -> dict[str, dict[str, Any]]:
    from codecarbon.input import DataSource

    return DataSource().get_global_energy_mix_data()


def grid_intensity(region: str) -> float:
    """Carbon intensity (kg CO2eq/kWh) of a country's grid from codecarbon's offline data.

    ``region`` is an ISO-3166 alpha-3 code (``"USA"``, ``"FRA"``) or a country name.
    """
    mix = _energy_mix()
    key = str(region).strip()
    by_name = {v["country_name"].lower(): k for k, v in mix.items()}
    code = key.upper() if key.upper() in mix else by_name.get(key.lower())
    if code is None:
        hint = difflib.get_close_matches(key.upper(), list(mix), n=2) + difflib.get_close_matches(
            key.lower(), list(by_name), n=2)
        raise ConfigError(
            f"intensity = {region!r} is not a grid region codecarbon knows; give an ISO-3166 alpha-3 code "
            "(e.g. 'USA', 'FRA', 'DEU') or a number in kg CO2eq/kWh"
            + (f" (did you mean {', '.join(map(repr, hint))}?)" if hint else "")
        )
    return float(mix[code]["carbon_intensity"]) / 1000.0


def region_name(region: str) -> str:
    """``"FRA"`` → ``"France (FRA, 2023)"`` (for tables)."""
    grid_intensity(region)
    mix = _energy_mix()
    code = region.upper() if region.upper() in mix else next(
        k for k, v in mix.items() if v["country_name"].lower() == region.lower())
    return f"{mix[code]['country_name']} ({code}, {mix[code]['year']})"


# ------------------------------------------------------------------------------------ checks


def _positive(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{field} = {value!r} must be a positive number")
    return float(value)


def _pue(value: Any) -> float:
    v = _positive("pue", value)
    if v < 1.0:
        raise ConfigError(f"pue = {value!r} is below 1; a PUE is total facility power over IT power, ≥ 1")
    return v


def _intensity(value: float | str) -> tuple[float, str]:
    """(kg CO2eq/kWh, where it came from)."""
    if isinstance(value, str):
        return grid_intensity(value), f"codecarbon: {region_name(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"intensity = {value!r} must be a number ≥ 0 (kg CO2eq/kWh) or a grid region code")
    return float(value), "given"


def _nonneg(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{field} = {value!r} must be a number ≥ 0")
    return float(value)


# ------------------------------------------------------------------------------------ the formula


@dataclass(frozen=True)
class Footprint:
    gpu_hours: float
    power_w: float
    pue: float
    intensity_kg_per_kwh: float
    energy_kwh: float
    emissions_t: float

    @property
    def energy_mwh(self) -> float:
        return self.energy_kwh / 1000.0


def footprint(gpu_hours: float, power_w: float, pue: float, intensity: float | str) -> Footprint:
    """energy = GPU-hours × power × PUE; emissions = energy × intensity (kg/kWh or a region code)."""
    h, p, u = _positive("gpu_hours", gpu_hours), _positive("power_w", power_w), _pue(pue)
    ci, _ = _intensity(intensity)
    energy_kwh = h * p * u / 1000.0
    return Footprint(h, p, u, ci, energy_kwh, energy_kwh * ci / 1000.0)


def implied_power_w(energy_kwh: float, gpu_hours: float, pue: float) -> float:
    """The average power per GPU that makes ``footprint`` give ``energy_kwh`` (the formula inverted)."""
    return _positive("energy_kwh", energy_kwh) * 1000.0 / (_positive("gpu_hours", gpu_hours) * _pue(pue))


def paper_implied_power_w() -> float:
    """30 MWh / (92k GPU-hours × PUE 1.1): the paper's average power per GPU (its cell is stripped)."""
    return implied_power_w(F.value("carbon.energy_mwh") * 1000.0, F.value("carbon.gpu_hours"), F.value("carbon.pue"))


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
        return self.wall_hours / 24.0

    @property
    def energy_mwh(self) -> float:
        return self.energy_kwh / 1000.0

    def to_dict(self) -> dict[str, Any]:
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
    from . import config, model

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
    from . import config

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
    """The paper's run beside a few what-ifs (and ``extra``, a dict of changes), one row each."""
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


def paper_claims(ledger: Ledger, fpts: dict[str, float] | None = None, *, rel_tol: float = 0.10) -> dict[str, Any]:
    """Rebuild the paper's footprint, cost and compute from its inputs and record every check.

    ``fpts`` are the 1.6B model's FLOPs per token by convention (default: :func:`paper_flops_per_token`).
    ``rel_tol`` is the tolerance of the compute checks (the paper's '~2T' and '~92k' are rounded).
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
    seen = compute_check(fpts["all_params"], v("carbon.flops_tokens_assumed"), tflops, hours)
    neox, mdl = conv["gpt-neox"], conv["model"]
    why_neox = (f"GPT-NeoX logs throughput with 4 passes per step when activation checkpointing is on (public "
                f"config: on; the paper's text: removed). Without it the count gives "
                f"{conv['gpt-neox-no-ckpt']['gpu_hours_needed']:,.0f} GPU-hours")
    claims = [
        ledger.derive("carbon.implied_power", "30 MWh / (92k GPU-hours × PUE 1.1) = average power per GPU",
                      fact="carbon.avg_power_w_derived", ours=round(power, 2), rel_tol=0.005),
        ledger.report_only("carbon.avg_power_printed", "average power per GPU as printed in the paper",
                           fact="carbon.avg_power_w", why="the table cell is stripped from the text we have; "
                           f"re-derived as {power:.0f} W ({power / tdp:.0%} of the A100-40GB's {tdp:.0f} W TDP)"),
        ledger.derive("carbon.emissions", "92k GPU-hours × implied power × PUE 1.1 × 0.385 kg/kWh ≈ 11 tCO2eq",
                      fact="carbon.emissions_t", ours=round(fp.emissions_t, 3), rel_tol=0.06,
                      note="30 MWh × 0.385 = 11.55 t; the paper says 'about 11'"),
        ledger.derive("carbon.cost", "92k GPU-hours × ~3.5 USD per GPU-hour", fact="carbon.cost_total_derived",
                      ours=hours * v("carbon.cost_per_gpu_hour"), rel_tol=0.001),
        ledger.derive("carbon.flops_booked", "92k GPU-hours × 170 TFLOP/s = compute the booked hours deliver",
                      fact="carbon.flops_hw_derived", ours=seen["booked_flops"], rel_tol=0.01),
        ledger.derive("carbon.flops_model", "(6 × all parameters + 12·L·d·s) × ~4.19T tokens seen",
                      fact="carbon.flops_model_derived", ours=seen["model_flops"], rel_tol=0.02),
        ledger.derive("carbon.gpu_hours_model_flops",
                      "2 epochs × ~2T tokens × chapter 03's model FLOPs per token at 170 TFLOP/s ≈ ~92k GPU-hours",
                      fact="carbon.gpu_hours", ours=round(mdl["gpu_hours_needed"]), rel_tol=rel_tol,
                      note=f"model FLOPs at 170 TFLOP/s fill {mdl['needed_over_booked']:.0%} of the booked hours"),
        ledger.derive("carbon.gpu_hours_neox_flops",
                      "2 epochs × ~2T tokens × GPT-NeoX-logged FLOPs per token at 170 TFLOP/s ≈ ~92k GPU-hours",
                      fact="carbon.gpu_hours", ours=round(neox["gpu_hours_needed"]), rel_tol=rel_tol, note=why_neox),
        ledger.derive("carbon.projector_emissions",
                      "the projector on the paper's run (GPT-NeoX FLOPs, implied power, PUE, intensity) ≈ 11 tCO2eq",
                      fact="carbon.emissions_t", ours=round(paper.emissions_t, 3), rel_tol=rel_tol),
        ledger.derive("carbon.us_intensity", "codecarbon's US grid intensity ≈ the paper's US average 0.385",
                      fact="carbon.intensity_kg_per_kwh", ours=round(grid_intensity("USA"), 4), rel_tol=0.05,
                      note=f"codecarbon's energy-mix data is for {region_name('USA')}; the paper's year is not stated"),
    ]
    return {"footprint": fp, "at_tdp": footprint(hours, tdp, pue, ci), "implied_power_w": power, "tdp_w": tdp,
            "paper_run": paper, "conventions": list(conv.values()), "claims": claims}


# ------------------------------------------------------------------------------------ sensitivity


def sensitivity(base: Footprint, ranges: dict[str, tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """Emissions when one input moves over its range and the others stay at ``base`` (a tornado).

    ``ranges`` maps ``power_w`` / ``pue`` / ``intensity`` to (low, high); defaults: half the A100's
    TDP to its TDP, :data:`PUE_RANGE`, and the grids of :data:`SENSITIVITY_REGIONS`.
    """
    tdp = GPUS["A100-40GB"].tdp_w
    default = {"power_w": (0.5 * tdp, tdp), "pue": PUE_RANGE,
               "intensity": tuple(grid_intensity(r) for r in SENSITIVITY_REGIONS)}
    ranges = {**default, **(ranges or {})}
    unknown = set(ranges) - set(default)
    if unknown:
        raise ConfigError(f"sensitivity ranges: unknown input(s) {sorted(unknown)}; use power_w, pue, intensity")
    rows = []
    for name, (lo, hi) in ranges.items():
        out = []
        for v in (lo, hi):
            args = {"gpu_hours": base.gpu_hours, "power_w": base.power_w, "pue": base.pue,
                    "intensity": base.intensity_kg_per_kwh, name: v}
            out.append(footprint(**args).emissions_t)
        at_base = base.intensity_kg_per_kwh if name == "intensity" else getattr(base, name)
        rows.append({"input": name, "low": lo, "high": hi, "base": at_base, "emissions_low_t": out[0],
                     "emissions_high_t": out[1], "swing_t": out[1] - out[0]})
    return sorted(rows, key=lambda r: -abs(r["swing_t"]))


def plot_sensitivity(base: Footprint, rows: list[dict[str, Any]], n: int = 41):
    """Figure: tornado of the emission swings, and emissions along each input's range."""
    import matplotlib.pyplot as plt
    import numpy as np

    labels = {"power_w": "average power per GPU (W)", "pue": "PUE", "intensity": "grid intensity (kg CO2eq/kWh)"}
    fig, grid = plt.subplots(2, 2, figsize=(10, 6.4))
    t, *axes = grid.ravel()
    top = max(r["emissions_high_t"] for r in rows)
    for i, r in enumerate(rows):
        lo, hi = sorted((r["emissions_low_t"], r["emissions_high_t"]))
        t.barh(i, hi - lo, left=lo, color="#4c72b0")
        t.text(hi, i, f"  {r['low']:.3g} – {r['high']:.3g}", va="center", fontsize=8)
    t.axvline(base.emissions_t, color="k", lw=1, ls="--")
    t.set_xlim(0, top * 1.4)
    t.set_yticks(range(len(rows)), [labels[r["input"]].replace(" (", "\n(") for r in rows])
    t.invert_yaxis()
    t.set_xlabel("tCO2eq")
    t.set_title(f"Which assumption moves the footprint\n(dashed: the paper's inputs, {base.emissions_t:.1f} t)")
    for ax, r in zip(axes, rows, strict=True):
        xs = np.linspace(min(r["low"], r["high"]), max(r["low"], r["high"]), n)
        ys = [footprint(**{"gpu_hours": base.gpu_hours, "power_w": base.power_w, "pue": base.pue,
                           "intensity": base.intensity_kg_per_kwh, r["input"]: float(x)}).emissions_t for x in xs]
        ax.plot(xs, ys, color="#55a868")
        ax.scatter([r["base"]], [base.emissions_t], color="k", zorder=3, label="the paper's value")
        ax.set_xlabel(labels[r["input"]])
        ax.set_ylabel("tCO2eq")
        ax.set_title(f"Emissions vs {labels[r['input']].split(' (')[0]}")
        ax.legend(fontsize=8)
    fig.suptitle(f"Footprint of {base.gpu_hours:,.0f} GPU-hours: one input moved at a time", y=1.03)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ our own footprint


def _measured_by(e: dict[str, Any]) -> str:
    method = str(e.get("method") or "unknown")
    cpu = "counters" if method.startswith("hardware counters") else "estimate"
    gpu_part = "GPU: NVML counters" if (e.get("gpu_energy_kwh") or 0) > 0 else "GPU: none"
    return f"CPU: {cpu} · RAM: estimate · {gpu_part}"


def own_footprint(preset_dir: Path, *, pue: float | None = None,
                  intensity: float | str | None = None) -> list[dict[str, Any]]:
    """One row per chapter under ``build/<preset>/``: the codecarbon energy its last run recorded.

    Each row also restates the energy at the paper's PUE and intensity (or the ones given), with the
    same formula as :func:`footprint`. Chapters whose run recorded no energy (still running, or
    run with ``carbon.meter = False``) appear with ``metered = False``.
    """
    u = _pue(F.value("carbon.pue") if pue is None else pue)
    ci, _ = _intensity(F.value("carbon.intensity_kg_per_kwh") if intensity is None else intensity)
    rows = []
    for path in sorted(Path(preset_dir).glob("*/metrics.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        e = rec.get("energy") or {}
        metered = "energy_kwh" in e
        kwh = float(e["energy_kwh"]) if metered else None
        rows.append({
            "chapter": rec.get("chapter", path.parent.name), "status": rec.get("status"), "metered": metered,
            "duration_s": e.get("duration_s", rec.get("duration_s")),
            "energy_wh": None if kwh is None else kwh * 1000.0,
            "cpu_wh": float(e.get("cpu_energy_kwh", 0.0)) * 1000.0 if metered else None,
            "ram_wh": float(e.get("ram_energy_kwh", 0.0)) * 1000.0 if metered else None,
            "gpu_wh": float(e.get("gpu_energy_kwh", 0.0)) * 1000.0 if metered else None,
            "emissions_g": float(e.get("emissions_kg", 0.0)) * 1000.0 if metered else None,
            "country": e.get("country"), "codecarbon_intensity": e.get("intensity_kg_per_kwh"),
            "emissions_g_paper_basis": None if kwh is None else kwh * u * ci * 1000.0,
            "measured_by": _measured_by(e) if metered else "not metered",
            "method": e.get("method", ""),
        })
    return rows


def own_total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum over the metered chapters (and how many of them relied on codecarbon's estimate)."""
    m = [r for r in rows if r["metered"]]
    total = {k: sum(r[k] for r in m) for k in ("duration_s", "energy_wh", "cpu_wh", "ram_wh", "gpu_wh",
                                                "emissions_g", "emissions_g_paper_basis")}
    total.update(chapter="TOTAL", status=f"{len(m)} metered", metered=bool(m), n_chapters=len(rows),
                 n_metered=len(m), n_estimated=sum("CPU: estimate" in r["measured_by"] for r in m),
                 n_counters=sum("CPU: counters" in r["measured_by"] for r in m))
    return total


def own_summary(total: dict[str, Any], paper_energy_kwh: float, country: str) -> str:
    """One sentence on the summed own footprint, set against the paper's pre-training energy."""
    if not total["n_metered"]:
        return ("No chapter of this preset has recorded its energy yet: run the whole report "
                "(`python -m stablelm2 run --preset <preset>`) and rerun this chapter.")
    ratio = paper_energy_kwh * 1000.0 / total["energy_wh"] if total["energy_wh"] > 0 else float("inf")
    counters = total["n_counters"]
    return (f"The {total['n_metered']} metered chapters used **{total['energy_wh']:.3g} Wh** "
            f"({total['emissions_g']:.3g} g CO2eq on codecarbon's grid for `{country}`) in "
            f"{total['duration_s']:.0f} s; {counters or 'none'} of them read CPU power counters, "
            f"{total['n_estimated']} relied on codecarbon's estimate. The paper's pre-training used "
            f"{paper_energy_kwh / 1000:.0f} MWh, {ratio:.1e} times as much.")


def plot_own_footprint(rows: list[dict[str, Any]]):
    """Figure: energy per chapter (CPU / RAM / GPU stacked) and emissions, totals in the title."""
    import matplotlib.pyplot as plt

    m = [r for r in rows if r["metered"]]
    if not m:
        fig, ax = plt.subplots(figsize=(8, 1.6))
        ax.axis("off")
        ax.set_title("This companion's own footprint")
        ax.text(0.5, 0.4, "no chapter of this preset has recorded its energy yet:\nrun the report first "
                "(python -m stablelm2 run --preset <preset>)", ha="center", va="center")
        return fig
    tot = own_total(rows)
    names = [r["chapter"] for r in m]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.45 * len(m) + 2.2))
    left = [0.0] * len(m)
    for part, color in (("cpu_wh", "#4c72b0"), ("ram_wh", "#dd8452"), ("gpu_wh", "#55a868")):
        vals = [r[part] for r in m]
        a.barh(names, vals, left=left, color=color, label=part.split("_")[0].upper())
        left = [x + y for x, y in zip(left, vals, strict=True)]
    a.set_xlabel("energy (Wh)")
    a.set_title(f"Energy per chapter — total {tot['energy_wh']:.3g} Wh")
    a.invert_yaxis()
    b.barh(names, [r["emissions_g"] for r in m], color="#8172b3", label="codecarbon (grid of its country)")
    b.scatter([r["emissions_g_paper_basis"] for r in m], names, color="k", marker="|", s=120,
              label="paper's PUE and intensity", zorder=3)
    b.set_xlabel("emissions (g CO2eq)")
    b.set_title(f"Emissions — total {tot['emissions_g']:.3g} g CO2eq")
    b.invert_yaxis()
    est = f"{tot['n_estimated']} of {tot['n_metered']} chapters: CPU power estimated by codecarbon (no counters)"
    fig.suptitle(f"This companion's own footprint, measured with codecarbon ({est})", y=1.02, fontsize=10)
    handles = [h for ax in (a, b) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=5, fontsize=8,
               bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return fig
