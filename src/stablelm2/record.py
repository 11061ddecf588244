"""A chapter's run record: provenance header, measured numbers, claims, figures and energy.

Every notebook starts with::

    run = record.start(cfg, "04_lr_schedule")   # seeds, goes offline, meters energy
    run                                         # shows the provenance header

and then records what it measures::

    run.log(lr_at_420k=2.5e-4)                  # deterministic numbers (compared across runs)
    run.timing(fit_s=3.2)                       # wall-clock numbers (not compared)
    run.ledger.derive(...)                      # claims, see ledger.py
    run.savefig(fig, "fig2_lr_schedule")        # figures, named after what they reproduce
    run.finish()                                # stops the energy meter, marks the run finished

Everything lands in ``build/<preset>/<chapter>/metrics.json``, rewritten atomically after each
change, so a crashed notebook still leaves what it had measured. :func:`read` reads it back.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config, build_root, repo_root
from .files import atomic_file, atomic_write_json, sha256_file
from .ledger import Ledger

PACKAGES = (
    "torch", "transformers", "tokenizers", "datasets", "accelerate", "trl", "tiktoken", "lm_eval",
    "gguf", "llama_cpp_python", "openvino", "nncf", "codecarbon", "papermill", "numpy", "pandas",
)
_NON_DETERMINISTIC = ("provenance", "timings", "energy", "started", "finished_at", "duration_s")


# ------------------------------------------------------------------------------ provenance


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit": 40-hex sha, "dirty": bool}`` of the repository; ``{"commit": "unknown", "dirty": None}``
    outside a git checkout or without git (never raises)."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def package_versions() -> dict[str, str]:
    """``{package: version}`` of :data:`PACKAGES` as installed (``"not installed"`` for a missing one)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = _md.version(name.replace("_", "-"))
        except _md.PackageNotFoundError:
            try:
                out[name] = _md.version(name)
            except _md.PackageNotFoundError:
                out[name] = "not installed"
    return out


def hardware() -> dict[str, Any]:
    """This machine: ``{"cpu": model name, "cores": logical CPUs, "machine": arch, "memory_gib": GiB (1
    decimal; absent where the OS does not say), "gpu": [CUDA device names]}``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine()}
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch

        info["gpu"] = (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else []
        )
    except ImportError:
        info["gpu"] = []
    return info


def lock_state() -> dict[str, Any]:
    """The lock file the environment was built from (``make`` copies it into the venv) and its sha256:
    ``{"file": name or None, "sha256": hex or None, "matches_repository": bool or None}`` (plus ``"note"``
    when the venv was not built from a lock).

    ``matches_repository``: whether the repository's lock of the same name is still that file
    (``False``: the lock changed since the venv was built; rebuild it with ``make venv``).
    """
    installed = Path(sys.prefix) / "installed.lock"
    if not installed.is_file():
        repo_lock = repo_root() / "requirements.lock"
        return {"file": None, "sha256": None, "matches_repository": None,
                "note": "this environment was not built from a lock (make venv builds it from "
                        f"{repo_lock.name})"}
    digest = sha256_file(installed)
    first = installed.read_text(encoding="utf-8").splitlines()[:3]
    name = "requirements-cuda.lock" if any("VARIANT=cuda" in line for line in first) else "requirements.lock"
    repo_lock = repo_root() / name
    return {"file": name, "sha256": digest,
            "matches_repository": repo_lock.is_file() and sha256_file(repo_lock) == digest}


def shown_path(path: Path) -> str:
    """``path`` as a page shows it: relative to the repository (``build/cpu/04_lr_schedule/metrics.json``),
    or under ``$STABLELM2_BUILD_DIR`` when the build folder lies elsewhere; never the machine's absolute path."""
    path = Path(path).resolve()
    for base, label in ((repo_root().resolve(), None), (build_root().resolve(), "$STABLELM2_BUILD_DIR")):
        if path.is_relative_to(base):
            rel = path.relative_to(base).as_posix()
            return rel if label is None else f"{label}/{rel}"
    return path.name


