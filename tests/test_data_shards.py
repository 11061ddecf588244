"""Rank-local shards: the same global batches as the streaming loader, split so each rank reads only its own."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from stablelm2 import config
from stablelm2.data import batch_at, shards
from stablelm2.data.sources import SourceError

STEPS = 3


@pytest.fixture(scope="module")
def cfg():
    return config.load("smoke", **{"train.micro_batch": 1})  # 8 sequences per step: 1, 2, 4 or 8 processes


@pytest.fixture(scope="module")
def built(cfg, tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    return d, shards.build(cfg, STEPS, d, steps_per_shard=2)


def _step(loaders: list[shards.ShardLoader]) -> dict[str, torch.Tensor]:
    """One optimizer step of every rank, concatenated rank after rank (accumulation in order)."""
    parts = [next(ld) for ld in loaders for _ in range(ld.accum)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def test_the_shards_hold_the_streaming_loaders_global_batches(cfg, built):
    d, man = built
    assert (man["slots"], man["sequences_per_step"], man["chunks"][-1]["steps"]) == (8, 8, 1)
    one = shards.ShardLoader(cfg, d)
    for k in range(STEPS):
        got, want = _step([one]), batch_at(cfg, k)  # batch_at replays chapter 01's streaming loader
        for key in ("input_ids", "position_ids", "labels"):
            assert torch.equal(got[key], want[key]), (k, key)


@pytest.mark.parametrize("world", [2, 4])
def test_the_union_of_the_ranks_micro_batches_is_the_one_process_batch(cfg, built, world):
    d, _ = built
    one = shards.ShardLoader(cfg, d)
    ranks = [shards.ShardLoader(cfg, d, rank=r, world_size=world) for r in range(world)]
    assert [ld.accum for ld in ranks] == [8 // world] * world
    for _ in range(STEPS):
        assert torch.equal(_step(ranks)["input_ids"], _step([one])["input_ids"])


def test_each_rank_opens_only_its_own_shards(cfg, built, tmp_path):
    d, man = built
    world = 4
    for r in range(world):
        mine = {f"c{c:05d}_m{m:04d}.npy" for c in range(2) for m in range(2 * r, 2 * r + 2)}
        alone = tmp_path / f"rank{r}"
        alone.mkdir()
        for f in [*mine, shards.MANIFEST]:  # a node that holds this rank's files and nothing else
            shutil.copy(d / f, alone / f)
        ld = shards.ShardLoader(cfg, alone, rank=r, world_size=world)
        batches = [next(ld) for _ in range(STEPS * ld.accum)]
        assert set(ld.opened) == mine and len(batches) == 6
        assert sum(b["input_ids"].numel() for b in batches) == STEPS * 8 * cfg.data.seq_len // world


def test_resume_refusals_and_damage(cfg, built, tmp_path):
    d, _ = built
    ld = shards.ShardLoader(cfg, d, rank=1, world_size=2)
    for _ in range(3):
        next(ld)
    state = ld.state_dict()
    want = next(ld)
    again = shards.ShardLoader(cfg, d, rank=1, world_size=2)
    again.load_state_dict(state)
    assert torch.equal(next(again)["input_ids"], want["input_ids"])
    with pytest.raises(SourceError, match="other shards, rank or world size"):
        shards.ShardLoader(cfg, d, rank=0, world_size=2).load_state_dict(state)
    with pytest.raises(SourceError, match="do not divide over 3 processes"):
        shards.ShardLoader(cfg, d, rank=0, world_size=3)
    with pytest.raises(SourceError, match="built with other settings \\(seed\\)"):
        shards.ShardLoader(config.load("smoke", seed=5, **{"train.micro_batch": 1}), d)
    with pytest.raises(SourceError, match="holds no manifest.json; build the shards first"):
        shards.ShardLoader(cfg, tmp_path)
    late = shards.ShardLoader(cfg, d)
    late.micro_batches = STEPS * 8
    with pytest.raises(SourceError, match="past the 3 steps"):
        next(late)
    broken = tmp_path / "broken"
    shutil.copytree(d, broken)
    f = broken / "c00000_m0000.npy"
    f.write_bytes(f.read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(SourceError, match="c00000_m0000.npy does not match its sha256"):
        next(shards.ShardLoader(cfg, broken))


def test_a_parallel_build_writes_the_same_shards_and_a_finished_build_is_reused(cfg, built, tmp_path):
    d, man = built
    par = shards.build(cfg, STEPS, tmp_path / "par", steps_per_shard=2, workers=2)
    assert par["files"] == man["files"] and par["workers"] == 2
    again = shards.build(cfg, STEPS, tmp_path / "par", steps_per_shard=2, workers=2)
    assert again == par
    arr = np.load(tmp_path / "par" / "c00000_m0003.npy")
    assert arr.dtype == np.uint32 and arr.shape == (2, 1, cfg.data.seq_len)


def test_bad_arguments_leave_an_earlier_build_untouched(cfg, built, tmp_path):
    d, _ = built
    earlier = tmp_path / "earlier"
    shutil.copytree(d, earlier)
    before = {f.name: f.read_bytes() for f in earlier.iterdir()}
    seed5 = config.load("smoke", seed=5, **{"train.micro_batch": 1})
    # other settings, and a micro-batch config.load would refuse (8 % 3 ≠ 0): build checks it on its own
    other = dataclasses.replace(seed5, train=dataclasses.replace(seed5.train, micro_batch=3))
    with pytest.raises(SourceError, match="8 sequences per step.*do not divide into micro-batches of 3") as err:
        shards.build(other, STEPS, earlier, steps_per_shard=2)
    assert {f.name: f.read_bytes() for f in earlier.iterdir()} == before  # the old manifest is still there
    assert "make global_batch_tokens a multiple of seq_len × micro_batch" in str(err.value)  # and the fix
    with pytest.raises(SourceError, match="unknown source"):
        shards.build(seed5, STEPS, earlier, weights={"poetry": 1})
    assert {f.name: f.read_bytes() for f in earlier.iterdir()} == before
    (earlier / "manifest.json").write_text("{not json")
    with pytest.raises(SourceError, match="manifest.json is not a shards manifest .* delete it"):
        shards.build(cfg, STEPS, earlier, steps_per_shard=2)
    assert (earlier / "manifest.json").read_text() == "{not json"
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(SourceError, match="a_file is a file; pass a folder"):
        shards.build(cfg, STEPS, tmp_path / "a_file")


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_real_processes_each_read_only_their_shards_and_together_the_one_process_batch(cfg, built, tmp_path, world):
    """torchrun with ``world`` processes over gloo: every rank opens only its own files, and the ranks'
    micro-batches, put together in rank order, are the 1-process batches."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    d, _ = built
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "ranks.json"
    got = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
                          str(root / "tests" / "shard_worker.py"), str(d), str(out), str(STEPS)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, (got.stdout + got.stderr)[-4000:]
    ranks = json.loads(out.read_text())
    one = shards.ShardLoader(cfg, d)
    per = 8 // world
    for r in ranks:
        own = {f"c{c:05d}_m{m:04d}.npy" for c in range(2) for m in range(r["rank"] * per, (r["rank"] + 1) * per)}
        assert set(r["opened"]) == own
    for k in range(STEPS):
        union = torch.tensor([seq for r in ranks for mb in r["ids"][k] for seq in mb])
        assert torch.equal(union, _step([one])["input_ids"])
