import hashlib
import json
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stablelm2.training import checkpoint as ckpt
from stablelm2.training import engine, launch, metrics

from .training_runs import reference_two_processes, scratch, tiny_cfg

IDENT = {"model": {"d_model": 8}, "train": {"steps": 4}, "world_size": 2}


def _save(root, step, ident=IDENT, keep=1):
    return ckpt.save(root, step, model_state={"w": torch.arange(6.0).reshape(2, 3)}, optimizer_state={"state": {0: 1}},
                     trainer_state={"step": step, "loaders": [{"pos": step}]}, identity=ident, keep=keep)


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_save_verify_load_round_trip_and_keep_the_newest(tmp_path):
    _save(tmp_path, 2, keep=2)
    _save(tmp_path, 4, keep=2)
    last = _save(tmp_path, 6, keep=2)
    assert [s for s, _ in ckpt.all_checkpoints(tmp_path)] == [4, 6] and ckpt.latest(tmp_path) == last
    meta = ckpt.verify(last, IDENT)
    assert set(meta["files"]) == {"model.safetensors", "optimizer.pt", "trainer_state.json"}
    got = ckpt.load(last, IDENT)
    assert got.step == 6 and torch.equal(got.model_state["w"], torch.arange(6.0).reshape(2, 3))
    assert got.optimizer_state == {"state": {0: 1}} and got.trainer_state["loaders"] == [{"pos": 6}]
    (tmp_path / ".tmp-step_0000008-123-4").mkdir()  # a save killed half-way is never taken for a checkpoint
    assert ckpt.latest(tmp_path) == last
    with pytest.raises(ckpt.CheckpointError, match="already exists"):
        _save(tmp_path, 6)


