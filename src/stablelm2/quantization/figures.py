"""Chapter 08's figures: quality of each format against fp32, and the Table 8 analogue (speed and size)."""

from __future__ import annotations

from typing import Any

COLORS = {"torch": "#555555", "gguf": "#4c72b0", "openvino": "#dd8452", "mlx": "#55a868"}


def plot_quality(quality_by_model: dict[str, list[dict[str, Any]]]):
    """KL(fp32 ‖ format) and perplexity change per format, one row of panels per model."""
    import matplotlib.pyplot as plt

    n = len(quality_by_model)
    fig, axes = plt.subplots(n, 2, figsize=(11, 3.2 * n), squeeze=False)
    for (model, rows), (a, b) in zip(quality_by_model.items(), axes, strict=True):
        rows = [r for r in rows if r["format"] != "FP32"]
        names = [r["format"] for r in rows]
        colors = [COLORS[r["backend"]] for r in rows]
        a.bar(names, [max(r["kl"], 1e-12) for r in rows], color=colors)
        a.set_yscale("log")
        a.set_ylabel("KL(fp32 ‖ format), nats/token")
        a.set_title(f"{model}: divergence from the fp32 model")
        b.bar(names, [r["ppl_vs_fp32_pct"] for r in rows], color=colors)
        b.axhline(0, color="black", lw=0.8)
        b.set_ylabel("perplexity vs fp32 (%)")
        b.set_title(f"{model}: held-out perplexity change")
        for ax in (a, b):
            ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def plot_speed(rows: list[dict[str, Any]], released: dict[str, float], title: str):
    """Generation tokens/s against the memory-bandwidth bound, and bytes on disk against the released files."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
    names = [r["format"] for r in rows]
    x = range(len(rows))
    a.bar(x, [r["tg_tok_s"] for r in rows], color=[COLORS[r["backend"]] for r in rows], label="measured")
    a.scatter(x, [r["bound_tok_s"] for r in rows], marker="_", s=400, color="black",
              label="memory-bandwidth bound")
    for i, r in enumerate(rows):
        a.text(i, r["tg_tok_s"], f"{r['frac_of_bound']:.0%}", ha="center", va="bottom", fontsize=8)
    a.set_xticks(list(x), names, rotation=45)
    a.set_ylabel("generation tokens/s")
    a.set_title(f"{title}: generation speed ({rows[0]['threads']} threads)")
    a.legend(fontsize=8)
    b.bar(x, [r["bytes_on_disk"] / 1e9 for r in rows], color=[COLORS[r["backend"]] for r in rows], label="ours")
    for i, n in enumerate(names):
        if n in released:
            b.scatter([i], [released[n]], marker="*", s=160, color="red", zorder=3,
                      label="released file" if i == min(j for j, m in enumerate(names) if m in released) else None)
    b.set_xticks(list(x), names, rotation=45)
    b.set_ylabel("GB on disk")
    b.set_title(f"{title}: size on disk")
    if released:
        b.legend(fontsize=8)
    fig.tight_layout()
    return fig
