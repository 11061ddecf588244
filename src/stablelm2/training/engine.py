"""Chapter 05 · The pre-training engine: one loop, on accelerate, with ZeRO stage 1.

Stable LM 2 was trained with data parallelism and ZeRO stage 1 (optimizer state sharded across
the 512 GPUs), AdamW (β = 0.9, 0.95, ε = 1e-8, weight decay 0.1), gradient clipping at 1.0, bf16
mixed precision with the cross-entropy in fp32, the hybrid schedule of Sec. 2.5 and packed sequences
whose attention does not cross documents. :func:`train` is that loop, and the same loop runs at
every scale:

* **processes** — accelerate's ``Accelerator`` owns the process group: launched by
  ``torchrun --nproc_per_node 2`` it is DDP over gloo on CPU (``Accelerator(cpu=True)``), on GPU
  nodes NCCL. Alone it is one process;
* **ZeRO-1** — ``train.backend`` ``torch``: PyTorch's ``ZeroRedundancyOptimizer`` shards the AdamW
  state across the processes (works on CPU); ``deepspeed``: DeepSpeed ZeRO stage 1 through
  accelerate's ``DeepSpeedPlugin``, with the same JSON that :mod:`.launch` writes for the paper's
  cluster (``auto`` picks DeepSpeed on CUDA when it is installed, torch otherwise);
* **the batch** — :mod:`.layout` turns ``train.global_batch_tokens`` into micro-batches and
  gradient accumulation for the process count at hand; the loss is the mean over every target
  token of the global batch (counts are all-reduced first), so 1 and 2 processes optimise the
  same objective;
* **data** — chapter 01's rank-local shards (:mod:`stablelm2.data.shards`: the global stream packed
  once into ``<run>/shards``, each rank reading only its own micro-batches; ``position_ids``
  restart at each document, which transformers turns into a block-diagonal causal mask) and
  ``data.validation_sets`` for the held-out loss per domain;
* **speed** — the model trains through :class:`.head_loss.LossModule`: the LM head fused with the
  cross-entropy in token blocks, its gradients formed in the forward pass, so the ``[tokens, 100k]``
  logits are never held (the small models' largest cost; same loss to fp32 rounding); fused AdamW; each process gets
  ``cores // processes`` intra-op threads (``run.threads`` overrides), set in :func:`main` before
  torch does any work; bf16 autocast where ``train.precision = 'bf16'`` and the device computes
  bf16 natively (CUDA, or a CPU reporting ``avx512_bf16``/``amx_bf16``; :func:`.backends.autocast_bf16`);
* **schedule** — chapter 04's ``schedule.lr_lambda`` under ``LambdaLR``;
* **bookkeeping** — loss, learning rate, gradient norm, tokens/s and MFU (model FLOPs from
  chapter 03 over the device's peak: A100 312, H100 989 TFLOP/s bf16 from ``hardware.gpus``, CPU measured with
  ``hardware.matmul_peak_flops``) every step, with a tqdm bar, appended to the run's
  ``metrics.jsonl`` (:mod:`.metrics`: it survives a kill, and the chapter's curves read it);
  checkpoints via :mod:`.checkpoint` every ``train.checkpoint_every`` steps, from which a killed
  run resumes bit-exactly. A checkpoint holds what resume needs — weights, optimizer, scheduler,
  loader positions, RNG states, a few running sums and the log's length — and no per-step
  history, so its size does not grow with the run.
* **tracking** — the same numbers, and the held-out loss per source, go to accelerate's tracker API
  (``train.trackers``): TensorBoard event files in ``<run>/tensorboard/`` by default (offline),
  W&B (offline at ``smoke``/``cpu``) or trackio when named, none with ``'none'``.

A run writes into its folder: ``run_config.json``, ``metrics.jsonl`` and ``progress.json`` (after
every step), ``checkpoints/step_*/``, and at the end ``history.json`` (the run's identity and
summary; :func:`.metrics.load_history` adds the per-step records from the log) and ``model/``
(``save_pretrained``, safetensors).

>>> from stablelm2 import config
>>> from stablelm2.training import engine
>>> cfg = config.load("smoke", **{"train.steps": 4})
>>> hist = engine.train(cfg, "/tmp/run", progress=False)     # doctest: +SKIP
>>> hist["summary"]["steps"]                                  # doctest: +SKIP
4

Two processes: ``torchrun --standalone --nproc_per_node 2 -m stablelm2.training.engine --preset
cpu --out build/run`` (or :func:`stablelm2.training.launch.spawn`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import config as config_lib
from .. import hardware
from ..config import Config
from ..files import atomic_dir, atomic_write_json
from . import backends, head_loss
from . import checkpoint as ckpt
from . import layout as layout_lib
from . import metrics as metrics_lib
from .results import EvalRecord, History, StepRecord, Summary, Validation

IGNORE = -100


# ------------------------------------------------------------------------------ small pieces


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy (nats, float64 scalar) and the number of target tokens.

    ``logits`` ``[batch, seq, vocab]``, ``labels`` ``[batch, seq]``. Each token's loss is computed in
    fp32 and the sum over tokens accumulated in float64 (a loss sum, later a perplexity, is never
    reduced in fp32). ``labels`` follows transformers' convention: the
    same positions as ``input_ids`` (shifted here), ``-100`` where no loss is taken.
    """
    targets = torch.full_like(labels, IGNORE)
    targets[:, :-1] = labels[:, 1:]  # shift the targets, not the logits: no copy of the [B, S, V] tensor
    per_token = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                ignore_index=IGNORE, reduction="none")
    return per_token.double().sum(), (targets != IGNORE).sum()


