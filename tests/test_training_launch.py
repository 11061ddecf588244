import json

import pytest
import yaml

from stablelm2 import config, facts
from stablelm2.ledger import DERIVED, Ledger
from stablelm2.training import backends, launch, layout, plan


@pytest.fixture(scope="module")
def paper_files(tmp_path_factory):
    cfg = config.load("paper")
    p = plan.build(cfg)
    return cfg, p, launch.write_launch_files(cfg, tmp_path_factory.mktemp("launch"), wall_hours=p["wall_hours"])


def test_paper_plan_numbers():
    p = plan.build(config.load("paper"))
    assert p["steps"] == 500_000 and p["tokens"] == 500_000 * 8_388_608
    assert p["warmup_steps"] == facts.value("schedule.warmup_steps") and p["cooldown_start_step"] == 420_000
    assert p["cooldown_tokens"] == facts.value("schedule.cooldown_tokens_derived")
    assert p["n_gpus"] == 512 and p["tflops_per_gpu"] == 170 and p["mfu"] == pytest.approx(0.5449, abs=1e-4)
    hours = p["tokens"] * p["flops_per_token_neox"] / 170e12 / 3600
    assert p["gpu_hours"] == pytest.approx(hours) and p["wall_days"] == pytest.approx(hours / 512 / 24)
    assert p["cost_usd"] == pytest.approx(hours * 3.5)
    assert p["emissions_t"] == pytest.approx(p["energy_mwh"] * 0.385)
    assert p["gpu_hours_model_flops"] < p["gpu_hours"]
    assert [r["quantity"] for r in plan.table(p)][:3] == ["global batch", "optimizer steps", "tokens"]


def test_paper_plan_claims_are_re_derived():
    led = Ledger("05_pretraining")
    p = plan.build(config.load("paper"))
    got = {c.id: c for c in plan.claims(led, p)}
    assert {c.status for c in got.values()} == {DERIVED}
    assert got["pretraining.grad_accum"].ours == 2
    # facts another chapter owns are referenced, never recorded again here
    assert not {"pretraining.global_batch", "overview.global_batch", "carbon.gpu_hours"} & set(got)
    assert {r["claim"]: r["chapter"] for r in led.references} == {
        "overview.global_batch": "00_overview", "overview.cooldown_tokens": "00_overview",
        "overview.two_epochs": "00_overview", "carbon.gpu_hours": "09_carbon"}
    with pytest.raises(ValueError, match="paper preset"):
        plan.claims(led, {**p, "preset": "cpu"})


def test_launch_files_say_what_the_paper_ran(paper_files):
    cfg, p, files = paper_files
    ds = json.loads(files["deepspeed"].read_text())
    assert ds["train_micro_batch_size_per_gpu"] == 2 and ds["gradient_accumulation_steps"] == 2
    assert ds["train_batch_size"] == 2048 and ds["zero_optimization"]["stage"] == 1
    assert ds["bf16"] == {"enabled": True} and ds["gradient_clipping"] == 1.0
    acc = yaml.safe_load(files["accelerate"].read_text())
    assert (acc["num_machines"], acc["num_processes"], acc["distributed_type"]) == (64, 512, "DEEPSPEED")
    slurm = files["slurm"].read_text()
    assert "#SBATCH --nodes=64" in slurm and "#SBATCH --gpus-per-node=8" in slurm
    assert "accelerate launch --config_file accelerate_multinode.yaml" in slurm
    assert "#SBATCH --output=%x-%j.out" in slurm  # SLURM opens it before the script runs: no sub-folder
    spec = json.loads(files["spec"].read_text())
    assert spec["config"]["train"]["steps"] == 500_000


def test_launch_files_load_in_the_tools_that_consume_them(paper_files):
    cfg, _, files = paper_files
    got = launch.validate_launch_files(cfg, files)
    assert got["deepspeed"]["world_size"] == 512 and got["deepspeed"]["train_batch_size"] == 2048
    assert (got["deepspeed"]["zero_stage"], got["deepspeed"]["bf16"], got["deepspeed"]["grad_accum"]) == (1, True, 2)
    assert got["accelerate"]["num_machines"] == 64 and got["accelerate"]["num_processes"] == 512
    assert got["accelerate"]["use_deepspeed"] and got["accelerate"]["module"]
    assert got["accelerate"]["deepspeed_config_file"] == "deepspeed_zero1.json"
    assert got["accelerate"]["training_script"] == "stablelm2.training.engine"
    assert got["slurm"]["nodes"] == 64 and got["slurm"]["gpus_per_node"] == 8


