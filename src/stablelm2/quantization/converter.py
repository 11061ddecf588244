"""llama.cpp's own HF → GGUF converter, fetched once from the llama-cpp-python source distribution.

The converter (``convert_hf_to_gguf.py`` with its ``conversion/`` package and the ``gguf-py``
it was written against) ships in llama-cpp-python's *source* distribution on PyPI, not in the
wheel. :func:`install` downloads that sdist with pip (the ordinary client), checks its sha256,
and unpacks exactly those three paths into ``<venv>/share/stablelm2/llama.cpp-<version>/`` — the
same version as the installed ``llama_cpp`` library, so converter and runtime agree. Set-up runs it
once (``python -m stablelm2.quantization.converter install``, ``make`` does it); afterwards
everything is offline. :func:`convert` runs the converter in a subprocess, writing to a temporary
name that replaces the target only when the converter succeeded.

>>> from stablelm2.quantization import converter
>>> converter.location().name                                   # doctest: +SKIP
'llama.cpp-0.3.36'
>>> converter.convert("ckpt", "model-f16.gguf", outtype="f16")  # doctest: +SKIP
PosixPath('model-f16.gguf')
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..files import atomic_dir, atomic_file, atomic_write_text, sha256_file

SDIST_SHA256 = {
    "0.3.36": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
}
"""sha256 of ``llama_cpp_python-<version>.tar.gz`` on PyPI, per llama-cpp-python version we support."""
PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py", "LICENSE")
"""What is taken from the sdist's ``vendor/llama.cpp/``."""
ENV_VAR = "STABLELM2_LLAMA_CPP_DIR"
"""Overrides where the converter lives (a folder holding ``convert_hf_to_gguf.py``)."""
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


class ConverterError(RuntimeError):
    """The converter is missing, its download is wrong, or it failed on a checkpoint."""


def llama_cpp_version() -> str:
    """The installed llama-cpp-python version (the converter must match it).

    Raises:
        ConverterError: llama-cpp-python is not installed.
    """
    try:
        return md.version("llama-cpp-python")
    except md.PackageNotFoundError as exc:
        raise ConverterError("llama-cpp-python is not installed; fix: pip install -r requirements.txt") from exc


