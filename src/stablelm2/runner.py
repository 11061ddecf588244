"""Execute the chapter notebooks in order with papermill, reusing every chapter whose inputs did not change.

>>> from stablelm2 import runner
>>> results = runner.run(["00_overview"], preset="smoke")      # doctest: +SKIP
>>> results[0]["status"], results[0]["reused"]                  # doctest: +SKIP
('finished', False)

Executed notebooks go to ``build/<preset>/notebooks/``, each chapter's library log (Python
warnings, library log lines, the kernel's own output) to ``build/<preset>/logs/<chapter>.log``;
the status, duration, error, key and commit of every chapter go to ``build/<preset>/runs.json``
(entries of chapters not run this time are kept).

A chapter is executed only when its key (:mod:`stablelm2.fingerprint`: notebook, resolved config
and parameters, source of the ``stablelm2`` modules it imports, upstream chapters' keys, lock)
differs from the key of its last finished run; otherwise its executed notebook and metrics are
reused. ``force=True`` executes anyway. A run stopped part-way (Ctrl-C, a dead machine) leaves the
chapters it finished reusable, so the next run continues where it stopped.

Every cell runs under a timeout (:data:`CELL_TIMEOUT_S` of the preset, or ``timeout_s``); a cell
that fails, times out or kills its kernel ends that chapter only, and its record names the cell.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
from tqdm.auto import tqdm

from . import chapters as registry
from . import fingerprint, hardware, quiet
from .config import PRESETS, ConfigError, build_root, repo_root
from .config import load as load_config
from .files import atomic_write_json, atomic_write_text
from .record import git_state

CELL_TIMEOUT_S = {"smoke": 600, "cpu": 1800, "paper": 6 * 3600}
"""Seconds one cell may run before its chapter is stopped, per preset (``--cell-timeout`` overrides).
smoke: every cell of the suite finishes in well under a minute on 2 cores; cpu: the longest cells
(chapter 05's training, chapter 08's 1.6B cache build) take minutes; paper: downloads and GPU runs."""

RUNNER_OWNED = {"preset": "--preset"}
"""Notebook parameters that the runner sets itself, with the command-line flag that sets them."""

OVERRIDES = "overrides"
"""The parameter every notebook declares: a mapping ``{"section.field": value}`` that
``config.load`` applies on top of the preset (``-p train.steps=5`` on the command line fills it)."""


class RunnerError(ValueError):
    """Bad request to the runner (unknown chapter or parameter); raised before anything executes."""


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (the chapters' notebooks, stored without outputs)."""
    return repo_root() / "notebooks"


def _is_repository(nb_dir: Path | None) -> bool:
    return nb_dir is None or Path(nb_dir).resolve() == notebooks_dir().resolve()


def chapters(nb_dir: Path | None = None) -> list[str]:
    """Chapter names (notebook stems such as ``00_overview``) in order: the registry's
    (:mod:`stablelm2.chapters`) for the repository's notebooks, the ``NN_*.ipynb`` stems of another
    folder (a test's synthetic notebooks)."""
    if _is_repository(nb_dir):
        return registry.names()
    assert nb_dir is not None
    return sorted(p.stem for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))


def upstream(chapter: str, nb_dir: Path, earlier: list[str]) -> list[str]:
    """The earlier chapters whose artefacts ``chapter`` reads: the registry's for the repository's
    notebooks, the notebook's metadata ``stablelm2.upstream`` in another folder."""
    if _is_repository(nb_dir):
        return list(registry.get(chapter).upstream)
    return fingerprint.upstream(nb_dir / f"{chapter}.ipynb", earlier)


def resolve(names: list[str] | None, nb_dir: Path | None = None) -> list[str]:
    """Map ``["05", "overview", "01_data_mix"]`` onto full chapter names (all chapters when empty or None).

    Raises:
        RunnerError: a name matches no chapter (number, slug or full name), or more than one.
    """
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