def test_broken_launch_files_are_refused(paper_files, tmp_path):
    cfg, p, _ = paper_files
    files = launch.write_launch_files(cfg, tmp_path, wall_hours=p["wall_hours"])
    ds = json.loads(files["deepspeed"].read_text())
    ds["train_batch_size"] = 4096
    files["deepspeed"].write_text(json.dumps(ds))
    with pytest.raises(launch.LaunchError, match="DeepSpeed refuses .*4096 != 2 \\* 2 \\* 512"):
        launch.validate_deepspeed(files["deepspeed"], 512)
    acc = yaml.safe_load(files["accelerate"].read_text())
    acc["distributed_typo"] = "DEEPSPEED"
    files["accelerate"].write_text(yaml.safe_dump(acc))
    with pytest.raises(launch.LaunchError, match="accelerate refuses"):
        launch.validate_accelerate(files["accelerate"])
    acc.pop("distributed_typo")
    acc["num_processes"] = 500
    files["accelerate"].write_text(yaml.safe_dump(acc))
    with pytest.raises(launch.LaunchError, match="500 is not a multiple of num_machines 64.*not the config's 64 × 512"):
        launch.validate_accelerate(files["accelerate"], files["slurm"], cfg)
    files["slurm"].write_text(files["slurm"].read_text().replace("--nodes=64", "--nodes=32"))
    with pytest.raises(launch.LaunchError, match="--nodes=32"):
        launch.validate_slurm(files["slurm"], cfg)
    files["slurm"].write_text("#!/bin/bash\nif then fi\n")
    with pytest.raises(launch.LaunchError, match="bash -n refuses"):
        launch.validate_slurm(files["slurm"], cfg)


def test_no_private_api_and_no_mock_in_the_library():
    import ast
    from pathlib import Path

    import stablelm2

    bad = []
    for f in Path(stablelm2.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [a.name for a in node.names]
                if node.module.startswith("unittest") or any(n.startswith("_") and not n.startswith("__")
                                                              for n in names):
                    bad.append(f"{f.name}: from {node.module} import {', '.join(names)}")
            if isinstance(node, ast.Import) and any(a.name.startswith("unittest") for a in node.names):
                bad.append(f"{f.name}: import unittest")
    assert bad == []


def test_a_cpu_cluster_gets_torchrun_through_accelerate_and_a_cpu_batch_script(tmp_path):
    from .training_runs import tiny_cfg

    cfg = tiny_cfg(**{"train.gpu": "cpu", "train.n_nodes": 1, "train.n_procs": 2})
    files = launch.write_launch_files(cfg, tmp_path, wall_hours=0.1)
    acc = yaml.safe_load(files["accelerate"].read_text())
    assert acc["distributed_type"] == "MULTI_GPU" and "deepspeed_config" not in acc and acc["use_cpu"] is False
    slurm = files["slurm"].read_text()
    assert "--gpus-per-node" not in slurm and "FI_PROVIDER" not in slurm and "#SBATCH --cpus-per-task=2" in slurm
    got = launch.validate_launch_files(cfg, files)
    assert got["deepspeed"]["world_size"] == 2 and got["deepspeed"]["bf16"] is False
    assert got["slurm"]["nodes"] == 1 and got["accelerate"]["num_processes"] == 2


def test_local_command_lines():
    spec, out = "/x/spec.json", "/x/run"
    assert launch.command(1, spec, out)[1:3] == ["-m", "stablelm2.training.engine"]
    two = launch.command(2, spec, out, resume=False)
    assert two[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] and "--no-resume" in two
    deepspeed = backends.deepspeed_config(config.load("cpu"), layout.from_config(config.load("cpu"), n_procs=2))
    assert deepspeed["train_batch_size"] == 16 and deepspeed["bf16"] == {"enabled": False}  # 2,048 tokens of 128


def test_a_failed_run_reports_the_workers_error():
    out = ["W1128 noise", "[rank1]: Traceback (most recent call last):", "[rank1]:   File x", "[rank1]: KeyError: 'w'",
           "E1128 failed (exitcode: 1)", "  traceback : To enable traceback see: …"]
    assert launch._failure(out) == "[rank1]: KeyError: 'w'"
    assert launch._failure(out + ["error: checkpoint … is damaged"]) == "checkpoint … is damaged"


def test_check_tools_loads_the_paper_launch_files_and_reports_a_refusal(capsys, monkeypatch):
    """`make venv`'s step: the paper preset's files through their tools (exit 0, a line per tool); a refusal
    exits 1 with the tool's words."""
    assert launch.main(["check-tools"]) == 0
    out = capsys.readouterr().out
    assert "deepspeed: deepspeed.runtime.config.DeepSpeedConfig" in out and "slurm: bash -n" in out

    def refuse(cfg, paths):
        raise launch.LaunchError("DeepSpeed refuses ds.json: train_batch_size is not equal to micro × accum × world")

    monkeypatch.setattr(launch, "validate_launch_files", refuse)
    assert launch.main(["check-tools"]) == 1
    assert "launch files refused: DeepSpeed refuses ds.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        launch.main(["nonsense"])


def test_deepspeeds_op_is_built_in_this_environment_not_in_the_folder_all_share(monkeypatch, tmp_path):
    import os
    import sys

    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    (tmp_path / "venv").mkdir()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert launch.extensions_dir() == tmp_path / "venv" / "torch_extensions"
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(tmp_path / "venv" / "torch_extensions")  # torch reads it here
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "mine"))  # the user's choice stands
    assert launch.extensions_dir() == tmp_path / "mine"
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "missing"))  # a venv this process cannot write: torch's default
    assert launch.extensions_dir() is None and "TORCH_EXTENSIONS_DIR" not in os.environ
    monkeypatch.setattr(sys, "base_prefix", sys.prefix)  # no venv: torch's default
    assert launch.extensions_dir() is None and "TORCH_EXTENSIONS_DIR" not in os.environ
