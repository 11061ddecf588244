"""Chapter 06 · The three stages end to end: build what is missing, reuse what is built, record claims.

:func:`aligned` is what other chapters call: the directory of the model after ``sft``, ``dpo`` or
``self_knowledge`` (model + tokenizer, loadable with ``from_pretrained``), built by this chapter
when missing — from :func:`stablelm2.training.pretrained` at ``smoke``/``cpu``. A stage is rebuilt
when its recipe or its input model changed (a fingerprint of both is kept in ``result.json``).

At ``paper`` nothing trains here: :func:`run_all` writes the recipes and launch files and returns
the plan; :func:`aligned` returns a model only if those launch files were run on GPUs into
``build/paper/06_alignment/<stage>/model`` and otherwise says what to run.

>>> from stablelm2 import config                               # doctest: +SKIP
>>> from stablelm2.alignment import aligned                   # doctest: +SKIP
>>> aligned(config.load("smoke"), "dpo")                      # doctest: +SKIP
PosixPath('.../build/smoke/06_alignment/dpo/model')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from .. import chapters
from ..config import Config
from ..files import atomic_write_json
from ..ledger import Claim, Ledger
from . import chat, common, dpo, recipes, self_knowledge, sft
from .recipes import BASE_MODEL_HUB, STAGES, AlignmentError
from .results import AlignmentMetrics as AlignmentMetrics  # re-exported: the chapter's metrics.json schema
from .results import DPOResult, RunAll, SelfKnowledgeResult, SFTResult
from .results import metrics as metrics  # re-exported: the notebook calls stages.metrics(results)

CHAPTER = chapters.get("06").name
PREVIOUS = {"sft": None, "dpo": "sft", "self_knowledge": "dpo"}


def stage_dir(cfg: Config, stage: str) -> Path:
    """``<chapter 06 dir>/<stage>``: where ``stage``'s ``result.json`` and ``model/`` live (not created here).

    Raises:
        AlignmentError: ``stage`` is not one of :data:`STAGES` (from :func:`recipes.check_stage`).
    """
    return cfg.chapter_dir(CHAPTER) / recipes.check_stage(stage)


def base_model(cfg: Config) -> str | Path:
    """The model SFT starts from: chapter 05's small pre-trained model, or the released 1.6B at paper."""
    if cfg.run.preset == "paper":
        return BASE_MODEL_HUB
    from .. import training

    return training.pretrained(cfg)


def _paper_refusal(cfg: Config, stage: str) -> AlignmentError:
    return AlignmentError(
        f"alignment stage {stage!r} at preset 'paper' needs GPUs and the Hub; this machine only writes the plan. "
        f"Run {cfg.chapter_dir(CHAPTER) / 'launch' / 'launch.sh'} on an 8-GPU node with OUT="
        f"{cfg.chapter_dir(CHAPTER)} (written by stablelm2.alignment.run_all), or use the released result of "
        "all three stages, stabilityai/stablelm-2-zephyr-1_6b")


def ensure(cfg: Config, stage: str, *, base: str | Path | None = None) -> dict[str, Any]:
    """The result of ``stage`` (building it, and the stages before it, when missing or stale), Sec. 3.1–3.3.

    A stage is reused when its ``result.json`` holds the same key (recipe + input model fingerprints) and its
    model is there; the returned dict is the stage's result with ``reused`` set. At ``paper`` only a model
    already built by the launch files is returned (``{"stage", "model_dir", "reused": True}``).

    Raises:
        AlignmentError: ``stage`` is unknown, or at ``paper`` its model was not built (the error from
            ``_paper_refusal`` names the launch script to run on GPUs).
    """
    out = stage_dir(cfg, stage)
    if cfg.run.preset == "paper":
        if (out / "model" / "config.json").is_file():
            return {"stage": stage, "model_dir": str(out / "model"), "reused": True}
        raise _paper_refusal(cfg, stage)
    recipe = recipes.build(cfg, stage)
    base = base if base is not None else base_model(cfg)
    prev = PREVIOUS[stage]
    init = Path(ensure(cfg, prev, base=base)["model_dir"]) if prev else Path(base)
    inputs = [common.fingerprint(init)] + ([common.fingerprint(base)] if stage == "self_knowledge" else [])
    key = common.recipe_key(recipe, *inputs)
    res_file = out / "result.json"
    if res_file.is_file() and (out / "model" / "config.json").is_file():
        old = json.loads(res_file.read_text(encoding="utf-8"))
        if old.get("key") == key:
            return {**old, "reused": True}
    res: SFTResult | DPOResult | SelfKnowledgeResult
    if stage == "sft":
        res = sft.train(recipe, init, out / "model")
    elif stage == "dpo":
        res = dpo.train(recipe, init, out / "model", ref=init)
    else:
        data = self_knowledge.make_data(recipe, base, init, out / "sk_data.json")
        res = self_knowledge.train(recipe, init, out / "model", data=data)
    res["key"], res["recipe"], res["init"] = key, recipe.to_dict(), str(init)
    atomic_write_json(res_file, res)
    return {**res, "reused": False}


