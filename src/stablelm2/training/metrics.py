"""A run's per-step metrics: an append-only JSON-lines log that survives a kill, and its read-back.

The engine writes one line per optimizer step (``{"kind": "step", "step", "loss", "lr",
"grad_norm", "tokens", "step_s", "tokens_per_s", "mfu", "t_end"}``) and one per validation
(``{"kind": "eval", "step", "tokens", "val_loss", "domains", "val_tokens"}``) to
``<run>/metrics.jsonl``, flushed to the operating system after every line, so a run killed at any
moment leaves every finished step on disk (at worst one torn last line, which the reader skips).
A checkpoint stores only the log's length in bytes at its step (:attr:`MetricsLog.offset`), never
the records themselves: resuming cuts the log back to that length, so the steps a killed run did
after its last checkpoint are not counted twice — the resumed run redoes them, bit for bit.

What a checkpoint carries is therefore O(1) in the run's length (at ``paper``, 500k steps), and
the curves of chapter 05 read the log (:func:`read`, :func:`load_history`).

>>> import tempfile
>>> from pathlib import Path
>>> from stablelm2.training import metrics
>>> d = Path(tempfile.mkdtemp())
>>> log = metrics.MetricsLog(d / "metrics.jsonl")
>>> log.write("step", {"step": 1, "loss": 11.2})
>>> cut = log.offset
>>> log.write("step", {"step": 2, "loss": 11.0})
>>> log.close()
>>> [r["step"] for r in metrics.read(d / "metrics.jsonl")["steps"]]
[1, 2]
>>> log = metrics.MetricsLog(d / "metrics.jsonl", resume_at=cut)   # what a resume from step 1 does
>>> log.close()
>>> [r["step"] for r in metrics.read(d / "metrics.jsonl")["steps"]]
[1]
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from .results import EvalRecord, History, Logged, StepRecord

FILE = "metrics.jsonl"
RECENT = 4096
"""Step records the engine keeps in memory (for ``stop`` callbacks); older ones live only in the log."""


class MetricsLogError(RuntimeError):
    """The metrics log does not match the checkpoint a run resumes from; the message says how to fix it."""


class MetricsLog:
    """Append-only JSON-lines writer (one process writes it: the main rank).

    ``resume_at=None`` starts a new log (an existing one, left by a run killed before its first
    checkpoint, is replaced); ``resume_at=n`` keeps the first ``n`` bytes and appends after them.
    Raises :class:`MetricsLogError` when the log is missing or shorter than ``n``.
    """

    def __init__(self, path: Path | str, *, resume_at: int | None = None):
        self.path = Path(path)
        if resume_at is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
            return
        check_resumable(self.path, resume_at)
        os.truncate(self.path, resume_at)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, kind: str, record: Mapping[str, object]) -> None:
        """Append one record and hand it to the operating system (survives a killed process)."""
        self._fh.write(json.dumps({"kind": kind, **record}, allow_nan=True) + "\n")
        self._fh.flush()

    @property
    def offset(self) -> int:
        """Bytes written so far: what a checkpoint stores to cut the log back on resume."""
        return self._fh.tell()

    def sync(self) -> None:
        """Flush and ``fsync`` (the engine calls it with every checkpoint, so a machine crash keeps them together)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (flushed, not fsynced); a second call does nothing."""
        if not self._fh.closed:
            self._fh.close()


def check_resumable(path: Path | str, offset: int) -> None:
    """Refuse (before any work) to resume when the log is gone or shorter than the checkpoint recorded.

    ``offset`` is the log's length in bytes at the checkpoint (:attr:`MetricsLog.offset`).

    Raises:
        MetricsLogError: ``path`` is missing or holds fewer than ``offset`` bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricsLogError(f"{path} is missing, but the checkpoint's run logged {offset:,} bytes of metrics to "
                              "it; restore the file, or delete the run folder to start afresh")
    size = path.stat().st_size
    if size < offset:
        raise MetricsLogError(f"{path} holds {size:,} bytes, fewer than the {offset:,} its checkpoint recorded (the "
                              "log was cut or replaced); restore it, or delete the run folder to start afresh")