def parse_value(raw: str) -> Any:
    """A ``-p`` value read exactly as papermill's own ``-p NAME VALUE`` reads it.

    ``"True"``/``"False"``/``"None"`` → the constants; then whatever ``int()`` accepts (``"010"`` → 10,
    ``"1_000"`` → 1000); then whatever ``float()`` accepts (``"1e-3"``, ``"nan"``, ``"inf"``); any other
    text stays a string (``"[1, 2]"`` is the string, not a list; ``"'x'"`` keeps its quotes).
    """
    if raw == "True":
        return True
    if raw == "False":
        return False
    if raw == "None":
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_parameters(items: list[str]) -> dict[str, Any]:
    """``["seed=010", "what_if=x", "train.steps=5"]`` → ``{"seed": 10, "what_if": "x", "overrides":
    {"train.steps": 5}}`` (values as :func:`parse_value`).

    A name ``section.field`` is a config field: it goes into the :data:`OVERRIDES` mapping every
    notebook declares, checked by ``config.load`` before anything runs. The one difference from
    papermill's command line: name and value are joined by the first ``=`` (``-p seed=7``) where
    papermill takes two words (``-p seed 7``). Raises :class:`RunnerError` on an item without ``=``,
    a name that is neither a Python identifier nor ``section.field``, ``overrides`` itself, or a
    parameter the runner owns.
    """
    out: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise RunnerError(f"parameter {item!r} is not of the form name=value (e.g. -p seed=7)")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if len(parts) == 2 and all(p.isidentifier() for p in parts):
            fields[key] = parse_value(raw)
            continue
        if not key.isidentifier():
            raise RunnerError(f"parameter name {key!r} in {item!r} is not a Python identifier (nor a config "
                              "field section.field, e.g. -p train.steps=5)")
        if key == OVERRIDES:
            raise RunnerError(f"set config fields one by one as -p section.field=value (e.g. -p train.steps=5), "
                              f"not -p {item}")
        out[key] = parse_value(raw)
    if fields:
        out[OVERRIDES] = fields
    refuse_owned(out)
    return out


def refuse_owned(parameters: dict[str, Any]) -> None:
    """Refuse notebook parameters the runner sets itself (:data:`RUNNER_OWNED`, e.g. ``preset``).

    Raises:
        RunnerError: ``parameters`` sets one of them; the message names the flag to use instead.
    """
    for name, flag in RUNNER_OWNED.items():
        if name in parameters:
            raise RunnerError(f"`{name}` is set by the runner, not as a notebook parameter: use {flag} "
                              f"{parameters[name]} instead of -p {name}={parameters[name]}")


def status_file(preset: str, root: Path | None = None) -> Path:
    """``build/<preset>/runs.json``: every chapter's last run record (``root`` replaces ``build``)."""
    return (root or build_root()) / preset / "runs.json"


def read_status(preset: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Chapter name → its last run record from :func:`status_file` (``{}`` when no chapter ran yet)."""
    path = status_file(preset, root)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def log_file(chapter: str, preset: str, root: Path | None = None) -> Path:
    """``build/<preset>/logs/<chapter>.log``: what the libraries and the kernel said while it ran."""
    return (root or build_root()) / preset / "logs" / f"{chapter}.log"


def lock_file() -> Path:
    """The lock the running environment was built from (the venv's copy, else the repository's)."""
    installed = Path(sys.prefix) / "installed.lock"
    return installed if installed.is_file() else repo_root() / "requirements.lock"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stopped_cell(nb: Any) -> int | None:
    """Index of the last cell papermill started (where a timeout or a dead kernel stopped the notebook)."""
    started = [i for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and (c.metadata.get("papermill") or {}).get("start_time")]
    return started[-1] if started else None


def _first_line(cell: Any) -> str:
    lines = cell.source.strip().splitlines()
    return lines[0][:80] if lines else ""


def execute(chapter: str, preset: str, parameters: dict[str, Any] | None = None, *,
            nb_dir: Path | None = None, root: Path | None = None, kernel_name: str = "python3",
            timeout_s: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Execute one chapter; return its status record (never raises on a failing notebook).

    ``timeout_s``: seconds one cell may run (default :data:`CELL_TIMEOUT_S` of ``preset``). A failing
    cell, a timeout or a dead kernel gives ``status="failed"`` with ``error``, ``cell`` (index of the
    cell in the executed notebook, as its page shows it) and ``cell_source`` (its first line).
    ``progress`` shows papermill's bar of executed cells (a long chapter is not silent for minutes).
    The kernel runs over IPC, with ``STABLELM2_BUILD_DIR`` = ``root`` and glibc told to keep freed memory for
    reuse (:data:`stablelm2.hardware.REUSE_FREED_MEMORY_ENV`, unless the environment sets those variables);
    stderr outputs move to :func:`log_file` and machine paths are scrubbed.
    """
    refuse_owned(parameters or {})
    nb_dir = nb_dir or notebooks_dir()
    root = root or build_root()
    src = nb_dir / f"{chapter}.ipynb"
    out = root / preset / "notebooks" / f"{chapter}.ipynb"
    log_path = log_file(chapter, preset, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    params = {"preset": preset, **(parameters or {})}
    timeout_s = CELL_TIMEOUT_S[preset] if timeout_s is None else timeout_s
    t0 = time.time()
    record: dict[str, Any] = {"chapter": chapter, "preset": preset, "parameters": params,
                              "output": str(out.relative_to(root)), "log": str(log_path.relative_to(root)),
                              "started": _now(), "cell_timeout_s": timeout_s}
    kernel_env = {"STABLELM2_BUILD_DIR": str(root),
                  **{k: os.environ.get(k, v) for k, v in hardware.REUSE_FREED_MEMORY_ENV.items()}}
    env_before = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)  # the kernel inherits them; glibc keeps freed memory for reuse (chapter 06 at cpu:
    try:                           # 198.6 -> 112.8 s, the same results)
        with open(log_path, "w", encoding="utf-8") as log:
            stopped = False  # a timeout or a dead kernel (papermill marks only cells that raised)
            try:
                pm.execute_notebook(str(src), str(out), parameters=params, cwd=str(nb_dir), kernel_name=kernel_name,
                                    progress_bar=progress, execution_timeout=timeout_s, log_output=False,
                                    kernel_manager_class=quiet.kernel_manager(log))
                record.update(status="finished", error=None)
            except pm.PapermillExecutionError as exc:
                record.update(status="failed", error=f"{exc.ename}: {exc.evalue}")
            except Exception as exc:  # a dead kernel or a timeout: a failed chapter, with the cell it stopped in
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}".strip())
                stopped = True
            _tidy(out, log, record, stopped)
    finally:
        for k, before in env_before.items():
            if before is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = before
    record["duration_s"] = round(time.time() - t0, 2)
    return record