def aligned(cfg: Config, stage: str, *, base: str | Path | None = None) -> Path:
    """Directory of the model after ``stage`` (``"sft"``, ``"dpo"`` or ``"self_knowledge"``)."""
    return Path(ensure(cfg, recipes.check_stage(stage), base=base)["model_dir"])


def run_all(cfg: Config, *, base: str | Path | None = None) -> RunAll:
    """All three stages at ``smoke``/``cpu``; at ``paper`` the launch files and the plan instead."""
    if cfg.run.preset == "paper":
        files = recipes.write_launch_files(cfg, cfg.chapter_dir(CHAPTER) / "launch")
        return {"ran": False, "plan": recipes.plan(cfg), "files": {k: str(v) for k, v in files.items()}}
    out: dict[str, Any] = {"ran": True}
    for stage in STAGES:
        out[stage] = ensure(cfg, stage, base=base)
    return cast(RunAll, out)  # each entry is its stage's result (SFTResult, DPOResult, SelfKnowledgeResult)


# ------------------------------------------------------------------------------ conditioning check


def conditioning_check(tok: Any, n: int = 4) -> dict[str, Any]:
    """Tokenise positive and negative self-knowledge examples and report the header token before the
    first trained token of each (it must be ``assistant`` for positives and the negative token else)."""
    user = [{"role": "user", "content": "Who are you?"}]
    heads: dict[str, set[int]] = {"positive": set(), "negative": set()}
    neg_elsewhere = 0
    assistant_id = tok.convert_tokens_to_ids(chat.ASSISTANT)  # the word inside the <|assistant|> marker
    for i in range(n):
        for kind, make in (("positive", chat.positive_example), ("negative", chat.negative_example)):
            msgs = make(user, f"Reply number {i}.")
            enc = tok.apply_chat_template(msgs, chat_template=chat.SK_TEMPLATE, tokenize=True, return_dict=True,
                                          return_assistant_tokens_mask=True)
            pos = chat.conditioning_positions(list(enc["input_ids"]), list(enc["assistant_masks"]), (assistant_id,))
            heads[kind].add(pos["header_token"])
            neg_elsewhere += sum(p != pos["first_trained"] - 2 for p in pos["negative_positions"])
    return {"positive_headers": sorted(heads["positive"]), "negative_headers": sorted(heads["negative"]),
            "assistant_id": assistant_id, "negative_id": chat.NEGATIVE_ID, "negative_elsewhere": neg_elsewhere,
            "holds": heads["positive"] == {assistant_id} and heads["negative"] == {chat.NEGATIVE_ID}
            and neg_elsewhere == 0}


# ------------------------------------------------------------------------------ claims


