"""Regression of any harness results file against the published raw JSON, task by task.

The published files come from Stability's v0.3-era fork of lm-evaluation-harness; a run today uses
lm-eval 0.4 (``simple_evaluate``), where the same benchmarks have other names and metric keys
(``truthfulqa_mc``/``mc2`` → ``truthfulqa_mc2``/``acc``, ``hendrycksTest-anatomy`` →
``mmlu_anatomy``, ``arc_challenge_mt_de`` → ``arc_de`` …). :func:`canonical` maps either shape onto
today's names; :func:`compare` lines two files up and gives, per task and metric, the delta with
its standard error ``√(σ_ours² + σ_published²)``, a z-score, and a flag:

* ``ok`` — |z| ≤ ``z_flag`` (the difference is within sampling noise);
* ``harness drift?`` — a significant delta on a task whose definition changed between the two
  harness versions (other dataset copy, renamed metric, new prompt): the model is not necessarily
  at fault; the ``drift`` column says what changed;
* ``regression`` / ``improvement`` — a significant delta with no known harness change, judged in
  the metric's own direction: higher is better for accuracies, lower for perplexities, bits per
  byte, losses and error rates (:func:`lower_is_better`);
* ``no stderr`` — a delta without a standard error to judge it by; ``not finite`` — a NaN or
  infinite score on either side (never counted as agreement or as a change).

>>> from stablelm2.evaluation import compare, published
>>> pub = published.load("stabilityai/stablelm-2-1_6b")
>>> table = compare.compare(pub, pub)
>>> float(table["delta"].abs().max()), set(table["flag"])
(0.0, {'ok'})
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from . import published
from .results import CompareRow

Z_FLAG = 2.0
"""|delta| / stderr above which a difference is flagged (≈95 % two-sided)."""

REPORT_METRIC: tuple[tuple[str, str], ...] = (
    (r"arc_challenge|arc_easy|arc_[a-z]{2}|hellaswag|hellaswag_[a-z]{2}", "acc_norm"),
    (r"truthfulqa_mc2|truthfulqa_[a-z]{2}_mc2", "acc"),
    (r"mmlu_\w+|m_mmlu_[a-z]{2}", "acc"),
    (r"lambada_openai|lambada_openai_mt_\w+|piqa|sciq|winogrande", "acc"),
    (r"gsm8k", "exact_match,strict-match"),
)
"""(task pattern, metric) the report reads, on today's names (evals/README.md; mc1 is not used)."""

LOWER_IS_BETTER = r"(\w+_)?(perplexity|ppl)|bits_per_byte|bpb|(\w+_)?loss|ter"
"""Metric names (the part before lm-eval's ``,filter``) where a smaller value is better: lm-eval's
``perplexity``/``word_perplexity``/``byte_perplexity``/``bits_per_byte``/``ter``, v0.3's ``ppl``,
and losses. Every other metric (accuracies, exact match, mc2) is read as higher-is-better."""


class ResultsShapeError(ValueError):
    """A results file is not lm-evaluation-harness output (v0.3 or v0.4 shape)."""


# ------------------------------------------------------------------------------ name mapping


def map_task(old: str) -> tuple[str, dict[str, str], str]:
    """Today's name of a v0.3-fork task, its metric renames, and what changed (empty: nothing known).

    >>> map_task("truthfulqa_mc_mt_de")[:2]
    ('truthfulqa_de_mc2', {'mc2': 'acc'})
    """
    if m := re.fullmatch(r"hendrycksTest-(\w+)", old):
        return f"mmlu_{m.group(1)}", {}, (
            "MMLU subject: v0.3 'hendrycksTest-*' → 0.4 'mmlu_*' over cais/mmlu with the 0.4 prompt template")
    if m := re.fullmatch(r"arc_challenge_mt_(\w\w)", old):
        return f"arc_{m.group(1)}", {}, "Okapi ARC: jon-tow/okapi_arc_challenge → alexandrainst/m_arc copy"
    if m := re.fullmatch(r"hellaswag_mt_(\w\w)", old):
        return f"hellaswag_{m.group(1)}", {}, "Okapi HellaSwag: jon-tow/okapi_hellaswag → alexandrainst/m_hellaswag copy"
    if m := re.fullmatch(r"hendrycksTest_mt_(\w\w)", old):
        return f"m_mmlu_{m.group(1)}", {}, "Okapi MMLU: jon-tow/okapi_mmlu → alexandrainst/m_mmlu copy"
    if m := re.fullmatch(r"truthfulqa_mc_mt_(\w\w)", old):
        return f"truthfulqa_{m.group(1)}_mc2", {"mc2": "acc"}, (
            "Okapi TruthfulQA: jon-tow/okapi_truthfulqa → alexandrainst/m_truthfulqa; mc2 is reported as 'acc'")
    if old == "truthfulqa_mc":
        return "truthfulqa_mc2", {"mc2": "acc"}, "TruthfulQA MC: one v0.3 task (mc1+mc2) split in two; mc2 → 'acc'"
    if m := re.fullmatch(r"lambada_openai_mt_deepl_(\w\w)", old):
        return f"lambada_openai_mt_stablelm_{m.group(1)}", {"ppl": "perplexity"}, (
            "paper LAMBADA translations: marcob/lambada_multilingual → EleutherAI/lambada_multilingual_stablelm")
    if old.startswith("lambada_openai"):
        return old, {"ppl": "perplexity"}, ""
    return old, {}, ""


