"""Chapter 06 · The shapes of what the alignment stages return and what the chapter records (Sec. 3.1–3.3).

Each stage's result is written to ``<stage>/result.json`` and read back when the stage is reused,
so the shapes are ``TypedDict`` s (plain dicts at run time, checked by the type checker):
:class:`SFTResult` (:func:`.sft.train`), :class:`DPOResult` (:func:`.dpo.train`),
:class:`SelfKnowledgeResult` (:func:`.self_knowledge.train`), all of them under
:class:`RunAll` (:func:`.stages.run_all`). :class:`FilterReportDict` is what a data filter dropped
(:meth:`.sources.FilterReport.to_dict`).

:func:`metrics` builds the chapter's ``metrics.json`` numbers from :class:`RunAll`; the notebook
logs exactly that, and the tests read them through :class:`AlignmentMetrics`.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class FilterReportDict(TypedDict):
    """Rows read, kept and dropped per rule, per source (:meth:`.sources.FilterReport.to_dict`)."""

    rows: list[dict[str, Any]]
    """One per source: ``source``, ``read``, ``kept`` and one count per rule."""
    totals: dict[str, int]
    """``read``, ``kept`` and one count per rule (SFT: ``too_many_turns``, ...; DPO: ``tied_ranking``,
    ``duplicated_content``, ``low_chosen_score``, ...), summed over the sources."""
    examples: dict[str, str]
    """``"<source>/<rule>"`` → the first dropped row of that rule, with why."""


class Timings(TypedDict):
    """Wall-clock seconds (never compared between runs)."""

    train_s: float
    total_s: float
    generate_s: NotRequired[float]
    """Self-knowledge only: generating the prompts and continuations."""


class TemplateInfo(TypedDict):
    special_tokens: dict[str, int]
    turn_end_trained: bool


class StageResult(TypedDict):
    """What every stage returns (:func:`.stages.ensure` adds the last four)."""

    stage: str
    model_dir: str
    batch: dict[str, int]
    """``global`` = ``per_device`` × ``accumulation`` × ``processes`` (:func:`.recipes.compose_batch`)."""
    batch_line: str
    log: list[dict[str, Any]]
    """TRL's ``state.log_history``, numbers as floats."""
    steps: int
    timings: Timings
    key: NotRequired[str]
    """Fingerprint of the recipe and the input models (a stage is rebuilt when it changes)."""
    recipe: NotRequired[dict[str, Any]]
    init: NotRequired[str]
    reused: NotRequired[bool]


class SFTResult(StageResult):
    """Supervised fine-tuning (Sec. 3.1)."""

    data_report: FilterReportDict
    n_conversations: int
    template: TemplateInfo
    first_loss: float
    """Mean training loss over the first quarter of the logged steps (nats/token)."""
    final_loss: float
    """Mean training loss over the last quarter of the logged steps (nats/token)."""


class DPOResult(StageResult):
    """Direct preference optimisation (Sec. 3.2)."""

    data_report: FilterReportDict
    unscored: dict[str, int]
    """Kept pairs without scores, per source (the score filters did not apply)."""
    n_train_pairs: int
    n_held_pairs: int
    beta: float
    dropped_prompt_too_long: dict[str, int]
    """``train`` / ``held_out``: pairs TRL left out because the prompt alone fills ``max_length``."""
    train_pairs_after: dict[str, float]
    """TRL's evaluation metrics after training (``rewards/accuracies``, ``rewards/margins``, ...)."""
    held_out_after: dict[str, float]


class PromptStats(TypedDict):
    requested: int
    generated: int
    empty: int
    duplicate: int
    copied_example: int
    kept: int


class IdentityScore(TypedDict):
    """Greedy answers to the identity questions, scored (:func:`.self_knowledge.measure`)."""

    rate: float
    """Share of answers carrying the model's facts (name or maker), 0–1."""
    per_fact: dict[str, float]
    answers: list[dict[str, Any]]


class SelfKnowledgeData(TypedDict):
    """Prompts and continuations (:func:`.self_knowledge.make_data`, ``sk_data.json``)."""

    prompts: list[str]
    positives: list[str]
    negatives: list[str]
    prompt_stats: PromptStats
    fact_rate_positives: float
    fact_rate_negatives: float
    timings: dict[str, float]


class SelfKnowledgeResult(StageResult):
    """Self-knowledge training behind a negative token (Sec. 3.3)."""

    negative_token: dict[str, Any]
    template_tokens: dict[str, int]
    prompt_stats: PromptStats
    examples: dict[str, int]
    fact_rate_positives: float
    fact_rate_negatives: float
    sample: list[dict[str, str]]
    before: IdentityScore
    after: IdentityScore
    after_negative: IdentityScore


class RunAll(TypedDict):
    """:func:`.stages.run_all`: the three stages (``ran``), or at ``paper`` the plan and the launch files."""

    ran: bool
    sft: NotRequired[SFTResult]
    dpo: NotRequired[DPOResult]
    self_knowledge: NotRequired[SelfKnowledgeResult]
    plan: NotRequired[list[dict[str, Any]]]
    files: NotRequired[dict[str, str]]


class AlignmentMetrics(TypedDict):
    """Chapter 06's deterministic numbers in ``metrics.json`` (counts, losses in nats/token, rates 0–1)."""

    sft_read: int
    sft_kept: int
    sft_too_many_turns: int
    sft_malformed: int
    sft_loss_first_quarter: float
    sft_loss_last_quarter: float
    sft_steps: int
    dpo_read: int
    dpo_kept: int
    dpo_tied: int
    dpo_duplicated: int
    dpo_low_chosen: int
    dpo_train_accuracy: float
    dpo_train_margin: float
    dpo_heldout_accuracy: float
    dpo_steps: int
    sk_prompts: int
    sk_fact_rate_positives: float
    sk_before: float
    sk_after: float
    sk_after_negative: float
    sk_steps: int


def metrics(results: RunAll) -> AlignmentMetrics:
    """The numbers chapter 06 logs, from the three stages' results (KeyError: ``results`` did not run them)."""
    s, d, k = results["sft"], results["dpo"], results["self_knowledge"]
    tot, dt = s["data_report"]["totals"], d["data_report"]["totals"]
    return {
        "sft_read": tot["read"], "sft_kept": tot["kept"], "sft_too_many_turns": tot["too_many_turns"],
        "sft_malformed": tot["read"] - tot["kept"] - tot["too_many_turns"],
        "sft_loss_first_quarter": round(s["first_loss"], 4), "sft_loss_last_quarter": round(s["final_loss"], 4),
        "sft_steps": s["steps"],
        "dpo_read": dt["read"], "dpo_kept": dt["kept"], "dpo_tied": dt["tied_ranking"],
        "dpo_duplicated": dt["duplicated_content"], "dpo_low_chosen": dt["low_chosen_score"],
        "dpo_train_accuracy": round(d["train_pairs_after"]["rewards/accuracies"], 4),
        "dpo_train_margin": round(d["train_pairs_after"]["rewards/margins"], 5),
        "dpo_heldout_accuracy": round(d["held_out_after"]["rewards/accuracies"], 4),
        "dpo_steps": d["steps"],
        "sk_prompts": k["prompt_stats"]["kept"], "sk_fact_rate_positives": k["fact_rate_positives"],
        "sk_before": k["before"]["rate"], "sk_after": k["after"]["rate"],
        "sk_after_negative": k["after_negative"]["rate"], "sk_steps": k["steps"],
    }
