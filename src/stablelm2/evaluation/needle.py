"""Needle-in-a-haystack (Appendix C), seeded: can the model find one fact in a long context?

A *needle* — "The special magic number for <city> is <7 digits>." — is inserted into a *haystack*
of unrelated essays (``data/texts/essays.txt``, shipped with the package) at ``eval.needle_depths``
depths from 0 % to 100 % of contexts of ``eval.needle_n_ctx`` sizes from ``eval.needle_min_ctx``
to ``eval.needle_max_ctx`` Arcade100k tokens (counted with :func:`stablelm2.tokenizer.arcade100k`,
needle included). The model is asked for the number; an answer scores 1 when it contains the
number, else 0 (the paper had GPT-4 grade 1–10; containment is the offline equivalent of "was
the fact retrieved"). The paper noted that its runs were *not* seeded (context order varied); here
repeat ``i`` uses seed ``cfg.run.seed + i`` for the essay order, the city and the number, so the
same seed gives the same haystack, and the grid is reported as mean and spread over repeats.

The needle goes in at the last word boundary at or before the requested token position (a token
that begins with a space), so the context re-encodes to exactly the same tokens and the needle
sits within a token or two of the requested depth.

>>> from stablelm2.evaluation import needle
>>> t = needle.make_trial(ctx_tokens=200, depth=0.5, seed=7)
>>> t.ctx_tokens, abs(t.position - t.requested) <= 3, t.answer in t.context
(200, True, True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Config
from . import tasks as _tasks

CITIES = ("Lisbon", "Utrecht", "Bologna", "Seville", "Leipzig", "Lyon", "Porto", "Ghent", "Turin", "Valencia",
          "Bremen", "Nantes")
"""Cities of the needle sentence (one per seed, drawn by the seed)."""


class NeedleError(ValueError):
    """A needle request that cannot run (context too long for the model, bad grid)."""


@dataclass(frozen=True)
class Trial:
    seed: int
    """Seed of this repeat (essay order, city, number)."""
    ctx_tokens: int
    """Haystack + needle length in Arcade100k tokens."""
    depth: float
    """Requested depth as a fraction of the haystack (0 = start, 1 = end)."""
    requested: int
    """Requested token position of the needle: round(depth × haystack tokens)."""
    position: int
    """Token position where the needle actually starts (last word boundary ≤ requested)."""
    city: str
    answer: str
    """The magic number the answer must contain."""
    context: str
    """The haystack text with the needle inside."""

    @property
    def question(self) -> str:
        """The question asked after the context: the magic number of this trial's city."""
        return f"What is the special magic number for {self.city} mentioned in the text?"


def _enc() -> Any:
    from .. import tokenizer

    return tokenizer.arcade100k()


@lru_cache(maxsize=1)
def _paragraphs() -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(paras) for _, paras in _tasks.essays())


def haystack_tokens(n_tokens: int, seed: int) -> list[int]:
    """``n_tokens`` Arcade100k tokens of the essays in a seeded order (reshuffled again if more is needed)."""
    enc = _enc()
    rng = random.Random(seed)
    ids: list[int] = []
    while len(ids) < n_tokens:
        order = list(range(len(_paragraphs())))
        rng.shuffle(order)
        text = "\n\n".join("\n\n".join(_paragraphs()[i]) for i in order)
        ids += enc.encode_ordinary(("\n\n " if ids else " ") + text)  # words start with a space
    return ids[:n_tokens]


def needle_for(seed: int) -> tuple[str, str, str]:
    """(sentence, city, number) of the needle of one seed."""
    rng = random.Random(f"needle-{seed}")
    city = rng.choice(CITIES)
    number = str(rng.randrange(1_000_000, 10_000_000))
    return f" The special magic number for {city} is {number}.", city, number


