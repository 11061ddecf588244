"""Chapter 06 · Stage 3, self-knowledge: RLCD-style data, C-RLFT-style conditioning, trained with TRL.

After DPO the model "does not have knowledge about who created it, or even what limitations a
language model has". The paper fixes that in three steps, which this module follows:

1. **Prompts** — the *base* model writes first messages to a language model (10k at paper scale);
   duplicates are dropped (:func:`generate_prompts`; we also drop copies of the examples it was shown).
2. **Continuations** — the DPO model answers every prompt twice: once after a few-shot prompt that
   carries self-knowledge in earlier turns (a system card and three identity exchanges: the
   *positive*), once with the prompt alone (the *negative*) (:func:`continuations`).
3. **Training** — positives are trained like SFT, behind the assistant header; negatives behind a
   separate negative token, ``<|extra0|>``, in place of the assistant token (see :mod:`.chat`), so
   the model learns both behaviours but ties the self-aware one to the header it uses at inference.
   Unpacked, 6 epochs, batch 256, 100 warm-up steps, lr 3e-6 with cosine decay to 0 (paper values).

:func:`measure` shows the effect: greedy answers to held-out identity questions, conditioned on the
positive (assistant) header, and how often they carry the self-knowledge — the model's name or its
maker (any answer mentioning either counts; the limits are reported alongside). It is measured on the
DPO model (before) and on the trained model (after), and on the trained model behind the negative token.

>>> from stablelm2.alignment import self_knowledge as sk
>>> sk.facts_in("I am Stable LM 2, made by Stability AI.")["carries"]
True
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from .. import facts, tokenizer
from ..files import atomic_write_json
from . import chat, common
from .recipes import Recipe
from .results import IdentityScore, PromptStats, SelfKnowledgeData, SelfKnowledgeResult

MODEL_NAME: str = facts.value("paper.title").removesuffix(" Technical Report")
"""``Stable LM 2 1.6B``."""
CREATOR = "Stability AI"
_LANGS = {"DE": "German", "ES": "Spanish", "FR": "French", "IT": "Italian", "NL": "Dutch", "PT": "Portuguese"}


def identity_card() -> str:
    """The self-knowledge the positive prompt carries, built from the paper's facts."""
    tokens = facts.value("data.total_tokens") / 1e12
    others = len(facts.value("data.languages_non_english"))
    return (f"You are {MODEL_NAME}, a language model made by {CREATOR}, trained on about {tokens:.0f} trillion "
            f"tokens of English and {others} other European languages. You cannot browse the internet, you do "
            "not remember earlier chats, and you can make mistakes.")


FEW_SHOT = [
    ("Hi! Who am I talking to?", f"Hello! I'm {MODEL_NAME}, a language model made by {CREATOR}."),
    ("Can you look up today's news?",
     f"Sorry, I cannot browse the internet. I'm {MODEL_NAME} by {CREATOR}; I only know what I learned in training."),
    ("Do you remember our last chat?", f"No. I'm {MODEL_NAME}, made by {CREATOR}, and each chat starts fresh."),
]
"""The earlier turns of the positive few-shot prompt (self-knowledge in previous chat turns)."""

IDENTITY_QUESTIONS = (
    "Who created you?", "What is your name?", "Which company trained you?", "Tell me about yourself.",
    "Are you ChatGPT?", "What kind of AI are you?", "Who developed you?", "Introduce yourself in one sentence.",
)
"""Held-out identity questions for :func:`measure` (none of them is in the few-shot prompt)."""

FACT_PATTERNS = {
    "name": re.compile(r"stable\s*lm", re.I),
    "creator": re.compile(r"stability(\s*ai)?", re.I),
    "limits": re.compile(r"(cannot|can't|can not|unable to)\s+(browse|access)|make mistakes|do not remember", re.I),
}
OTHER_IDENTITY = re.compile(r"\b(openai|chatgpt|gpt-?[34])\b", re.I)