def record_claims(ledger: Ledger, cfg: Config, results: RunAll, tok: Any = None) -> list[Claim]:
    """The chapter's claims: batch arithmetic of the paper recipes, filters, DPO, self-knowledge."""
    from .. import config as _config

    paper = _config.load("paper")
    claims = []
    for stage, fact in (("sft", "sft.global_batch_seqs"), ("self_knowledge", "selfknow.batch_size")):
        b = recipes.build(paper, stage).batch
        claims.append(ledger.derive(f"align.{stage}_global_batch", f"{stage} global batch of the paper-scale plan "
                                    "(per device × accumulation × GPUs)", fact=fact,
                                    ours=b["per_device"] * b["accumulation"] * b["processes"], unit="sequences",
                                    note=recipes.describe_batch(b, recipes.BATCH_UNITS[stage])))
    for fid, field in (("dpo.beta", "dpo_beta"), ("dpo.lr", "dpo_lr")):
        claims.append(ledger.report_only(f"align.{fid.replace('.', '_')}", f"DPO {field.split('_')[1]} (lowered from "
                                         "the Zephyr recipe)", fact=fid,
                                         why=f"the value is stripped from the text; this run uses align.{field} = "
                                             f"{getattr(cfg.align, field)} (paper preset default: the Zephyr recipe's "
                                             f"{getattr(paper.align, field)})"))
    if not results.get("ran"):
        for cid, fact, what in (("align.sft_n_samples", "sft.n_samples", "SFT samples after the >8-turn filter"),
                                ("align.sk_n_prompts", "selfknow.n_prompts", "self-knowledge prompts")):
            claims.append(ledger.report_only(cid, what, fact=fact, why="preset 'paper' writes the launch files "
                                             "and stops: no GPUs or Hub data here"))
        return claims
    s, d, k = results["sft"], results["dpo"], results["self_knowledge"]
    tot = s["data_report"]["totals"]
    claims.append(ledger.report_only(
        "align.sft_n_samples", "SFT samples after the >8-turn filter", fact="sft.n_samples",
        why=f"counting needs the seven Hub datasets; the local sample kept {tot['kept']} of {tot['read']} rows "
            f"({tot['too_many_turns']} over {cfg.align.sft_max_turns} {cfg.align.sft_turn} turns, "
            f"{tot['read'] - tot['kept'] - tot['too_many_turns']} malformed)"))
    dt = d["data_report"]["totals"]
    three = ("tied_ranking", "duplicated_content", "low_chosen_score")
    claims.append(ledger.measure(
        "align.dpo_filters", "each of the three DPO filters (tied ranking, duplicated content, chosen < 8/10) removes "
        "pairs of the local sample", paper=True, ours=all(dt[r] > 0 for r in three),
        note=", ".join(f"{r} {dt[r]}" for r in three) + f" of {dt['read']} pairs read; {dt['kept']} kept"))
    acc = d["train_pairs_after"].get("rewards/accuracies", 0.0)
    held = d["held_out_after"].get("rewards/accuracies", 0.0)
    claims.append(ledger.finding(
        "align.dpo_reward_accuracy", "at reduced scale: after DPO the policy prefers the chosen response more often "
        "than chance (0.5)", a=[acc], b=[0.5], expect="a > b", names=("reward accuracy", "chance"),
        seeds=[cfg.run.seed], metric="reward accuracy on training pairs",
        note=f"reward accuracy {acc:.3f} on {min(d['n_train_pairs'], 2 * d['batch']['global'])} training pairs, "
             f"{held:.3f} on {d['n_held_pairs']} held-out pairs, after {d['steps']} steps (β = {d['beta']})"))
    if tok is not None:
        cc = conditioning_check(tok)
        claims.append(ledger.measure(
            "align.sk_negative_token", "negatives are trained behind a negative token in place of the assistant "
            "token", paper=True, ours=bool(cc["holds"]),
            note=f"header token before the first trained token: positives {cc['positive_headers']} "
                 f"(assistant = {cc['assistant_id']}), negatives {cc['negative_headers']} "
                 f"({chat.NEGATIVE_TOKEN} = {cc['negative_id']})"))
    st = k["prompt_stats"]
    claims.append(ledger.report_only(
        "align.sk_n_prompts", "self-knowledge prompts generated by the base model", fact="selfknow.n_prompts",
        why=f"this preset asks for {st['requested']}: kept {st['kept']} distinct of {st['generated']} generated "
            f"({st['duplicate']} duplicates, {st['copied_example']} copied examples, {st['empty']} empty)"))
    before, after = k["before"]["rate"], k["after"]["rate"]
    if k["fact_rate_positives"] == 0:
        claims.append(ledger.report_only(
            "align.sk_effect", "self-knowledge training makes identity answers carry the facts",
            why=f"at this scale none of the positive continuations carries the facts (the small model does not "
                f"copy them from its few-shot context), so there is nothing to distil: identity answers carry "
                f"them {before:.0%} before and {after:.0%} after"))
    else:
        claims.append(ledger.finding(
            "align.sk_effect", "at reduced scale: self-knowledge training makes identity answers carry the facts",
            a=[before], b=[after], expect="a < b", names=("before", "after"), seeds=[cfg.run.seed],
            metric="share of identity answers naming the model or its maker",
            note=f"behind the negative token after training: {k['after_negative']['rate']:.0%}; positives carried "
                 f"the facts {k['fact_rate_positives']:.0%}, negatives {k['fact_rate_negatives']:.0%}"))
    return claims
