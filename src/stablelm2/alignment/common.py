"""Chapter 06 · Small shared pieces of the three stages: loading, saving, fingerprints, log curves.

>>> from stablelm2.alignment import common
>>> common.curve([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"train_runtime": 3.0}], "loss")
[(1, 2.0), (2, 1.5)]
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_dir, sha256_bytes, sha256_files, sha256_json
from .recipes import BATCH_UNITS, Recipe, describe_batch


def load_model(path: str | Path) -> Any:
    """A causal LM from a directory (or Hub id at paper scale), in fp32 on the CPU, with packed documents
    kept apart in every forward (``stablelm2.model.load``: SFT packs its samples)."""
    from .. import model as model_lib

    return model_lib.load(str(path), dtype=torch.float32)


def load_tokenizer(path: str | Path, *, chat_template: bool = False) -> Any:
    """The tokenizer saved with a model, as :class:`stablelm2.tokenizer_hf.Arcade100kTokenizerFast` (its chat
    templating keeps special-token text in messages as text). With ``chat_template``, one that lacks a chat
    template (the released base model ships none) is replaced by Arcade100k's own export, which encodes
    identically and carries the released zephyr template the stages train on."""
    from .. import tokenizer

    tok = tokenizer.load_transformers(path)
    if chat_template and not tok.chat_template:
        print(f"{path}: no chat template; using stablelm2.tokenizer.save_transformers (same ids, zephyr format)")
        with tempfile.TemporaryDirectory(prefix="arcade100k-") as d:
            tok = tokenizer.load_transformers(tokenizer.save_transformers(d))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def save_model(model: Any, tok: Any, out_dir: Path) -> Path:
    """Save model + tokenizer so readers see the old directory or the new one, never half of one."""
    from .. import tokenizer

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        # the Arcade100k export (AutoTokenizer loads it), with this tokenizer's chat template
        tokenizer.save_transformers(tmp, chat_template=tok.chat_template)
    return out_dir


def fingerprint(path: str | Path) -> str:
    """sha256 over a model directory's weight and config files (a Hub id fingerprints as itself)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_bytes(str(path).encode())
    return sha256_files(f for f in sorted(path.iterdir()) if f.suffix in (".safetensors", ".json") and f.is_file())


SAMPLES_DIR = Path(__file__).with_name("samples")


def samples_digest() -> str:
    """sha256 over the shipped conversation and preference samples (names and bytes of every file)."""
    return sha256_files(sorted(SAMPLES_DIR.glob("*.jsonl")))


def recipe_key(recipe: Recipe, *inputs: str) -> str:
    """Fingerprint of a stage: its recipe, the fingerprints of its inputs and, for local data, the shipped
    samples (:func:`samples_digest`), so an edited sample never reuses a model trained on the old one."""
    local = None if recipe.data.get("mode") == "hub" else samples_digest()
    return sha256_json({"recipe": recipe.to_dict(), "inputs": list(inputs), "samples": local})


def announce_batch(recipe: Recipe) -> str:
    """Print (and return) how the effective global batch is composed."""
    line = f"[{recipe.stage}] effective global batch: {describe_batch(recipe.batch, BATCH_UNITS[recipe.stage])}"
    print(line, flush=True)
    return line


def cap_steps(trainer: Any, recipe: Recipe) -> int:
    """Cap a built trainer's run at ``recipe.step_cap`` optimizer steps without changing what an epoch is.

    Transformers' ``max_steps`` *replaces* the epoch count (it would loop over the data again); here
    it is set to min(cap, epochs × steps per epoch), so the schedule still ends where the run ends.
    Returns the number of steps the run will take."""
    batches = len(trainer.get_train_dataloader())
    per_epoch = max(1, math.ceil(batches / trainer.args.gradient_accumulation_steps))
    steps = math.ceil(trainer.args.num_train_epochs * per_epoch)
    if recipe.step_cap:
        steps = min(steps, recipe.step_cap)
    trainer.args.max_steps = steps
    return steps


def curve(log_history: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of one logged quantity from a Trainer's ``state.log_history``."""
    return [(int(h["step"]), float(h[key])) for h in log_history if key in h and "step" in h]


def train_logs(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-step training entries only (no evaluation or summary rows), with plain floats."""
    return [{k: float(v) if isinstance(v, (int, float)) else v for k, v in h.items()}
            for h in log_history if "loss" in h and "step" in h]
