"""Chapter 05 benchmark: the engine's training tokens/s against transformers' ``Trainer``.

Both train the ``cpu`` preset's StableLM from the same seeded initialisation on the same packed
micro-batches (chapter 01's loader), with the same global batch (micro-batch 4 × accumulation 4
× 128 tokens = 2,048 on one process), the same fused AdamW (β, ε, weight decay, parameter groups), the
same ``LambdaLR`` schedule and clipping at 1.0, the same objective (the mean cross-entropy over the
global batch's target tokens: the Trainer divides by ``num_items_in_batch``), the same precision and
the same threads, in the same Python process, one after the other, repeat by repeat, with glibc
keeping freed memory for reuse as chapter 05's training processes do (:func:`stablelm2.hardware.reuse_freed_memory`;
without it both spend a large share of a step in page faults for freshly mapped buffers). Neither gets
a handicap: the Trainer logs nothing, saves nothing and evaluates nothing; the engine keeps its
per-step bookkeeping (metrics log, progress file, tracker). The engine's advantage is its own
code: the LM head fused with the loss (:mod:`stablelm2.training.head_loss`), where the Trainer
runs the model's forward with full logits.

Precision: bf16 autocast for both when the CPU computes bf16 natively (``avx512_bf16`` or
``amx_bf16``, :func:`stablelm2.hardware.cpu_bf16_flags`), fp32 otherwise; the note says which and why.

Throughput is measured alike: the wall time between the ends of consecutive optimizer steps (all
of the loop: data, forward, backward, clipping, update, bookkeeping), median over the steps after
the first, per repeat; the row gives the median over all intervals and the ratio's spread over
every pairing of the repeats (engine repeat i over Trainer repeat j). The engine's MFU is reported
against this machine's matmul peak (fp32, or bf16 when that ran) measured in the same run
(:func:`stablelm2.hardware.matmul_peak_flops`).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from . import result

STEPS = 8


GOAL_RATIO = 1.15
"""Engine tokens/s over the Trainer's (issue 15)."""
GOAL_MFU = 0.5
"""Engine MFU against the matmul peak measured in the same run (issue 15)."""


def precision() -> str:
    """``"bf16"`` when the CPU computes bf16 natively (avx512_bf16 / amx_bf16), else ``"fp32"``."""
    from ..hardware import cpu_bf16_flags

    return "bf16" if cpu_bf16_flags() else "fp32"


def _cfg():
    from .. import config

    return config.load("cpu", overrides={"train.steps": STEPS, "train.n_procs": 1, "train.eval_every": 0,
                                         "train.checkpoint_every": 0, "schedule.warmup_steps": 2,
                                         "schedule.total_steps": 9, "schedule.cooldown_steps": 2,
                                         "data.val_batches": 1, "carbon.meter": False,
                                         "train.precision": precision()})


def engine_step_times(cfg: Any, out: Path) -> list[float]:
    """Intervals between the ends of consecutive steps of the chapter's engine."""
    from ..training import engine

    h = engine.train(cfg, out, progress=False, save_model=False, val_factory=lambda c: {})
    ends = [r["t_end"] for r in h["steps"]]
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


class _Sequences(torch.utils.data.IterableDataset):
    """Chapter 01's packed micro-batches, one sequence at a time (the Trainer re-batches them)."""

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def __iter__(self):
        from .. import data

        for batch in data.packed_loader(self.cfg):
            for i in range(batch["input_ids"].shape[0]):
                yield {k: v[i] for k, v in batch.items()}


def trainer_step_times(cfg: Any, out: Path) -> list[float]:
    """Seconds between the ends of consecutive optimizer steps of transformers' ``Trainer`` on ``cfg``'s
    model, data, optimizer and schedule (``cfg.train.steps`` steps → that many minus one intervals)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from .. import model, schedule
    from ..training import backends, layout

    lay = layout.from_config(cfg, n_procs=1)
    net = model.build(cfg)
    t = cfg.train
    opt = torch.optim.AdamW(backends.param_groups(net, t.weight_decay), lr=cfg.schedule.peak_lr,
                            betas=(t.beta1, t.beta2), eps=t.eps, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule.lr_lambda(cfg))
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    args = TrainingArguments(
        output_dir=str(out), max_steps=cfg.train.steps, per_device_train_batch_size=lay.micro_batch,
        gradient_accumulation_steps=lay.grad_accum, max_grad_norm=t.grad_clip, use_cpu=True, report_to=[],
        save_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        seed=cfg.run.seed, remove_unused_columns=False, bf16=cfg.train.precision == "bf16",
        dataloader_pin_memory=False,
    )
    Trainer(model=net, args=args, train_dataset=_Sequences(cfg), optimizers=(opt, sched),
            callbacks=[Clock()]).train()
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def _spread(ours: list[list[float]], peer: list[list[float]], tokens: int) -> tuple[list[float], list[float], list[float]]:
    """Per-repeat tokens/s of both (median interval of each repeat) and the ratio's [min, max] over all pairings."""
    a = [tokens / statistics.median(r) for r in ours if r]
    b = [tokens / statistics.median(r) for r in peer if r]
    ratios = [x / y for x, y in itertools.product(a, b)]
    return a, b, [min(ratios), max(ratios)]