def make_trial(ctx_tokens: int, depth: float, seed: int) -> Trial:
    """One context of ``ctx_tokens`` tokens with the seed's needle at ``depth`` of the haystack (App. C).

    ``ctx_tokens`` counts Arcade100k tokens, needle included; ``depth`` is a fraction (0 = start, 1 = end).

    Raises:
        NeedleError: ``depth`` outside [0, 1], a context with fewer than 8 haystack tokens beside the
            needle, or no word boundary to insert the needle at.
    """
    if not 0.0 <= depth <= 1.0:
        raise NeedleError(f"depth {depth} must be a fraction between 0 and 1")
    enc = _enc()
    sentence, city, number = needle_for(seed)
    needle_ids = enc.encode_ordinary(sentence)
    n_hay = ctx_tokens - len(needle_ids)
    if n_hay < 8:
        raise NeedleError(f"context of {ctx_tokens} tokens leaves no room for a haystack around a "
                          f"{len(needle_ids)}-token needle; use eval.needle_min_ctx ≥ {len(needle_ids) + 8}")
    hay = haystack_tokens(n_hay, seed)
    requested = round(depth * n_hay)
    for k in range(requested, -1, -1):
        if 0 < k < n_hay and not enc.decode([hay[k]])[:1] == " ":
            continue
        ids = hay[:k] + needle_ids + hay[k:]
        text = enc.decode(ids)
        if enc.encode_ordinary(text) == ids:
            return Trial(seed=seed, ctx_tokens=ctx_tokens, depth=depth, requested=requested, position=k,
                         city=city, answer=number, context=text)
    raise NeedleError(f"found no word boundary for the needle before token {requested}")  # pragma: no cover


def grid(cfg: Config) -> tuple[list[int], list[float]]:
    """(context sizes, depths) of the preset: evenly spaced, ends included."""
    e = cfg.eval
    ctx = sorted({int(round(x)) for x in np.linspace(e.needle_min_ctx, e.needle_max_ctx, e.needle_n_ctx)})
    depths = [float(d) for d in np.linspace(0.0, 1.0, e.needle_depths)]
    return ctx, depths


def seeds(cfg: Config) -> list[int]:
    """One seed per repeat: ``cfg.run.seed + i``."""
    return [cfg.run.seed + i for i in range(cfg.eval.needle_seeds)]


def trials(cfg: Config) -> list[Trial]:
    """Every (seed, context size, depth) of the grid."""
    ctx, depths = grid(cfg)
    return [make_trial(c, d, s) for s in seeds(cfg) for c in ctx for d in depths]


def _messages(trial: Trial) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{trial.context}\n\n{trial.question} Answer with the number only."}]


def prompt(trial: Trial, tokenizer: Any, *, chat: bool) -> str:
    """The question around the context: a completion prompt for a base model, the chat template otherwise."""
    if chat:
        return tokenizer.apply_chat_template(_messages(trial), tokenize=False, add_generation_prompt=True)
    return f"{trial.context}\n\nQuestion: {trial.question}\nAnswer: The special magic number for {trial.city} is"


def prompt_ids(trial: Trial, tokenizer: Any, *, chat: bool) -> list[int]:
    """:func:`prompt` as token ids, special-token text in the haystack and question kept as text.

    The chat prompt is the model's own template: one of :mod:`stablelm2.chat_formats` (our models: the
    released zephyr format) encoded by :func:`stablelm2.chat_formats.encode`, any other template by
    transformers with ``sanitize_control_tokens``; the completion prompt is encoded as plain text."""
    from .. import chat_formats

    if not chat:
        return list(tokenizer(prompt(trial, tokenizer, chat=False), add_special_tokens=False,
                              split_special_tokens=True)["input_ids"])
    known = chat_formats.identify(tokenizer.chat_template)
    if known is not None:
        return chat_formats.encode(known[0], _messages(trial), add_generation_prompt=True, with_negative=known[1])[0]
    return list(tokenizer.apply_chat_template(_messages(trial), add_generation_prompt=True, tokenize=True,
                                              return_dict=False, sanitize_control_tokens=True))


def score(answer: str, trial: Trial) -> float:
    """1.0 when the answer contains the needle's number, else 0.0."""
    return 1.0 if trial.answer in answer.replace(",", "").replace(" ", "") else 0.0


