"""Run by torchrun from ``test_data_shards.py``: each rank reads its micro-batches of the first steps from the
rank-local shards and rank 0 writes, for every rank, the ids it read and the shard files it opened.

``python -m torch.distributed.run --standalone --nproc_per_node W tests/shard_worker.py SHARDS OUT STEPS``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist


def main(shards_dir: str, out: str, steps: int) -> None:
    from stablelm2 import config
    from stablelm2.data import shards

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = config.load("smoke", **{"train.micro_batch": 1})
    ld = shards.ShardLoader(cfg, shards_dir, rank=rank, world_size=world)
    mine = [[next(ld)["input_ids"].tolist() for _ in range(ld.accum)] for _ in range(steps)]
    got: list = [None] * world
    dist.all_gather_object(got, {"rank": rank, "ids": mine, "opened": ld.opened})
    if rank == 0:
        Path(out).write_text(json.dumps(got), encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
