"""Token arithmetic of the active mix (Table 1 / Fig. 1) and the checks chapter 01 shows.

At preset ``paper`` the mix is Table 1 (unknown unless a reader fills it in, see
:func:`stablelm2.data.sources.table1`); at ``smoke``/``cpu`` it is the shipped sample, whose tokens
we can count: :func:`mix_table` gives, per source, its sampling weight, the tokens it holds, the
tokens a run of ``cfg.train.steps`` steps draws from it and hence its epochs — the columns of
Table 1 for the run at hand.

>>> from stablelm2 import config
>>> from stablelm2.data import plan
>>> rows = plan.mix_table(config.load("smoke"))
>>> round(sum(r["weight"] for r in rows), 6)
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import tokenizer
from . import sample
from .mixture import DocumentStream
from .packing import PackedLoader, resolve_weights
from .sources import PAPER_SOURCES, specs, table1
from .treatments import NGramLM, lowest_perplexity, restructure


def source_tokens(cfg: Any) -> dict[str, int]:
    """Arcade100k tokens (each document + ``<|endoftext|>``) in one epoch of every source's train split."""
    enc = tokenizer.arcade100k()
    out = {}
    for name, spec in specs(cfg).items():
        stream = DocumentStream(spec, cfg, "train", cycle=False)
        out[name] = sum(len(enc.encode_ordinary(t)) + 1 for t in stream)
    return out


def mix_table(cfg: Any, weights: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Table 1 for this run: weight, tokens held, tokens drawn in ``cfg.train.steps`` steps, epochs."""
    if cfg.data.source == "hub":
        return table1(cfg)
    w = resolve_weights(cfg, weights)
    held = source_tokens(cfg)
    planned = cfg.train.steps * cfg.train.global_batch_tokens
    meta = sample.SAMPLE_SOURCES
    return [{"source": n, "domain": meta[n]["domain"], "language": meta[n]["language"], "weight": w.get(n, 0.0),
             "tokens": held[n], "drawn": w.get(n, 0.0) * planned,
             "epochs": w.get(n, 0.0) * planned / held[n]} for n in meta]


def split_by(rows: list[dict[str, Any]], key: str, value: str = "weight") -> dict[str, float]:
    """Share of ``value`` per ``key`` (domain or language), summing to one."""
    out: dict[str, float] = {}
    for r in rows:
        v = r.get(value)
        if v is None:
            return {}
        out[r[key]] = out.get(r[key], 0.0) + float(v)
    total = sum(out.values())
    return {k: v / total for k, v in sorted(out.items(), key=lambda kv: -kv[1])} if total else {}


def fig1(shares: dict[str, float], title: str):
    """Fig. 1-style domain split as a horizontal bar chart (percent)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(shares), 3) + 1))
    names = list(shares)[::-1]
    vals = [100 * shares[n] for n in names]
    ax.barh(names, vals, color="tab:blue")
    for y, v in enumerate(vals):
        ax.text(v + 0.3, y, f"{v:.1f} %", va="center", fontsize=8)
    ax.set_xlabel("share of training tokens (%)")
    ax.set_title(title)
    ax.set_xlim(0, max(vals) * 1.2 if vals else 1)
    fig.tight_layout()
    return fig


def observed_shares(cfg: Any, n_sequences: int, weights: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Draw ``n_sequences`` from the mixture; the share of each source against its weight."""
    loader = PackedLoader(cfg, "train", weights=weights, micro_batch=1)
    for _ in range(n_sequences):
        loader.next_sequence()
    n = sum(loader.sequences_per_source.values())
    return [{"source": s, "weight": w, "observed": loader.sequences_per_source[s] / n,
             "abs_error": abs(loader.sequences_per_source[s] / n - w)} for s, w in loader.weights.items()]


def perplexity_ranking(cfg: Any, per_source: int = 4) -> list[dict[str, Any]]:
    """The FanFics selection on the sample: a trigram KN model fit on wiki + books ranks documents
    from several domains; rows are sorted from most to least fluent, ``kept`` marks the lower half."""
    ref = [d["text"] for name in ("wiki_en", "books_en") for d in sample.documents(name)]
    lm = NGramLM(order=3).fit(ref[::2])  # fit on half, so the other half is unseen text
    pool: list[tuple[str, str]] = []
    for name in ("books_en", "wiki_en", "web_en", "law_en", "code", "multilingual_de"):
        docs = sample.documents(name)
        picked = [d["text"] for d in docs if d["text"] not in set(ref[::2])][:per_source]
        pool.extend((name, t) for t in picked)
    keep = set(lowest_perplexity([t for _, t in pool], len(pool) // 2, lm))
    rows = [{"source": s, "perplexity": lm.perplexity(t), "kept": i in keep, "start": t[:60].replace("\n", " ")}
            for i, (s, t) in enumerate(pool)]
    return sorted(rows, key=lambda r: r["perplexity"])


def restruct_examples(n: int = 4) -> list[dict[str, str]]:
    """Raw task records of the sample and the text Restruct-v1-style templates make of them."""
    seen, out = set(), []
    for d in sample.documents("instruct_en"):
        if d["task"] in seen:
            continue
        seen.add(d["task"])
        out.append({"task": d["task"], "text": restructure(d)})
        if len(out) == n:
            break
    return out


def hub_plan() -> list[dict[str, Any]]:
    """What the paper preset would stream: every Hub source with its subset, field and treatment."""
    return [{"source": s.name, "hub id": s.hub_id, "subset": s.config or s.data_files or "-", "field": s.text_field,
             "treatment": s.treatment or "-", "verified id": s.verified} for s in PAPER_SOURCES.values()]


def position_profile(batch: dict[str, Any], row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Position ids of one packed sequence and the indices where documents start."""
    pos = batch["position_ids"][row].numpy()
    return pos, np.flatnonzero(pos == 0)
