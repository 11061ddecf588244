"""Chapter 02 · the compression study: Arcade100k vs cl100k_base vs a BPE trained here, and digits.

The paper chose Arcade100k for "better compression of code and non-English text". This module
measures compression on the shipped sample — bytes per token and tokens per word, per source,
domain and language — for three tokenizers:

* **Arcade100k** (:func:`stablelm2.tokenizer.arcade100k`);
* **cl100k_base**, the tiktoken encoding it extends (same merges, digits in groups of up to 3);
* **a byte-level BPE trained here** with ``tokenizers`` on half of the sample (the other half is
  what all three are measured on), with ``cfg.data.bpe_vocab`` tokens and the same pre-tokenizer.

and what single-digit splitting does to numbers (:func:`digit_study`).

>>> from stablelm2 import config, tokenizer_study
>>> cfg = config.load("smoke")
>>> rows = tokenizer_study.digit_study(max_digits=4)
>>> [(r["digits"], r["arcade100k"], r["cl100k_base"]) for r in rows]
[(1, 1.0, 1.0), (2, 2.0, 1.0), (3, 3.0, 1.0), (4, 4.0, 2.0)]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sized
from typing import Any, TypedDict

import pandas as pd

from . import tokenizer
from .data import sample
from .data.sources import sample_specs
from .data.split import hash_fraction, raw_document
from .data.treatments import restructure

Encoder = Callable[[str], list[int]]


def study_texts(cfg: Any) -> dict[str, dict[str, list[str]]]:
    """Per sample source: ``fit`` texts (train the BPE) and ``eval`` texts (measure), split by hash."""
    out: dict[str, dict[str, list[str]]] = {}
    specs = sample_specs()
    for name, meta in sample.SAMPLE_SOURCES.items():
        docs = sample.documents(name)
        # fit/eval halves decided on the raw document (data.split's hash), before any template
        halves = [hash_fraction(raw_document(d, specs[name])) for d in docs]
        texts = [restructure(d) if meta.get("restruct") else d["text"] for d in docs]
        if cfg.data.study_chars:
            kept, used = 0, 0
            for t in texts:
                if used >= cfg.data.study_chars:
                    break
                kept += 1
                used += len(t)
            texts, halves = texts[:kept], halves[:kept]
        fit = [t for t, h in zip(texts, halves, strict=True) if h >= 0.5]
        ev = [t for t, h in zip(texts, halves, strict=True) if h < 0.5] or texts[:1]
        out[name] = {"fit": fit, "eval": ev}
    return out


def train_bpe(texts: list[str], vocab_size: int, seed: int = 0):
    """A byte-level BPE (``tokenizers``) trained on ``texts`` with Arcade100k's pre-tokenizer.

    At most ``vocab_size`` tokens (the 256 bytes, ``<|endoftext|>`` and merges seen at least twice);
    ``seed`` shuffles the texts' order. Chapter 02's third tokenizer, trained on the sample itself.

    Raises:
        ValueError: ``vocab_size`` < 300.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 300:
        raise ValueError(f"vocab_size = {vocab_size} must be at least 300 (256 bytes + merges)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(tokenizer.PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    order = list(texts)
    random.Random(seed).shuffle(order)
    tok.train_from_iterator(order, trainer=trainer)
    return tok


def encoders(cfg: Any, fit_texts: list[str]) -> dict[str, Encoder]:
    """Name → text-to-ids function of the compared tokenizers: Arcade100k, cl100k_base (both ordinary
    encoding, special-token text as text) and a BPE of ``cfg.data.bpe_vocab`` trained on ``fit_texts``
    (named ``bpe_here_<vocab // 1000>k``, its actual vocabulary)."""
    arc, cl = tokenizer.arcade100k(), tokenizer.cl100k_base()
    bpe = train_bpe(fit_texts, cfg.data.bpe_vocab, seed=cfg.run.seed)
    return {"arcade100k": arc.encode_ordinary, "cl100k_base": cl.encode_ordinary,
            f"bpe_here_{bpe.get_vocab_size() // 1000}k": lambda s: bpe.encode(s).ids}


def compression(cfg: Any) -> list[dict[str, Any]]:
    """One row per (source, tokenizer): bytes, words, tokens, bytes/token, tokens/word."""
    texts = study_texts(cfg)
    encs = encoders(cfg, [t for v in texts.values() for t in v["fit"]])
    rows = []
    for name, meta in sample.SAMPLE_SOURCES.items():
        ev = texts[name]["eval"]
        n_bytes = sum(len(t.encode("utf-8")) for t in ev)
        n_words = sum(len(t.split()) for t in ev)
        for tname, enc in encs.items():
            n_tok = sum(len(enc(t)) for t in ev)
            rows.append({"source": name, "domain": meta["domain"], "language": meta["language"],
                         "tokenizer": tname, "bytes": n_bytes, "words": n_words, "tokens": n_tok,
                         "bytes_per_token": n_bytes / n_tok, "tokens_per_word": n_tok / max(n_words, 1)})
    return rows


def summarise(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Bytes per token per ``by`` (domain or language) and tokenizer (totals, not means of ratios)."""
    acc: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        a = acc.setdefault((r[by], r["tokenizer"]), [0, 0, 0])
        a[0] += r["bytes"]
        a[1] += r["tokens"]
        a[2] += r["words"]
    return [{by: k[0], "tokenizer": k[1], "bytes_per_token": b / t, "tokens_per_word": t / max(w, 1)}
            for k, (b, t, w) in sorted(acc.items())]


def digit_study(max_digits: int = 12, n: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Mean tokens per ``d``-digit number (a leading space, as in text), Arcade100k vs cl100k (Sec. 2.3)."""
    rng = random.Random(seed)
    arc, cl = tokenizer.arcade100k(), tokenizer.cl100k_base()
    rows = []
    for d in range(1, max_digits + 1):
        nums = [" " + str(rng.randrange(10 ** (d - 1) if d > 1 else 0, 10**d)) for _ in range(n)]
        # the leading space is its own pre-token in both; count the digit tokens only
        a = sum(len(arc.encode_ordinary(x)) - 1 for x in nums) / n
        c = sum(len(cl.encode_ordinary(x)) - 1 for x in nums) / n
        rows.append({"digits": d, "arcade100k": a, "cl100k_base": c})
    return rows


def digit_alignment(expr: str = "12345 + 67890 = 80235") -> dict[str, list[str]]:
    """How each tokenizer cuts an addition: Arcade100k aligns digits by place value, cl100k does not."""
    arc, cl = tokenizer.arcade100k(), tokenizer.cl100k_base()
    return {"arcade100k": [arc.decode([t]) for t in arc.encode_ordinary(expr)],
            "cl100k_base": [cl.decode([t]) for t in cl.encode_ordinary(expr)]}


def max_digits_per_token(enc_name: str) -> int:
    """Longest run of digits held by a single token in the vocabulary's reachable pieces (0–9 runs)."""
    enc = tokenizer.arcade100k() if enc_name == "arcade100k" else tokenizer.cl100k_base()
    probe = " ".join(str(10**k + 7 * k) for k in range(1, 12)) + " 3.14159265 2024-11-28 1,048,576"
    return max(len(p) for t in enc.encode_ordinary(probe) if (p := enc.decode([t]).strip()).isdigit())


def agreement(directory: Any, texts: list[str]) -> dict[str, int]:
    """Count texts where the transformers tokenizer in ``directory`` and tiktoken give the same ids."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(directory))
    enc = tokenizer.arcade100k()
    same = sum(hf(t, add_special_tokens=False)["input_ids"] == enc.encode(t, allowed_special="all") for t in texts)
    return {"texts": len(texts), "identical": int(same)}


class TokenizerMetrics(TypedDict, total=False):
    """Chapter 02's numbers in ``metrics.json`` (Sec. 2.3); a part is there once its cell ran."""

    n_vocab: int
    """Arcade100k's vocabulary (tiktoken ``n_vocab``)."""
    n_merges: int
    """Mergeable ranks in the cl100k file."""
    n_special: int
    """Special tokens."""
    vocab_padded: int
    """``n_vocab`` rounded up to a multiple of 64 (embedding rows)."""
    pad_multiple_of_64: bool
    max_digits_per_token_arcade: int
    """Longest run of digits in one Arcade100k token (1: every digit its own token)."""
    max_digits_per_token_cl100k: int
    tokens_12_digit_arcade: float
    """Mean tokens per 12-digit number, Arcade100k."""
    tokens_12_digit_cl100k: float
    special_text_is_ordinary: bool
    """Whether a literal ``<|endoftext|>`` in a document is encoded as ordinary text."""
    hf_agreement_texts: int
    """Texts encoded by both the tiktoken and the saved ``transformers`` tokenizer."""
    hf_agreement_identical: int
    """Of those, texts with identical ids."""
    bytes_per_token: dict[str, float]
    """Tokenizer → UTF-8 bytes per token over the held-out sample, rounded to 4 places."""
    bytes_per_token_by_language: dict[str, dict[str, float]]
    """Tokenizer → language → bytes per token, rounded to 4 places."""
    bytes_per_token_by_domain: dict[str, dict[str, float]]
    """Tokenizer → domain → bytes per token, rounded to 4 places."""


def metrics(*, n_vocab: int | None = None, ranks: Sized | None = None, specials: Sized | None = None,
            vocab_padded: int | None = None, max_digits: tuple[int, int] | None = None,
            digits: pd.DataFrame | None = None, ordinary_ids: Collection[int] | None = None,
            hf_agreement: Mapping[str, int] | None = None, bytes_per_token: Mapping[str, float] | None = None,
            by_language: pd.DataFrame | None = None, by_domain: pd.DataFrame | None = None) -> TokenizerMetrics:
    """The parts of chapter 02's numbers given (a part left ``None`` is left out).

    ``n_vocab``, ``ranks`` (the mergeable ranks), ``specials`` and ``vocab_padded`` go together;
    ``max_digits``: (Arcade100k, cl100k_base) of :func:`max_digits_per_token`, with ``digits`` (the
    :func:`digit_study` frame, its last row the 12-digit numbers); ``ordinary_ids``: the ids of a text
    holding a literal ``<|endoftext|>`` encoded as ordinary text; ``hf_agreement``: :func:`agreement`;
    ``bytes_per_token`` (tokenizer → bytes/token) with ``by_language`` and ``by_domain`` (the
    :func:`summarise` pivots, tokenizer columns). Raises ``ValueError`` for a part given incompletely.
    """
    for names, parts in (("n_vocab, ranks, specials, vocab_padded", (n_vocab, ranks, specials, vocab_padded)),
                         ("max_digits, digits", (max_digits, digits)),
                         ("bytes_per_token, by_language, by_domain", (bytes_per_token, by_language, by_domain))):
        if len({p is None for p in parts}) > 1:
            raise ValueError(f"metrics: give {names} together (one cell computes them), or none of them")
    out: TokenizerMetrics = {}
    if n_vocab is not None and ranks is not None and specials is not None and vocab_padded is not None:
        out["n_vocab"], out["n_merges"], out["n_special"] = n_vocab, len(ranks), len(specials)
        out["vocab_padded"], out["pad_multiple_of_64"] = vocab_padded, vocab_padded % 64 == 0
    if max_digits is not None and digits is not None:
        out["max_digits_per_token_arcade"], out["max_digits_per_token_cl100k"] = max_digits
        out["tokens_12_digit_arcade"] = float(digits["arcade100k"].iloc[-1])
        out["tokens_12_digit_cl100k"] = float(digits["cl100k_base"].iloc[-1])
    if ordinary_ids is not None:
        out["special_text_is_ordinary"] = tokenizer.EOT_ID not in ordinary_ids
    if hf_agreement is not None:
        out["hf_agreement_texts"], out["hf_agreement_identical"] = hf_agreement["texts"], hf_agreement["identical"]
    if bytes_per_token is not None and by_language is not None and by_domain is not None:
        out["bytes_per_token"] = {k: round(v, 4) for k, v in bytes_per_token.items()}
        out["bytes_per_token_by_language"] = by_language.round(4).to_dict()
        out["bytes_per_token_by_domain"] = by_domain.round(4).to_dict()
    return out
