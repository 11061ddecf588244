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
from typing import Any, TypedDict

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
    """The paper checked against itself: numbers that must follow from its other numbers.

    Each is a ``consistency`` claim (never counted as a finding, see ``ledger``): the printed value's
    interval must hold the product of the printed inputs. The facts other chapters recompute with
    their own machinery (emissions, cost, GPU-hours, the padded vocabulary) are recorded there, once;
    see :func:`elsewhere`.
    """
    v = F.value
    batch = v("train.micro_batch") * v("train.grad_accum") * v("train.n_gpus") * v("model.seq_len")
    steps = v("schedule.precooldown_step") + v("schedule.cooldown_steps")
    return [
        ledger.check("overview.global_batch", "micro-batch × accumulation × GPUs × sequence length = global batch",
                     fact="train.global_batch_tokens", ours=batch),
        ledger.check("overview.cooldown_tokens", "80k cool-down steps × global batch = the cool-down's tokens",
                     fact="schedule.cooldown_tokens", ours=v("schedule.cooldown_steps") * batch),
        ledger.check("overview.warmup_steps", "warm-up share × train-iters of the official config = warm-up steps",
                     fact="schedule.warmup_steps", ours=round(v("schedule.warmup_frac") * v("schedule.train_iters"))),
        ledger.check("overview.mfu", "170 TFLOP/s per A100 over its 312 TFLOP/s bf16 peak = MFU",
                     fact="train.mfu", ours=v("train.tflops_per_gpu") / v("train.a100_peak_tflops_bf16"),
                     note="the paper's printed MFU cell is stripped; 54.5 % is secondary (S8)"),
        ledger.check("overview.two_epochs", "(420k + 80k steps) × global batch = the tokens seen in two epochs",
                     fact="train.tokens_seen_derived", ours=steps * batch,
                     note="assumes the run stopped at 500k steps (FACTS.md §4: low-medium confidence)"),
    ]


ELSEWHERE = (  # (claim id, owning chapter, what)
    ("carbon.emissions", "09_carbon", "30 MWh × 0.385 kg CO2eq/kWh against the printed 11 tCO2eq"),
    ("carbon.cost", "09_carbon", "92k GPU-hours × ~3.5 USD per GPU-hour"),
    ("carbon.gpu_hours", "09_carbon", "GPU-hours from the training FLOPs at 170 TFLOP/s (a fit of the FLOP count)"),
    ("tok.vocab_padded", "02_tokenizer", "the vocabulary padded to a multiple of 64"),
)


def elsewhere(ledger: Ledger) -> list[dict[str, str]]:
    """Point to the claims other chapters own (recorded once there); rows for display."""
    return [{"claim": cid, "chapter": ch, "what": what, "note": ledger.refer(cid, ch, what)}
            for cid, ch, what in ELSEWHERE]


def facts_by_confidence() -> dict[str, int]:
    """Number of facts in ``facts.yaml`` per confidence level, in :data:`stablelm2.facts.CONFIDENCE` order
    (every level present, 0 if none); a fact whose value is not known counts as ``unknown``."""
    counts: dict[str, int] = {c: 0 for c in F.CONFIDENCE}
    for f in F.all_facts().values():
        counts[f.confidence if f.known else "unknown"] += 1
    return counts


def plot_facts_and_claims(claims: list[Claim]):
    """Figure: how sure the facts are, and where each chapter-00 check's value falls in the printed interval.

    Right panel: each consistency check's recomputed value as a position inside the paper's printed
    interval (0 = its lower end, 1 = its upper end); outside [0, 1] is a conflict.
    """
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    conf = facts_by_confidence()
    a.barh(list(conf), list(conf.values()), color="#4c72b0")
    a.set_title("Facts by confidence (facts.yaml)")
    a.set_xlabel("number of facts")
    a.invert_yaxis()
    names, pos, colors = [], [], []
    for c in claims:
        if c.paper_interval is None or c.ours is None:
            continue
        lo, hi = c.paper_interval
        names.append(c.id.split(".", 1)[1])
        pos.append((float(c.ours) - lo) / (hi - lo))
        colors.append("#c44e52" if c.status == "conflict" else "#55a868")
    b.barh(names, pos, color=colors)
    b.axvspan(0, 1, color="#dddddd", zorder=0, label="printed interval")
    b.set_title("Chapter 00 checks: ours within the paper's printed interval")
    b.set_xlabel("position in the interval (0 = lower end, 1 = upper end)")
    b.legend(loc="lower right", fontsize=8)
    b.invert_yaxis()
    fig.tight_layout()
    return fig


class OverviewMetrics(TypedDict):
    """Chapter 00's numbers in ``metrics.json`` (counts)."""

    n_facts: int
    """Paper facts in ``facts.yaml``."""
    n_unknown: int
    """Of those, facts the report does not give (confidence ``unknown``)."""
    n_claims: int
    """Self-checks this chapter recorded (:func:`self_checks`)."""
    n_conflicts: int
    """Of those, the ones whose status is ``conflict``."""


def metrics(claims: list[Claim]) -> OverviewMetrics:
    """Chapter 00's numbers: the facts counted and ``claims`` (:func:`self_checks`) with their conflicts."""
    return {"n_facts": len(F.all_facts()), "n_unknown": facts_by_confidence()["unknown"], "n_claims": len(claims),
            "n_conflicts": sum(c.status == "conflict" for c in claims)}
