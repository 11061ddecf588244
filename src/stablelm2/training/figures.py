"""The chapter's figures: training curves, and the three appendix ablations against the unigram model.

Every function takes what the engine or :mod:`.ablations` returned and gives a titled, labelled
matplotlib figure (the notebook saves it with ``run.savefig``).

>>> from stablelm2.training import figures
>>> fig = figures.plot_curves({"steps": [{"step": 1, "loss": 11.5, "lr": 0.0, "tokens": 512}],
...                            "evals": [{"step": 1, "tokens": 512, "val_loss": 11.4}]}, "smoke")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np


def _smooth(y: list[float] | np.ndarray, k: int) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if k <= 1 or len(y) < k:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def plot_curves(history: Mapping[str, Any], title: str) -> plt.Figure:
    """Training loss (per step and smoothed), validation loss, and the learning rate of one run."""
    st, ev = history["steps"], history["evals"]
    tok = [r["tokens"] for r in st]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.plot(tok, [r["loss"] for r in st], color="0.75", lw=1, label="training loss (per step)")
    a.plot(tok, _smooth([r["loss"] for r in st], max(1, len(st) // 10)), color="C0", lw=2, label="training loss (smoothed)")
    a.plot([e["tokens"] for e in ev], [e["val_loss"] for e in ev], "o-", color="C3", label="held-out validation loss")
    a.set(xlabel="tokens seen", ylabel="cross-entropy (nats/token)", title=f"Pre-training loss — {title}")
    a.legend()
    b.plot([r["step"] for r in st], [r["lr"] for r in st], color="C2")
    b.set(xlabel="optimizer step", ylabel="learning rate", title="Learning rate (chapter 04's schedule)")
    fig.tight_layout()
    return fig


def _unigram(ax: plt.Axes, u: float) -> None:
    ax.axhline(u, color="k", ls=":", lw=1.2, label=f"unigram model ({u:.3f} bits/byte)")


def _bpb_curves(ax: plt.Axes, r: dict[str, Any], color: str, label: str) -> None:
    """A row's held-out bits-per-byte curves, one thin line per seed and their mean."""
    curves = r.get("bpb_curves") or []
    for cur in curves:
        ax.plot(cur["tokens"], cur["bpb"], color=color, lw=0.7, alpha=0.45)
    if curves and all(c["tokens"] == curves[0]["tokens"] for c in curves):
        ax.plot(curves[0]["tokens"], np.mean([c["bpb"] for c in curves], axis=0), "o-", ms=3, color=color, lw=1.8,
                label=f"{label} (mean of {len(curves)} seeds)")
    elif curves:
        ax.plot([], [], color=color, label=f"{label} ({len(curves)} seeds)")


def plot_schedules(rows: list[dict[str, Any]]) -> plt.Figure:
    """App. B: the four schedules, their held-out bits per byte over training (every seed) against the unigram
    model, and the final bits per byte against the average learning rate."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.9))
    for i, r in enumerate(rows):
        cur = r["curve"]
        a.plot(cur["step"], cur["lr"], color=f"C{i}", label=r["label"])
        _bpb_curves(b, r, f"C{i}", r["label"])
        vals = r.get("final_val_bpb_by_seed") or [r["final_val_bpb"]]
        c.scatter([r["average_lr"]] * len(vals), vals, color=f"C{i}", s=18, alpha=0.6)
        c.scatter(r["average_lr"], np.mean(vals), color=f"C{i}", s=70, marker="D", label=f"{r['label']} (mean)")
    for ax in (b, c):
        _unigram(ax, rows[0]["unigram_bpb"])
    a.set(xlabel="optimizer step", ylabel="learning rate", title="App. B schedules (same warm-up and cool-down)")
    b.set(xlabel="tokens", ylabel="held-out bits per byte", title="Held-out bits per byte (thin: one seed)")
    c.set(xlabel="average learning rate over the run", ylabel="final held-out bits per byte",
          title="Final bits per byte vs average learning rate")
    for ax in (a, b, c):
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_batches(rows: list[dict[str, Any]]) -> plt.Figure:
    """App. D: training loss against iterations (first seed, with its target) and held-out bits per byte
    against tokens (every seed, with the unigram model) for each global batch."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.9))
    target = (rows[0].get("target_by_seed") or [rows[0]["loss"]])[0]
    for i, r in enumerate(rows):
        cur = r["curve"]
        k = max(1, rows[-1]["multiple"] // r["multiple"])
        lab = f"{r['multiple']}× batch ({r['batch_tokens']:,} tokens)" + ("" if r["reached"] else ", target not reached")
        a.plot(cur["step"], _smooth(cur["loss"], k), color=f"C{i}", label=lab)
        _bpb_curves(b, r, f"C{i}", f"{r['multiple']}× batch")
    a.axhline(target, color="k", ls="--", lw=1, label="baseline's final loss (first seed)")
    _unigram(b, rows[0]["unigram_bpb"])
    a.set(xlabel="iterations", ylabel="training loss (same-token window)",
          title="App. D: iterations to the baseline's loss (first seed)")
    b.set(xlabel="tokens", ylabel="held-out bits per byte", title="App. D: held-out bits per byte (thin: one seed)")
    for ax in (a, b):
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_mixes(rows: list[dict[str, Any]]) -> plt.Figure:
    """App. A: held-out bits per byte of English, code and non-English text for each mix (mean and every seed),
    with the unigram model of each group."""
    groups = list(rows[0]["group_bpb"])
    x = np.arange(len(groups))
    w = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(10, 3.9))
    vals = []
    for i, r in enumerate(rows):
        shares = ", ".join(f"{g} {r['share'][g]:.0%}" for g in groups)
        xs = x + i * w - 0.4 + w / 2
        ax.bar(xs, [r["group_bpb"][g] for g in groups], w, color=f"C{i}", label=f"{r['mix']} ({shares})")
        for seed_vals in r.get("group_bpb_by_seed") or []:
            ax.scatter(xs, [seed_vals[g] for g in groups], color="k", s=6, zorder=3)
            vals += [seed_vals[g] for g in groups]
        vals += [r["group_bpb"][g] for g in groups]
    uni = rows[0].get("group_unigram_bpb")
    if uni:
        ax.hlines([uni[g] for g in groups], x - 0.45, x + 0.45, color="k", ls=":", lw=1.5, label="unigram model")
        vals += [uni[g] for g in groups]
    lo, hi = min(vals), max(vals)
    ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9) - 0.05, hi + 0.1 * (hi - lo + 1e-9) + 0.05)
    ax.set_xticks(x, groups)
    ax.set(ylabel="held-out bits per byte", title="App. A: data mixes at small scale (dots: one seed each)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
