"""Chapter 05's launch files on the real launchers: a SLURM batch script under a one-node SLURM, and the
DeepSpeed ZeRO-1 JSON under ``deepspeed.initialize`` (2 CPU processes, gloo).

Both need system or heavy pieces: SLURM comes from Debian (``ci/ensure_slurm.sh`` installs it as
root, the way ``ci/ensure_chromium.sh`` installs Chromium), DeepSpeed from requirements.txt. Where
they cannot be had, the tests skip and say why — except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stablelm2.training import checkpoint as ckpt
from stablelm2.training import launch, metrics

from .slurm_cluster import describe, missing_tools, one_node_cluster
from .training_runs import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job_env(env: dict[str, str], out: Path, **extra: str) -> dict[str, str]:
    """What the submitting shell exports (sbatch passes it to the job): the venv and this checkout first."""
    src = str(ROOT / "src")
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")])),
            "OUT_DIR": str(out), "MAIN_PORT": str(_free_port()), "OMP_NUM_THREADS": "1", **extra}


def _sbatch(script: Path, env: dict[str, str], cluster: Path) -> str:
    got = subprocess.run(["sbatch", "--parsable", "--wait", script.name], cwd=script.parent, env=env,
                         capture_output=True, text=True, timeout=600)
    job = got.stdout.strip().split(";")[0]
    log = script.parent / f"stablelm2-smoke-{job}.out"
    text = log.read_text(errors="replace") if log.is_file() else "(no job output)"
    assert got.returncode == 0, f"sbatch job {job} failed ({got.returncode}): {got.stderr}\n{text[-4000:]}\n" \
                                + describe(cluster)
    return text


@pytest.mark.slurm
@pytest.mark.slow
def test_the_generated_batch_script_trains_checkpoints_and_resumes_under_slurm(tmp_path):
    """Chapter 05's SLURM script, scaled to this machine (one CPU node, 2 processes, gloo, the tiny model):
    a first ``sbatch`` trains 4 of 6 steps and checkpoints (``STOP_AT=4``), a second resumes and finishes."""
    setup = subprocess.run(["bash", str(ROOT / "ci" / "ensure_slurm.sh")], capture_output=True, text=True)
    if setup.returncode != 0 or missing_tools():
        _unavailable(f"SLURM is not available: {(setup.stdout + setup.stderr).strip() or missing_tools()}")
    cfg = tiny_cfg(**{"train.gpu": "cpu", "train.n_nodes": 1, "train.n_procs": 2, "train.steps": 6,
                      "train.checkpoint_every": 2, "train.eval_every": 0, "schedule.total_steps": 7,
                      "schedule.cooldown_steps": 1})
    job = tmp_path / "job"
    files = launch.write_launch_files(cfg, job, wall_hours=0.05)
    checks = launch.validate_launch_files(cfg, files)
    assert checks["accelerate"]["distributed_type"] == "MULTI_GPU" and checks["slurm"]["nodes"] == 1
    out = tmp_path / "run"
    with one_node_cluster(tmp_path / "slurm") as env:
        first = _sbatch(files["slurm"], _job_env(env, out, STOP_AT="4"), tmp_path / "slurm")
        assert "paused after step 4" in first
        assert [s for s, _ in ckpt.all_checkpoints(out / "checkpoints")] == [4]
        assert not (out / "history.json").exists() and not (out / "model").exists()
        assert [r["step"] for r in metrics.read(out / "metrics.jsonl")["steps"]] == [1, 2, 3, 4]
        second = _sbatch(files["slurm"], _job_env(env, out), tmp_path / "slurm")
    assert "resuming at step 4" in second and "2 processes" in second
    h = metrics.load_history(out)
    assert h["resumed_from"] == [4] and h["world_size"] == 2 and h["backend"] == "torch"
    assert [r["step"] for r in h["steps"]] == list(range(1, 7)) and h["summary"]["steps"] == 6
    assert (out / "model" / "model.safetensors").is_file()
    assert json.loads((out / "run_config.json").read_text())["world_size"] == 2


@pytest.mark.deepspeed
@pytest.mark.slow
def test_the_generated_deepspeed_json_drives_deepspeed_zero1_on_two_cpu_processes(tmp_path):
    """``deepspeed.initialize`` reads the JSON chapter 05 writes (scaled: 2 processes, no bf16 on CPU) and
    trains the tiny model with ZeRO stage 1 over gloo; its batch arithmetic is the layout solver's."""
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        _unavailable("deepspeed is not installed (requirements.txt pins it)")
    cfg = tiny_cfg(**{"train.gpu": "cpu", "train.n_nodes": 1, "train.n_procs": 2, "train.micro_batch": 1,
                      "train.steps": 4, "schedule.warmup_steps": 1, "schedule.cooldown_steps": 1})
    files = launch.write_launch_files(cfg, tmp_path / "job", wall_hours=0.05)
    ds = json.loads(files["deepspeed"].read_text())
    assert ds["zero_optimization"]["stage"] == 1 and ds["bf16"] == {"enabled": False}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
           "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    got = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(ROOT / "tests" / "deepspeed_worker.py"), str(files["deepspeed"]), str(files["spec"]),
                          str(tmp_path), "3"], env=env, capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, (got.stdout + got.stderr)[-5000:]
    r = json.loads((tmp_path / "result.json").read_text())
    assert (r["world_size"], r["backend"], r["zero_stage"]) == (2, "gloo", 1)
    assert r["optimizer"] == "DeepSpeedZeroOptimizer"
    assert (r["micro_batch"], r["grad_accum"], r["train_batch_size"]) == (1, 2, 4)  # 256 tokens = 1 × 2 × 2 × 64
    assert r["global_steps"] == 3 and all(x == x and 0 < x < 20 for x in r["losses"])
    assert (tmp_path / "deepspeed" / "zero").is_dir() and any((tmp_path / "deepspeed" / "zero").iterdir())