def training_throughput(repeats: int = 3) -> list[dict]:
    """Two rows: the engine's training tokens/s over the ``Trainer``'s (goal ≥ :data:`GOAL_RATIO`), and its
    MFU (model FLOPs/token × tokens/s over the matmul peak in FLOP/s measured here; goal ≥ :data:`GOAL_MFU`).

    Runs ``repeats`` engine/Trainer pairs alternately, in one process on the ``cpu`` run's threads each.
    """
    from .. import config, hardware, model
    from ..training import backends

    cfg = _cfg()
    tokens = cfg.train.global_batch_tokens
    procs = config.load("cpu").train.n_procs
    threads = hardware.threads_per_process(procs)  # one process of the cpu run, on its share of the cores
    dtype = "bfloat16" if cfg.train.precision == "bf16" else "float32"
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    kept = hardware.reuse_freed_memory()  # as chapter 05's training processes run (launch.start), for both
    try:
        peak = hardware.matmul_peak_flops(threads, dtype)  # measured here, before the runs, on the same threads
        ours, peer = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats):
                ours.append(engine_step_times(cfg, Path(tmp) / f"engine-{i}"))
                peer.append(trainer_step_times(cfg, Path(tmp) / f"trainer-{i}"))
    finally:
        torch.set_num_threads(before)
    flat_ours, flat_peer = [x for r in ours for x in r], [x for r in peer for x in r]
    tps_ours, tps_peer = tokens / statistics.median(flat_ours), tokens / statistics.median(flat_peer)
    per_ours, per_peer, spread = _spread(ours, peer, tokens)
    fpt = model.flops_per_token(cfg)["total"]
    prec = backends.precision_note(cfg, torch.device("cpu"))
    peak_name = f"measured {'bf16' if dtype == 'bfloat16' else 'fp32'} matmul peak"
    return [
        result("training_tokens_per_s", ours=tps_ours, peer=tps_peer, peer_name="transformers Trainer",
               unit="tokens/s", higher_is_better=True, goal=f"ratio ≥ {GOAL_RATIO}", goal_ratio=GOAL_RATIO,
               note=f"cpu preset model, 1 process with {threads} thread(s) (the cpu run's share per process: "
                    f"{hardware.usable_cores()} cores / {procs} processes), {tokens} tokens/step, precision {prec}; "
                    f"median interval between step ends ({len(flat_ours)} intervals each, {repeats} repeats); "
                    f"glibc {'keeping' if kept else 'not told to keep'} freed memory for reuse, as chapter 05's "
                    "processes run; "
                    f"ratio over every pairing of repeats {spread[0]:.2f}–{spread[1]:.2f}",
               ratio_spread=spread, tokens_per_s_by_repeat_ours=per_ours, tokens_per_s_by_repeat_peer=per_peer,
               precision=cfg.train.precision, threads=threads, samples_ours=flat_ours, samples_peer=flat_peer),
        result("training_mfu_vs_matmul_peak", ours=tps_ours * fpt / peak, peer=1.0,
               peer_name=f"{peak_name} ({peak / 1e9:.1f} GFLOP/s, {threads} threads)",
               unit="fraction of peak", higher_is_better=True, goal=f"MFU ≥ {GOAL_MFU}", goal_ratio=GOAL_MFU,
               note=f"model FLOPs per token (chapter 03: {fpt / 1e6:.1f} MFLOP, 6N + attention) × the engine's "
                    f"tokens/s over the peak measured in this run; the Trainer's MFU {tps_peer * fpt / peak:.3f}; "
                    f"by repeat {', '.join(f'{x * fpt / peak:.3f}' for x in per_ours)}",
               peak_flops=peak, flops_per_token=fpt, mfu_peer=tps_peer * fpt / peak,
               mfu_by_repeat=[x * fpt / peak for x in per_ours]),
    ]


BENCHMARKS = {"training": training_throughput}
