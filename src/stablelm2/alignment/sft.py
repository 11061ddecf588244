"""Chapter 06 · Stage 1, supervised fine-tuning: TRL's ``SFTTrainer`` on the seven filtered sources.

The paper trains the base model for three epochs on UltraChat, WizardLM, SlimOrca, ShareGPT,
Capybara, Deita and MetaMathQA (conversations of at most eight turns), with a cosine schedule
after a warm-up, a global batch of 512 sequences packed to 4096 tokens. Here TRL does the work:
conversations are rendered in the released zephyr chat format of ``stablelm-2-zephyr-1_6b`` (the
tokenizer's template; special-token text in the data stays text, see :mod:`.chat`), packed (best-fit decreasing,
padding-free with position ids restarting per conversation) and the loss is taken on the
assistant's tokens only (``assistant_only_loss``, through the template's ``{% generation %}``
markers). This module only wires the recipe, the data and the trainer together.

>>> from stablelm2 import config                                   # doctest: +SKIP
>>> from stablelm2.alignment import recipes, sft, sources         # doctest: +SKIP
>>> cfg = config.load("smoke")                                     # doctest: +SKIP
>>> rec = recipes.build(cfg, "sft")                                # doctest: +SKIP
>>> out = sft.train(rec, base_dir, tmp / "sft")                    # doctest: +SKIP
>>> out["final_loss"] < out["first_loss"]                          # doctest: +SKIP
True
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from . import chat, common, sources
from .recipes import Recipe
from .results import SFTResult


def dataset(rows: list[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` with one ``messages`` column (TRL's conversational format)."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": r["messages"]} for r in rows])


def train(recipe: Recipe, init: str | Path, out_dir: Path, *, data: sources.Loaded | None = None) -> SFTResult:
    """Fine-tune ``init`` (model + tokenizer dir, or Hub id) with ``recipe``; save to ``out_dir`` (Sec. 3.1).

    Returns the training log, the data report, the batch composition and timings.
    """
    from trl import SFTConfig, SFTTrainer

    t0 = time.time()
    tok = common.load_tokenizer(init, chat_template=True)
    model = common.load_model(init)
    template = chat.check_template(tok, model_vocab=model.get_input_embeddings().num_embeddings)
    data = data or sources.load_sft(**recipe.data)
    batch_line = common.announce_batch(recipe)
    with tempfile.TemporaryDirectory(prefix="sft-") as scratch:
        args = SFTConfig(output_dir=scratch, **recipe.args)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset(data.rows), processing_class=tok)
        common.cap_steps(trainer, recipe)
        t1 = time.time()
        trainer.train()
        train_s = time.time() - t1
    if trainer.is_world_process_zero():  # one writer under accelerate / DeepSpeed
        common.save_model(trainer.model, tok, out_dir)
    logs = common.train_logs(trainer.state.log_history)
    return {
        "stage": "sft", "model_dir": str(out_dir), "batch": recipe.batch, "batch_line": batch_line,
        "data_report": data.report.to_dict(), "n_conversations": len(data.rows),
        "template": {"special_tokens": template.special_tokens, "turn_end_trained": template.turn_end_trained},
        "log": logs, "steps": trainer.state.global_step,
        # mean over the first and the last quarter of the steps (each batch differs; single steps are noisy)
        "first_loss": _mean_loss(logs[: max(1, len(logs) // 4)]),
        "final_loss": _mean_loss(logs[-max(1, len(logs) // 4):]),
        "timings": {"train_s": round(train_s, 2), "total_s": round(time.time() - t0, 2)},
    }


def _mean_loss(logs: list[dict[str, Any]]) -> float:
    """Mean training loss over some logged steps (batches differ, so single steps are noisy)."""
    return sum(h["loss"] for h in logs) / len(logs)
