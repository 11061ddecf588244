"""Chapter 09 · The shape of the chapter's ``metrics.json`` numbers (Sec. 7, the carbon footprint).

:class:`CarbonMetrics` is a ``TypedDict`` (a plain dict at run time, checked by the type checker);
:func:`metrics` builds each part of it from what the chapter's cells compute, the notebook logs what it
returns, and the tests read the keys from the same class. Power in watts per GPU, energy in MWh,
emissions in tonnes of CO₂-equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from .projection import Projection


class CarbonMetrics(TypedDict, total=False):
    """Chapter 09's numbers in ``metrics.json``; a part is there once its cell ran."""

    implied_power_w: float
    """Average power per GPU the paper's energy implies, rounded to 3 places."""
    implied_power_frac_tdp: float
    """That power over the A100-40GB's rated TDP, rounded to 4 places."""
    energy_mwh: float
    """The paper's run rebuilt at the implied power, rounded to 4 places."""
    emissions_t: float
    """Its emissions, rounded to 4 places."""
    energy_mwh_at_tdp: float
    """The same run at the rated TDP (an upper bound), rounded to 4 places."""
    emissions_t_at_tdp: float
    sensitivity_swing_t: dict[str, float]
    """Input (power, PUE, intensity) → emissions swing over its range, rounded to 4 places."""
    paper_run: dict[str, Any]
    """The paper's run as :meth:`.projection.Projection.to_dict` gives it, floats rounded to 4 places."""


def metrics(*, rebuilt: Mapping[str, Any] | None = None, sensitivity: Sequence[Mapping[str, Any]] | None = None,
            paper_run: Projection | None = None) -> CarbonMetrics:
    """The parts of chapter 09's numbers given (a part left ``None`` is left out).

    ``rebuilt``: :func:`.projection.paper_claims` (its ``implied_power_w``, ``tdp_w``, ``footprint`` and
    ``at_tdp``); ``sensitivity``: :func:`.formula.sensitivity`; ``paper_run``: the paper's
    :class:`.projection.Projection` (``rebuilt["paper_run"]``).
    """
    out: CarbonMetrics = {}
    if rebuilt is not None:
        fp, at_tdp = rebuilt["footprint"], rebuilt["at_tdp"]
        out["implied_power_w"] = round(rebuilt["implied_power_w"], 3)
        out["implied_power_frac_tdp"] = round(rebuilt["implied_power_w"] / rebuilt["tdp_w"], 4)
        out["energy_mwh"], out["emissions_t"] = round(fp.energy_mwh, 4), round(fp.emissions_t, 4)
        out["energy_mwh_at_tdp"], out["emissions_t_at_tdp"] = round(at_tdp.energy_mwh, 4), round(at_tdp.emissions_t, 4)
    if sensitivity is not None:
        out["sensitivity_swing_t"] = {r["input"]: round(r["swing_t"], 4) for r in sensitivity}
    if paper_run is not None:
        out["paper_run"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in paper_run.to_dict().items()}
    return out
