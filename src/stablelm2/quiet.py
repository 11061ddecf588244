"""Kernels without open ports, pages without noise.

- :func:`kernel_manager` — the kernel manager class the runner gives papermill: the kernel talks
  over IPC (Unix sockets in a private temporary folder), so no TCP port is opened and ipykernel
  has no "running over TCP without encryption" warning to print; the kernel process's own
  stdout/stderr go to the chapter's log file instead of the terminal.
- :func:`move_noise` — moves what the libraries said out of an executed notebook (stderr
  lines, Python warnings however shown, library log records printed on stdout; not progress bars,
  whose last state the page keeps) into the chapter's log, headed by the cell it came from, so a
  page shows what the chapter computed and the log shows what the libraries said.
- :func:`scrub` / :func:`scrub_notebook` — replace the machine's absolute paths (the repository,
  the build folder, the venv, the standard library, the home folder) by short relative names.
- :func:`page_problems` — what a rendered page must not contain: one of those absolute paths, a
  Python warning line, or ipykernel's TCP warning. ``ci/check_pages.py`` and the tests use it.

Plain ``papermill`` from a shell is untouched by all of this (it starts its own kernel manager).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager

from .config import build_root, repo_root

WARNING_LINE = re.compile(r"(?m)(?:^|\s)\S+:\d+: [A-Z]\w*Warning: |\[IPKernelApp\] WARNING")
TCP_WARNING = "Kernel is running over TCP without encryption"


def kernel_manager(log: IO[str]) -> type[AsyncKernelManager]:
    """A kernel manager class whose kernels use IPC transport and write their own output to ``log``.

    Each instance keeps its connection file and socket files in a fresh private folder under the
    system's temporary directory (short, since a Unix socket path is limited to ~100 bytes) and
    removes it when the kernel shuts down.
    """

    class QuietKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any):
            self._sockets = tempfile.mkdtemp(prefix="slm2k-")
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("connection_file", os.path.join(self._sockets, "kernel.json"))
            super().__init__(**kwargs)

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]  # async in jupyter_client 8
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
            try:
                await super().shutdown_kernel(now=now, restart=restart)
            finally:
                if not restart:
                    shutil.rmtree(self._sockets, ignore_errors=True)

    return QuietKernelManager


# ------------------------------------------------------------------------------ paths


def replacements() -> list[tuple[str, str]]:
    """``(absolute prefix, shown as)`` pairs, longest prefix first (so the venv wins over the repo)."""
    root = repo_root()
    pairs: dict[str, str] = {}
    venv = root / ".venv"
    prefix_label = ".venv" if venv.exists() and venv.resolve() == Path(sys.prefix).resolve() else "<venv>"
    for p in {sys.prefix, str(Path(sys.prefix).resolve())}:
        pairs[p] = prefix_label
    stdlib = sysconfig.get_paths()["stdlib"]  # what tracebacks through the standard library show
    for p in {stdlib, str(Path(stdlib).resolve())}:
        pairs.setdefault(p, "<python-stdlib>")
    broot = build_root()
    if not broot.is_relative_to(root):
        pairs[str(broot)] = "$STABLELM2_BUILD_DIR"
    pairs[str(root)] = "."
    pairs[str(root.resolve())] = "."
    home = os.path.expanduser("~")
    if home not in ("/", ""):
        pairs.setdefault(home, "~")
    return sorted(((k, v) for k, v in pairs.items() if k and k != "/"), key=lambda kv: -len(kv[0]))


def scrub(text: str, pairs: list[tuple[str, str]] | None = None) -> str:
    """``text`` with every absolute prefix of :func:`replacements` replaced (``/repo/build/x`` → ``build/x``)."""
    for prefix, label in pairs or replacements():
        if label == ".":
            text = re.sub(re.escape(prefix) + r"(/|\b)", lambda m: "" if m.group(1) == "/" else ".", text)
        else:
            text = text.replace(prefix, label)
    return text


def _scrub_value(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        return scrub(value, pairs)
    if isinstance(value, list):
        return [_scrub_value(v, pairs) for v in value]
    if isinstance(value, dict):
        return type(value)({k: _scrub_value(v, pairs) for k, v in value.items()})
    return value


def scrub_notebook(nb: Any) -> Any:
    """Replace absolute paths in every output and in papermill's metadata of ``nb`` (in place)."""
    pairs = replacements()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            for field in ("text", "data", "traceback", "evalue"):
                if field in out:
                    out[field] = _scrub_value(out[field], pairs)
    pm = nb.metadata.get("papermill")
    if pm:
        for field in ("input_path", "output_path", "exception"):
            if isinstance(pm.get(field), str):
                pm[field] = scrub(pm[field], pairs)
    return nb