def batch_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor],
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss (float64) and target count of one packed batch, for a :class:`.head_loss.LossModule`
    (possibly wrapped by DDP: the fused head) or any transformers causal LM (its logits, :func:`token_loss`)."""
    inputs = {"input_ids": batch["input_ids"].to(device), "position_ids": batch["position_ids"].to(device)}
    if isinstance(getattr(model, "module", model), head_loss.LossModule):
        return model(**inputs, labels=batch["labels"].to(device))
    return token_loss(model(**inputs, use_cache=False).logits, batch["labels"].to(device))


def device_peak_flops(device: torch.device, cfg: Config, world_size: int) -> tuple[float, str]:
    """Peak FLOP/s of all devices of this run, and what the number is."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = hardware.gpu_for_device(name, cfg.train.gpu).peak_tflops * 1e12
        return peak * world_size, f"{world_size} × {name} at {peak / 1e12:.0f} TFLOP/s (bf16 dense, datasheet)"
    threads = torch.get_num_threads() * world_size
    bf16 = backends.autocast_bf16(cfg, device)
    peak = hardware.matmul_peak_flops(threads, "bfloat16" if bf16 else "float32")
    return peak, (f"CPU, measured {'bf16' if bf16 else 'fp32'} matmul peak with {threads} thread(s) = "
                  f"{peak / 1e9:.1f} GFLOP/s")


def run_identity(cfg: Config, world: int, *, weights: dict[str, float] | None = None, tag: str | None = None,
                 device: torch.device | None = None) -> dict[str, Any]:
    """What makes two runs the same run: the checkpoint identity with the process count and backend."""
    dev = device or _device(cfg)
    return ckpt.identity(cfg, world, weights=weights, backend=backends.resolve(cfg, dev), tag=tag)