def test_damaged_and_foreign_checkpoints_are_refused_with_what_differs(tmp_path):
    path = _save(tmp_path, 3)
    other = {**IDENT, "train": {"steps": 8}, "world_size": 1}
    with pytest.raises(ckpt.CheckpointError, match=r"belongs to a different run.*train\.steps: checkpoint 4, this run 8"
                                                   r".*world_size: checkpoint 2, this run 1"):
        ckpt.verify(path, other)
    blob = bytearray((path / "optimizer.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "optimizer.pt").write_bytes(bytes(blob))
    with pytest.raises(ckpt.CheckpointError, match="damaged: optimizer.pt does not match its sha256"):
        ckpt.load(path, IDENT)
    (path / "meta.json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="damaged: meta.json is missing"):
        ckpt.verify(path, IDENT)


def test_rng_states_round_trip():
    state = ckpt.rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    ckpt.set_rng_state(json.loads(json.dumps(state)))
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_engine_refuses_damaged_or_foreign_checkpoints_and_overwrites_nothing():
    out = scratch("refuse")
    cfg = tiny_cfg(**{"train.steps": 3, "train.checkpoint_every": 1, "schedule.cooldown_steps": 1})
    engine.train(cfg, out, progress=False)
    assert [s for s, _ in ckpt.all_checkpoints(out / "checkpoints")] == [2]
    before = _snapshot(out)
    with pytest.raises(ckpt.CheckpointError, match="already holds checkpoints .*nothing was overwritten"):
        engine.train(cfg, out, resume=False, progress=False)
    with pytest.raises(ckpt.CheckpointError, match=r"different run.*schedule\.peak_lr: checkpoint 0\.003, this run 0\.002"):
        engine.train(tiny_cfg(**{"train.steps": 3, "train.checkpoint_every": 1, "schedule.cooldown_steps": 1,
                                      "schedule.peak_lr": 0.002}), out,
                     progress=False)
    weights = out / "checkpoints" / "step_0000002" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0x01
    weights.write_bytes(bytes(blob))
    before[str(weights.relative_to(out))] = (hashlib.sha256(bytes(blob)).hexdigest(), weights.stat().st_mtime_ns)
    with pytest.raises(ckpt.CheckpointError, match="damaged: model.safetensors does not match its sha256"):
        engine.train(cfg, out, progress=False)
    assert _snapshot(out) == before


def test_a_checkpoint_holds_no_per_step_history_and_does_not_grow_with_the_run():
    out = scratch("bounded")
    cfg = tiny_cfg(**{"train.n_procs": 1, "train.steps": 6, "train.checkpoint_every": 2, "train.eval_every": 0})
    engine.train(cfg, out, progress=False, save_model=False)
    sizes = {}
    for step, path in ckpt.all_checkpoints(out / "checkpoints"):
        state = json.loads((path / "trainer_state.json").read_text())
        assert set(state) == {"step", "tokens", "scheduler", "loaders", "rng", "metrics"}
        assert set(state["metrics"]) == {"totals", "resumed_from", "last_eval", "log_bytes"}
        sizes[step] = len(json.dumps({k: state[k] for k in ("step", "tokens", "scheduler", "metrics")}))
    assert list(sizes) == [4]  # keep=1
    small = scratch("bounded-short")
    engine.train(tiny_cfg(**{"train.n_procs": 1, "train.steps": 3, "train.checkpoint_every": 2, "train.eval_every": 0,
                             "schedule.cooldown_steps": 1}), small, progress=False, save_model=False)
    (s2, p2), = ckpt.all_checkpoints(small / "checkpoints")
    state2 = json.loads((p2 / "trainer_state.json").read_text())
    # twice the steps, the same bytes give or take a few digits (no list that grows with the step count)
    assert abs(sizes[4] - len(json.dumps({k: state2[k] for k in ("step", "tokens", "scheduler", "metrics")}))) < 100
    log = metrics.read(out / "metrics.jsonl")
    assert state["metrics"]["log_bytes"] < (out / "metrics.jsonl").stat().st_size
    assert [r["step"] for r in log["steps"]] == list(range(1, 7))


def test_resume_refuses_a_metrics_log_shorter_than_its_checkpoint():
    out = scratch("short-log")
    cfg = tiny_cfg(**{"train.n_procs": 1, "train.steps": 3, "train.checkpoint_every": 1,
                      "schedule.cooldown_steps": 1})
    engine.train(cfg, out, progress=False, save_model=False)
    log = out / "metrics.jsonl"
    log.write_bytes(log.read_bytes()[:10])
    with pytest.raises(ckpt.CheckpointError, match="metrics.jsonl holds 10 bytes, fewer than.*nothing was overwritten"):
        engine.train(cfg, out, progress=False, save_model=False)
    log.unlink()
    with pytest.raises(ckpt.CheckpointError, match="metrics.jsonl is missing"):
        engine.train(cfg, out, progress=False, save_model=False)


def test_sigkill_then_resume_is_bit_identical_to_an_uninterrupted_run():
    """Two processes (torchrun, ZeRO-1), killed with SIGKILL between checkpoints, resumed from the last one."""
    reference = reference_two_processes()
    out = scratch("killed")
    cfg = tiny_cfg()
    proc = launch.start(cfg, out, 2, progress=False, stdout=open(os.devnull, "w"))
    deadline = time.monotonic() + 240
    step = 0
    while time.monotonic() < deadline and proc.poll() is None:
        prog = out / "progress.json"
        step = json.loads(prog.read_text())["step"] if prog.is_file() else 0
        if step >= cfg.train.checkpoint_every + 1:  # past the first checkpoint, before the run ends
            killed = launch.kill(proc)  # the launcher and both workers, like a node that dies
            break
        time.sleep(0.02)
    assert proc.returncode == -signal.SIGKILL and len(killed) >= 3, "the run ended before it could be killed"
    assert not (out / "history.json").exists() and not (out / "model").exists()
    resumed_from = ckpt.latest(out / "checkpoints")
    at = int(resumed_from.name.split("_")[1]) if resumed_from is not None else -1
    assert resumed_from is not None and step > at - cfg.train.checkpoint_every
    logged = [r["step"] for r in metrics.read(out / "metrics.jsonl")["steps"]]
    assert logged[:step] == list(range(1, step + 1))  # the log survived the kill, past the checkpoint
    h = launch.spawn(cfg, out, 2, progress=False, echo=False)
    ref = metrics.load_history(reference)
    assert h["resumed_from"] == [at]
    assert [r["step"] for r in h["steps"]] == list(range(1, cfg.train.steps + 1))  # steps after `at` not doubled
    assert [(r["loss"], r["grad_norm"], r["lr"]) for r in h["steps"]] == \
        [(r["loss"], r["grad_norm"], r["lr"]) for r in ref["steps"]]
    assert [(e["step"], e["val_loss"]) for e in h["evals"]] == [(e["step"], e["val_loss"]) for e in ref["evals"]]
    assert h["summary"]["final_loss"] == ref["summary"]["final_loss"]
    a = load_file(str(out / "model" / "model.safetensors"))
    b = load_file(str(reference / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_run_identity_follows_the_local_code_and_data_it_was_drawn_from(tmp_path):
    """A cleaned sample, a changed split rule or engine gives a new identity: no old cached model is reused."""
    import shutil

    from stablelm2 import config as _config
    from stablelm2 import fingerprint as fp
    from stablelm2.training import checkpoint as ck

    cfg = _config.load("smoke")
    assert ck.identity(cfg, 1)["local_inputs"] == ck.local_inputs_digest()
    assert "local_inputs" not in ck.identity(_config.load("paper"), 1)
    pkg = tmp_path / "stablelm2"
    shutil.copytree(fp.package_dir(), pkg, ignore=shutil.ignore_patterns("__pycache__"))
    base = ck.local_inputs_digest(pkg)
    assert base == ck.local_inputs_digest(pkg)
    for rel in ("data/sample/MANIFEST.json", "data/split.py", "training/engine.py"):
        f = pkg / rel
        keep = f.read_bytes()
        f.write_bytes(keep + b"\n")
        assert ck.local_inputs_digest(pkg) != base, rel
        f.write_bytes(keep)
    (pkg / "quantization" / "study.py").write_text("# not imported by the engine\n")
    assert ck.local_inputs_digest(pkg) == base
