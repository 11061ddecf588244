#!/usr/bin/env python
"""GPU canary: the paper-size model on one CUDA GPU, a few steps, measured, saved and resumed.

    python ci/gpu_canary.py [--out build/gpu_canary.json] [--steps 6]

On a machine with a CUDA GPU it runs, with chapter 05's engine and chapter 03's 1.6B model
(random initialisation, 4,096-token sequences of random Arcade100k ids, micro-batch 2, bf16):

1. **throughput** — ``--steps`` optimizer steps; tokens/s (median over the steps after the first),
   MFU against the GPU's bf16 datasheet peak (the engine's :func:`device_peak_flops`), and the
   peak memory torch allocated;
2. **evaluation time** — lm-evaluation-harness (``HFLM``) over the trained paper-size model on one
   offline task of chapter 07 (``slm2_cloze_mc``), timed;
3. **save and resume** — for each backend (``torch``: fused AdamW, ZeroRedundancyOptimizer when
   there are several processes; ``deepspeed``: ZeRO-1 through accelerate), a run that stops after
   step 2 with a checkpoint and a second run that resumes it to step 4; whether the resumed losses
   equal an uninterrupted run's, or the error (PyTorch issue #124133 reports that
   ``ZeroRedundancyOptimizer`` cannot reload a fused AdamW state on CUDA; on one GPU the torch
   backend runs without ZeRO, which the record says).

It writes one JSON record and refuses (exit code 2) on a machine without a CUDA GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any


def _cfg(steps: int, backend: str = "torch", **over: Any):
    from stablelm2 import config

    return config.load("paper", **{
        "train.steps": steps, "train.n_procs": 1, "train.n_nodes": 1, "train.micro_batch": 2,
        "train.global_batch_tokens": 2 * 4096, "train.checkpoint_every": 2, "train.eval_every": 0,
        "train.backend": backend, "train.trackers": "none", "train.precision": "bf16",
        "schedule.warmup_steps": 1, "schedule.cooldown_steps": 1, "schedule.total_steps": steps + 1,
        "run.device": "cuda", **over})


class _RandomTokens:
    """Micro-batches of random ids (one document per sequence), seeded: the data does not matter here."""

    def __init__(self, cfg: Any, rank: int, world: int, weights: Any):
        import torch

        self.g = torch.Generator().manual_seed(cfg.run.seed + rank)
        self.shape = (cfg.train.micro_batch, cfg.data.seq_len)
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self):
        import torch

        ids = torch.randint(0, 100_000, self.shape, generator=self.g)
        self.n += 1
        return {"input_ids": ids, "labels": ids.clone(),
                "position_ids": torch.arange(self.shape[1]).expand(self.shape).contiguous()}

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "g": self.g.get_state().tolist()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        import torch

        self.n = int(s["n"])
        self.g.set_state(torch.tensor(s["g"], dtype=torch.uint8))


def _train(cfg: Any, out: Path, **kw: Any) -> dict[str, Any]:
    from stablelm2.training import engine

    return engine.train(cfg, out, progress=False, loader_factory=_RandomTokens, val_factory=lambda c: {}, **kw)


def throughput(work: Path, steps: int) -> dict[str, Any]:
    import torch

    torch.cuda.reset_peak_memory_stats()
    h = _train(_cfg(steps), work / "throughput")
    tps = [r["tokens_per_s"] for r in h["steps"][1:]] or [h["steps"][0]["tokens_per_s"]]
    med = statistics.median(tps)
    return {"steps": steps, "tokens_per_s_median": med, "mfu": med * h["flops_per_token"] / h["peak_flops"],
            "peak_basis": h["peak_basis"], "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "losses": [r["loss"] for r in h["steps"]], "model_dir": str(work / "throughput" / "model")}


def evaluation_time(model_dir: Path, limit: int) -> dict[str, Any]:
    from stablelm2 import config, tokenizer
    from stablelm2.evaluation import tasks

    tokenizer.save_transformers(model_dir)
    cfg = config.load("cpu", **{"run.device": "cuda", "eval.limit": limit})
    t0 = time.perf_counter()
    res = tasks.evaluate(model_dir, ["slm2_cloze_mc"], cfg)
    return {"task": "slm2_cloze_mc", "limit": limit, "seconds": time.perf_counter() - t0,
            "results": res["results"].get("slm2_cloze_mc", {})}


def save_and_resume(work: Path, backend: str) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"backend": backend, "processes": 1,
                           "zero_sharded": backend == "deepspeed", "note": "" if backend == "deepspeed" else
                           "one process: plain fused AdamW, ZeroRedundancyOptimizer needs ≥ 2 GPUs"}
    try:
        cfg = _cfg(4, backend)
        ref = _train(cfg, work / f"{backend}-ref", save_model=False)
        paused = _train(cfg, work / f"{backend}-resumed", save_model=False, stop_at=2)
        torch.cuda.empty_cache()
        done = _train(cfg, work / f"{backend}-resumed", save_model=False)
        out.update(paused_at=paused.get("paused_at"), resumed_from=done.get("resumed_from"),
                   losses_ref=[r["loss"] for r in ref["steps"]], losses_resumed=[r["loss"] for r in done["steps"]])
        out["resume_exact"] = out["losses_ref"] == out["losses_resumed"]
        out["ok"] = True
    except Exception as exc:  # the record keeps the failure: that is what the canary is for
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ci/gpu_canary.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/gpu_canary.json"))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--eval-limit", type=int, default=100)
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_canary: refused — no CUDA GPU on this machine (torch.cuda.is_available() is False); run it on a "
              "GPU node", file=sys.stderr)
        return 2
    from stablelm2.files import atomic_write_json
    from stablelm2.record import hardware

    record: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
                              "torch": torch.__version__, "hardware": hardware(), "time_utc": time.strftime(
                                  "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="gpu-canary-") as tmp:
        work = Path(tmp)
        record["throughput"] = throughput(work, args.steps)
        torch.cuda.empty_cache()
        record["evaluation"] = evaluation_time(Path(record["throughput"]["model_dir"]), args.eval_limit)
        torch.cuda.empty_cache()
        record["resume"] = [save_and_resume(work, b) for b in ("torch", "deepspeed")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, record)
    t = record["throughput"]
    print(f"gpu_canary: {record['gpu']}: {t['tokens_per_s_median']:,.0f} tokens/s, MFU {t['mfu']:.1%}, peak "
          f"{t['peak_memory_gib']:.1f} GiB; lm-eval {record['evaluation']['seconds']:.1f} s; resume "
          + ", ".join(f"{r['backend']} {'ok' if r.get('ok') else 'FAILED'}" for r in record["resume"])
          + f" → {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
