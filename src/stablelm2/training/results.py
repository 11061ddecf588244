"""Chapter 05 · What the engine returns and writes: the shapes of a run's history, its step and eval
records and its summary (Sec. 2, App. D).

They are ``TypedDict`` s because they round-trip through JSON unchanged — ``history.json`` holds the
:class:`History` without its ``steps`` and ``evals``, and ``metrics.jsonl`` one :class:`StepRecord`
or :class:`EvalRecord` per line (with a ``"kind"`` key the reader removes). A type checker reads the
keys from here; at run time they are plain dicts, so ``history["summary"]["final_loss"]`` works as
before. Units: losses in nats per target token, learning rates as the optimizer saw them, times in
seconds of wall clock, throughput in tokens per second of the whole global batch.

:func:`metrics` builds each part of the chapter's ``metrics.json`` numbers (:class:`PretrainingMetrics`);
the notebook logs what it returns, and the tests read the keys from the same class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class ScheduleMetrics(TypedDict):
    """One schedule of App. B's study in ``metrics.json``."""

    final_val_bpb_by_seed: list[float]
    """Final held-out bits per byte of each paired seed, rounded to 5 places."""
    average_lr: float
    """The schedule's learning rate averaged over the steps, rounded to 8 places."""


class BatchMetrics(TypedDict):
    """One global batch of App. D's study in ``metrics.json``."""

    multiple: int
    """Global batch as a multiple of the baseline's."""
    iterations_by_seed: list[int]
    """Per seed: optimizer steps to reach the baseline's final loss (or the budget when it did not)."""
    tokens_by_seed: list[int]
    """Per seed: tokens trained by then."""
    reached_by_seed: list[bool]
    """Per seed: whether it reached the baseline's final loss."""


class PretrainingMetrics(TypedDict, total=False):
    """Chapter 05's numbers in ``metrics.json`` (Sec. 2, Apps. A, B, D); a part is there once its cell ran.

    Losses in nats per target token, bits per byte on chapter 07's held-out windows.
    """

    plan: dict[str, float]
    """The paper's run (Sec. 2): ``steps``, ``tokens``, ``gpu_hours``, ``wall_days``, ``cost_usd``,
    ``energy_mwh``, ``emissions_t``, ``cooldown_tokens`` as :func:`.plan.build` gives them."""
    preflight: dict[str, bool]
    """Pre-flight item → whether it holds on this machine."""
    steps_trained: int
    tokens: int
    """Tokens the main run trained on."""
    final_loss: float
    """Training loss of the last step, rounded to 5 places."""
    final_val_loss: float
    """Held-out loss of the last evaluation, rounded to 5 places (NaN without one)."""
    world_size: int
    """Processes the main run trained with."""
    first_loss: float
    """Training loss of the first step, rounded to 5 places."""
    main_bpb: dict[str, float]
    """Model (``pretrained``, ``unigram``) → held-out bits per byte over all groups, rounded to 5 places."""
    main_minus_unigram_bpb: list[float]
    """[Δ bits per byte of the main run against the unigram model, 95 % low, 95 % high], rounded to 5 places."""
    appB: dict[str, ScheduleMetrics]
    """Schedule → its App. B numbers."""
    appD: list[BatchMetrics]
    appA: dict[str, list[dict[str, float]]]
    """Mix → per seed, language group → held-out bits per byte, rounded to 5 places."""
    ablation_plan: dict[str, dict[str, float]]
    """Study → ``tokens`` and ``gpu_hours`` (rounded to whole hours) the paper-scale ablation would take."""


_PLAN_KEYS = ("steps", "tokens", "gpu_hours", "wall_days", "cost_usd", "energy_mwh", "emissions_t", "cooldown_tokens")


def metrics(*, plan: Mapping[str, Any] | None = None, preflight: Sequence[Mapping[str, Any]] | None = None,
            history: History | None = None, held: Mapping[str, Any] | None = None,
            schedules: Sequence[Mapping[str, Any]] | None = None, batches: Sequence[Mapping[str, Any]] | None = None,
            mixes: Sequence[Mapping[str, Any]] | None = None,
            ablation_plan: Sequence[Mapping[str, Any]] | None = None) -> PretrainingMetrics:
    """The parts of chapter 05's numbers given (a part left ``None`` is left out).

    ``plan``: :func:`.plan.build`; ``preflight``: the rows of :func:`.preflight.check`; ``history``: a
    finished run's :class:`History` (raises ``KeyError`` without its ``summary``); ``held``:
    :func:`stablelm2.evaluation.bpb.evaluate` of the main run (its ``table`` and ``paired`` frames);
    ``schedules``, ``batches``, ``mixes``: the App. B, D, A studies of :mod:`.ablations`;
    ``ablation_plan``: :func:`.ablations.paper_plan`.
    """
    out: PretrainingMetrics = {}
    if plan is not None:
        out["plan"] = {k: plan[k] for k in _PLAN_KEYS}
    if preflight is not None:
        out["preflight"] = {r["item"]: r["ok"] for r in preflight}
    if history is not None:
        s = history["summary"]
        out["steps_trained"], out["tokens"] = s["steps"], s["tokens"]
        out["final_loss"], out["final_val_loss"] = round(s["final_loss"], 5), round(s["final_val_loss"], 5)
        out["world_size"], out["first_loss"] = history["world_size"], round(history["steps"][0]["loss"], 5)
    if held is not None:
        table, paired = held["table"], held["paired"]
        at_floor = paired[(paired["group"] == "all") & (paired["from"] == "unigram")].iloc[0]
        out["main_bpb"] = {r["model"]: round(r["bpb"], 5) for r in table[table["group"] == "all"].to_dict("records")}
        out["main_minus_unigram_bpb"] = [round(at_floor[k], 5) for k in ("delta_bpb", "lo", "hi")]
    if schedules is not None:
        out["appB"] = {r["schedule"]: {"final_val_bpb_by_seed": [round(x, 5) for x in r["final_val_bpb_by_seed"]],
                                       "average_lr": round(r["average_lr"], 8)} for r in schedules}
    if batches is not None:
        out["appD"] = [{"multiple": r["multiple"], "iterations_by_seed": r["iterations_by_seed"],
                        "tokens_by_seed": r["tokens_by_seed"], "reached_by_seed": r["reached_by_seed"]}
                       for r in batches]
    if mixes is not None:
        out["appA"] = {r["mix"]: [{g: round(v, 5) for g, v in s.items()} for s in r["group_bpb_by_seed"]]
                       for r in mixes}
    if ablation_plan is not None:
        out["ablation_plan"] = {r["study"]: {"tokens": r["tokens"], "gpu_hours": round(r["gpu_hours"])}
                                for r in ablation_plan}
    return out
