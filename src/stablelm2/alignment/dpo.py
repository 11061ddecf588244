"""Chapter 06 · Stage 2, direct preference optimisation: TRL's ``DPOTrainer`` with the SFT model as reference.

The paper aligns the SFT model on UltraFeedback and Intel Orca pairs, after dropping pairs with a
tied ranking, duplicated content, or a chosen response scored below 8/10 (:func:`sources.load_dpo`
counts each rule), following the Zephyr recipe of the Alignment Handbook with a lowered β and
learning rate (both lost from the text; ``align.dpo_beta`` / ``align.dpo_lr`` default to the
recipe's later 0.01 and 5e-7). The DPO loss, the implicit rewards β·log(π/π_ref) and their
logged accuracy and margin all come from TRL; this module wires recipe, data and trainer, holds
out a few pairs (at most two batches), and evaluates reward accuracy and margin after training on
up to two batches of the training pairs and on the held-out ones. (At step 0 the policy *is* the
reference, so every implicit reward is exactly 0 and accuracy — a strict "chosen beats rejected" —
reads 0; chance is 0.5.)

>>> from stablelm2.alignment import dpo
>>> train, held = dpo.split([{"id": str(i)} for i in range(20)], seed=0)
>>> len(train), len(held)
(18, 2)
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from . import chat, common, sources
from .recipes import Recipe
from .results import DPOResult

METRICS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "loss")


def split(rows: list[dict[str, Any]], *, seed: int, frac: float = 0.1, min_held: int = 2,
          max_held: int = 0) -> tuple[list, list]:
    """A seeded train / held-out split of the pairs (held-out: ``frac`` of them, at least ``min_held``,
    at most ``max_held`` when it is not 0); each part keeps the rows' order.

    Raises:
        AlignmentDataError: the held-out part would take every pair (too few pairs).
    """
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_held = max(min_held, int(round(frac * len(rows))))
    n_held = min(n_held, max_held) if max_held else n_held
    if n_held >= len(rows):
        raise sources.AlignmentDataError(f"only {len(rows)} preference pairs: too few to hold out {n_held}")
    held = sorted(order[:n_held])
    keep = sorted(order[n_held:])
    return [rows[i] for i in keep], [rows[i] for i in held]


def dataset(rows: list[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` in TRL's conversational preference format (prompt / chosen / rejected)."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
                              for r in rows])


def _evaluate(trainer: Any, rows: list[dict[str, Any]] | None) -> dict[str, float]:
    """Reward accuracy, margin and loss of the current policy on ``rows`` (None: the held-out pairs).

    TRL logs the evaluation's reward metrics (``eval_rewards/...``) into ``state.log_history``."""
    trainer.evaluate(dataset(rows) if rows is not None else None)
    last = trainer.state.log_history[-1]
    return {k: float(last[f"eval_{k}"]) for k in METRICS if f"eval_{k}" in last}


def train(recipe: Recipe, init: str | Path, out_dir: Path, *, ref: str | Path | None = None,
          data: sources.Loaded | None = None) -> DPOResult:
    """DPO on ``init`` against the frozen reference ``ref`` (default: a second copy of ``init``), Sec. 3.2."""
    from trl import DPOConfig, DPOTrainer

    t0 = time.time()
    tok = common.load_tokenizer(init)
    policy = common.load_model(init)
    reference = common.load_model(ref or init)
    chat.check_template(tok, model_vocab=policy.get_input_embeddings().num_embeddings)
    data = data or sources.load_dpo(**recipe.data)
    train_rows, held_rows = split(data.rows, seed=recipe.args["seed"], max_held=2 * recipe.batch["global"])
    batch_line = common.announce_batch(recipe)
    with tempfile.TemporaryDirectory(prefix="dpo-") as scratch:
        args = DPOConfig(output_dir=scratch, per_device_eval_batch_size=recipe.batch["per_device"],
                         prediction_loss_only=True, **recipe.args)
        trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=dataset(train_rows),
                             eval_dataset=dataset(held_rows), processing_class=tok)
        # TRL drops a pair whose prompt alone fills max_length (nothing of the reply would be scored): count it
        truncated = {"train": len(train_rows) - len(trainer.train_dataset),  # type: ignore[arg-type]
                     "held_out": len(held_rows) - len(trainer.eval_dataset)}  # type: ignore[arg-type]
        common.cap_steps(trainer, recipe)
        t1 = time.time()
        trainer.train()
        train_s = time.time() - t1
        after_train = _evaluate(trainer, train_rows[: 2 * recipe.batch["global"]])
        after_held = _evaluate(trainer, None)
    if trainer.is_world_process_zero():  # one writer under accelerate / DeepSpeed
        common.save_model(trainer.model, tok, out_dir)
    logs = common.train_logs(trainer.state.log_history)
    return {
        "stage": "dpo", "model_dir": str(out_dir), "batch": recipe.batch, "batch_line": batch_line,
        "data_report": data.report.to_dict(), "unscored": sources.unscored(data.rows),
        "n_train_pairs": len(train_rows), "n_held_pairs": len(held_rows), "beta": recipe.args["beta"],
        "dropped_prompt_too_long": truncated,
        "log": logs, "steps": trainer.state.global_step,
        "train_pairs_after": after_train, "held_out_after": after_held,
        "timings": {"train_s": round(train_s, 2), "total_s": round(time.time() - t0, 2)},
    }