# ------------------------------------------------------------------------------ the log


PROGRESS = re.compile(r"\r|\d+%\||\d+/\d+ \[|it/s|s/it|step/s")
"""A stderr line that is a progress bar (tqdm's ``50%|`` or ``3/10 [``, a ``\\r`` redraw, a rate)."""
LOG_RECORD = re.compile(r"^(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.\-]+:"
                        r"|\[\d{4}-\d\d-\d\d [\d:,.]+\] \[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\])")
"""A library's log record printed on stdout: logging's ``INFO:nncf:…`` or ``[2026-… 10:07:09,595] [WARNING]``."""
_INVISIBLE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\s")


def _text(out: Any) -> str:
    if out.get("output_type") == "stream":
        text = out.get("text", "")
    else:
        text = out.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def _split(out: Any) -> tuple[Any | None, str]:
    """``(what stays on the page or None, what goes to the log)`` for one output."""
    kind, text = out.get("output_type"), _text(out)
    if kind == "stream" and out.get("name") == "stderr":
        lines = text.splitlines(keepends=True)
        visible = [line for line in lines if _INVISIBLE.sub("", line)]
        noise = "".join(line for line in visible if not PROGRESS.search(line))
        bars = "".join(line for line in lines if PROGRESS.search(line) or not _INVISIBLE.sub("", line))
        if bars:
            out["text"] = bars
        return (out if bars.strip() else None), noise
    if kind == "stream" and LOG_RECORD.match(text):
        return None, text
    if kind in ("display_data", "stream") and WARNING_LINE.search(text):  # rich shows warnings as display_data
        return None, text
    return out, ""


def move_noise(nb: Any, log: IO[str]) -> int:
    """Move what the libraries said out of ``nb`` into ``log``, headed by its cell; returns how many outputs.

    Moved: stderr lines (Python warnings, library log lines), library log records printed on stdout
    (:data:`LOG_RECORD`, e.g. NNCF's INFO tables), and any output showing a Python warning (rich
    renders them as HTML). Kept: everything else, including progress bars, whose last state the
    report shows. Cells are named as the page shows them: ``cell 7 (In [5])``.
    """
    moved = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        keep, said = [], []
        for out in cell.get("outputs", []):
            kept, noise = _split(out)
            if kept is not None:
                keep.append(kept)
            if noise:
                said.append(noise if noise.endswith("\n") else noise + "\n")
                moved += 1
        cell["outputs"] = keep
        if said:
            first = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
            log.write(f"--- cell {i} (In [{cell.get('execution_count') or ' '}]) {first}\n" + "".join(said))
    log.flush()
    return moved


def page_problems(text: str, name: str = "page") -> list[str]:
    """What ``text`` (a rendered page or log) shows that it must not: absolute paths, Python warnings."""
    found = []
    for prefix, label in replacements():
        if prefix in text:
            found.append(f"{name}: shows the absolute path {prefix} (write it as {label})")
    m = WARNING_LINE.search(text)
    if m:
        found.append(f"{name}: shows a Python warning ({m.group(0).strip()!r}); route it to the chapter log")
    if TCP_WARNING in text:
        found.append(f"{name}: shows ipykernel's TCP warning; start kernels with stablelm2.quiet.kernel_manager")
    return found