def provenance(cfg: Config) -> dict[str, Any]:
    """A run's provenance header: ``git`` (:func:`git_state`), ``python``, ``lock`` (:func:`lock_state`),
    ``packages``, ``hardware``, the preset, seed and offline flag of ``cfg``, and ``time_utc`` (ISO 8601,
    seconds). Not compared between runs (see :func:`deterministic_part`)."""
    return {
        "git": git_state(),
        "python": platform.python_version(),
        "lock": lock_state(),
        "packages": package_versions(),
        "hardware": hardware(),
        "preset": cfg.run.preset,
        "seed": cfg.run.seed,
        "offline": cfg.run.offline,
        "time_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, ``PYTHONHASHSEED`` (for child processes), numpy and torch (where installed)
    with ``seed``: same parameters, same numbers."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def go_offline() -> None:
    """Tell every Hugging Face library not to touch the network."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"


# ------------------------------------------------------------------------------ energy


class EnergyMeter:
    """codecarbon's offline tracker around one notebook run (started on construction).

    Raises :class:`~stablelm2.config.ConfigError` (from :func:`stablelm2.grid.country_code`) before
    metering when ``cfg.carbon.country`` is not an alpha-3 code codecarbon knows.

    Without RAPL power counters (as on most VMs) codecarbon *estimates* CPU power from load and a
    per-thread constant, and RAM power from a constant; ``method`` says which it used.
    """

    def __init__(self, cfg: Config, name: str, out_dir: Path):
        from codecarbon import OfflineEmissionsTracker

        from . import grid

        # codecarbon meters an unknown code at the world average without a word: refuse it first
        self.country = grid.country_code(cfg.carbon.country, "carbon.country")
        out_dir.mkdir(parents=True, exist_ok=True)
        # codecarbon logs its start-up lines before it applies log_level; what it measured is in the record
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.tracker = OfflineEmissionsTracker(
            project_name=name, country_iso_code=self.country, output_methods=[],
            log_level="error", output_dir=str(out_dir), measure_power_secs=5,
            allow_multiple_runs=True,
        )
        self.tracker.start()

    def stop(self) -> dict[str, Any]:
        """Stop the tracker; the run's energy record: ``energy_kwh`` (total, and its ``cpu_``/``ram_``/``gpu_``
        parts, kWh), ``cpu_power_w`` (W), ``emissions_kg`` (kg CO2eq), ``intensity_kg_per_kwh``, ``duration_s``,
        ``country`` (alpha-3) and ``method`` (counters or estimate)."""
        emissions_kg = self.tracker.stop() or 0.0
        data = self.tracker.final_emissions_data
        energy_kwh = float(getattr(data, "energy_consumed", 0.0) or 0.0)
        cpu_power = float(getattr(data, "cpu_power", 0.0) or 0.0)
        method = getattr(self.tracker, "_conf", {}).get("cpu_tracking_mode") or _cpu_method(self.tracker)
        return {
            "tool": "codecarbon",
            "energy_kwh": energy_kwh,
            "cpu_energy_kwh": float(getattr(data, "cpu_energy", 0.0) or 0.0),
            "ram_energy_kwh": float(getattr(data, "ram_energy", 0.0) or 0.0),
            "gpu_energy_kwh": float(getattr(data, "gpu_energy", 0.0) or 0.0),
            "cpu_power_w": cpu_power,
            "emissions_kg": float(emissions_kg),
            "intensity_kg_per_kwh": (float(emissions_kg) / energy_kwh) if energy_kwh else None,
            "duration_s": float(getattr(data, "duration", 0.0) or 0.0),
            "country": self.country,
            "method": method,
        }


def _cpu_method(tracker: Any) -> str:
    """Describe how codecarbon measured CPU power: hardware counters or its fallback estimate."""
    for hw in getattr(tracker, "_hardware", []):
        name = type(hw).__name__
        if name == "CPU":
            mode = getattr(hw, "_mode", "")
            if mode in ("intel_rapl", "intel_power_gadget", "apple_powermetrics"):
                return f"hardware counters ({mode})"
            return f"estimate ({mode or 'constant'}: TDP × load, no power counters)"
    return "estimate (no CPU power counters)"


# ------------------------------------------------------------------------------ the run


@dataclass
class Run:
    cfg: Config
    chapter: str
    dir: Path
    data: dict[str, Any] = field(default_factory=dict)
    ledger: Ledger = field(init=False)
    _meter: EnergyMeter | None = None
    _t0: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.chapter, on_change=self._save)

    # -- writing
    def _save(self) -> None:
        self.data["claims"] = self.ledger.to_list()
        self.data["references"] = list(self.ledger.references)
        atomic_write_json(self.dir / "metrics.json", self.data)

    def log(self, **numbers: Any) -> None:
        """Record deterministic measured numbers (compared between runs and read by tests) under
        ``metrics`` and rewrite ``metrics.json``; units belong in the key (``fit_s``, ``bpb``)."""
        self.data["metrics"].update(numbers)
        self._save()

    def timing(self, **seconds: Any) -> None:
        """Record wall-clock numbers in seconds under ``timings`` (never compared between runs)."""
        self.data["timings"].update(seconds)
        self._save()

    def path(self, *parts: str) -> Path:
        """A path inside this chapter's build folder (parents created)."""
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def savefig(self, fig: Any, name: str, caption: str = "") -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` (110 dpi, written atomically) and list it,
        with its caption, for the report; returns the file. A figure of the same name is replaced."""
        out = self.path("figures", f"{name}.png")
        with atomic_file(out) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
        self.data["figures"] = [f for f in self.data["figures"] if f["name"] != name]
        self.data["figures"].append({"name": name, "file": str(out.relative_to(self.dir)), "caption": caption})
        self._save()
        return out

    def finish(self) -> dict[str, Any]:
        """Stop the energy meter and mark the run finished; returns the record."""
        if self._meter is not None:
            self.data["energy"] = self._meter.stop()
            self._meter = None
        self.data["status"] = "finished"
        self.data["duration_s"] = round(time.time() - self._t0, 3)
        self.data["finished_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self._save()
        return self.data

    # -- display
    def header_markdown(self) -> str:
        """The provenance header as Markdown (preset, seed, git commit, versions, lock, CPU, GPU, where
        ``metrics.json`` lies): what a notebook shows under its title."""
        p = self.data["provenance"]
        git = p["git"]
        dirty = {True: " (dirty)", False: "", None: ""}[git["dirty"]]
        hw = p["hardware"]
        pk = p["packages"]
        gpu = ", ".join(hw.get("gpu") or []) or "none"
        lock = p.get("lock") or {}
        lock_text = (f"lock `{lock['file']}` sha256 `{lock['sha256'][:12]}`"
                     + ("" if lock.get("matches_repository") else " (differs from the repository's: rebuild the venv)")
                     if lock.get("sha256") else "no lock (venv not built by make)")
        return (
            f"**Run record — {self.chapter}** · preset `{p['preset']}` · seed `{p['seed']}` · "
            f"{'offline' if p['offline'] else 'online (Hub allowed)'} · {p['time_utc']}  \n"
            f"git `{git['commit'][:12]}`{dirty} · Python {p['python']} · torch {pk['torch']} · "
            f"transformers {pk['transformers']} · {lock_text}  \n"
            f"CPU: {hw['cpu']} × {hw['cores']} · memory {hw.get('memory_gib', '?')} GiB · GPU: {gpu}  \n"
            f"metrics → `{shown_path(self.dir / 'metrics.json')}`"
        )

    def _repr_markdown_(self) -> str:
        return self.header_markdown()


def start(cfg: Config, chapter: str, *, meter: bool | None = None) -> Run:
    """Begin a chapter's run in ``cfg.chapter_dir(chapter)``: seed everything, go offline when the preset
    says so, set torch's threads, write a first ``metrics.json`` and start metering (``meter``: override
    ``cfg.carbon.meter``). ``chapter``: a number (``"05"``), slug or name of :mod:`stablelm2.chapters`.

    Raises:
        ConfigError: ``chapter`` is not in the registry, or ``cfg.carbon.country`` is not a grid region
            codecarbon knows (before metering starts).
    """
    out = cfg.chapter_dir(chapter)
    chapter = out.name  # the registry's name, however the chapter was named
    out.mkdir(parents=True, exist_ok=True)
    if cfg.run.offline:
        go_offline()
    seed_everything(cfg.run.seed)
    if cfg.run.threads:
        import torch

        torch.set_num_threads(cfg.run.threads)
    run = Run(cfg=cfg, chapter=chapter, dir=out)
    run.data = {
        "chapter": chapter,
        "preset": cfg.run.preset,
        "status": "running",
        "provenance": provenance(cfg),
        "config": cfg.to_dict(),
        "metrics": {},
        "timings": {},
        "energy": {},
        "figures": [],
        "claims": [],
    }
    run._save()
    if cfg.carbon.meter if meter is None else meter:
        run._meter = EnergyMeter(cfg, f"stablelm2-{chapter}", out)
    return run


def read(preset: str, chapter: str, root: Path | None = None) -> dict[str, Any]:
    """Read back a chapter's ``metrics.json`` from ``<root>/<preset>/<chapter>/`` (default: the build folder).

    Raises:
        FileNotFoundError: the chapter has not run at that preset (names the command that makes it).
    """
    path = (root or build_root()) / preset / chapter / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; run the chapter first: python -m stablelm2 run {chapter} --preset {preset}"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def deterministic_part(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a record that must be identical between two runs with the same parameters: all but
    provenance, timings, energy, start/finish times, duration and figures (a new dict)."""
    out = {k: v for k, v in record.items() if k not in _NON_DETERMINISTIC}
    out.pop("figures", None)
    return out