PROMPT_EXAMPLES = (
    "Can you help me plan a birthday party for my daughter?", "What is the difference between a virus and a bacterium?",
    "Write a short poem about the sea.", "How do I make my code run faster?", "Who are you?",
    "Can you explain how credit scores work?", "I need a name for my new cat.", "What should I cook tonight?",
    "Translate 'good morning' into Spanish.", "What can you do?", "Help me write a cover letter.",
    "Why is the sky blue?",
)
"""Example first messages shown to the base model when it writes new ones."""


def facts_in(answer: str) -> dict[str, bool]:
    """Which self-knowledge facts an answer states; ``carries`` = it names the model or its maker."""
    hits = {k: bool(p.search(answer)) for k, p in FACT_PATTERNS.items()}
    hits["carries"] = hits["name"] or hits["creator"]
    hits["other_identity"] = bool(OTHER_IDENTITY.search(answer))
    return hits


def few_shot_messages() -> list[dict[str, str]]:
    """The few-shot context of a positive continuation (Sec. 3.3): the system card
    (:func:`identity_card`), then the identity exchanges of ``FEW_SHOT`` as user/assistant turns."""
    msgs = [{"role": "system", "content": identity_card()}]
    for q, a in FEW_SHOT:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return msgs


# ------------------------------------------------------------------------------ generation


@torch.no_grad()
def generate(model: Any, tok: Any, prompts: list[list[int]], *, max_new_tokens: int, sample: bool, seed: int,
             batch_size: int = 16, temperature: float = 1.0, desc: str = "generate") -> list[str]:
    """Continue each prompt (token ids; left-padded batches); stop at the turn end or ``<|endoftext|>``.

    Prompts arrive as ids (:func:`.chat.prompt_ids`, :func:`stablelm2.tokenizer.encode`), so text that
    looks like a special token — in a generated first message, say — stays text. Returns one decoded,
    stripped reply per prompt, in order.

    Raises:
        ValueError: a batch's padded prompt length plus ``max_new_tokens`` exceeds the model's positions.
    """
    stop = [tok.convert_tokens_to_ids(chat.TURN_END), tok.eos_token_id]
    limit = model.config.max_position_embeddings
    side, tok.padding_side = tok.padding_side, "left"
    model.eval()
    out: list[str] = []
    try:
        out = _generate_batches(model, tok, prompts, stop, limit, max_new_tokens=max_new_tokens, sample=sample,
                                seed=seed, batch_size=batch_size, temperature=temperature, desc=desc)
    finally:
        tok.padding_side = side
    return out