def run(model_dir: str | Path, cfg: Config, *, chat: bool = False, progress: bool = True) -> pd.DataFrame:
    """Ask the model about every trial of the grid (greedy decoding); one row per trial with its score.

    Refuses, before loading the model, a grid whose longest prompt plus ``eval.needle_gen_tokens``
    exceeds the model's context. App. C's test, seeded; ``chat`` uses the model's chat template. Columns:
    ``seed``, ``ctx_tokens``, ``depth``, ``requested``, ``position``, ``prompt_tokens`` (tokens of the
    model's tokenizer), ``answer``, ``score`` (0 or 1).

    Raises:
        NeedleError: the longest prompt plus the generation budget exceeds the model's context, or a
            grid point :func:`make_trial` refuses.
        EvalError: ``model_dir`` is not a model directory (:func:`.tasks.model_context`).
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ctx_len = _tasks.model_context(model_dir, offline=cfg.run.offline)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    all_trials = trials(cfg)
    prompts = [prompt_ids(t, tok, chat=chat) for t in all_trials]
    lengths = [len(p) for p in prompts]
    need = max(lengths) + cfg.eval.needle_gen_tokens
    if ctx_len is not None and need > ctx_len:
        raise NeedleError(
            f"the longest needle prompt needs {need} tokens ({max(lengths)} + {cfg.eval.needle_gen_tokens} generated) "
            f"but the model's context is {ctx_len}; lower eval.needle_max_ctx")
    device = cfg.run.device if cfg.run.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32 if device == "cpu" else torch.bfloat16).to(device).eval()  # type: ignore[arg-type]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    answers: dict[int, str] = {}
    bs = cfg.eval.batch_size
    batches = [order[i:i + bs] for i in range(0, len(order), bs)]
    torch.manual_seed(cfg.run.seed)
    for batch in tqdm(batches, desc="needle", disable=not progress):
        enc = tok.pad({"input_ids": [prompts[i] for i in batch]}, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=cfg.eval.needle_gen_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        for i, row in zip(batch, out[:, enc["input_ids"].shape[1]:], strict=True):
            answers[i] = tok.decode(row, skip_special_tokens=True)  # type: ignore[assignment]  # one row: a str
    rows = []
    for i, t in enumerate(all_trials):
        rows.append({"seed": t.seed, "ctx_tokens": t.ctx_tokens, "depth": t.depth, "requested": t.requested,
                     "position": t.position, "prompt_tokens": lengths[i], "answer": answers[i],
                     "score": score(answers[i], t)})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Grid mean and the spread over seeds: per-cell mean/std tables and the grid averages."""
    per_seed = df.groupby("seed")["score"].mean()
    return {
        "mean": df.groupby(["depth", "ctx_tokens"])["score"].mean().unstack("ctx_tokens"),
        "std": df.groupby(["depth", "ctx_tokens"])["score"].std(ddof=1).unstack("ctx_tokens").fillna(0.0),
        "grid_mean": float(df["score"].mean()),
        "grid_std_over_seeds": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
        "n_trials": len(df),
    }


def heatmap(results: dict[str, pd.DataFrame], *, title: str = "") -> Any:
    """Fig. 5-style heatmaps: per model, mean score over seeds (depth × context) and its std."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.2 * len(results)), squeeze=False)
    for row, (label, df) in enumerate(results.items()):
        s = summarize(df)
        for col, (key, cmap, vmax) in enumerate((("mean", "RdYlGn", 1.0), ("std", "Greys", 0.75))):
            ax = axes[row][col]
            tab = s[key]
            im = ax.imshow(tab.values, aspect="auto", cmap=cmap, vmin=0.0, vmax=vmax, origin="upper")
            ax.set_xticks(range(tab.shape[1]), [str(c) for c in tab.columns], rotation=45)
            step = max(1, tab.shape[0] // 8)
            ax.set_yticks(range(0, tab.shape[0], step), [f"{100 * d:.0f}" for d in tab.index[::step]])
            ax.set_xlabel("context length (Arcade100k tokens)")
            ax.set_ylabel("needle depth (%)")
            ax.set_title(f"{label}: mean score (grid mean {s['grid_mean']:.2f})" if key == "mean"
                         else f"{label}: std over {df['seed'].nunique()} seeds")
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title or "Needle in a haystack (App. C / Fig. 5), seeded")
    fig.tight_layout()
    return fig


def plan(cfg: Config) -> dict[str, Any]:
    """What the grid costs: trials, prompt tokens and generated tokens per model (no model needed)."""
    ctx, depths = grid(cfg)
    n = len(ctx) * len(depths) * cfg.eval.needle_seeds
    return {"context_sizes": ctx, "depths": len(depths), "seeds": cfg.eval.needle_seeds, "trials_per_model": n,
            "prompt_tokens_per_model": sum(ctx) * len(depths) * cfg.eval.needle_seeds,
            "generated_tokens_per_model": n * cfg.eval.needle_gen_tokens}


def save(df: pd.DataFrame, path: Path) -> Path:
    """Write one model's trial table as JSON (atomically)."""
    from ..files import atomic_write_json

    atomic_write_json(Path(path), df.to_dict(orient="records"), indent=1)
    return Path(path)

