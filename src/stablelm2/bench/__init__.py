"""The benchmark suite: each benchmark times our code against a named peer in the same run.

A benchmark module in this package defines ``BENCHMARKS = {"name": function}``; each function
takes ``repeats`` and returns one or more :func:`result` dicts. ``python -m stablelm2 bench``
(``make bench``) runs them and writes ``build/bench/results.json``, which the report shows.
Ratios are always "ours relative to the peer, >1 is better for us", medians over the repeats.
Benchmarks are never tests: nothing fails on speed.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import build_root
from ..files import atomic_write_json
from ..hardware import median_time as median_time  # re-exported: the one timing loop (stablelm2.hardware)
from ..record import hardware


class BenchError(ValueError):
    """Unknown benchmark name or bad repeat count."""


def registry() -> dict[str, Callable[..., Any]]:
    """Every benchmark of the suite, discovered from this package's modules (imported lazily)."""
    found: dict[str, Callable[..., Any]] = {}
    for mod in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        found.update(getattr(module, "BENCHMARKS", {}))
    return found


def result(name: str, *, ours: float, peer: float, peer_name: str, unit: str, higher_is_better: bool,
           goal: str = "", goal_ratio: float | None = None, note: str = "", **extra: Any) -> dict[str, Any]:
    """One benchmark row. ``ratio`` > 1 means ours is better than the peer."""
    ratio = (ours / peer) if higher_is_better else (peer / ours)
    return {
        "name": name, "ours": ours, "peer": peer, "peer_name": peer_name, "unit": unit,
        "higher_is_better": higher_is_better, "ratio": round(ratio, 4), "goal": goal,
        "meets_goal": None if goal_ratio is None else ratio >= goal_ratio, "note": note, **extra,
    }


def run(names: list[str] | None = None, repeats: int = 5, out: Path | None = None) -> Path:
    """Run the benchmarks ``names`` (default: all of :func:`registry`) and return the results file.

    Rows go into ``out`` (default ``build/bench/results.json``) with the time (UTC), the hardware and
    ``repeats``; the previous file's rows are kept unless a new row of the same name replaces them.

    Raises:
        BenchError: ``repeats`` < 1 or an unknown benchmark name (before any benchmark runs).
    """
    if repeats < 1:
        raise BenchError(f"repeats = {repeats} must be at least 1")
    known = registry()
    todo = names or list(known)
    unknown = [n for n in todo if n not in known]
    if unknown:
        raise BenchError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    rows: list[dict[str, Any]] = []
    for name in todo:
        print(f"[bench] {name} …", flush=True)
        got = known[name](repeats=repeats)
        rows.extend(got if isinstance(got, list) else [got])
        for r in rows[-(len(got) if isinstance(got, list) else 1):]:
            print(f"[bench]   {r['name']}: ours {r['ours']:.4g} {r['unit']} vs {r['peer_name']} "
                  f"{r['peer']:.4g} → ratio {r['ratio']:.3f} {r['goal']}", flush=True)
    out = out or build_root() / "bench" / "results.json"
    previous = {}
    if out.is_file():
        import json

        previous = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    for r in rows:
        previous[r["name"]] = r
    atomic_write_json(out, {"time_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                            "hardware": hardware(), "repeats": repeats, "results": list(previous.values())})
    return out
