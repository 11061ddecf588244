"""The full lock: every package of the venv pinned with hashes, compiled from ``requirements.txt`` by uv.

    python ci/lock.py compile [--variant cpu|cuda|all]   # what `make lock` runs (needs the Python index)
    python ci/lock.py check                              # what `make test` runs (offline)

Why uv (``uv pip compile --generate-hashes``) rather than pip-tools: it resolves the whole stack
(~210 packages) in seconds without downloading wheels, it can resolve for a platform other than the
one it runs on (``--python-platform``, so the CUDA lock is made on a CPU machine), it keeps the
versions already in the lock unless asked to upgrade (a package added to ``requirements.txt``
changes only what it needs), and it is a single wheel with no dependency on pip's internals.
The lock is installed with plain pip (``pip install --require-hashes``), so uv is only needed to
refresh it.

Two variants, because torch comes in two builds that PyPI cannot tell apart by version:

- ``requirements.lock`` (cpu): torch's CPU wheel (``torch==2.13.0+cpu``) from a local wheel folder
  (``--find-links``, ``/opt/wheels`` on the reference machine; another folder with ``WHEELS=``);
- ``requirements-cuda.lock`` (cuda): PyPI's ``torch==2.13.0`` (the CUDA build with its ``nvidia-*``
  wheels), for GPU nodes: ``make venv VARIANT=cuda``.

Both are for Linux x86_64 with CPython 3.11 (``PLATFORM`` below). Packages that ship only a source
distribution (llama-cpp-python, deepspeed, ...) are pinned by the hash of that sdist; the tools pip
uses to build them are not hash-checked (a pip limitation), and llama-cpp-python builds for the CPU
unless ``CMAKE_ARGS="-DGGML_CUDA=on"`` is set when the venv is made.

``check`` fails (exit 1, one line per problem) when a lock and ``requirements.txt`` disagree: a
direct requirement missing from a lock or locked at a version its pin does not allow, a locked
package that claims to come from ``requirements.txt`` but is no longer there, or a pin without a hash.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
LOCKS = {"cpu": ROOT / "requirements.lock", "cuda": ROOT / "requirements-cuda.lock"}
PLATFORM = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_35")
PROJECT = "stablelm2"  # the editable `-e .` line: installed from the checkout, never locked
DEFAULT_WHEELS = "/opt/wheels"


def direct_requirements(path: Path = REQUIREMENTS) -> dict[str, Requirement]:
    """``{canonical name: Requirement}`` of the pinned lines of ``requirements.txt`` (not ``-e .``)."""
    out: dict[str, Requirement] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in out:
            raise SystemExit(f"{path.name}:{n}: {req.name} is listed twice")
        out[name] = req
    return out


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)")


def locked(path: Path) -> dict[str, dict]:
    """``{canonical name: {"version", "hashes", "via_requirements"}}`` read from a uv lock file."""
    out: dict[str, dict] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if m:
            current = {"version": m.group(3), "hashes": 0, "via_requirements": False}
            out[canonicalize_name(m.group(1))] = current
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("--hash=sha256:"):
            current["hashes"] += 1
        elif re.search(r"(via|#)\s+-r requirements\.txt$", stripped):
            current["via_requirements"] = True
    return out


def problems(requirements: Path = REQUIREMENTS, locks: dict[str, Path] = LOCKS) -> list[str]:
    """Every disagreement between ``requirements`` and the lock files (empty when they agree)."""
    direct = direct_requirements(requirements)
    found = []
    for variant, path in locks.items():
        if not path.is_file():
            found.append(f"{path.name} is missing; make it with `make lock` (variant {variant})")
            continue
        pins = locked(path)
        for name, req in direct.items():
            if name == PROJECT:
                continue
            pin = pins.get(name)
            if pin is None:
                found.append(f"{path.name}: {req} from requirements.txt is not in the lock; run `make lock`")
            elif not req.specifier.contains(Version(pin["version"]), prereleases=True):
                found.append(f"{path.name}: {req.name} is locked at {pin['version']} but requirements.txt "
                             f"asks for {req}; run `make lock`")
        for name, pin in pins.items():
            if pin["via_requirements"] and name not in direct:
                found.append(f"{path.name}: {name}=={pin['version']} is locked as a requirement of "
                             "requirements.txt, which no longer lists it; run `make lock`")
            if pin["hashes"] == 0:
                found.append(f"{path.name}: {name}=={pin['version']} has no hash; run `make lock`")
    return found


def compile_lock(variant: str, *, wheels: str | None = None, upgrade: bool = False) -> Path:
    """Run uv to (re)write the lock of ``variant``; keeps the versions already locked unless ``upgrade``."""
    out = LOCKS[variant]
    cmd = [sys.executable, "-m", "uv", "pip", "compile", REQUIREMENTS.name, "--generate-hashes",
           "--no-emit-package", PROJECT, *PLATFORM, "--quiet", "-o", out.name,
           "--custom-compile-command", "make lock" + ("" if variant == "cpu" else f" VARIANT={variant}")]
    if variant == "cpu":
        wheels = wheels or os.environ.get("WHEELS") or DEFAULT_WHEELS
        if not Path(wheels).is_dir():
            raise SystemExit(f"the cpu lock takes torch's CPU wheel from a local folder, and {wheels} does not "
                             "exist; put torch-2.13.0+cpu there or name the folder: make lock WHEELS=/path")
        cmd += ["--find-links", wheels]
    if upgrade:
        cmd.append("--upgrade")
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="rewrite the lock file(s) from requirements.txt with uv")
    c.add_argument("--variant", choices=[*LOCKS, "all"], default="all")
    c.add_argument("--wheels", default=None, help=f"folder with torch's CPU wheel (default {DEFAULT_WHEELS})")
    c.add_argument("--upgrade", action="store_true", help="move every package to its newest allowed version")
    sub.add_parser("check", help="exit 1 when requirements.txt and the locks disagree")
    args = ap.parse_args(argv)
    if args.cmd == "compile":
        for variant in (LOCKS if args.variant == "all" else [args.variant]):
            path = compile_lock(variant, wheels=args.wheels, upgrade=args.upgrade)
            print(f"[lock] {path.name}: {len(locked(path))} packages")
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    if not found and args.cmd == "check":
        print(f"[lock] requirements.txt and {', '.join(p.name for p in LOCKS.values())} agree")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