def location() -> Path:
    """Where the converter is (or will be) installed: ``$STABLELM2_LLAMA_CPP_DIR`` when set.

    Raises:
        ConverterError: the variable is unset and llama-cpp-python is not installed.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(sys.prefix) / "share" / "stablelm2" / f"llama.cpp-{llama_cpp_version()}"


def install_command() -> str:
    """The shell command that installs the converter (shown in errors)."""
    return f"{Path(sys.executable).name} -m stablelm2.quantization.converter install"


def script() -> Path:
    """Path of ``convert_hf_to_gguf.py``.

    Raises:
        ConverterError: the script or its ``conversion/`` package is missing (the message gives the
            set-up command), or llama-cpp-python is not installed.
    """
    path = location() / "convert_hf_to_gguf.py"
    if not path.is_file() or not (path.parent / "conversion").is_dir():
        raise ConverterError(
            f"llama.cpp's converter is not installed at {path.parent}; it ships only in the llama-cpp-python "
            f"source distribution. Fix (needs PyPI once): {install_command()}  "
            f"(or point ${ENV_VAR} at a llama.cpp checkout of the same version)"
        )
    return path


def download_sdist(dest: Path, version: str) -> Path:
    """``pip download llama-cpp-python==<version> --no-binary :all: --no-deps`` into ``dest``; the tarball.

    Raises:
        ConverterError: pip left no ``llama_cpp_python-<version>.tar.gz`` in ``dest`` (the message ends
            with pip's stderr).
    """
    cmd = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-binary", ":all:",
           "--no-deps", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    tarballs = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not tarballs:
        raise ConverterError(f"pip could not download the llama-cpp-python {version} sdist from PyPI:\n"
                             f"{proc.stderr[-2000:]}")
    return tarballs[0]


def install(sdist: Path | str | None = None, *, force: bool = False) -> Path:
    """Unpack the converter from the sdist (downloaded with pip unless given) into :func:`location`.

    The sdist's sha256 must equal :data:`SDIST_SHA256` for the installed llama-cpp-python version.
    The target folder appears whole or not at all. Returns the folder (unchanged when the converter
    is already there and ``force`` is False).

    Raises:
        ConverterError: llama-cpp-python is missing or its version has no known sdist hash, the sdist
            is missing, its sha256 differs, or it lacks one of :data:`PARTS`.
    """
    version = llama_cpp_version()
    if version not in SDIST_SHA256:
        raise ConverterError(f"no known sdist hash for llama-cpp-python {version}; supported: "
                             f"{', '.join(SDIST_SHA256)} — add its sha256 to SDIST_SHA256 after checking it")
    target = location()
    if (target / "convert_hf_to_gguf.py").is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".llama-cpp-") as tmp_s, atomic_dir(target) as staged:
        tmp = Path(tmp_s)
        tarball = Path(sdist) if sdist is not None else download_sdist(tmp / "dl", version)
        if not tarball.is_file():
            raise ConverterError(f"sdist {tarball} does not exist")
        digest = sha256_file(tarball)
        if digest != SDIST_SHA256[version]:
            raise ConverterError(f"sdist {tarball} has sha256 {digest}, expected {SDIST_SHA256[version]} for "
                                 f"llama-cpp-python {version}; the download is corrupt or a different release")
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        staged.mkdir()
        with tarfile.open(tarball, "r:gz") as tar:
            members = [m for m in tar.getmembers()
                       if m.name.startswith(prefix) and m.name[len(prefix):].split("/", 1)[0] in PARTS
                       and (m.isfile() or m.isdir())]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(staged, members=members, filter="data")
        missing = [p for p in PARTS if not (staged / p).exists()]
        if missing:
            raise ConverterError(f"sdist {tarball} lacks {', '.join(missing)} under {prefix}")
        atomic_write_text(staged / "SOURCE.json", json.dumps(
            {"package": "llama-cpp-python", "version": version, "sdist_sha256": digest, "parts": PARTS}, indent=2))
    return target


def convert(checkpoint: Path | str, out: Path | str, *, outtype: str = "f16", timeout: float | None = None) -> Path:
    """Run ``convert_hf_to_gguf.py`` on a transformers checkpoint folder; returns ``out``.

    The GGUF is written to a temporary name beside ``out`` and moved into place only when the
    converter exits cleanly; on failure nothing is left and the error shows the converter's output.
    ``timeout`` is in seconds (None: no limit).

    Raises:
        ConverterError: ``outtype`` is not in :data:`OUTTYPES`, the converter is not installed, or it
            failed (non-zero exit or no output file).
        subprocess.TimeoutExpired: the converter ran past ``timeout`` (nothing is left).
    """
    if outtype not in OUTTYPES:
        raise ConverterError(f"outtype {outtype!r} is not one the converter writes; choose one of {OUTTYPES}")
    conv = script()
    out = Path(out)
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py the converter was written against
    with atomic_file(out) as tmp:
        cmd = [sys.executable, str(conv), str(checkpoint), "--outfile", str(tmp), "--outtype", outtype]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode != 0 or not tmp.is_file():
            raise ConverterError(f"llama.cpp's converter failed on checkpoint {checkpoint} (exit {proc.returncode}):\n"
                                 f"{proc.stderr[-3000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m stablelm2.quantization.converter install [--sdist F] [--force] | where``; exit status 0.

    ``install`` prints the installed folder, ``where`` the converter's folder.

    Raises:
        ConverterError: as :func:`install` or :func:`script`.
        SystemExit: bad arguments (argparse).
    """
    ap = argparse.ArgumentParser(prog="python -m stablelm2.quantization.converter", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ins = sub.add_parser("install", help="fetch the sdist from PyPI (or use --sdist) and unpack the converter")
    ins.add_argument("--sdist", type=Path, help="an already downloaded llama_cpp_python-<version>.tar.gz")
    ins.add_argument("--force", action="store_true", help="reinstall even when present")
    sub.add_parser("where", help="print where the converter is installed (error when missing)")
    args = ap.parse_args(argv)
    if args.cmd == "install":
        print(install(args.sdist, force=args.force))
    else:
        print(script().parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
