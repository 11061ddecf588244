"""The chapter's figures: training curves, and the three appendix ablations.

Every function takes what the engine or :mod:`.ablations` returned and gives a titled, labelled
matplotlib figure (the notebook saves it with ``run.savefig``).

>>> from stablelm2.training import figures
>>> fig = figures.plot_curves({"steps": [{"step": 1, "loss": 11.5, "lr": 0.0, "tokens": 512}],
...                            "evals": [{"step": 1, "tokens": 512, "val_loss": 11.4}]}, "smoke")
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np


def _smooth(y: list[float], k: int) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if k <= 1 or len(y) < k:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def plot_curves(history: dict[str, Any], title: str) -> plt.Figure:
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


def plot_schedules(rows: list[dict[str, Any]]) -> plt.Figure:
    """App. B: the four schedules, their training curves, and final loss against average learning rate."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.9))
    for i, r in enumerate(rows):
        cur = r["curve"]
        a.plot(cur["step"], cur["lr"], color=f"C{i}", label=r["label"])
        b.plot(cur["step"], _smooth(cur["loss"], max(1, len(cur["loss"]) // 8)), color=f"C{i}", label=r["label"])
        c.scatter(r["average_lr"], r["final_val_loss"], color=f"C{i}", s=60, label=r["label"])
    a.set(xlabel="optimizer step", ylabel="learning rate", title="App. B schedules (same warm-up and cool-down)")
    b.set(xlabel="optimizer step", ylabel="training loss (smoothed)", title="Training loss")
    c.set(xlabel="average learning rate over the run", ylabel="final validation loss",
          title="Final loss vs average learning rate")
    for ax in (a, b, c):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_batches(rows: list[dict[str, Any]]) -> plt.Figure:
    """App. D: loss against iterations and against tokens for each global batch, with the target."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.9))
    target = rows[0]["loss"]
    for i, r in enumerate(rows):
        cur = r["curve"]
        k = max(1, rows[-1]["multiple"] // r["multiple"])
        lab = f"{r['multiple']}× batch ({r['batch_tokens']:,} tokens)" + ("" if r["reached"] else ", target not reached")
        a.plot(cur["step"], _smooth(cur["loss"], k), color=f"C{i}", label=lab)
        b.plot(cur["tokens"], _smooth(cur["loss"], k), color=f"C{i}", label=lab)
    for ax in (a, b):
        ax.axhline(target, color="k", ls="--", lw=1, label="baseline's final loss")
        ax.legend(fontsize=8)
    a.set(xlabel="iterations", ylabel="training loss (same-token window)", title="App. D: iterations to the baseline's loss")
    b.set(xlabel="tokens", ylabel="training loss (same-token window)", title="App. D: tokens to the baseline's loss")
    fig.tight_layout()
    return fig


def plot_mixes(rows: list[dict[str, Any]]) -> plt.Figure:
    """App. A: validation loss of English, code and non-English text for each mix, with the mix's shares."""
    groups = list(rows[0]["group_loss"])
    x = np.arange(len(groups))
    w = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(10, 3.9))
    for i, r in enumerate(rows):
        shares = ", ".join(f"{g} {r['share'][g]:.0%}" for g in groups)
        ax.bar(x + i * w - 0.4 + w / 2, [r["group_loss"][g] for g in groups], w, color=f"C{i}",
               label=f"{r['mix']} ({shares})")
    lo = min(min(r["group_loss"].values()) for r in rows)
    hi = max(max(r["group_loss"].values()) for r in rows)
    ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9) - 0.05, hi + 0.1 * (hi - lo + 1e-9) + 0.05)
    ax.set_xticks(x, groups)
    ax.set(ylabel="validation loss (mean over sources)", title="App. A: data mixes at small scale")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
