"""Run by torchrun from ``test_training_launchers.py``: DeepSpeed trains chapter 05's tiny model with the
ZeRO-1 JSON that :func:`stablelm2.training.launch.write_launch_files` generated.

``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/deepspeed_worker.py JSON SPEC OUT STEPS``
initialises DeepSpeed's process group over gloo, hands the JSON file itself to ``deepspeed.initialize``
(with the engine's AdamW parameter groups), trains ``STEPS`` optimizer steps on chapter 01's packed
micro-batches of each rank, saves a DeepSpeed checkpoint, and rank 0 writes what DeepSpeed resolved
to ``OUT/result.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(ds_json: str, spec: str, out: str, steps: int) -> None:
    import deepspeed

    from stablelm2 import config
    from stablelm2 import model as model_lib
    from stablelm2.data import packed_loader
    from stablelm2.training import backends, engine

    cfg = config.from_dict(json.loads(Path(spec).read_text(encoding="utf-8"))["config"])
    deepspeed.init_distributed(dist_backend="gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    torch.manual_seed(cfg.run.seed)
    net = model_lib.build(cfg)
    t = cfg.train
    opt = torch.optim.AdamW(backends.param_groups(net, t.weight_decay), lr=cfg.schedule.peak_lr,
                            betas=(t.beta1, t.beta2), eps=t.eps)
    model, optimizer, _, _ = deepspeed.initialize(model=net, optimizer=opt, config=ds_json)
    loader = packed_loader(cfg, rank=rank, world_size=world)
    losses = []
    for _ in range(steps):
        total = torch.zeros(())
        for _ in range(model.gradient_accumulation_steps()):
            b = next(loader)
            logits = model(input_ids=b["input_ids"], position_ids=b["position_ids"], use_cache=False).logits
            s, n = engine.token_loss(logits, b["labels"])
            loss = s / n
            model.backward(loss)
            model.step()
            total += loss.detach()
        torch.distributed.all_reduce(total)
        losses.append(float(total) / (world * model.gradient_accumulation_steps()))
    model.save_checkpoint(str(Path(out) / "deepspeed"), tag="zero")
    if rank == 0:
        (Path(out) / "result.json").write_text(json.dumps({
            "world_size": world, "optimizer": type(model.optimizer).__name__,
            "zero_stage": int(model.zero_optimization_stage()), "micro_batch": model.train_micro_batch_size_per_gpu(),
            "grad_accum": model.gradient_accumulation_steps(), "train_batch_size": model.train_batch_size(),
            "global_steps": model.global_steps, "losses": losses, "backend": torch.distributed.get_backend(),
        }), encoding="utf-8")
    torch.distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