def _records(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # a torn last line of a killed run: the step it described is redone on resume
            yield json.loads(line)


def read(path: Path | str) -> Logged:
    """``{"steps": [...], "evals": [...]}`` from a metrics log (missing file: :class:`FileNotFoundError`)."""
    out: Logged = {"steps": [], "evals": []}
    for rec in _records(Path(path)):
        kind = rec.pop("kind")
        out["steps" if kind == "step" else "evals"].append(rec)
    return out


def tail(path: Path | str, n: int = RECENT) -> Logged:
    """The last ``n`` step records and every eval record, reading the log once with O(n) memory."""
    steps: deque[StepRecord] = deque(maxlen=n)
    evals: list[EvalRecord] = []
    for rec in _records(Path(path)):
        kind = rec.pop("kind")
        (steps.append if kind == "step" else evals.append)(rec)
    return {"steps": list(steps), "evals": evals}


def load_history(run_dir: Path | str) -> History:
    """A finished run's ``history.json`` with its ``steps`` and ``evals`` read back from the log."""
    run_dir = Path(run_dir)
    hist = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    return cast(History, {**hist, **read(run_dir / hist.get("metrics_log", FILE))})


class Totals:
    """Running sums for a run's summary (a few numbers, stored in every checkpoint instead of the history)."""

    def __init__(self, state: dict[str, float] | None = None):
        s = state or {}
        self.steps = int(s.get("steps", 0))
        self.lr_sum = float(s.get("lr_sum", 0.0))
        self.tps_sum = float(s.get("tps_sum", 0.0))
        self.tps_n = int(s.get("tps_n", 0))
        self.first_tps = float(s.get("first_tps", math.nan))
        self.last_loss = float(s.get("last_loss", math.nan))

    def add(self, rec: StepRecord) -> None:
        """Count one step record (step 1's tokens/s is kept apart: it includes the warm-up)."""
        self.steps += 1
        self.lr_sum += rec["lr"]
        self.last_loss = rec["loss"]
        if rec["step"] == 1:
            self.first_tps = rec["tokens_per_s"]  # the first step warms up; it is timed only if it is the only one
        else:
            self.tps_sum += rec["tokens_per_s"]
            self.tps_n += 1

    @property
    def tokens_per_s(self) -> float:
        """Mean tokens/s over steps 2 onward (step 1's rate when it is the only step; NaN before any)."""
        return self.tps_sum / self.tps_n if self.tps_n else self.first_tps

    @property
    def mean_lr(self) -> float:
        """Mean learning rate over the steps counted (NaN before any)."""
        return self.lr_sum / self.steps if self.steps else math.nan

    def state(self) -> dict[str, float]:
        """The sums as a JSON-able dict (what a checkpoint stores; ``Totals(state)`` restores them)."""
        return {"steps": self.steps, "lr_sum": self.lr_sum, "tps_sum": self.tps_sum, "tps_n": self.tps_n,
                "first_tps": self.first_tps, "last_loss": self.last_loss}


# ------------------------------------------------------------------------------ experiment trackers

TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
TRACKER_DIR = "tensorboard"
"""Run name under the run folder: TensorBoard's event files go to ``<run>/tensorboard/``."""


def check_tracker(cfg: Any) -> str | None:
    """``train.trackers`` as accelerate's ``log_with`` (``None`` for 'none'); ConfigError if its package is missing."""
    import importlib.util

    from ..config import ConfigError

    name: str = cfg.train.trackers
    if name == "none":
        return None
    if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
        raise ConfigError(f"train.trackers = {name!r} needs the {TRACKER_PACKAGES[name]!r} package, which is not "
                          f"installed; pip install it, or set train.trackers = 'tensorboard' or 'none'")
    return name


def hparams(cfg: Any, **extra: Any) -> dict[str, Any]:
    """The config flattened to ``{"section.field": scalar}`` (what trackers accept as hyper-parameters)."""
    flat = {f"{s}.{k}": v for s, fields in cfg.to_dict().items() for k, v in fields.items()}
    flat.update(extra)
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in flat.items()}


def start_tracking(acc: Any, cfg: Any, *, first_step: int, **extra: Any) -> None:
    """Open the run's tracker on the main process (``accelerate``'s ``init_trackers``; no-op without one).

    A resumed TensorBoard run purges the events at and after ``first_step`` that a killed job wrote
    past its checkpoint, so the curves show each step once. W&B runs offline when ``run.offline`` is set
    (always below ``paper``).
    """
    if cfg.train.trackers == "none":
        return
    if cfg.train.trackers == "wandb" and cfg.run.offline:
        os.environ["WANDB_MODE"] = "offline"
    init = {"tensorboard": {"purge_step": first_step}} if cfg.train.trackers == "tensorboard" else {}
    acc.init_trackers(TRACKER_DIR if cfg.train.trackers == "tensorboard" else "stablelm2",
                      config=hparams(cfg, **extra), init_kwargs=init)


def step_values(rec: StepRecord) -> dict[str, float]:
    """What one optimizer step sends to the tracker."""
    return {"train/loss": rec["loss"], "train/learning_rate": rec["lr"], "train/grad_norm": rec["grad_norm"],
            "train/tokens_per_s": rec["tokens_per_s"], "train/mfu": rec["mfu"], "train/tokens": float(rec["tokens"])}


def eval_values(ev: EvalRecord) -> dict[str, float]:
    """What one validation sends to the tracker: the overall held-out loss and one per source."""
    return {"val/loss": ev["val_loss"], **{f"val/loss_{name}": v for name, v in ev["domains"].items()}}
