"""Chapter 05 benchmark: the engine's training tokens/s against transformers' ``Trainer``.

Both train the ``cpu`` preset's StableLM from the same seeded initialisation on the same packed
micro-batches (chapter 01's loader), with the same global batch (micro-batch 4 × accumulation 2
× 128 tokens on one process), the same fused AdamW (β, ε, weight decay, parameter groups), the
same ``LambdaLR`` schedule and clipping at 1.0, in the same Python process, one after the other.
Throughput is measured alike: the wall time between the ends of consecutive optimizer steps (all
of the loop: data, forward, backward, clipping, update, bookkeeping), median over the steps after
the first. The engine's MFU is reported against
this machine's fp32 matmul peak measured in the same run (``hardware.matmul_peak_flops``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from . import result

STEPS = 8


def _cfg():
    from .. import config

    return config.load("cpu", **{"train.steps": STEPS, "train.n_procs": 1, "train.eval_every": 0,
                                 "train.checkpoint_every": 0, "schedule.warmup_steps": 2, "schedule.total_steps": 9,
                                 "schedule.cooldown_steps": 2, "data.val_batches": 1, "carbon.meter": False})


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
        seed=cfg.run.seed, remove_unused_columns=False,
    )
    Trainer(model=net, args=args, train_dataset=_Sequences(cfg), optimizers=(opt, sched),
            callbacks=[Clock()]).train()
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def training_throughput(repeats: int = 3) -> list[dict]:
    from .. import hardware, model

    cfg = _cfg()
    tokens = cfg.train.global_batch_tokens
    ours, peer = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            ours += engine_step_times(cfg, Path(tmp) / f"engine-{i}")
            peer += trainer_step_times(cfg, Path(tmp) / f"trainer-{i}")
    tps_ours, tps_peer = tokens / statistics.median(ours), tokens / statistics.median(peer)
    peak = hardware.matmul_peak_flops(torch.get_num_threads())
    fpt = model.flops_per_token(cfg)["total"]
    return [
        result("training_tokens_per_s", ours=tps_ours, peer=tps_peer, peer_name="transformers Trainer",
               unit="tokens/s", higher_is_better=True, goal="ratio ≥ 1.0", goal_ratio=1.0,
               note=f"cpu preset model, 1 process, {tokens} tokens/step, median interval between step ends "
                    f"({len(ours)} intervals each)",
               samples_ours=ours, samples_peer=peer),
        result("training_mfu_vs_matmul_peak", ours=tps_ours * fpt / peak, peer=1.0,
               peer_name=f"measured fp32 matmul peak ({peak / 1e9:.1f} GFLOP/s, {torch.get_num_threads()} threads)",
               unit="fraction of peak", higher_is_better=True,
               note="model FLOPs per token (chapter 03) × the engine's tokens/s over the peak; not a speed goal"),
    ]


BENCHMARKS = {"training": training_throughput}
