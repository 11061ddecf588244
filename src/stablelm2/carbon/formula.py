"""The paper's accounting formula and its inputs: GPU types, grid intensity, PUE, sensitivity.

*energy = GPU-hours × average power per GPU × PUE*, *emissions = energy × grid carbon intensity*
(:func:`footprint`); the average power the paper's numbers imply (:func:`implied_power_w`); how the
footprint moves over power, PUE and grid (:func:`sensitivity`, :func:`plot_sensitivity`).

>>> from stablelm2.carbon import formula
>>> fp = formula.footprint(gpu_hours=92_000, power_w=296, pue=1.1, intensity="FRA")
>>> fp.energy_mwh > 29
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import facts as F
from .. import grid
from ..config import ConfigError
from ..hardware import GPU, gpus
from ..hardware import gpu as gpu_type  # noqa: F401  (re-exported: ConfigError naming the known GPUs)

# ------------------------------------------------------------------------------------ tables


GPUS: dict[str, GPU] = gpus()
"""The spine's GPU table (:func:`stablelm2.hardware.gpus`), by name."""

SENSITIVITY_REGIONS = ("NOR", "IND")
"""Grid regions spanning the sensitivity study: among the cleanest and dirtiest grids in codecarbon."""
PUE_RANGE = (1.0, 1.6)
"""PUE from the ideal (no overhead) to an older, air-cooled data centre."""


def grid_intensity(region: str) -> float:
    """Carbon intensity (kg CO2eq/kWh) of a country's grid from codecarbon's offline data.

    ``region`` is an ISO-3166 alpha-3 code (``"USA"``, ``"FRA"``, any case) or a country name as
    codecarbon's table spells it; anything else is a :class:`ConfigError` (:func:`stablelm2.grid.region_code`,
    the same table and rule the config's ``carbon.country`` is checked against).
    """
    return grid.intensity(grid.region_code(region))


def region_name(region: str) -> str:
    """``"FRA"`` → ``"France (FRA, 2023)"`` (for tables)."""
    return grid.name(grid.region_code(region))


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
    """One footprint (Sec. 7): GPU-hours, W per GPU, PUE, kg CO2eq/kWh in; kWh and tCO2eq (metric) out."""

    gpu_hours: float
    power_w: float
    pue: float
    intensity_kg_per_kwh: float
    energy_kwh: float
    emissions_t: float

    @property
    def energy_mwh(self) -> float:
        """The energy in MWh (``energy_kwh`` / 1000)."""
        return self.energy_kwh / 1000.0


def footprint(gpu_hours: float, power_w: float, pue: float, intensity: float | str) -> Footprint:
    """energy = GPU-hours × power × PUE; emissions = energy × intensity (kg/kWh or a region code), Sec. 7.

    ``power_w`` is the average power per GPU in W; the result holds energy in kWh and emissions in tCO2eq.

    Raises:
        ConfigError: a non-positive or non-finite input, a PUE below 1, or an unknown grid region.
    """
    h, p, u = _positive("gpu_hours", gpu_hours), _positive("power_w", power_w), _pue(pue)
    ci, _ = _intensity(intensity)
    energy_kwh = h * p * u / 1000.0
    return Footprint(h, p, u, ci, energy_kwh, energy_kwh * ci / 1000.0)


def implied_power_w(energy_kwh: float, gpu_hours: float, pue: float) -> float:
    """The average power per GPU that makes ``footprint`` give ``energy_kwh`` (the formula inverted)."""
    return _positive("energy_kwh", energy_kwh) * 1000.0 / (_positive("gpu_hours", gpu_hours) * _pue(pue))


def paper_implied_power_w() -> float:
    """30 MWh / (92k GPU-hours × PUE 1.1): the paper's average power per GPU in W (Sec. 7; cell stripped)."""
    return implied_power_w(F.value("carbon.energy_mwh") * 1000.0, F.value("carbon.gpu_hours"), F.value("carbon.pue"))


# ------------------------------------------------------------------------------------ sensitivity


def sensitivity(base: Footprint, ranges: dict[str, tuple[float, ...]] | None = None) -> list[dict[str, Any]]:
    """Emissions when one input moves over its range and the others stay at ``base`` (a tornado).

    ``ranges`` maps ``power_w`` / ``pue`` / ``intensity`` to (low, high); defaults: half the A100's
    TDP to its TDP, :data:`PUE_RANGE`, and the grids of :data:`SENSITIVITY_REGIONS`. One row per input
    (``input``, ``low``, ``high``, ``base``, ``emissions_low_t``, ``emissions_high_t``, ``swing_t`` in
    tCO2eq), largest swing first.

    Raises:
        ConfigError: ``ranges`` names another input, or a value :func:`footprint` refuses.
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