def _device(cfg: Config) -> torch.device:
    return torch.device("cuda" if cfg.run.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")


# ------------------------------------------------------------------------------ collectives


def _all_reduce(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t)
    return t


def _gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _broadcast(obj: Any, world: int) -> Any:
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------------------ validation


@torch.no_grad()
def evaluate(model: torch.nn.Module, sets: dict[str, list[dict[str, torch.Tensor]]], device: torch.device,
             rank: int = 0, world: int = 1) -> Validation:
    """Held-out loss per domain and overall (token-weighted), batches sharded over the processes (collective).

    Losses are mean nats per target token; ``val_tokens`` counts the targets; ``val_loss`` is NaN with none.
    """
    names = sorted(sets)
    sums = torch.zeros(len(names), dtype=torch.float64, device=device)
    counts = torch.zeros(len(names), dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    i = 0
    for j, name in enumerate(names):
        for batch in sets[name]:
            if i % world == rank:
                s, n = batch_loss(model, batch, device)
                sums[j] += s.double()
                counts[j] += n.double()
            i += 1
    model.train(was_training)
    _all_reduce(sums, world)
    _all_reduce(counts, world)
    per = {n: float(sums[j] / counts[j]) for j, n in enumerate(names) if counts[j] > 0}
    total = float(sums.sum() / counts.sum()) if counts.sum() > 0 else float("nan")
    return {"val_loss": total, "domains": per, "val_tokens": int(counts.sum())}


# ------------------------------------------------------------------------------ the loop


def _shard_loader(cfg: Config, out: Path, rank: int, world: int, weights: dict[str, float] | None) -> Any:
    """Chapter 01's rank-local shards of this run (``<run>/shards``): built by rank 0 when the data is
    local and they are missing, then each rank opens only its own files (collective)."""
    from ..data import shards
    from ..data.sources import SourceError

    where = out / "shards"
    problem = None
    if rank == 0:
        try:
            if cfg.data.source == "local":
                shards.build(cfg, cfg.train.steps, where, weights=weights)
            else:  # Hub data is packed beforehand, on many cores, by its own step
                shards.read_manifest(where, cfg, weights)
        except SourceError as exc:
            problem = str(exc)
    problem = _broadcast(problem, world)  # the other ranks wait here for the build
    if problem:
        raise SourceError(problem)
    return shards.ShardLoader(cfg, where, rank=rank, world_size=world, weights=weights)


def _default_val_sets(cfg: Config) -> dict[str, list[dict[str, torch.Tensor]]]:
    from .. import data

    return data.validation_sets(cfg)


def _default_model(cfg: Config) -> torch.nn.Module:
    from .. import model

    return model.build(cfg)


def train(cfg: Config, out_dir: Path | str, *, resume: bool = True, weights: dict[str, float] | None = None,
          stop: Callable[[History], bool] | None = None, tag: str | None = None,
          save_model: bool = True, progress: bool = True, stop_at: int | None = None,
          model_factory: Callable[[Config], torch.nn.Module] | None = None,
          loader_factory: Callable[..., Any] | None = None,
          val_factory: Callable[[Config], dict[str, list[dict[str, torch.Tensor]]]] | None = None) -> History:
    """Train ``cfg`` into ``out_dir``; returns the run's history: ``out_dir/history.json`` (identity,
    layout, ``summary``) with the ``steps`` and ``evals`` of ``out_dir/metrics.jsonl``.

    Runs in every process of a torchrun launch (or alone). ``resume``: continue from the newest
    checkpoint in ``out_dir`` (refused if it is damaged or from another configuration); with
    ``resume=False`` a folder that already holds checkpoints is refused. ``weights``: mixture
    weights per sample source for the shards (App. A). ``stop``: called with the history
    after every step (its ``steps`` hold the last :data:`.metrics.RECENT` records); ``True`` ends the
    run there (App. D trains until a target loss). The factories
    replace the model, the training stream and the validation sets (tests). ``tag`` names what
    ``stop`` does (it becomes part of the run's identity); ``save_model=False`` skips ``model/``.
    ``stop_at``: end this job after that step with a checkpoint there, leaving the run unfinished
    (no ``history.json``, no model) for the next job to resume — a SLURM job chain under a time
    limit; the returned history then has ``paused_at`` and no ``summary``.
    Losses are mean nats per target token of the global batch; the schedule is Eq. 1 (Sec. 2.5) when
    ``schedule.kind`` is ``hybrid``; ZeRO-1 as the paper's run (Sec. 2.4).

    Raises:
        ConfigError: ``stop_at`` < 1, or the backend or the tracker cannot run here.
        CheckpointError: ``out_dir`` holds checkpoints and ``resume`` is False, the newest checkpoint is
            damaged or from another configuration, its metrics log does not match, or ``stop_at`` is not
            after it (nothing is overwritten).
        LayoutError: the global batch does not divide over the processes (:func:`.layout.from_config`).
        RuntimeError: a global batch has no target tokens (every label is ``-100``).
        FloatingPointError: the loss is not finite (lower ``schedule.peak_lr`` or check the data).
    """
    from .. import model as model_lib

    out = Path(out_dir)
    t_start = time.perf_counter()
    device = _device(cfg)
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    lay = layout_lib.from_config(cfg, n_procs=world_env)
    backend_name = backends.resolve(cfg, device)
    log_with = metrics_lib.check_tracker(cfg)
    acc = backends.accelerator(cfg, backend_name, lay.grad_accum, device, log_with=log_with, project_dir=out)
    rank, world = acc.process_index, acc.num_processes
    if stop_at is not None and not 1 <= stop_at:
        raise config_lib.ConfigError(f"stop_at = {stop_at} must be a step ≥ 1")
    main = acc.is_main_process
    ident = run_identity(cfg, world, weights=weights, tag=tag, device=device)
    ck_root = out / "checkpoints"

    # -- refuse before writing anything
    found = ckpt.latest(ck_root)
    log_path = out / metrics_lib.FILE
    problem = None
    if main and found is not None:
        if not resume:
            problem = (f"{out} already holds checkpoints ({found.name}); resume it (resume=True) or write to "
                       "another folder — nothing was overwritten")
        else:
            try:
                ckpt.verify(found, ident)
                metrics_lib.check_resumable(log_path, ckpt.read_trainer_state(found)["metrics"]["log_bytes"])
            except (ckpt.CheckpointError, metrics_lib.MetricsLogError) as exc:
                problem = str(exc) + " — nothing was overwritten"
    problem = _broadcast(problem, world)
    if problem:
        raise ckpt.CheckpointError(problem)
    if stop_at is not None and found is not None and stop_at <= int(found.name.split("_")[1]):
        raise ckpt.CheckpointError(f"stop_at = {stop_at}, but the run already has a checkpoint at {found.name}; "
                                   "give a later step, or none to train to the end")

    torch.manual_seed(cfg.run.seed + rank)
    net = (model_factory or _default_model)(cfg)
    backend = (backends.DeepSpeedZero if backend_name == "deepspeed" else backends.TorchZero)(acc, net, cfg,
                                                                                              lay.grad_accum)
    from .. import schedule

    scheduler = torch.optim.lr_scheduler.LambdaLR(backend.optimizer, schedule.lr_lambda(cfg))
    if loader_factory is not None:
        loader = loader_factory(cfg, rank, world, weights)
    else:
        loader = _shard_loader(cfg, out, rank, world, weights)
    val_sets = (val_factory or _default_val_sets)(cfg)
    # in memory: the run's identity, the last RECENT step records (for `stop`) and the evaluations;
    # everything per step goes to metrics.jsonl, and a checkpoint stores only running sums
    history: History = {"fingerprint": ckpt.fingerprint(ident), "identity": ident,
                               "layout": lay.to_dict(), "world_size": world, "backend": backend_name,
                               "device": str(device), "weights": weights, "metrics_log": metrics_lib.FILE,
                               "steps": [], "evals": [], "last_eval": None}
    totals = metrics_lib.Totals()
    start, tokens, log_bytes = 0, 0, None
    if found is not None:
        state = ckpt.load(found, ident, verified=True)
        backend.raw.load_state_dict(state.model_state)
        backend.load_optimizer_state(state.optimizer_state, found)
        ts = state.trainer_state
        scheduler.load_state_dict(ts["scheduler"])
        loader.load_state_dict(ts["loaders"][rank])
        ckpt.set_rng_state(ts["rng"][rank])
        m = ts["metrics"]
        totals = metrics_lib.Totals(m["totals"])
        log_bytes = m["log_bytes"]
        start, tokens = state.step, ts["tokens"]
        history["resumed_from"] = m["resumed_from"] + [state.step]
        history["last_eval"] = m["last_eval"]
    log = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        log = metrics_lib.MetricsLog(log_path, resume_at=log_bytes)
        if log_bytes is not None:
            history.update(metrics_lib.tail(log_path))  # type: ignore[typeddict-item]  # steps and evals
        atomic_write_json(out / "run_config.json", {"config": cfg.to_dict(), "world_size": world,
                                                    "backend": backend_name, "weights": weights,
                                                    "layout": lay.to_dict()})
        print(f"[engine] {lay.describe()}; backend {backend_name}"
              f"{' ZeRO-1' if backend_name == 'deepspeed' or getattr(backend, 'zero', False) else ''}; "
              f"device {device}; {backends.precision_note(cfg, device)}; {torch.get_num_threads()} thread(s) "
              f"per process" + (f"; resuming at step {start}" if start else ""), flush=True)

    # rank 0 measures the machine's peak while the others wait in the broadcast (no contention)
    peak, peak_basis = _broadcast(device_peak_flops(device, cfg, world) if main else None, world)
    # the FLOPs of the model that trains: a factory may give it another vocabulary (the ablations' shortlist)
    head = backend.raw.get_output_embeddings()  # type: ignore[operator]  # a transformers model's method
    out_rows = int(head.weight.shape[0])
    flops_cfg = cfg if out_rows == cfg.model.vocab_size else dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, vocab_size=out_rows))
    flops_tok = model_lib.flops_per_token(flops_cfg)["total"]
    history.update({"peak_flops": peak, "peak_basis": peak_basis, "flops_per_token": flops_tok})
    metrics_lib.start_tracking(acc, cfg, first_step=start + 1, world_size=world, backend=backend_name,
                               grad_accum=lay.grad_accum)
    it: Iterator[dict[str, torch.Tensor]] = iter(loader)
    model = backend.model
    model.train()
    bar = tqdm(total=cfg.train.steps, initial=start, desc=f"train ({cfg.run.preset}, {world} proc)",
               unit="step", disable=not (progress and main), mininterval=1.0, dynamic_ncols=True)
    step = start
    while step < cfg.train.steps and "stopped_early" not in history:
        t0 = time.perf_counter()
        batches = [next(it) for _ in range(lay.grad_accum)]
        n_local = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
        n_global = _all_reduce(torch.tensor([float(n_local)], device=device), world).item()
        if n_global == 0:
            raise RuntimeError(f"step {step + 1}: the global batch has no target tokens (all labels are -100)")
        lr: float = scheduler.get_last_lr()[0]  # type: ignore[assignment]  # LambdaLR: floats
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for i, b in enumerate(batches):
            with backend.micro(last=i == len(batches) - 1):
                s, _ = model(input_ids=b["input_ids"].to(device), position_ids=b["position_ids"].to(device),
                             labels=b["labels"].to(device))
                backend.backward(s * (world / n_global))
            loss_sum += s.detach().double()
        norm = backend.step(cfg.train.grad_clip)
        scheduler.step()
        loss = _all_reduce(loss_sum, world).item() / n_global
        step += 1
        tokens += lay.global_batch_tokens
        dt = time.perf_counter() - t0
        tps = lay.global_batch_tokens / dt
        rec: StepRecord = {"step": step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": tokens,
               "step_s": dt, "tokens_per_s": tps, "mfu": tps * flops_tok / peak,
               "t_end": time.perf_counter() - t_start}
        history["steps"].append(rec)
        if len(history["steps"]) > 2 * metrics_lib.RECENT:
            del history["steps"][:-metrics_lib.RECENT]
        totals.add(rec)
        if log is not None:
            log.write("step", rec)
        acc.log(metrics_lib.step_values(rec), step=step)
        if not math.isfinite(loss):
            raise FloatingPointError(f"step {step}: loss is {loss}; lower schedule.peak_lr or check the data")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}", refresh=False)
        if stop is not None and _broadcast(bool(stop(history)) if main else None, world):
            history["stopped_early"] = step
        last = step == cfg.train.steps or "stopped_early" in history
        ev_every = cfg.train.eval_every
        if last or (ev_every and step % ev_every == 0):
            ev: EvalRecord = {"step": step, "tokens": tokens, **evaluate(model, val_sets, device, rank, world)}
            history["evals"].append(ev)
            history["last_eval"] = ev
            if log is not None:
                log.write("eval", ev)
            acc.log(metrics_lib.eval_values(ev), step=step)
        if main:
            atomic_write_json(out / "progress.json", {"step": step, "loss": loss, "tokens": tokens})
        ck_every = cfg.train.checkpoint_every
        pause = stop_at is not None and step >= stop_at and not last
        if (ck_every and step % ck_every == 0 and not last) or pause:
            run_state: dict[str, Any] = {"totals": totals.state(), "resumed_from": history.get("resumed_from", []),
                         "last_eval": history["last_eval"], "log_bytes": None}
            if log is not None:
                log.sync()
                run_state["log_bytes"] = log.offset
            _save_checkpoint(backend, scheduler, loader, run_state, step, tokens, ident, ck_root, rank, world)
        if pause:
            history["paused_at"] = step
            break
    bar.close()
    for tracker in acc.trackers:  # flush and close the event files (the process group stays: main() ends it)
        tracker.finish()
    if "paused_at" in history:
        if log is not None:
            log.close()
            print(f"[engine] paused after step {step} (checkpoint saved); run again to resume", flush=True)
        return history
    history["summary"] = _summary(history, totals, step, tokens, time.perf_counter() - t_start)
    if main:
        assert log is not None
        log.close()
        if save_model:
            _save_final(backend.raw, backend.weights(), out)
        atomic_write_json(out / "history.json", {k: v for k, v in history.items() if k not in ("steps", "evals")})
        history = metrics_lib.load_history(out)
        val = history["summary"]["final_val_loss"]
        print(f"[engine] done: {step} steps, {tokens:,} tokens, final loss {history['summary']['final_loss']:.4f}, "
              + (f"val loss {val:.4f}" if math.isfinite(val) else "no validation set"), flush=True)
    if world > 1:
        dist.barrier()
    return history


