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

Grid regions are ISO-3166 alpha-3 codes (or, for the projector, country names) looked up in
codecarbon's energy-mix data (:mod:`stablelm2.grid`, the table its meter reads), so ``intensity="FRA"``
works offline; the config's ``carbon.country`` must be the capitalised code itself. Bad input raises
:class:`~stablelm2.config.ConfigError` naming the field and the accepted form.

The package: :mod:`.formula` (the accounting formula, its inputs, the sensitivity study),
:mod:`.projection` (any planned run priced; the paper's run checked), :mod:`.own` (our measurements).
"""

from .formula import (
    GPU,
    GPUS,
    PUE_RANGE,
    SENSITIVITY_REGIONS,
    Footprint,
    footprint,
    gpu_type,
    grid_intensity,
    implied_power_w,
    paper_implied_power_w,
    plot_sensitivity,
    region_name,
    sensitivity,
)
from .own import own_footprint, own_summary, own_total, plot_own_footprint
from .projection import (
    CONVENTIONS,
    Projection,
    compute_check,
    flop_conventions,
    paper_claims,
    paper_flops_per_token,
    paper_run,
    plan,
    project,
    scenarios,
    what_if,
)

__all__ = [
    "CONVENTIONS", "GPU", "GPUS", "PUE_RANGE", "SENSITIVITY_REGIONS", "Footprint", "Projection", "compute_check",
    "flop_conventions", "footprint", "gpu_type", "grid_intensity", "implied_power_w", "own_footprint", "own_summary",
    "own_total", "paper_claims", "paper_flops_per_token", "paper_implied_power_w", "paper_run", "plan",
    "plot_own_footprint", "plot_sensitivity", "project", "region_name", "scenarios", "sensitivity", "what_if",
]
