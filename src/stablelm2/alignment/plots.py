"""Chapter 06 · Figures and tables: loss curves, DPO reward accuracy and margin, self-knowledge before/after.

Every function takes the result dictionaries :func:`stablelm2.alignment.run_all` returns.

>>> from stablelm2.alignment import plots
>>> plots.filter_frame({"rows": [{"source": "a", "read": 3, "kept": 2, "bad_order": 1}]}).loc["a", "kept"]
np.int64(2)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .common import curve
from .results import DPOResult, FilterReportDict, SelfKnowledgeResult, SFTResult


def filter_frame(report: FilterReportDict) -> pd.DataFrame:
    """A filter report as a table: one row per source (plus a total row when there are several)."""
    df = pd.DataFrame(report["rows"]).set_index("source")
    if len(df) > 1:
        df.loc["total"] = df.sum(numeric_only=True)
    return df


def fig_sft(res: SFTResult) -> plt.Figure:
    """Training loss (assistant tokens only) and token accuracy per step."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps, loss = zip(*curve(res["log"], "loss"), strict=True)
    ax.plot(steps, loss, marker="o", ms=3, label="loss (assistant tokens)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    acc = curve(res["log"], "mean_token_accuracy")
    if acc:
        ax2 = ax.twinx()
        ax2.plot(*zip(*acc, strict=True), color="tab:orange", alpha=0.7, label="token accuracy")
        ax2.set_ylabel("next-token accuracy")
        ax2.legend(loc="upper center", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"SFT over TRL: {res['n_conversations']} conversations, {res['batch']['global']} sequences/step")
    fig.tight_layout()
    return fig


def fig_dpo(res: DPOResult) -> plt.Figure:
    """DPO loss, implicit-reward accuracy and margin per step, with the after-training evaluations."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, title in zip(axes, ("loss", "rewards/accuracies", "rewards/margins"),
                              ("DPO loss", "reward accuracy (chosen > rejected)", "reward margin (chosen − rejected)"),
                              strict=True):
        pts = curve(res["log"], key)
        ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label="training batches")
        last = pts[-1][0]
        for where, marker, name in ((res["train_pairs_after"], "s", "training pairs, after"),
                                    (res["held_out_after"], "^", "held-out pairs, after")):
            if key in where:
                ax.scatter([last], [where[key]], marker=marker, s=40, zorder=3, label=name)
        if key == "rewards/accuracies":
            ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
            ax.set_ylim(-0.05, 1.05)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step")
    axes[0].set_ylabel("value")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"DPO over TRL (β = {res['beta']}, reference = the SFT model)", fontsize=11)
    fig.tight_layout()
    return fig


def fig_self_knowledge(res: SelfKnowledgeResult) -> plt.Figure:
    """Self-knowledge training loss, and how often identity answers carry the facts before and after."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    ax1.plot(*zip(*curve(res["log"], "loss"), strict=True), marker="o", ms=3)
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("cross-entropy (nats / token)")
    ax1.set_title("self-knowledge training loss (positives and negatives)", fontsize=10)
    cases = {"before (DPO model)\nassistant header": res["before"],
             "after\nassistant header": res["after"],
             f"after\n{res['negative_token']['token']} header": res["after_negative"]}
    facts_ = ("name", "creator", "limits", "other_identity")
    width = 0.2
    for i, f in enumerate(facts_):
        ax2.bar([j + i * width for j in range(len(cases))], [c["per_fact"][f] for c in cases.values()], width,
                label=f.replace("_", " "))
    ax2.scatter([j + 1.5 * width for j in range(len(cases))], [c["rate"] for c in cases.values()], color="black",
                marker="D", zorder=3, label="carries name or maker")
    for j, c in enumerate(cases.values()):
        ax2.annotate(f"{c['rate']:.0%}", (j + 1.5 * width, c["rate"]), textcoords="offset points", xytext=(0, 8),
                     ha="center", fontsize=8)
    ax2.set_xticks([j + 1.5 * width for j in range(len(cases))], list(cases), fontsize=8)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel(f"share of {len(res['before']['answers'])} identity answers")
    ax2.set_title("identity answers that state each fact", fontsize=10)
    ax2.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def answers_frame(res: SelfKnowledgeResult) -> pd.DataFrame:
    """The identity questions with the answers before and after (positive and negative header)."""
    rows = []
    for b, a, n in zip(res["before"]["answers"], res["after"]["answers"], res["after_negative"]["answers"],
                       strict=True):
        rows.append({"question": b["question"], "before": b["answer"], "after": a["answer"],
                     "after, negative token": n["answer"]})
    return pd.DataFrame(rows).set_index("question")