def _summary(history: History, totals: metrics_lib.Totals, step: int, tokens: int,
             wall: float) -> Summary:
    tps = totals.tokens_per_s
    ev: EvalRecord | dict[str, Any] = history["last_eval"] or {}
    return {
        "steps": step, "tokens": tokens, "final_loss": totals.last_loss,
        "final_val_loss": ev.get("val_loss", float("nan")), "final_domains": ev.get("domains", {}),
        "mean_lr": totals.mean_lr,
        "tokens_per_s": tps, "mfu": tps * history["flops_per_token"] / history["peak_flops"], "wall_s": wall,
    }


def _save_checkpoint(backend: Any, scheduler: Any, loader: Any, run_state: dict[str, Any], step: int, tokens: int,
                     ident: dict[str, Any], root: Path, rank: int, world: int) -> None:
    """Collective: gather shards, loader positions and RNG states; rank 0 writes the checkpoint atomically."""
    main = rank == 0
    ds_tmp = None
    if backend.name == "deepspeed":
        ds_tmp = _broadcast(str(root / f".ds-{step:07d}-{os.getpid()}") if main else None, world)
    opt_state = backend.optimizer_state(Path(ds_tmp) if ds_tmp else None)
    loaders = _gather(loader.state_dict(), world)
    rngs = _gather(ckpt.rng_state(), world)
    weights = backend.weights()
    if main:
        ckpt.save(root, step, model_state=weights, optimizer_state=opt_state,
                  trainer_state={"step": step, "tokens": tokens, "scheduler": scheduler.state_dict(),
                                 "loaders": loaders, "rng": rngs, "metrics": run_state},
                  identity=ident, extra_files={"deepspeed": Path(ds_tmp)} if ds_tmp else None)
    if world > 1:
        dist.barrier()


