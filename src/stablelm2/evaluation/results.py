"""Chapter 07 · The shapes of the evaluation results that cross modules (Sec. 4, Tables 3–5).

``TypedDict`` s (plain dicts at run time, checked by the type checker): :class:`TaskResults` is
what :func:`.tasks.evaluate` returns and writes (``results_<stage>.json``, lm-eval 0.4's shape),
:class:`TaskSummaryRow` one task of :func:`.tasks.summary`, :class:`CompareRow` one row of the
:func:`.compare.compare` table (ours against the published score).
"""

from __future__ import annotations

from typing import Any, TypedDict

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
    """``ok``, ``regression``, ``improvement``, ``harness drift?``, ``no stderr`` or ``not finite``."""
    drift: str
    """Why the harness may have drifted between the two results (empty when it did not)."""