def name_map(old_names: list[str]) -> pd.DataFrame:
    """A table of v0.3-fork task names, today's names, metric renames and what changed."""
    rows = []
    for old in old_names:
        new, renames, note = map_task(old)
        rows.append({"published (v0.3 fork)": old, "today (lm-eval 0.4)": new,
                     "metric renames": ", ".join(f"{a} → {b}" for a, b in renames.items()), "what changed": note})
    return pd.DataFrame(rows)


def _is_v03(results: dict[str, Any]) -> bool:
    keys = [k for row in results.values() if isinstance(row, dict) for k in row]
    return not any("," in k for k in keys)


def canonical(data: dict[str, Any] | str | Path) -> tuple[dict[tuple[str, str], tuple[float, float]], dict[str, str], str]:
    """``{(today's task, metric): (value, stderr)}``, ``{task: drift note}`` and the shape ("v0.3"/"v0.4").

    Accepts a path to a results JSON or the dict ``simple_evaluate`` (or the v0.3 harness) wrote.
    Values and errors are as the file holds them (accuracies as fractions); a missing stderr is NaN.

    Raises:
        ResultsShapeError: the path is missing or not JSON, there is no non-empty ``results`` mapping of
            ``{metric: value}`` rows, or no numeric metric at all.
    """
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise ResultsShapeError(f"results file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ResultsShapeError(f"{path} is not JSON ({exc}); pass the harness's results file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not data["results"]:
        raise ResultsShapeError(
            "results have no non-empty 'results' mapping {task: {metric: value}}; pass the dict returned by "
            "lm_eval.simple_evaluate (or the harness's results JSON), not "
            f"{type(data).__name__} with keys {sorted(data)[:6] if isinstance(data, dict) else '-'}")
    results = data["results"]
    for task, row in results.items():
        if not isinstance(row, dict):
            raise ResultsShapeError(f"results[{task!r}] is {type(row).__name__}, expected a {{metric: value}} mapping")
    v03 = _is_v03(results)
    out: dict[tuple[str, str], tuple[float, float]] = {}
    drift: dict[str, str] = {}
    for task, row in results.items():
        new_task, renames, note = map_task(task) if v03 else (task, {}, "")
        for key, value in row.items():
            if key.endswith("_stderr") or "_stderr," in key or not isinstance(value, (int, float)) \
                    or isinstance(value, bool) or key in ("alias", "name", "sample_len"):
                continue
            metric, _, filt = key.partition(",")
            se_key = f"{metric}_stderr" + (f",{filt}" if filt else "")
            se = row.get(se_key)
            se = float(se) if isinstance(se, (int, float)) and not isinstance(se, bool) else math.nan
            metric = renames.get(metric, metric)
            if task == "truthfulqa_mc" and v03 and metric == "mc1":
                new_key = ("truthfulqa_mc1", "acc")
            else:
                new_key = (new_task, metric if filt in ("", "none") else f"{metric},{filt}")
            out[new_key] = (float(value), se)
            if note:
                drift[new_key[0]] = note
    if not out:
        raise ResultsShapeError("the 'results' mapping holds no numeric metrics; is this a harness results file?")
    return out, drift, "v0.3" if v03 else "v0.4"


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` (today's name, an optional ``,filter`` suffix) is better.

    >>> lower_is_better("perplexity"), lower_is_better("bits_per_byte"), lower_is_better("acc_norm")
    (True, True, False)
    """
    return re.fullmatch(LOWER_IS_BETTER, metric.partition(",")[0]) is not None


def report_metric(task: str) -> str | None:
    """The metric the report reads for ``task`` (today's name), or None for tasks it does not use."""
    for pattern, metric in REPORT_METRIC:
        if re.fullmatch(pattern, task):
            return metric
    return None


# ------------------------------------------------------------------------------ comparison


def _reference_model(data: dict[str, Any]) -> str:
    cfg = data.get("config") or {}
    args = cfg.get("model_args") or ""
    if isinstance(args, dict):
        name = args.get("pretrained", "")
    else:
        name = dict(kv.split("=", 1) for kv in str(args).split(",") if "=" in kv).get("pretrained", "")
    name = str(name or cfg.get("model_name") or "")
    if not name:
        raise ResultsShapeError("cannot tell which published model to compare with; pass reference=")
    return name


def compare(ours: dict[str, Any] | str | Path, reference: dict[str, Any] | str | Path | None = None, *,
            metrics: str = "report", z_flag: float = Z_FLAG) -> pd.DataFrame:
    """Task-by-task deltas of ``ours`` against ``reference`` (default: the published file of the same model).

    ``reference`` may be a dict, a path, or a published model id. ``metrics="report"`` compares the
    metric the report uses per task; ``"all"`` every shared metric. Adds a row ``mmlu (mean of N
    subjects)`` when both sides hold the same MMLU subjects (S7's unweighted mean). The flags read
    each metric in its own direction (:func:`lower_is_better`): a lower accuracy is a ``regression``,
    a lower perplexity or bits per byte an ``improvement``. ``delta`` and ``z`` keep the sign of
    ours − published.

    Raises:
        ValueError: ``metrics`` is not ``"report"`` or ``"all"``.
        ResultsShapeError: a malformed file, no model named to pick the published file by, or no shared
            task/metric.
        PublishedError: no published file for the model (:func:`.published.load`).
    """
    if metrics not in ("report", "all"):
        raise ValueError(f"metrics={metrics!r}; use 'report' or 'all'")
    if isinstance(ours, (str, Path)):
        ours_can, ours_drift, ours_shape = canonical(ours)
        ours_dict = json.loads(Path(ours).read_text(encoding="utf-8"))
    else:
        ours_can, ours_drift, ours_shape = canonical(ours)
        ours_dict = ours
    if reference is None:
        reference = published.load(_reference_model(ours_dict))
    elif isinstance(reference, str) and not Path(reference).is_file():
        reference = published.load(reference)
    ref_can, ref_drift, ref_shape = canonical(reference)
    drift = {**ref_drift, **ours_drift} if ours_shape != ref_shape else {}
    shared = sorted(set(ours_can) & set(ref_can))
    if metrics == "report":
        shared = [k for k in shared if report_metric(k[0]) == k[1]]
    if not shared:
        raise ResultsShapeError(
            f"the two results share no task/metric (ours: {sorted({t for t, _ in ours_can})[:5]}…, "
            f"published: {sorted({t for t, _ in ref_can})[:5]}…); check the task names")
    rows = [_row(task, metric, ours_can[(task, metric)], ref_can[(task, metric)], drift.get(task, ""), z_flag)
            for task, metric in shared]
    subjects = sorted(t for t, m in shared if t.startswith("mmlu_") and m == "acc")
    if len(subjects) > 1:
        rows.append(_row(f"mmlu (mean of {len(subjects)} subjects)", "acc",
                         _mean([ours_can[(s, "acc")] for s in subjects]),
                         _mean([ref_can[(s, "acc")] for s in subjects]),
                         drift.get(subjects[0], ""), z_flag))
    return pd.DataFrame(rows).set_index(["task", "metric"])


def _mean(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    n = len(pairs)
    return sum(v for v, _ in pairs) / n, math.sqrt(sum(se**2 for _, se in pairs)) / n


def _row(task: str, metric: str, ours: tuple[float, float], ref: tuple[float, float], drift: str,
         z_flag: float) -> CompareRow:
    delta = ours[0] - ref[0]
    se = math.sqrt(ours[1] ** 2 + ref[1] ** 2)
    # NaN compares false with everything: a non-finite score or stderr gets its own flag, never a verdict
    if not math.isfinite(delta):
        z, flag = math.nan, "not finite"
    elif delta == 0:
        z, flag = 0.0, "ok"
    elif math.isnan(se):
        z, flag = math.nan, "no stderr"
    else:
        z = delta / se if se > 0 else math.copysign(math.inf, delta)
        if abs(z) <= z_flag:
            flag = "ok"
        elif drift:
            flag = "harness drift?"
        else:
            worse = delta > 0 if lower_is_better(metric) else delta < 0
            flag = "regression" if worse else "improvement"
    return {"task": task, "metric": metric, "ours": ours[0], "ours_se": ours[1], "published": ref[0],
            "published_se": ref[1], "delta": delta, "se": se, "z": z, "flag": flag, "drift": drift}


def flagged(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`compare` table that are not ``ok``."""
    return table[table["flag"] != "ok"]