def _tidy(out: Path, log: Any, record: dict[str, Any], stopped: bool) -> None:
    """Move library noise to the log, scrub machine paths, name the cell a failed chapter stopped in.

    Papermill heads a notebook whose cell raised with its own error cell; for a timeout or a dead
    kernel (``stopped``) a note saying where it stopped is put at the top instead.
    """
    if not out.is_file():
        return
    nb = nbformat.read(str(out), as_version=4)
    if record["status"] == "failed":
        cell = _stopped_cell(nb)
        record["cell"] = cell
        record["cell_source"] = None if cell is None else _first_line(nb.cells[cell])
        if stopped:
            where = "" if cell is None else f" in cell {cell + 1} (`{record['cell_source']}`)"
            note = nbformat.v4.new_markdown_cell(f"**This chapter stopped{where}:** {record['error']}")
            note.metadata["tags"] = ["stablelm2-stopped"]
            nb.cells.insert(0, note)
            record["cell"] = None if cell is None else cell + 1
    quiet.move_noise(nb, log)
    quiet.scrub_notebook(nb)
    if record.get("error"):
        record["error"] = quiet.scrub(record["error"])
    atomic_write_text(out, nbformat.writes(nb))


def plan_keys(preset: str, parameters: dict[str, Any], nb_dir: Path, src_dir: Path | None = None
              ) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{chapter: (key, parts)}`` for every chapter of ``nb_dir``, upstream keys included in order.

    The configuration in every key is the preset's with the :data:`OVERRIDES` applied (so a changed
    override reruns the chapters); ConfigError if an override is not a valid field value."""
    resolved = load_config(preset, parameters.get(OVERRIDES)).to_dict()
    lock = lock_file()
    keys: dict[str, tuple[str, dict[str, Any]]] = {}
    names = chapters(nb_dir)
    for i, chapter in enumerate(names):
        nb = nb_dir / f"{chapter}.ipynb"
        declared = parameters_of(nb)
        own = {k: v for k, v in parameters.items() if k in declared}
        ups = upstream(chapter, nb_dir, names[:i])
        keys[chapter] = fingerprint.chapter_key(nb, resolved, own, {u: keys[u][0] for u in ups}, lock, src_dir)
    return keys


def with_stale_upstream(todo: list[str], keys: dict[str, tuple[str, dict[str, Any]]],
                        status: dict[str, Any], nb_dir: Path) -> list[str]:
    """``todo`` plus every upstream chapter (transitively) whose last finished run has another key.

    A chapter's key names its upstream chapters' current keys, so running it alone on a stale upstream
    result would record a key its inputs do not have; the stale upstream chapters run first instead.
    """
    names = chapters(nb_dir)
    need = set(todo)
    for i in range(len(names) - 1, -1, -1):  # later chapters first: an added upstream is visited after
        if names[i] not in need:
            continue
        for up in upstream(names[i], nb_dir, names[:i]):
            prev = status.get(up) or {}
            if prev.get("status") != "finished" or prev.get("key") != keys[up][0]:
                need.add(up)
    return [n for n in names if n in need]


def run(names: list[str] | None = None, preset: str = "cpu", parameters: dict[str, Any] | None = None, *,
        nb_dir: Path | None = None, root: Path | None = None, progress: bool = True, force: bool = False,
        timeout_s: int | None = None, src_dir: Path | None = None) -> list[dict[str, Any]]:
    """Execute (or reuse) chapters in order; every chapter's record is kept in ``runs.json``.

    Unknown chapters, an unknown preset, a parameter that no notebook declares or one the runner
    owns (``preset``), and :data:`OVERRIDES` that ``config.load`` refuses (an unknown field, a wrong
    type, a value out of range) are refused before anything runs. A chapter whose key equals that of its last
    finished run is reused (``reused=True``, with the commit and time it was executed at) unless
    ``force``. ``timeout_s``: per-cell timeout (default :data:`CELL_TIMEOUT_S` of the preset).
    ``src_dir``: the ``stablelm2`` package source the keys are computed from (default: this one).
    Returns the records of the chapters run or reused, in order (a failed chapter does not raise).

    Raises:
        ConfigError: an unknown preset, or an override ``config.load`` refuses.
        RunnerError: an unknown chapter, no notebooks, a runner-owned or undeclared parameter, a notebook
            without ``preset``, :data:`OVERRIDES` that is not a mapping or that only some of the chapters
            declare, a non-positive ``timeout_s``, or a key that cannot be computed.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    nb_dir = nb_dir or notebooks_dir()
    root = root or build_root()
    todo = resolve(names, nb_dir)
    if not todo:
        raise RunnerError(f"no notebooks found in {nb_dir}")
    parameters = dict(parameters or {})
    refuse_owned(parameters)
    if timeout_s is not None and timeout_s <= 0:
        raise RunnerError(f"the cell timeout must be a positive number of seconds, not {timeout_s}")
    declared_any: set[str] = set()
    for chapter in todo:
        declared = parameters_of(nb_dir / f"{chapter}.ipynb")
        if "preset" not in declared:
            raise RunnerError(f"{chapter}.ipynb has no `preset` in its parameters cell")
        declared_any |= set(declared)
    if OVERRIDES in parameters:
        if not isinstance(parameters[OVERRIDES], dict):
            raise RunnerError(f"parameter {OVERRIDES!r} must be a mapping of 'section.field' to value, not "
                              f"{parameters[OVERRIDES]!r}")
        lacking = [c for c in todo if OVERRIDES not in parameters_of(nb_dir / f"{c}.ipynb")]
        if lacking and len(lacking) < len(todo):
            raise RunnerError(f"{', '.join(lacking)} declare no `{OVERRIDES}` parameter, so the config fields "
                              f"{', '.join(parameters[OVERRIDES])} would not reach them; add `{OVERRIDES} = {{}}` "
                              "to their parameters cell")
    unknown = sorted(set(parameters) - declared_any)
    if unknown:
        raise RunnerError(
            f"no chapter among {', '.join(todo)} declares parameter(s) {', '.join(unknown)}; "
            f"declared parameters are: {', '.join(sorted(declared_any))}"
        )
    try:
        keys = plan_keys(preset, parameters, nb_dir, src_dir)
    except fingerprint.FingerprintError as exc:
        raise RunnerError(str(exc)) from exc
    git = git_state()
    commit = git["commit"][:12] + ("+dirty" if git["dirty"] else "")
    results = []
    status = read_status(preset, root)
    if not force:
        todo = with_stale_upstream(todo, keys, status, nb_dir)
    bar = tqdm(todo, desc=f"chapters ({preset})", unit="nb", disable=not progress)
    for chapter in bar:
        bar.set_postfix_str(chapter)
        key, parts = keys[chapter]
        prev = status.get(chapter) or {}
        if (not force and prev.get("status") == "finished" and prev.get("key") == key
                and (root / prev.get("output", "")).is_file()
                and all((root / m).is_file() for m in prev.get("metrics", []))):
            rec = {**prev, "reused": True, "reused_at": _now()}
            tqdm.write(f"[stablelm2] {chapter} reused (unchanged since {prev.get('started')} at "
                       f"{prev.get('commit', '?')})")
        else:
            why = "forced" if force else ", ".join(fingerprint.changed(prev.get("key_parts"), parts)[:4])
            status[chapter] = {"chapter": chapter, "preset": preset, "status": "running", "started": _now()}
            atomic_write_json(status_file(preset, root), status)
            declared = parameters_of(nb_dir / f"{chapter}.ipynb")
            own = {k: v for k, v in parameters.items() if k in declared}
            rec = execute(chapter, preset, own, nb_dir=nb_dir, root=root, progress=progress, timeout_s=timeout_s)
            rec.update(key=key, key_parts=parts, commit=commit, reused=False, why=why or "unchanged")
            metrics = root / preset / chapter / "metrics.json"
            rec["metrics"] = [str(metrics.relative_to(root))] if metrics.is_file() else []
            if rec["status"] != "finished":
                where = "" if rec.get("cell") is None else f" in cell {rec['cell']}"
                tqdm.write(f"[stablelm2] {chapter} FAILED{where} after {rec['duration_s']} s: {rec['error']}")
            else:
                tqdm.write(f"[stablelm2] {chapter} finished in {rec['duration_s']} s ({rec['why']})")
        results.append(rec)
        status[chapter] = rec
        atomic_write_json(status_file(preset, root), status)
    return results
