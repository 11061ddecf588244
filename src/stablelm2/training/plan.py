"""The full plan of a pre-training run: steps, tokens, schedule stages, compute, time, cost, energy, CO2.

At preset ``paper`` this is Stable LM 2's run as the configuration describes it — 500k optimizer
steps of 8,388,608 tokens on 512 A100-40GB (64 P4d nodes), 9,720 warm-up steps, an 80k-step
cool-down — priced at the paper's throughput of 170 TFLOP/s per GPU with chapter 09's projector
(:func:`stablelm2.carbon.plan`): GPU-hours, wall-clock days, cost at ~3.5 per GPU-hour, energy at the
average power the paper's 30 MWh imply, and tCO2eq at its grid intensity.

The 170 TFLOP/s is a GPT-NeoX throughput, and GPT-NeoX counts FLOPs with the Megatron formula
(including the recomputed forward pass when activation checkpointing is on, as in the public
config), so the GPU-hours are priced with that count; the plan also shows them with chapter 03's
model FLOPs (6N + attention), which the same throughput turns into fewer hours.

>>> from stablelm2 import config
>>> from stablelm2.training import plan
>>> p = plan.build(config.load("paper"))
>>> p["tokens"], p["layout"]["grad_accum"], p["cooldown_tokens"]
(4194304000000, 2, 671088640000)
"""

from __future__ import annotations

from typing import Any

from .. import carbon, model, schedule
from .. import facts as F
from ..config import Config
from ..ledger import Claim, Ledger
from . import layout as layout_lib


def build(cfg: Config, *, tflops: float | None = None) -> dict[str, Any]:
    """Resolve ``cfg``'s run into numbers; ``tflops`` per GPU defaults to the paper's 170 (Sec. 2.4).

    Units are in the keys or the :func:`table` rows: tokens, steps, FLOP per token, GPU-hours, days,
    USD, W, MWh, tCO2eq (Sec. 7). Raises :class:`~.layout.LayoutError` when the batch does not divide.
    """
    lay = layout_lib.from_config(cfg)
    s, t = cfg.schedule, cfg.train
    tokens = t.steps * lay.global_batch_tokens
    tf = float(F.value("train.tflops_per_gpu") if tflops is None else tflops)
    fpt_model = model.flops_per_token(cfg)["total"]
    fpt_neox = model.megatron_flops_per_token(cfg, checkpointing=True)
    power = carbon.paper_implied_power_w()
    proj = carbon.plan(cfg, fpt_neox, tokens=tokens, tflops=tf, power_w=power)
    proj_model = carbon.plan(cfg, fpt_model, tokens=tokens, tflops=tf, power_w=power)
    cool_start = t.steps - s.cooldown_steps
    return {
        "preset": cfg.run.preset, "layout": lay.to_dict(), "layout_text": lay.describe(),
        "steps": t.steps, "tokens": tokens, "epochs": tokens / cfg.data.total_tokens,
        "warmup_steps": s.warmup_steps, "warmup_tokens": s.warmup_steps * lay.global_batch_tokens,
        "cooldown_start_step": cool_start, "cooldown_steps": s.cooldown_steps,
        "cooldown_tokens": s.cooldown_steps * lay.global_batch_tokens,
        "lr_peak": s.peak_lr, "lr_at_cooldown_start": schedule.learning_rate(cool_start, cfg),
        "schedule_kind": s.kind, "average_lr": schedule.average_lr(cfg),
        "flops_per_token_model": fpt_model, "flops_per_token_neox": fpt_neox,
        "gpu": proj.gpu, "n_gpus": proj.n_gpus, "n_nodes": t.n_nodes, "tflops_per_gpu": tf, "mfu": proj.mfu,
        "flops": proj.flops, "gpu_hours": proj.gpu_hours, "gpu_hours_model_flops": proj_model.gpu_hours,
        "wall_hours": proj.wall_hours, "wall_days": proj.wall_days, "price_per_gpu_hour": proj.price_per_gpu_hour,
        "cost_usd": proj.cost_usd, "power_w": proj.power_w, "pue": proj.pue,
        "intensity_kg_per_kwh": proj.intensity_kg_per_kwh, "energy_mwh": proj.energy_mwh,
        "emissions_t": proj.emissions_t,
    }


def table(p: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``{quantity, value, unit}`` of a plan, for display."""
    rows = [
        ("global batch", p["layout_text"], ""),
        ("optimizer steps", p["steps"], "steps"),
        ("tokens", p["tokens"], f"tokens ({p['epochs']:.2f} passes over the mix)"),
        ("warm-up", p["warmup_steps"], f"steps ({p['warmup_tokens']:.3g} tokens)"),
        ("cool-down", p["cooldown_steps"], f"steps from step {p['cooldown_start_step']:,} ({p['cooldown_tokens']:.3g} tokens)"),
        ("learning rate at the cool-down start", p["lr_at_cooldown_start"], f"(peak {p['lr_peak']:g}, {p['schedule_kind']})"),
        ("FLOPs per token, GPT-NeoX count", p["flops_per_token_neox"], "FLOP (Megatron formula with recompute)"),
        ("FLOPs per token, model", p["flops_per_token_model"], "FLOP (6N + attention, chapter 03)"),
        ("throughput", p["tflops_per_gpu"], f"TFLOP/s per {p['gpu']} (MFU {p['mfu']:.1%})"),
        ("GPUs", p["n_gpus"], f"on {p['n_nodes']} nodes"),
        ("GPU-hours", p["gpu_hours"], f"GPU-hours ({p['gpu_hours_model_flops']:,.0f} with model FLOPs)"),
        ("wall-clock", p["wall_days"], "days without restarts or evaluation"),
        ("cost", p["cost_usd"], f"USD at {p['price_per_gpu_hour']} per GPU-hour"),
        ("energy", p["energy_mwh"], f"MWh at {p['power_w']:.0f} W per GPU, PUE {p['pue']}"),
        ("emissions", p["emissions_t"], f"tCO2eq at {p['intensity_kg_per_kwh']} kg/kWh"),
    ]
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


def claims(ledger: Ledger, p: dict[str, Any]) -> list[Claim]:
    """Check the paper-preset plan against the paper's numbers.

    The solver's gradient accumulation is this chapter's derivation. The global batch, cool-down
    tokens and two-epoch total are the paper's own arithmetic (chapter 00) and the GPU-hours are
    chapter 09's fit: referenced here, recorded once there.

    Raises:
        ValueError: ``p`` was not built from the ``paper`` preset.
    """
    if p["preset"] != "paper":
        raise ValueError("plan.claims compares the paper preset's plan with the paper; build it from config.load('paper')")
    lay = p["layout"]
    ledger.refer("overview.global_batch", "00_overview", "global batch = micro-batch × accumulation × GPUs × length")
    ledger.refer("overview.cooldown_tokens", "00_overview", "cool-down tokens = 80k steps × global batch")
    ledger.refer("overview.two_epochs", "00_overview", "500k steps × global batch = two epochs of the mix")
    ledger.refer("carbon.gpu_hours", "09_carbon", "GPU-hours of the run by FLOP convention")
    return [
        ledger.derive("pretraining.grad_accum", "gradient accumulation the solver derives for 8,388,608 tokens on "
                      "512 GPUs at micro-batch 2", fact="train.grad_accum", ours=lay["grad_accum"]),
    ]
