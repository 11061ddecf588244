"""Chapter 07 · The shapes of the evaluation results that cross modules (Sec. 4, Tables 3–5).

``TypedDict`` s (plain dicts at run time, checked by the type checker): :class:`TaskResults` is
what :func:`.tasks.evaluate` returns and writes (``results_<stage>.json``, lm-eval 0.4's shape),
:class:`TaskSummaryRow` one task of :func:`.tasks.summary`, :class:`CompareRow` one row of the
:func:`.compare.compare` table (ours against the published score). :func:`metrics` builds each part
of the chapter's ``metrics.json`` numbers (:class:`EvaluationMetrics`); the notebook logs what it
returns, and the tests read the keys from the same class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from typing import Any, TypedDict

import pandas as pd

# lm-eval's own key names carry hyphens ("n-shot", "n-samples"): the functional form spells them.
#   results:  task → "<metric>,<filter>" → score, and "<metric>_stderr,<filter>" → its standard error
#   n-samples: task → {"original", "effective"} documents; config: the harness's run configuration,
#   with model_args.pretrained = the model directory; specs: the TaskSpecs evaluated, as dicts.
TaskResults = TypedDict("TaskResults", {
    "results": dict[str, dict[str, Any]],
    "versions": dict[str, Any],
    "n-shot": dict[str, Any],
    "configs": dict[str, Any],
    "n-samples": dict[str, dict[str, Any]],
    "higher_is_better": dict[str, Any],
    "group_subtasks": dict[str, Any],
    "config": dict[str, Any],
    "lm_eval_version": str | None,
    "specs": list[dict[str, Any]],
})
"""lm-eval 0.4's merged results of one model (no per-sample logs)."""


class TaskSummaryRow(TypedDict):
    """One evaluated task: its report metric with the standard error (``None`` when the harness gives none)."""

    task: str
    shots: int
    metric: str
    value: float | None
    stderr: float | None
    what: str
    n: int | None
    """Documents scored (lm-eval's ``n-samples.effective``)."""


class CompareRow(TypedDict):
    """One task of ours against the published score: difference, its standard error and the verdict."""

    task: str
    metric: str
    ours: float
    ours_se: float
    published: float
    published_se: float
    delta: float
    """ours − published."""
    se: float
    """√(ours_se² + published_se²)."""
    z: float
    flag: str
    """``ok``, ``regression``, ``improvement``, ``harness drift?``, ``no stderr`` or ``not finite``;
    regression/improvement in the metric's own direction (:func:`.compare.lower_is_better`)."""
    drift: str
    """Why the harness may have drifted between the two results (empty when it did not)."""


class EvaluationMetrics(TypedDict, total=False):
    """Chapter 07's numbers in ``metrics.json`` (Sec. 4, Tables 4–5, Fig. 5); a part is there once its cell ran.

    Bits per byte on the held-out windows of the shipped sample; log-likelihoods in nats.
    """

    compare_self_rows: int
    """Rows of the published results compared with themselves (the comparison's self-check)."""
    compare_self_max_abs_delta: float
    """Largest |ours − published| of that self-check (0 when the comparison is sound)."""
    stage_scores: dict[str, float | None]
    """``<stage>/<task>`` → the task's report metric (:func:`.stages.stage_table`, unrounded)."""
    bpb_all: dict[str, float]
    """Model → held-out bits per byte over all groups, rounded to 4 places."""
    bpb_windows: int
    """Held-out windows scored."""
    bpb_bytes: int
    """UTF-8 bytes of the text those windows hold."""
    bpb_deltas: dict[str, list[float]]
    """``<from>-><to>`` → [Δ bits per byte over all groups, paired 95 % low, high], rounded to 4 places."""
    task_mean_nll: dict[str, float]
    """``<stage>/<task>`` → mean negative log-likelihood of the gold answer (nats), rounded to 4 places."""
    accuracy_verdicts: dict[str, str]
    """``<stage>/<task>`` → the accuracy's verdict against chance (:func:`.bpb.accuracy_verdicts`)."""
    needle_grid_mean: dict[str, float]
    """Model → needle-in-a-haystack score averaged over the grid and seeds (0–1)."""
    needle_trials: int
    """Needle trials per model."""


def metrics(*, compare_self: pd.DataFrame | None = None, stage_tab: pd.DataFrame | None = None,
            held: Mapping[str, Any] | None = None, bpb_pairs: pd.DataFrame | None = None,
            task_nll: pd.DataFrame | None = None, verdicts: pd.DataFrame | None = None,
            needle_grid_mean: Mapping[str, float] | None = None,
            needle_results: Mapping[str, Sized] | None = None) -> EvaluationMetrics:
    """The parts of chapter 07's numbers given (a part left ``None`` is left out).

    ``compare_self``: :func:`.compare.compare` of a published result with itself; ``stage_tab``:
    :func:`.stages.stage_table`; ``held``: :func:`.bpb.evaluate` (its ``table`` and ``windows``);
    ``bpb_pairs``: its ``paired`` frame; ``task_nll``: :func:`.bpb.task_table`; ``verdicts``:
    :func:`.bpb.accuracy_verdicts`; ``needle_grid_mean`` (model → grid mean) with ``needle_results``
    (model → its trials, :func:`.stages.needle_stages`). Raises ``ValueError`` when only one of the
    two needle arguments is given.
    """
    out: EvaluationMetrics = {}
    if compare_self is not None:
        out["compare_self_rows"] = len(compare_self)
        out["compare_self_max_abs_delta"] = float(compare_self["delta"].abs().max())
    if stage_tab is not None:
        out["stage_scores"] = {f"{r.stage}/{r.task}": r.value for r in stage_tab.itertuples()}
    if held is not None:
        tab = held["table"]
        out["bpb_all"] = {r.model: round(r.bpb, 4) for r in tab[tab["group"] == "all"].itertuples()}
        out["bpb_windows"] = int(len(held["windows"].ids))
        out["bpb_bytes"] = int(held["windows"].nbytes.sum())
    if bpb_pairs is not None:
        overall = bpb_pairs[bpb_pairs["group"] == "all"].set_index(["from", "to"])
        out["bpb_deltas"] = {f"{a}->{b}": [round(r.delta_bpb, 4), round(r.lo, 4), round(r.hi, 4)]
                             for (a, b), r in overall.iterrows()}
    if task_nll is not None:
        out["task_mean_nll"] = {f"{r.stage}/{r.task}": round(r.mean_nll, 4) for r in task_nll.itertuples()}
    if verdicts is not None:
        out["accuracy_verdicts"] = {f"{r.stage}/{r.task}": r.verdict for r in verdicts.itertuples()}
    if (needle_grid_mean is None) != (needle_results is None):
        raise ValueError("metrics: give needle_grid_mean and needle_results together (both from the same needle run)")
    if needle_grid_mean is not None and needle_results is not None:
        out["needle_grid_mean"] = dict(needle_grid_mean)
        out["needle_trials"] = len(next(iter(needle_results.values())))
    return out
