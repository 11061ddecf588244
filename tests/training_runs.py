"""Shared small runs for the chapter-05 tests (one reference 2-process run per test session)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from stablelm2 import config
from stablelm2.config import Config

TINY = {
    "model.d_model": 32, "model.n_heads": 2, "model.d_ff": 64, "model.n_layers": 1,
    "train.micro_batch": 2, "train.global_batch_tokens": 256, "train.n_procs": 2,
    "train.steps": 12, "train.checkpoint_every": 4, "train.eval_every": 6,
    "schedule.warmup_steps": 2, "schedule.total_steps": 13, "schedule.cooldown_steps": 2,
    "data.val_batches": 1, "carbon.meter": False,
}
"""A 1-layer, 32-wide StableLM (the embeddings dominate), 12 steps of 256 tokens: 2 × 2 × 64 on 2 processes."""


def tiny_cfg(**overrides) -> Config:
    return config.load("smoke", **{**TINY, **overrides})


_ROOT = Path(tempfile.mkdtemp(prefix="stablelm2-training-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.cache
def reference_two_processes() -> Path:
    """An uninterrupted 2-process torchrun run of :func:`tiny_cfg` (shared by the engine and checkpoint tests)."""
    from stablelm2.training import launch

    out = _ROOT / "reference-2proc"
    launch.spawn(tiny_cfg(), out, 2, progress=False, echo=False)
    return out


def scratch(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_ROOT))