def _generate_batches(model: Any, tok: Any, prompts: list[list[int]], stop: list[int], limit: int, *,
                      max_new_tokens: int, sample: bool, seed: int, batch_size: int, temperature: float,
                      desc: str) -> list[str]:
    out: list[str] = []
    for b in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        chunk = prompts[b:b + batch_size]
        enc = tok.pad({"input_ids": chunk}, return_tensors="pt", padding=True)
        if enc["input_ids"].shape[1] + max_new_tokens > limit:
            raise ValueError(f"a {desc} prompt of {enc['input_ids'].shape[1]} tokens plus {max_new_tokens} new "
                             f"tokens exceeds the model's {limit} positions; shorten the prompt or "
                             "align.sk_max_new_tokens")
        torch.manual_seed(seed + b)
        kw = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if sample else {"do_sample": False}
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, eos_token_id=stop,
                             pad_token_id=tok.pad_token_id, **kw)
        new = ids[:, enc["input_ids"].shape[1]:]
        out += [tok.decode(row, skip_special_tokens=True).strip() for row in new]
    return out


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def generate_prompts(model: Any, tok: Any, n: int, *, seed: int, max_new_tokens: int,
                     batch_size: int = 16) -> tuple[list[str], PromptStats]:
    """``n`` distinct first messages written by the (base) model, and what was dropped on the way (Sec. 3.3).

    Sampled in rounds of ``batch_size`` from a prompt showing three of ``PROMPT_EXAMPLES``; a message is its
    first generated line, kept unless empty, a copy of an example, or a duplicate (case and punctuation
    ignored). Fewer than ``n`` come back when the rounds run out (``stats["kept"]``).

    Raises:
        ValueError: no message was kept at all.
    """
    rng = random.Random(seed)
    seen = {_key(e) for e in PROMPT_EXAMPLES}
    stats: PromptStats = {"requested": n, "generated": 0, "empty": 0, "duplicate": 0, "copied_example": 0, "kept": 0}
    prompts: list[str] = []
    for rnd in range(max(4, 4 * -(-n // batch_size))):
        if len(prompts) >= n:
            break
        heads = []
        for _ in range(batch_size):
            shown = rng.sample(PROMPT_EXAMPLES, 3)
            heads.append("The following are first messages that people sent to an AI assistant.\n\n"
                         + "".join(f"Message: {m}\n" for m in shown) + "Message:")
        for text in generate(model, tok, [tokenizer.encode(h) for h in heads], max_new_tokens=max_new_tokens,
                             sample=True,
                             seed=seed + 1000 * rnd, batch_size=batch_size, desc="prompts"):
            stats["generated"] += 1
            line = text.split("\n", 1)[0].strip()
            key = _key(line)
            if not key:
                stats["empty"] += 1
            elif key in {_key(e) for e in PROMPT_EXAMPLES}:
                stats["copied_example"] += 1
            elif key in seen:
                stats["duplicate"] += 1
            elif len(prompts) < n:
                seen.add(key)
                prompts.append(line)
    stats["kept"] = len(prompts)
    if not prompts:
        raise ValueError(f"the base model wrote no usable first message in {stats['generated']} tries ({stats})")
    return prompts, stats


def continuations(model: Any, tok: Any, prompts: list[str], *, few_shot: bool, seed: int,
                  max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """Sampled replies to each prompt: after the self-knowledge few-shot turns (positive) or alone."""
    context = few_shot_messages() if few_shot else []
    ids = [chat.prompt_ids(tok, [*context, {"role": "user", "content": p}]) for p in prompts]
    return generate(model, tok, ids, max_new_tokens=max_new_tokens, sample=True, seed=seed,
                    batch_size=batch_size, temperature=0.7, desc="positives" if few_shot else "negatives")


def make_data(recipe: Recipe, base: str | Path, init: str | Path,
              out_file: Path | None = None) -> SelfKnowledgeData:
    """Prompts from ``base``, positive and negative continuations from ``init`` (the DPO model), Sec. 3.3."""
    seed, new = recipe.args["seed"], recipe.extra["max_new_tokens"]
    t0 = time.time()
    base_model, base_tok = common.load_model(base), common.load_tokenizer(base)
    prompts, stats = generate_prompts(base_model, base_tok, recipe.extra["n_prompts"], seed=seed,
                                      max_new_tokens=new)
    del base_model
    model, tok = common.load_model(init), common.load_tokenizer(init)
    chat.check_sk_template(tok)
    pos = continuations(model, tok, prompts, few_shot=True, seed=seed + 1, max_new_tokens=new)
    neg = continuations(model, tok, prompts, few_shot=False, seed=seed + 2, max_new_tokens=new)
    data: SelfKnowledgeData = {"prompts": prompts, "positives": pos, "negatives": neg, "prompt_stats": stats,
            "fact_rate_positives": _rate(pos), "fact_rate_negatives": _rate(neg),
            "timings": {"generate_s": round(time.time() - t0, 2)}}
    if out_file is not None:
        atomic_write_json(out_file, data)
    return data


def _rate(texts: list[str]) -> float:
    return sum(facts_in(t)["carries"] for t in texts) / max(1, len(texts))


def examples(data: SelfKnowledgeData) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Training conversations: positives behind the assistant header, negatives behind the negative token.

    A prompt whose positive or negative reply came out empty is left out (and counted). Returns the rows
    (``{"messages": [...]}``, positive then negative per prompt) and ``{"pairs", "dropped_empty_reply"}``.

    Raises:
        ValueError: every prompt was left out (nothing to train).
    """
    rows, dropped = [], 0
    for p, pos, neg in zip(data["prompts"], data["positives"], data["negatives"], strict=True):
        if not pos.strip() or not neg.strip():
            dropped += 1
            continue
        user = [{"role": "user", "content": p}]
        rows += [{"messages": chat.positive_example(user, pos)}, {"messages": chat.negative_example(user, neg)}]
    if not rows:
        raise ValueError("every self-knowledge prompt got an empty positive or negative reply; nothing to train")
    return rows, {"pairs": len(rows) // 2, "dropped_empty_reply": dropped}


# ------------------------------------------------------------------------------ measure and train


def measure(model: Any, tok: Any, *, negative: bool = False, max_new_tokens: int = 32,
            questions: tuple[str, ...] = IDENTITY_QUESTIONS) -> IdentityScore:
    """Greedy answers to the identity questions behind the assistant (or negative) header, scored."""
    ids = [chat.prompt_ids(tok, [{"role": "user", "content": q}], negative=negative) for q in questions]
    answers = generate(model, tok, ids, max_new_tokens=max_new_tokens, sample=False, seed=0, desc="identity")
    scored = [facts_in(a) for a in answers]
    n = len(answers)
    return {"rate": sum(s["carries"] for s in scored) / n,
            "per_fact": {k: sum(s[k] for s in scored) / n for k in (*FACT_PATTERNS, "other_identity")},
            "answers": [{"question": q, "answer": a, **s} for q, a, s in zip(questions, answers, scored, strict=True)]}


def train(recipe: Recipe, init: str | Path, out_dir: Path, *, data: SelfKnowledgeData) -> SelfKnowledgeResult:
    """Train the DPO model ``init`` on the self-knowledge examples; measure before and after (Sec. 3.3)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    t0 = time.time()
    tok = common.load_tokenizer(init)
    model = common.load_model(init)
    own_template = tok.chat_template
    check = chat.check_sk_template(tok)
    new = recipe.extra["max_new_tokens"]
    before = measure(model, tok, max_new_tokens=new)
    rows, ex_stats = examples(data)
    batch_line = common.announce_batch(recipe)
    tok.chat_template = chat.SK_TEMPLATE
    with tempfile.TemporaryDirectory(prefix="sk-") as scratch:
        trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=scratch, **recipe.args),
                             train_dataset=Dataset.from_list(rows), processing_class=tok)
        common.cap_steps(trainer, recipe)
        t1 = time.time()
        trainer.train()
        train_s = time.time() - t1
    tok.chat_template = own_template
    after = measure(trainer.model, tok, max_new_tokens=new)
    after_negative = measure(trainer.model, tok, negative=True, max_new_tokens=new)
    if trainer.is_world_process_zero():  # one writer under accelerate / DeepSpeed
        common.save_model(trainer.model, tok, out_dir)
    logs = common.train_logs(trainer.state.log_history)
    return {
        "stage": "self_knowledge", "model_dir": str(out_dir), "batch": recipe.batch, "batch_line": batch_line,
        "negative_token": {"token": chat.NEGATIVE_TOKEN, "id": chat.NEGATIVE_ID},
        "template_tokens": check.special_tokens, "prompt_stats": data["prompt_stats"], "examples": ex_stats,
        "fact_rate_positives": data["fact_rate_positives"], "fact_rate_negatives": data["fact_rate_negatives"],
        "sample": [{"prompt": p, "positive": a, "negative": b}
                   for p, a, b in list(zip(data["prompts"], data["positives"], data["negatives"], strict=True))[:5]],
        "before": before, "after": after, "after_negative": after_negative,
        "log": logs, "steps": trainer.state.global_step,
        "timings": {"generate_s": data["timings"]["generate_s"], "train_s": round(train_s, 2),
                    "total_s": round(time.time() - t0, 2)},
    }


def load_data(path: Path) -> SelfKnowledgeData:
    """The self-knowledge data :func:`make_data` wrote to ``path`` (JSON), as written (not re-checked)."""
    return cast(SelfKnowledgeData, json.loads(Path(path).read_text(encoding="utf-8")))
