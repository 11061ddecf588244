"""Our own footprint: the codecarbon measurements every chapter's run records, added up.

>>> from stablelm2 import config
>>> from stablelm2.carbon import own
>>> rows = own.own_footprint(config.build_root() / "cpu")   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import facts as F
from .. import grid
from .formula import _intensity, _pue

# ------------------------------------------------------------------------------------ our own footprint


def _measured_by(e: dict[str, Any]) -> str:
    method = str(e.get("method") or "unknown")
    cpu = "counters" if method.startswith("hardware counters") else "estimate"
    gpu_part = "GPU: NVML counters" if (e.get("gpu_energy_kwh") or 0) > 0 else "GPU: none"
    return f"CPU: {cpu} · RAM: estimate · {gpu_part}"


def _grid_of(country: Any) -> str:
    """The grid codecarbon booked a record's emissions on: the country's, or the world average for a code
    its table does not know (records written before ``carbon.country`` was checked, issue 14)."""
    code = country.upper() if isinstance(country, str) else None  # codecarbon reads the code in capitals
    if code in grid.energy_mix():
        return grid.name(code)
    return f"world average (codecarbon does not know {country!r})"


def own_footprint(preset_dir: Path, *, pue: float | None = None,
                  intensity: float | str | None = None) -> list[dict[str, Any]]:
    """One row per chapter under ``build/<preset>/``: the codecarbon energy its last run recorded.

    Each row also restates the energy at the paper's PUE and intensity (or the ones given), with the
    same formula as :func:`footprint`, and names the grid codecarbon booked it on (``grid``: a country,
    or the world average for a code its table does not know). Chapters whose run recorded no energy (still running, or
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
            "country": e.get("country"), "grid": _grid_of(e.get("country")) if metered else None,
            "codecarbon_intensity": e.get("intensity_kg_per_kwh"),
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
