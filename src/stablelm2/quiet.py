"""Kernels without open ports, pages without noise.

- :func:`kernel_manager` — the kernel manager class the runner gives papermill: the kernel talks
  over IPC (Unix sockets in a private temporary folder), so no TCP port is opened and ipykernel
  has no "running over TCP without encryption" warning to print; the kernel process's own
  stdout/stderr go to the chapter's log file instead of the terminal.
- :func:`move_stderr` — moves the ``stderr`` output of an executed notebook (Python warnings,
  library log lines; not progress bars, whose last state the page keeps) into the chapter's log,
  headed by the cell it came from, so a page shows what the chapter computed and the log shows
  what the libraries said.
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

        async def start_kernel(self, **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
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


def move_stderr(nb: Any, log: IO[str]) -> int:
    """Move the stderr output of ``nb`` into ``log``, headed by its cell; returns how many lines moved.

    Progress bars stay on the page (the report keeps each bar's last state); every other stderr
    line (Python warnings, library log lines) goes to the log. Cells are named as the page shows
    them: ``cell 7 (In [5])``.
    """
    moved = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        keep = []
        for out in cell.get("outputs", []):
            if out.get("output_type") != "stream" or out.get("name") != "stderr":
                keep.append(out)
                continue
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            lines = text.splitlines(keepends=True)
            bars = [line for line in lines if PROGRESS.search(line)]
            noise = [line for line in lines if not PROGRESS.search(line)]
            if noise:
                first = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
                log.write(f"--- cell {i} (In [{cell.get('execution_count') or ' '}]) {first}\n")
                body = "".join(noise)
                log.write(body if body.endswith("\n") else body + "\n")
                moved += len(noise)
            if bars:
                out["text"] = "".join(bars)
                keep.append(out)
        cell["outputs"] = keep
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