def _save_final(raw: torch.nn.Module, weights: dict[str, torch.Tensor], out: Path) -> Path:
    """``save_pretrained`` into ``out/model`` via a temporary folder (atomic)."""
    final = out / "model"
    with atomic_dir(final) as tmp:
        raw.save_pretrained(tmp, state_dict=weights, safe_serialization=True)  # type: ignore[operator]  # a transformers model
    return final


# ------------------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    """``python -m stablelm2.training.engine --config run.json --out DIR`` (what :func:`launch.spawn` runs).

    Returns the exit status: 0, or 2 after printing a ``CheckpointError``, ``ConfigError`` or
    ``LayoutError`` to stderr; other errors propagate.
    """
    ap = argparse.ArgumentParser(prog="python -m stablelm2.training.engine")
    ap.add_argument("--config", type=Path, required=True, help="JSON written by launch.spawn: config, weights, …")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                    help="end this job after STEP with a checkpoint there (the next job resumes)")
    args = ap.parse_args(argv)
    spec = json.loads(args.config.read_text(encoding="utf-8"))
    cfg = config_lib.from_dict(spec["config"])
    if cfg.run.offline:
        from ..record import go_offline

        go_offline()
    # thread placement, before torch does any work: run.threads if set, else the cores shared out
    # (torchrun's default OMP_NUM_THREADS=1 is right on 2 cores for 2 processes only)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(cfg.run.threads or hardware.threads_per_process(local))
    try:
        train(cfg, args.out, resume=not args.no_resume, weights=spec.get("weights"), progress=not args.no_progress,
              stop_at=args.stop_at)
    except (ckpt.CheckpointError, config_lib.ConfigError, layout_lib.LayoutError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
