"""The two ZeRO-1 backends of the engine, behind one small interface.

* :class:`TorchZero` — accelerate prepares the model (DDP when there are several processes, gloo
  on CPU, NCCL on GPU, bf16 autocast on GPU) and PyTorch's ``ZeroRedundancyOptimizer`` shards the
  fused AdamW state across the processes (plain fused AdamW on one process);
* :class:`DeepSpeedZero` — accelerate's ``DeepSpeedPlugin`` with the JSON :func:`deepspeed_config` builds (the one :mod:`.launch` writes)
  (ZeRO stage 1, bf16, clipping), the paper's layout on GPU nodes. It needs CUDA and ``deepspeed``
  (on CPU, accelerate ignores the plugin and runs plain DDP, so it is refused there); it has not
  been run on this project's CPU machines.

Both expose ``model`` (the wrapped :class:`.head_loss.LossModule`: its forward takes ``input_ids``,
``position_ids`` and ``labels`` and returns the summed loss and the target count), ``raw`` (the
transformers model), ``optimizer`` (for ``LambdaLR``),
``micro(last)`` (context around one micro-batch: no gradient sync but on the last), ``backward``,
``step(max_norm) -> grad norm``, ``optimizer_state`` / ``load_optimizer_state`` (collective) and
``weights()``.

>>> import torch
>>> from stablelm2 import config
>>> from stablelm2.training import backends
>>> backends.resolve(config.load("smoke"), torch.device("cpu"))
'torch'
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ConfigError
from . import layout as layout_lib
from .head_loss import LossModule


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups as GPT-NeoX builds them: decay on weight matrices and embeddings, none on biases and norms."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def resolve(cfg: Config, device: torch.device) -> str:
    """``train.backend`` with ``auto`` resolved: DeepSpeed on CUDA if installed (and ZeRO asked), else torch.

    Returns ``"torch"`` or ``"deepspeed"``; the paper trains with ZeRO stage 1 (Sec. 2.4).

    Raises:
        ConfigError: ``train.backend = 'deepspeed'`` on a device that is not CUDA.
    """
    choice = cfg.train.backend
    if choice == "auto":
        if device.type == "cuda" and cfg.train.zero_stage >= 1:
            import importlib.util

            return "deepspeed" if importlib.util.find_spec("deepspeed") else "torch"
        return "torch"
    if choice == "deepspeed" and device.type != "cuda":
        raise ConfigError("train.backend = 'deepspeed' needs CUDA GPUs: on CPU accelerate runs plain DDP and ignores "
                          "the DeepSpeed plugin; use train.backend = 'torch' (ZeroRedundancyOptimizer) or 'auto'")
    return choice


class TorchZero:
    """accelerate DDP + PyTorch's ZeroRedundancyOptimizer (AdamW); plain AdamW on one process."""

    name = "torch"

    def __init__(self, accelerator: Any, model: torch.nn.Module, cfg: Config, grad_accum: int):
        from torch.distributed.optim import ZeroRedundancyOptimizer

        t = cfg.train
        self.acc = accelerator
        self.raw = model.to(accelerator.device)
        groups = param_groups(self.raw, t.weight_decay)
        # fused AdamW: one pass over each tensor (≈6× faster than foreach on CPU), bit-deterministic
        kw: dict[str, Any] = dict(lr=cfg.schedule.peak_lr, betas=(t.beta1, t.beta2), eps=t.eps, fused=True)
        self.zero = accelerator.num_processes > 1 and t.zero_stage >= 1
        if self.zero:
            self.optimizer: Any = ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, **kw)
        else:
            self.optimizer = torch.optim.AdamW(groups, **kw)
        self.model = accelerator.prepare_model(LossModule(self.raw))  # forward → (loss sum, targets)

    def micro(self, last: bool) -> contextlib.AbstractContextManager:
        """Context for one micro-batch: DDP's ``no_sync`` (no gradient all-reduce) unless ``last``."""
        if last or self.acc.num_processes == 1:
            return contextlib.nullcontext()
        return self.acc.no_sync(self.model)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of the scalar ``loss`` (summed loss × world / the global target count)."""
        loss.backward()

    def step(self, max_norm: float) -> float:
        """Clip the gradients' global 2-norm to ``max_norm``, step AdamW, zero them; the unclipped norm."""
        norm = torch.nn.utils.clip_grad_norm_(self.raw.parameters(), max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def optimizer_state(self, into: Path | None) -> dict[str, Any] | None:
        """Collective: the full optimizer state on rank 0 (ZeRO shards consolidated), None elsewhere."""
        if self.zero:
            self.optimizer.consolidate_state_dict(to=0)
        return self.optimizer.state_dict() if self.acc.is_main_process else None

    def load_optimizer_state(self, state: dict[str, Any], path: Path) -> None:
        """Load a full optimizer state (as :meth:`optimizer_state` returned it; ``path`` is unused here)."""
        self.optimizer.load_state_dict(state)

    def weights(self) -> dict[str, torch.Tensor]:
        """The transformers model's state dict (name → tensor; the live tensors, not copies)."""
        return self.raw.state_dict()


class DeepSpeedZero:
    """DeepSpeed ZeRO-1 through accelerate (the paper's layout on GPU nodes)."""

    name = "deepspeed"

    def __init__(self, accelerator: Any, model: torch.nn.Module, cfg: Config, grad_accum: int):
        t = cfg.train
        self.acc = accelerator
        self.grad_accum = grad_accum
        self.optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=cfg.schedule.peak_lr,
                                           betas=(t.beta1, t.beta2), eps=t.eps)
        self.model, self._wrapped_opt = accelerator.prepare(LossModule(model), self.optimizer)
        self.raw = model  # same parameters as the wrapped LossModule, and the same state-dict keys

    def micro(self, last: bool) -> contextlib.AbstractContextManager:
        """accelerate's ``accumulate`` context (DeepSpeed counts micro-batches itself; ``last`` unused)."""
        return self.acc.accumulate(self.model)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of ``loss`` × ``grad_accum`` through DeepSpeed (it steps at the accumulation boundary)."""
        # DeepSpeed divides by its gradient_accumulation_steps; the engine's loss is already normalised.
        self.acc.backward(loss * self.grad_accum)

    def step(self, max_norm: float) -> float:
        """The gradient norm accelerate's ``clip_grad_norm_`` reports (NaN when it reports none).

        DeepSpeed already clipped (``gradient_clipping`` of the JSON) and stepped in :meth:`backward`.
        """
        # accelerate's backward ran engine.step() (clipping from the JSON, update, zero_grad) at the boundary
        norm = self.acc.clip_grad_norm_(self.model.parameters(), max_norm)
        return float(norm) if norm is not None else float("nan")

    def optimizer_state(self, into: Path | None) -> dict[str, Any] | None:
        """Collective: DeepSpeed writes its ZeRO shards under ``into`` (tag ``zero``); a marker on rank 0."""
        self.model.save_checkpoint(str(into), tag="zero")
        return {"deepspeed": "zero"} if self.acc.is_main_process else None

    def load_optimizer_state(self, state: dict[str, Any], path: Path) -> None:
        """Collective: load the ZeRO shards from ``path / "deepspeed"`` (``state`` is the marker, unused)."""
        self.model.load_checkpoint(str(path / "deepspeed"), tag="zero", load_module_strict=True,
                                   load_optimizer_states=True, load_lr_scheduler_states=False)

    def weights(self) -> dict[str, torch.Tensor]:
        """The full model state dict gathered by accelerate (name → tensor)."""
        return self.acc.get_state_dict(self.model)


def deepspeed_config(cfg: Config, lay: layout_lib.BatchLayout, *, bf16: bool | None = None) -> dict[str, Any]:
    """DeepSpeed's JSON for ``cfg`` on ``lay``: ZeRO stage ``train.zero_stage``, bf16, clipping, fp32 all-reduce.

    The optimizer and the schedule stay in the engine (AdamW and ``LambdaLR``), so the JSON has no
    ``optimizer`` or ``scheduler`` section.
    """
    t = cfg.train
    bf16 = (t.precision == "bf16") if bf16 is None else bf16
    return {
        "train_batch_size": lay.global_batch_seqs,
        "train_micro_batch_size_per_gpu": lay.micro_batch,
        "gradient_accumulation_steps": lay.grad_accum,
        "gradient_clipping": t.grad_clip,
        "bf16": {"enabled": bool(bf16)},
        "fp16": {"enabled": False},
        "zero_optimization": {"stage": t.zero_stage, "overlap_comm": True, "contiguous_gradients": True,
                              "reduce_bucket_size": 500_000_000, "allgather_bucket_size": 500_000_000},
        "communication_data_type": "fp32",
        "data_types": {"grad_accum_dtype": "fp32"},
        "steps_per_print": 1000,
        "wall_clock_breakdown": False,
    }


def autocast_bf16(cfg: Config, device: torch.device) -> bool:
    """Whether ``train.precision = 'bf16'`` runs as bf16 autocast here: on CUDA always; on CPU only when
    the CPU computes bf16 natively (``avx512_bf16`` or ``amx_bf16`` among its flags,
    :func:`stablelm2.hardware.cpu_bf16_flags`) — elsewhere bf16 is emulated and slower than fp32, so
    the run stays fp32 (:func:`precision_note` says so)."""
    from ..hardware import cpu_bf16_flags

    return cfg.train.precision == "bf16" and (device.type == "cuda" or bool(cpu_bf16_flags()))


def precision_note(cfg: Config, device: torch.device) -> str:
    """Which precision a run of ``cfg`` on ``device`` computes in, and why (one sentence)."""
    from ..hardware import cpu_bf16_flags

    if cfg.train.precision != "bf16":
        return "fp32 (train.precision = 'fp32')"
    if device.type == "cuda":
        return "bf16 autocast on CUDA, cross-entropy in fp32"
    flags = cpu_bf16_flags()
    if flags:
        return f"bf16 autocast on CPU (the CPU reports {', '.join(flags)}), cross-entropy in fp32"
    return ("fp32: train.precision = 'bf16', but this CPU reports neither avx512_bf16 nor amx_bf16, so bf16 "
            "would be emulated (slower than fp32)")


def accelerator(cfg: Config, backend: str, grad_accum: int, device: torch.device, *,
                log_with: str | None = None, project_dir: Path | None = None) -> Any:
    """accelerate's ``Accelerator`` for the backend: CPU or GPU, DeepSpeed plugin if asked, logging to the
    tracker ``log_with`` (accelerate's name for it) under ``project_dir``, bf16 autocast where
    :func:`autocast_bf16` says so."""
    from accelerate import Accelerator

    bf16 = autocast_bf16(cfg, device)
    track = {"log_with": log_with, "project_dir": str(project_dir) if project_dir is not None else None}
    if backend == "deepspeed":
        from accelerate.utils import DeepSpeedPlugin

        world = int(os.environ.get("WORLD_SIZE", "1"))
        ds = deepspeed_config(cfg, layout_lib.from_config(cfg, n_procs=world), bf16=bf16)
        return Accelerator(cpu=device.type == "cpu", deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=ds),
                           gradient_accumulation_steps=grad_accum, mixed_precision="bf16" if bf16 else "no", **track)
    return Accelerator(cpu=device.type == "cpu", mixed_precision="bf16" if bf16 else "no", **track)
