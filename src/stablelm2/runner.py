"""Execute the chapter notebooks in order with papermill, keeping going when one fails.

>>> from stablelm2 import runner
>>> results = runner.run(["00_overview"], preset="smoke")      # doctest: +SKIP
>>> results[0]["status"]                                        # doctest: +SKIP
'finished'

Executed notebooks go to ``build/<preset>/notebooks/``; the status, duration and error of every
chapter go to ``build/<preset>/runs.json`` (entries of chapters not run this time are kept).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import papermill as pm
from tqdm.auto import tqdm

from .config import PRESETS, ConfigError, build_root, repo_root
from .record import atomic_write_json


class RunnerError(ValueError):
    """Bad request to the runner (unknown chapter or parameter); raised before anything executes."""


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def chapters(nb_dir: Path | None = None) -> list[str]:
    """Chapter names (notebook stems such as ``00_overview``) in order."""
    nb_dir = nb_dir or notebooks_dir()
    return sorted(p.stem for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))


def resolve(names: list[str] | None, nb_dir: Path | None = None) -> list[str]:
    """Map ``["05", "overview", "01_data_mix"]`` onto full chapter names; error on unknown ones."""
    known = chapters(nb_dir)
    if not names:
        return known
    out = []
    for name in names:
        hits = [c for c in known if c == name or c.split("_", 1)[0] == name or c.split("_", 1)[1] == name]
        if len(hits) != 1:
            raise RunnerError(f"unknown chapter {name!r}; chapters are: {', '.join(known)}")
        out.append(hits[0])
    return out


def parameters_of(notebook: Path) -> dict[str, Any]:
    """The notebook's declared parameters (from its cell tagged ``parameters``)."""
    return pm.inspect_notebook(str(notebook))


def status_file(preset: str, root: Path | None = None) -> Path:
    return (root or build_root()) / preset / "runs.json"


def read_status(preset: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
    path = status_file(preset, root)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def execute(chapter: str, preset: str, parameters: dict[str, Any] | None = None, *,
            nb_dir: Path | None = None, root: Path | None = None, kernel_name: str = "python3",
            timeout_s: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Execute one chapter; return its status record (never raises on a failing notebook).

    ``progress`` shows papermill's bar of executed cells (a long chapter is not silent for minutes).
    """
    nb_dir = nb_dir or notebooks_dir()
    root = root or build_root()
    src = nb_dir / f"{chapter}.ipynb"
    out = root / preset / "notebooks" / f"{chapter}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {"preset": preset, **(parameters or {})}
    t0 = time.time()
    record: dict[str, Any] = {"chapter": chapter, "preset": preset, "parameters": params,
                              "output": str(out), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))}
    env_before = os.environ.get("STABLELM2_BUILD_DIR")
    os.environ["STABLELM2_BUILD_DIR"] = str(root)
    try:
        pm.execute_notebook(str(src), str(out), parameters=params, cwd=str(nb_dir), kernel_name=kernel_name,
                            progress_bar=progress, execution_timeout=timeout_s, log_output=False)
        record.update(status="finished", error=None)
    except pm.PapermillExecutionError as exc:
        record.update(status="failed", error=f"{exc.ename}: {exc.evalue}", cell=exc.exec_count)
    except Exception as exc:  # a kernel that died or timed out is a failed chapter, shown as such
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        if env_before is None:
            os.environ.pop("STABLELM2_BUILD_DIR", None)
        else:
            os.environ["STABLELM2_BUILD_DIR"] = env_before
    record["duration_s"] = round(time.time() - t0, 2)
    return record


def run(names: list[str] | None = None, preset: str = "cpu", parameters: dict[str, Any] | None = None, *,
        nb_dir: Path | None = None, root: Path | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Execute chapters in order; every chapter's record is kept in ``runs.json``.

    Unknown chapters, an unknown preset or a parameter that a notebook does not declare are
    refused before anything runs.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    nb_dir = nb_dir or notebooks_dir()
    root = root or build_root()
    todo = resolve(names, nb_dir)
    if not todo:
        raise RunnerError(f"no notebooks found in {nb_dir}")
    parameters = dict(parameters or {})
    declared_any: set[str] = set()
    for chapter in todo:
        declared = parameters_of(nb_dir / f"{chapter}.ipynb")
        if "preset" not in declared:
            raise RunnerError(f"{chapter}.ipynb has no `preset` in its parameters cell")
        declared_any |= set(declared)
    unknown = sorted(set(parameters) - declared_any)
    if unknown:
        raise RunnerError(
            f"no chapter among {', '.join(todo)} declares parameter(s) {', '.join(unknown)}; "
            f"declared parameters are: {', '.join(sorted(declared_any))}"
        )
    results = []
    status = read_status(preset, root)
    bar = tqdm(todo, desc=f"chapters ({preset})", unit="nb", disable=not progress)
    for chapter in bar:
        bar.set_postfix_str(chapter)
        declared = parameters_of(nb_dir / f"{chapter}.ipynb")
        own = {k: v for k, v in parameters.items() if k in declared}
        rec = execute(chapter, preset, own, nb_dir=nb_dir, root=root, progress=progress)
        results.append(rec)
        status[chapter] = rec
        atomic_write_json(status_file(preset, root), status)
        if rec["status"] != "finished":
            tqdm.write(f"[stablelm2] {chapter} FAILED after {rec['duration_s']} s: {rec['error']}")
        else:
            tqdm.write(f"[stablelm2] {chapter} finished in {rec['duration_s']} s")
    return results
