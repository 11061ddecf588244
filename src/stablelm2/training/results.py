"""Chapter 05 · What the engine returns and writes: the shapes of a run's history, its step and eval
records and its summary (Sec. 3, App. D).

They are ``TypedDict`` s because they round-trip through JSON unchanged — ``history.json`` holds the
:class:`History` without its ``steps`` and ``evals``, and ``metrics.jsonl`` one :class:`StepRecord`
or :class:`EvalRecord` per line (with a ``"kind"`` key the reader removes). A type checker reads the
keys from here; at run time they are plain dicts, so ``history["summary"]["final_loss"]`` works as
before. Units: losses in nats per target token, learning rates as the optimizer saw them, times in
seconds of wall clock, throughput in tokens per second of the whole global batch.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class StepRecord(TypedDict):
    """One optimizer step (one line ``{"kind": "step", ...}`` of ``metrics.jsonl``)."""

    step: int
    loss: float
    """Mean loss over the global batch's target tokens (nats/token)."""
    lr: float
    grad_norm: float
    """Global gradient norm before clipping."""
    tokens: int
    """Tokens trained so far (the run's total after this step)."""
    step_s: float
    tokens_per_s: float
    mfu: float
    """Model FLOPs utilisation: achieved FLOP/s over the measured (or datasheet) peak."""
    t_end: float
    """Seconds since the run (this job) started, at the end of the step."""


class Validation(TypedDict):
    """Held-out loss of one evaluation (:func:`.engine.evaluate`): overall (token-weighted) and per source."""

    val_loss: float
    """NaN when there is no validation set."""
    domains: dict[str, float]
    val_tokens: int


class EvalRecord(Validation):
    """One evaluation during training (one line ``{"kind": "eval", ...}`` of ``metrics.jsonl``)."""

    step: int
    tokens: int


class Summary(TypedDict):
    """A finished run in a few numbers (``history["summary"]``)."""

    steps: int
    tokens: int
    final_loss: float
    """Training loss of the last step."""
    final_val_loss: float
    """Held-out loss of the last evaluation (NaN without one)."""
    final_domains: dict[str, float]
    mean_lr: float
    tokens_per_s: float
    """Mean over the steps after the first (which warms up), or the first step's when it is the only one."""
    mfu: float
    wall_s: float


class Logged(TypedDict):
    """What :func:`.metrics.read` and :func:`.metrics.tail` return from ``metrics.jsonl``."""

    steps: list[StepRecord]
    evals: list[EvalRecord]


class History(TypedDict):
    """What :func:`.engine.train` returns: ``history.json`` with the ``steps`` and ``evals`` of the log.

    ``summary`` is there once the run finished; ``paused_at`` instead when ``stop_at`` paused it;
    ``stopped_early`` when a ``stop`` callback ended it; ``resumed_from`` lists the steps it was
    resumed at. While training, ``steps`` holds only the last :data:`.metrics.RECENT` records.
    """

    fingerprint: str
    identity: dict[str, Any]
    """What makes two runs the same run (config, world size, weights, tag, package digest)."""
    layout: dict[str, Any]
    """The batch layout (:meth:`.layout.Layout.to_dict`)."""
    world_size: int
    backend: str
    device: str
    weights: dict[str, float] | None
    metrics_log: str
    steps: list[StepRecord]
    evals: list[EvalRecord]
    last_eval: EvalRecord | None
    peak_flops: NotRequired[float]
    peak_basis: NotRequired[str]
    flops_per_token: NotRequired[float]
    summary: NotRequired[Summary]
    paused_at: NotRequired[int]
    stopped_early: NotRequired[int]
    resumed_from: NotRequired[list[int]]
