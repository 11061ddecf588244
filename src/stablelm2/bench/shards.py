"""Chapter 01/05 benchmark: building rank-local shards, per worker process, against bare Arcade100k encoding.

``shard_build_vs_encode`` times :func:`stablelm2.data.shards.build` at preset ``cpu`` (read the
shipped sample, split, mix, tokenize, pack, write the shards and hash them) for about 80 % of the
sample's tokens (so that little of it is an epoch replayed without tokenizing), and reports its
shard tokens per second per worker process against bare ``encode_ordinary`` over every sample
document on one core, measured in the same run. Goal: ≥ 0.25 of bare encoding per core.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .. import config, tokenizer
from . import median_time, result
from .tokenizer import _texts


def shard_build(repeats: int = 3, workers: int = 1) -> dict:
    """One row: shard tokens/s per worker process of :func:`stablelm2.data.shards.build` (preset ``cpu``)
    against bare ``encode_ordinary`` tokens/s on one core, medians of ``repeats``; goal ratio ≥ 0.25."""
    from ..data import shards

    cfg = config.load("cpu")
    texts = _texts()
    enc = tokenizer.arcade100k()
    sample_tokens = sum(len(enc.encode_ordinary(t)) + 1 for t in texts)
    per_step = cfg.train.global_batch_tokens
    steps = max(1, int(0.8 * sample_tokens) // per_step)

    def bare() -> None:
        for t in texts:
            enc.encode_ordinary(t)

    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(10_000))

        def build() -> None:
            shards.build(cfg, steps, Path(tmp) / f"b{next(runs)}", workers=workers, steps_per_shard=256)

        t_build, s_build = median_time(build, repeats)
    t_bare, s_bare = median_time(bare, repeats)
    ours = steps * per_step / t_build / workers
    return result("shard_build_vs_encode", ours=ours, peer=sample_tokens / t_bare,
                  peer_name="bare Arcade100k encode (one core)", unit="tokens/s per core", higher_is_better=True,
                  goal="ratio ≥ 0.25", goal_ratio=0.25,
                  note=f"{steps} steps × {per_step} tokens at preset cpu, {workers} worker process(es), "
                       f"sample {sample_tokens:,} tokens; includes opening the sample files and writing + hashing",
                  samples_ours=s_build, samples_peer=s_bare, cpu_count=os.cpu_count())


BENCHMARKS = {"shard_build": shard_build}
