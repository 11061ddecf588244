"""Chapter 00: the paper at a glance, the presets, and the claims the facts check themselves.

Everything here is arithmetic on ``facts.yaml``; nothing is measured. The other chapters re-derive
or re-measure the rest.

>>> from stablelm2 import overview
>>> from stablelm2.ledger import Ledger
>>> led = Ledger("00_overview")
>>> overview.self_checks(led)[0].status
're-derived'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from . import config
from . import facts as F
from .ledger import Claim, Ledger

AT_A_GLANCE = (
    ("What", "model.n_params_card"),
    ("What", "model.n_layers"),
    ("What", "model.hidden_size"),
    ("What", "model.seq_len"),
    ("What", "tokenizer.n_vocab"),
    ("Data", "data.total_tokens"),
    ("Data", "train.epochs"),
    ("On what", "train.n_gpus"),
    ("On what", "train.gpu_type"),
    ("On what", "train.global_batch_tokens"),
    ("On what", "train.tflops_per_gpu"),
    ("Cost", "carbon.gpu_hours"),
    ("Cost", "carbon.cost_per_gpu_hour"),
    ("Cost", "carbon.energy_mwh"),
    ("Cost", "carbon.emissions_t"),
)


def at_a_glance() -> list[dict[str, Any]]:
    """The headline numbers, each with its provenance."""
    rows = []
    for group, fid in AT_A_GLANCE:
        f = F.get(fid)
        rows.append({"group": group, "what": f.text, "value": f.value, "unit": f.unit or "",
                     "source": ", ".join(f.source), "confidence": f.confidence})
    return rows


def presets_table() -> list[dict[str, Any]]:
    """The three presets side by side on the fields that differ between them."""
    cfgs = {p: config.load(p) for p in config.PRESETS}
    rows = []
    for section in config.SECTIONS:
        for fld in dataclasses.fields(getattr(cfgs["paper"], section)):
            vals = {p: getattr(getattr(c, section), fld.name) for p, c in cfgs.items()}
            if len({repr(v) for v in vals.values()}) > 1:
                rows.append({"field": f"{section}.{fld.name}", **vals})
    return rows


def self_checks(ledger: Ledger) -> list[Claim]:
    """Claims that follow from the facts alone, recorded as re-derived (or as conflicts)."""
    v = F.value
    out = []
    batch = v("train.micro_batch") * v("train.grad_accum") * v("train.n_gpus") * v("model.seq_len")
    out.append(ledger.derive(
        "overview.global_batch", "micro-batch × accumulation × GPUs × sequence length = global batch",
        fact="train.global_batch_tokens", ours=batch, rel_tol=0.0))
    out.append(ledger.derive(
        "overview.cooldown_tokens", "80k cool-down steps × global batch ≈ 670B tokens",
        fact="schedule.cooldown_tokens", ours=v("schedule.cooldown_steps") * batch, rel_tol=0.01))
    out.append(ledger.derive(
        "overview.warmup_steps", "warm-up share × train-iters of the official config = warm-up steps",
        fact="schedule.warmup_steps", ours=round(v("schedule.warmup_frac") * v("schedule.train_iters")),
        rel_tol=0.0))
    out.append(ledger.derive(
        "overview.vocab_padding", "Arcade100k's 100,289 tokens padded to a multiple of 64",
        fact="tokenizer.vocab_padded", ours=64 * math.ceil(v("tokenizer.n_vocab") / 64), rel_tol=0.0))
    out.append(ledger.derive(
        "overview.mfu", "170 TFLOP/s per A100 over its 312 TFLOP/s bf16 peak = MFU",
        fact="train.mfu", ours=round(v("train.tflops_per_gpu") / v("train.a100_peak_tflops_bf16"), 4),
        rel_tol=0.002, note="the paper's printed MFU cell is stripped; 54.5 % is secondary (S8)"))
    out.append(ledger.derive(
        "overview.emissions", "30 MWh × 0.385 kg CO2eq/kWh ≈ 11 tCO2eq",
        fact="carbon.emissions_t", ours=round(v("carbon.energy_mwh") * v("carbon.intensity_kg_per_kwh"), 3),
        rel_tol=0.06, note="30 × 0.385 = 11.55; the paper rounds to 'about 11'"))
    out.append(ledger.derive(
        "overview.cost", "92k GPU-hours × 3.5 per GPU-hour ≈ 322k (cost of the run)",
        fact="carbon.cost_total_derived", ours=v("carbon.gpu_hours") * v("carbon.cost_per_gpu_hour"),
        rel_tol=0.001, note="the paper prints no total; FACTS.md derives the same product"))
    steps = v("schedule.precooldown_step") + v("schedule.cooldown_steps")
    out.append(ledger.derive(
        "overview.two_epochs", "(420k + 80k steps) × global batch ≈ two epochs of the ~2T-token mix",
        paper=2 * v("data.total_tokens"), ours=steps * batch, rel_tol=0.06, unit="tokens",
        note="assumes the run stopped at 500k steps (FACTS.md §4: low-medium confidence)"))
    return out


def facts_by_confidence() -> dict[str, int]:
    counts: dict[str, int] = {c: 0 for c in F.CONFIDENCE}
    for f in F.all_facts().values():
        counts[f.confidence if f.known else "unknown"] += 1
    return counts


def plot_facts_and_claims(claims: list[Claim]):
    """Figure: how sure the facts are, and how the chapter-00 claims came out."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    conf = facts_by_confidence()
    a.barh(list(conf), list(conf.values()), color="#4c72b0")
    a.set_title("Facts by confidence (facts.yaml)")
    a.set_xlabel("number of facts")
    a.invert_yaxis()
    names = [c.id.split(".", 1)[1] for c in claims]
    rel = [0.0 if c.rel_delta is None else 100 * c.rel_delta for c in claims]
    colors = ["#55a868" if c.status != "conflict" else "#c44e52" for c in claims]
    b.barh(names, rel, color=colors)
    b.set_title("Chapter 00 claims: |ours − paper| / paper")
    b.set_xlabel("relative difference (%)")
    b.invert_yaxis()
    fig.tight_layout()
    return fig
