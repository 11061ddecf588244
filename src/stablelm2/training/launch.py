"""Launching the engine: two local processes with torchrun, or 64 P4d nodes with SLURM + accelerate + DeepSpeed.

* :func:`spawn` starts :mod:`.engine` as a subprocess — ``torchrun --standalone --nproc_per_node N``
  for N > 1 (``accelerate launch --cpu --num_processes 2`` silently starts one process), plain
  ``python -m`` for one — streams its output and returns the metrics history it wrote.
* :func:`write_launch_files` writes what the paper's run needs on a GPU cluster: the DeepSpeed
  ZeRO-1 JSON (bf16, micro-batch 2, accumulation 2, clipping 1.0, fp32 all-reduce), a multi-node
  accelerate config (64 machines × 8 processes) that points at it, a SLURM batch script for 64
  AWS P4d nodes that runs ``accelerate launch`` on every node, and the run spec the engine reads.
  With ``train.gpu = 'cpu'`` the same generator writes them for CPU nodes (torch ZeRO-1 over gloo):
  ``tests/test_training_launchers.py`` submits such a script, scaled to one node, to a real
  one-node SLURM (train, checkpoint, resume through a second ``sbatch``) and gives such a JSON to
  ``deepspeed.initialize`` on two CPU processes.
* :func:`validate_launch_files` loads each file with the public API of the tool that consumes it:
  DeepSpeed's ``DeepSpeedConfig`` (told the data-parallel world of 512 through its ``mpu``
  argument), accelerate's ``load_config_from_file`` and ``launch_command_parser`` (plus checks that
  the files agree), and ``bash -n`` plus a check of every ``#SBATCH`` directive.

>>> from stablelm2 import config
>>> from stablelm2.training import backends, launch, layout
>>> cfg = config.load("paper")
>>> ds = backends.deepspeed_config(cfg, layout.from_config(cfg))
>>> ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["zero_optimization"]["stage"]
(2, 2, 1)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .. import config as config_lib
from .. import hardware
from ..config import Config
from ..files import atomic_write_json, atomic_write_text
from . import layout as layout_lib
from .backends import deepspeed_config
from .results import History

ENGINE_MODULE = "stablelm2.training.engine"
FILES = {"deepspeed": "deepspeed_zero1.json", "accelerate": "accelerate_multinode.yaml",
         "slurm": "train_p4d.sbatch", "spec": "run_spec.json"}


class LaunchError(RuntimeError):
    """A launched run failed, or a launch file does not load; the message carries the tool's words."""


# ------------------------------------------------------------------------------ local runs


def command(nproc: int, spec: Path, out_dir: Path, *, resume: bool = True, progress: bool = True) -> list[str]:
    """The command line that runs the engine on ``nproc`` local processes (torchrun for more than one).

    Raises:
        LaunchError: ``nproc`` < 1.
    """
    if nproc < 1:
        raise LaunchError(f"nproc = {nproc} must be at least 1")
    tail = ["-m", ENGINE_MODULE, "--config", str(spec), "--out", str(out_dir)]
    tail += [] if resume else ["--no-resume"]
    tail += [] if progress else ["--no-progress"]
    if nproc == 1:
        return [sys.executable, *tail]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *tail]


def write_spec(cfg: Config, path: Path, *, weights: dict[str, float] | None = None) -> Path:
    """The JSON the engine's command line reads: the resolved config plus the run's options."""
    atomic_write_json(path, {"config": cfg.to_dict(), "weights": weights})
    return path


def start(cfg: Config, out_dir: Path | str, nproc: int, *, weights: dict[str, float] | None = None,
          resume: bool = True, progress: bool = True,
          stdout: Any = None) -> subprocess.Popen:
    """Start the engine in the background (its own process group, so it can be stopped as one)."""
    out_dir = Path(out_dir)
    spec = Path(tempfile.mkdtemp(prefix="stablelm2-spec-")) / "spec.json"
    write_spec(cfg, spec, weights=weights)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # glibc keeps freed memory for reuse instead of mapping fresh pages for every step's logits
    # (measured: more system time in page faults than arithmetic; see hardware.reuse_freed_memory)
    for k, v in hardware.REUSE_FREED_MEMORY_ENV.items():
        env.setdefault(k, v)
    return subprocess.Popen(command(nproc, spec, out_dir, resume=resume, progress=progress), env=env,
                            stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to a started run and every process under it (torchrun puts its workers in their
    own sessions, so signalling the launcher's process group alone would leave them running).
    Returns the process ids signalled; waits until they are gone."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)
    proc.wait(timeout=30)  # reap the launcher through Popen, which keeps its exit status
    psutil.wait_procs(tree[1:], timeout=30)
    return [p.pid for p in tree]


def spawn(cfg: Config, out_dir: Path | str, nproc: int, *, weights: dict[str, float] | None = None,
          resume: bool = True, progress: bool = True,
          echo: bool = True) -> History:
    """Run the engine on ``nproc`` local processes to the end; its history (:func:`.metrics.load_history`).

    ``echo`` streams the run's output (torchrun's warnings left out).

    Raises:
        LaunchError: the run exited non-zero (the message carries the engine's error line, a worker's
            exception, or the last lines of its output).
    """
    proc = start(cfg, out_dir, nproc, weights=weights, resume=resume, progress=progress)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip("\n")])[-400:]
        if echo and not line.startswith("W") and "OMP_NUM_THREADS" not in line and not set(line.strip()) <= {"*"}:
            print(line, end="", file=sys.stderr if "\r" in line or "it/s" in line or "step/s" in line else sys.stdout,
                  flush=True)
    rc = proc.wait()
    if rc != 0:
        raise LaunchError(f"the training run in {out_dir} failed (exit code {rc}): {_failure(tail)}")
    from .metrics import load_history

    return load_history(out_dir)


def _failure(lines: list[str]) -> str:
    """The engine's own error line, or a worker's exception, or the last lines of the output."""
    errors = [t[len("error: "):] for t in lines if t.startswith("error:")]
    if errors:
        return errors[-1]
    raised = [t for t in lines if re.match(r"^(\[rank\d+\]: )?[\w.]*(Error|Exception)\b.*", t)]
    return raised[-1] if raised else "\n".join(lines[-15:])


# ------------------------------------------------------------------------------ cluster files


def cluster_backend(cfg: Config) -> str:
    """The ZeRO-1 engine of the cluster ``cfg`` is written for: DeepSpeed on GPU nodes unless ``train.backend``
    is ``'torch'``; PyTorch's ``ZeroRedundancyOptimizer`` on CPU nodes (``train.gpu = 'cpu'``), where
    accelerate would ignore a DeepSpeed plugin."""
    return "torch" if cfg.train.gpu == "cpu" or cfg.train.backend == "torch" else "deepspeed"


def accelerate_config(cfg: Config, deepspeed_file: str) -> dict[str, Any]:
    """accelerate's multi-node config: ``train.n_nodes`` machines × ``n_procs / n_nodes`` processes.

    ``distributed_type`` is ``DEEPSPEED`` (pointing at ``deepspeed_file``) for the DeepSpeed backend,
    else ``MULTI_GPU``: accelerate then starts the processes with torchrun, and the engine's
    ``Accelerator(cpu=True)`` joins them over gloo on CPU nodes (``use_cpu`` would start one process).
    """
    t = cfg.train
    ds = cluster_backend(cfg) == "deepspeed"
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "DEEPSPEED" if ds else "MULTI_GPU",
        **({"deepspeed_config": {"deepspeed_config_file": deepspeed_file, "deepspeed_multinode_launcher": "standard",
                                 "zero3_init_flag": False}} if ds else {}),
        "machine_rank": 0,
        "main_process_ip": "127.0.0.1",
        "main_process_port": 29500,
        "main_training_function": "main",
        "num_machines": t.n_nodes,
        "num_processes": t.n_procs,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        "debug": False,
        "downcast_bf16": "no",
        "tpu_env": [],
        "tpu_use_cluster": False,
        "tpu_use_sudo": False,
    }


def slurm_script(cfg: Config, *, wall_hours: float, accelerate_file: str, spec_file: str) -> str:
    """A SLURM batch script: ``train.n_nodes`` nodes, one ``accelerate launch`` per node (``srun``).

    GPU nodes are AWS P4d (EFA networking, ``--gpus-per-node``, whole nodes); ``train.gpu = 'cpu'``
    writes the same script for CPU nodes (how the tests run it on a one-node SLURM). At submission,
    ``OUT_DIR`` (default ``run/`` beside the script), ``MAIN_PORT`` (default 29500) and ``STOP_AT``
    (end this job after that step, with a checkpoint there, so a run longer than the partition's
    time limit is a chain of jobs; each job resumes from the newest checkpoint) may be exported.
    """
    t = cfg.train
    per_node = t.n_procs // t.n_nodes
    gpu = t.gpu != "cpu"
    hours = max(1, int(wall_hours * 1.15 + 0.999))  # 15 % head-room for evaluation, checkpoints and restarts
    days, rem = divmod(hours, 24)
    what = (f"on {t.n_nodes} AWS P4d nodes ({t.n_procs} × {t.gpu})" if gpu
            else f"on {t.n_nodes} CPU node(s), {per_node} processes each")
    nodes = (f"#SBATCH --gpus-per-node={per_node}\n#SBATCH --cpus-per-task=96\n#SBATCH --exclusive\n" if gpu
             else f"#SBATCH --cpus-per-task={per_node}\n")
    net = ("# EFA networking on P4d (libfabric provider), as AWS recommends for NCCL.\n"
           "export FI_PROVIDER=efa\nexport FI_EFA_USE_DEVICE_RDMA=1\nexport NCCL_DEBUG=WARN\n") if gpu else ""
    return f"""#!/bin/bash
# Stable LM 2 pre-training ({cfg.run.preset} preset) {what}, written by stablelm2.
#SBATCH --job-name=stablelm2-{cfg.run.preset}
#SBATCH --nodes={t.n_nodes}
#SBATCH --ntasks-per-node=1
{nodes}#SBATCH --time={days}-{rem:02d}:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR}}"
{net}export MAIN_ADDR="$(scontrol show hostnames "${{SLURM_JOB_NODELIST}}" | head -n 1)"
export MAIN_PORT="${{MAIN_PORT:-29500}}"
export OUT_DIR="${{OUT_DIR:-${{SLURM_SUBMIT_DIR}}/run}}"
export STOP_AT="${{STOP_AT:-}}"
srun --kill-on-bad-exit=1 bash -c 'accelerate launch --config_file {accelerate_file} \\
  --machine_rank "${{SLURM_NODEID}}" --main_process_ip "${{MAIN_ADDR}}" --main_process_port "${{MAIN_PORT}}" \\
  -m {ENGINE_MODULE} --config {spec_file} --out "${{OUT_DIR}}" ${{STOP_AT:+--stop-at "${{STOP_AT}}"}}'
"""


def write_launch_files(cfg: Config, directory: Path | str, *, wall_hours: float) -> dict[str, Path]:
    """Write the four launch files for ``cfg``'s cluster into ``directory``; returns name → path."""
    d = Path(directory)
    lay = layout_lib.from_config(cfg)
    paths = {k: d / v for k, v in FILES.items()}
    bf16 = cfg.train.precision == "bf16" and cfg.train.gpu != "cpu"
    atomic_write_json(paths["deepspeed"], deepspeed_config(cfg, lay, bf16=bf16))
    atomic_write_text(paths["accelerate"], yaml.safe_dump(accelerate_config(cfg, FILES["deepspeed"]), sort_keys=True))
    atomic_write_text(paths["slurm"], slurm_script(cfg, wall_hours=wall_hours, accelerate_file=FILES["accelerate"],
                                                   spec_file=FILES["spec"]))
    write_spec(cfg, paths["spec"])
    return paths


# ------------------------------------------------------------------------------ validation


class DataParallelUnit:
    """A model-parallel unit (DeepSpeed's ``mpu`` argument) of pure data parallelism over ``world`` ranks:
    how a one-process check tells ``DeepSpeedConfig`` the cluster's data-parallel size."""

    def __init__(self, world: int):
        self.world = world

    def get_data_parallel_world_size(self) -> int:
        """``world``: every rank is a data-parallel rank."""
        return self.world

    def get_data_parallel_rank(self) -> int:
        """0: the check runs as the first rank."""
        return 0

    def get_model_parallel_world_size(self) -> int:
        """1: no model parallelism (the paper needs no model sharding, Sec. 2.4)."""
        return 1

    def get_model_parallel_rank(self) -> int:
        """0: the only model-parallel rank."""
        return 0


def extensions_dir() -> Path | None:
    """Where torch builds DeepSpeed's CPU op for this process: ``$TORCH_EXTENSIONS_DIR`` when set, else this
    virtual environment's ``torch_extensions/`` (set here) when the venv is writable, else ``None`` (torch's
    default: outside a venv, a conda environment, or a read-only venv).

    Torch's default is one folder for every environment (``~/.cache/torch_extensions``); a build there by
    another venv (another clone, CI) makes the next validation here rebuild it (30–40 s on 2 cores, measured).
    """
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    if sys.prefix == sys.base_prefix or not os.access(sys.prefix, os.W_OK):
        return None
    os.environ["TORCH_EXTENSIONS_DIR"] = str(Path(sys.prefix) / "torch_extensions")
    return Path(os.environ["TORCH_EXTENSIONS_DIR"])


def validate_deepspeed(path: Path, world_size: int) -> dict[str, Any]:
    """Parse with DeepSpeed's ``DeepSpeedConfig`` as a ``world_size``-rank data-parallel job would.

    DeepSpeed reads the data-parallel size from its process group and the ``mpu`` it is given: here
    a one-rank gloo group (torch's ``TCPStore`` on a free local port; torn down afterwards, unless
    this process already had a group) and :class:`DataParallelUnit` ``(world_size)``. Raises
    :class:`LaunchError` with DeepSpeed's words when it refuses the file. Its CPU op is built (once) in
    :func:`extensions_dir`.
    """
    extensions_dir()
    import deepspeed
    import torch.distributed as dist
    from deepspeed.runtime.config import DeepSpeedConfig

    own = not dist.is_initialized()
    if own:
        store = dist.TCPStore("127.0.0.1", 0, 1, True)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
        parsed = DeepSpeedConfig(str(path), mpu=DataParallelUnit(world_size))
    except (AssertionError, ValueError, KeyError, TypeError) as exc:
        raise LaunchError(f"DeepSpeed refuses {path}: {exc}") from exc
    finally:
        if own:
            dist.destroy_process_group()
    return {"tool": "deepspeed.runtime.config.DeepSpeedConfig", "world_size": parsed.world_size,
            "train_batch_size": parsed.train_batch_size, "micro_batch": parsed.train_micro_batch_size_per_gpu,
            "grad_accum": parsed.gradient_accumulation_steps, "zero_stage": int(parsed.zero_optimization_stage),
            "bf16": bool(parsed.bfloat16_config.enabled), "gradient_clipping": parsed.gradient_clipping,
            "communication_data_type": str(parsed.communication_data_type)}


def validate_accelerate(path: Path, slurm_path: Path | None = None, cfg: Config | None = None) -> dict[str, Any]:
    """Load with accelerate's ``load_config_from_file``, parse the SLURM script's ``accelerate launch``
    arguments with accelerate's own ``launch_command_parser``, and check that they agree with each
    other (and with ``cfg``'s cluster): process and machine counts, the DeepSpeed file it names.

    Only public accelerate functions are used; ``accelerate launch`` itself runs the scaled-down
    script under a real SLURM in ``tests/test_training_launchers.py``. Returns what was parsed.

    Raises:
        LaunchError: accelerate refuses the config file or the launch arguments, the SLURM script has no
            ``accelerate launch``, or the files disagree (each problem named).
    """
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    path = Path(path)
    try:
        conf = load_config_from_file(str(path))
    except (TypeError, ValueError, KeyError) as exc:
        raise LaunchError(f"accelerate refuses {path}: {exc}") from exc
    argv = ["--config_file", str(path), "--machine_rank", "3", "--main_process_ip", "10.0.0.1",
            "-m", ENGINE_MODULE, "--config", "run_spec.json", "--out", "run"]
    if slurm_path is not None:
        argv = _accelerate_argv(Path(slurm_path).read_text(encoding="utf-8"), path)
    try:
        args = launch_command_parser().parse_args(argv)
    except SystemExit as exc:
        raise LaunchError(f"accelerate launch refuses the arguments {argv}") from exc
    problems = []
    dist_type = str(getattr(conf.distributed_type, "value", conf.distributed_type))
    ds_file = None
    if dist_type == "DEEPSPEED":
        ds_file = (conf.deepspeed_config or {}).get("deepspeed_config_file")
        if not ds_file or not (path.parent / ds_file).is_file():
            problems.append(f"deepspeed_config_file {ds_file!r} is not a file beside {path.name}")
    elif dist_type != "MULTI_GPU":
        problems.append(f"distributed_type {dist_type} is neither DEEPSPEED nor MULTI_GPU")
    if conf.num_processes % conf.num_machines:
        problems.append(f"num_processes {conf.num_processes} is not a multiple of num_machines {conf.num_machines}")
    if cfg is not None and (conf.num_machines, conf.num_processes) != (cfg.train.n_nodes, cfg.train.n_procs):
        problems.append(f"{conf.num_machines} machines × {conf.num_processes} processes is not the config's "
                        f"{cfg.train.n_nodes} × {cfg.train.n_procs}")
    if not args.module or args.training_script != ENGINE_MODULE:
        problems.append(f"the launch runs {args.training_script!r}, not `-m {ENGINE_MODULE}`")
    if problems:
        raise LaunchError(f"accelerate launch files disagree ({path}): " + "; ".join(problems))
    return {"tool": "accelerate load_config_from_file + launch_command_parser", "distributed_type": dist_type,
            "num_machines": conf.num_machines, "num_processes": conf.num_processes,
            "use_deepspeed": dist_type == "DEEPSPEED", "deepspeed_config_file": ds_file,
            "module": bool(args.module), "training_script": args.training_script,
            "machine_rank_from_slurm": args.machine_rank}


def _accelerate_argv(script: str, config_path: Path) -> list[str]:
    """The ``accelerate launch`` arguments of a SLURM script, with shell variables given example values."""
    m = re.search(r"accelerate launch (.*?)'", script, flags=re.S)
    if not m:
        raise LaunchError("the SLURM script has no `accelerate launch` command")
    text = m.group(1).replace("\\\n", " ")
    text = text.replace('${STOP_AT:+--stop-at "${STOP_AT}"}', "")  # empty unless the submitter exports STOP_AT
    example = {"SLURM_NODEID": "3", "MAIN_ADDR": "10.0.0.1", "MAIN_PORT": "29500", "OUT_DIR": "run"}
    text = re.sub(r"\$\{(\w+)\}", lambda v: example.get(v.group(1), v.group(0)), text)
    argv = shlex.split(text)
    i = argv.index("--config_file")
    argv[i + 1] = str(config_path)
    return argv


def validate_slurm(path: Path, cfg: Config) -> dict[str, Any]:
    """``bash -n`` syntax check plus the ``#SBATCH`` directives against the config's cluster.

    ``sbatch`` parses the script for real in ``tests/test_training_launchers.py``, which submits the
    same generator's script, scaled to one CPU node, to a one-node SLURM cluster.

    Raises:
        LaunchError: ``bash -n`` refuses the script, ``--nodes`` × GPUs (or processes) per node is not the
            config's cluster, or ``--time`` is not ``D-HH:MM:SS``.
    """
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LaunchError(f"bash -n refuses {path}: {proc.stderr.strip()}")
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", path.read_text(encoding="utf-8"), flags=re.M))
    nodes = int(directives.get("nodes", 0))
    per_node = int(directives.get("gpus-per-node" if cfg.train.gpu != "cpu" else "cpus-per-task", 0))
    if nodes != cfg.train.n_nodes or nodes * per_node != cfg.train.n_procs:
        unit = "GPUs" if cfg.train.gpu != "cpu" else "processes"
        raise LaunchError(f"{path}: --nodes={nodes} × {per_node} {unit} per node is not the config's "
                          f"{cfg.train.n_nodes} nodes × {cfg.train.n_procs // cfg.train.n_nodes} {unit}")
    if not re.fullmatch(r"\d+-\d{2}:\d{2}:\d{2}", directives.get("time", "")):
        raise LaunchError(f"{path}: --time={directives.get('time')!r} is not SLURM's D-HH:MM:SS")
    return {"tool": "bash -n + #SBATCH directives", "nodes": nodes,
            "gpus_per_node": per_node if cfg.train.gpu != "cpu" else 0, "time": directives["time"],
            "sbatch_directives": len(directives)}


def validate_launch_files(cfg: Config, paths: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Load every launch file with the tool that consumes it; :class:`LaunchError` on the first refusal."""
    spec = json.loads(paths["spec"].read_text(encoding="utf-8"))
    back = config_lib.from_dict(spec["config"])
    if back != cfg:
        raise LaunchError(f"{paths['spec']} does not rebuild the config it was written from")
    return {
        "deepspeed": validate_deepspeed(paths["deepspeed"], cfg.train.n_procs),
        "accelerate": validate_accelerate(paths["accelerate"], paths["slurm"], cfg),
        "slurm": validate_slurm(paths["slurm"], cfg),
        "spec": {"tool": "stablelm2.config.load (the engine's own reader)", "preset": back.run.preset,
                 "steps": back.train.steps},
    }


def check_tools(wall_hours: float = 1.0) -> dict[str, dict[str, Any]]:
    """Write the ``paper`` preset's launch files into a temporary folder and load each with the tool that consumes
    it, as chapter 05 does (:func:`validate_launch_files`); returns its table. Raises :class:`LaunchError` on a
    refusal.

    ``make venv`` runs it once: the first start of DeepSpeed's communication backend in a virtual environment
    compiles DeepSpeed's shared-memory op for the CPU (38 s on the 2-core reference machine; torch caches it per
    environment), which chapter 05 would otherwise pay in its first ``make report``.
    """
    cfg = config_lib.load("paper")
    with tempfile.TemporaryDirectory(prefix="stablelm2-launch-") as tmp:
        return validate_launch_files(cfg, write_launch_files(cfg, tmp, wall_hours=wall_hours))


def main(argv: list[str] | None = None) -> int:
    """``python -m stablelm2.training.launch check-tools``: :func:`check_tools`, one line per tool; exit status 1
    with the tool's words when one refuses its file. Raises ``SystemExit`` on bad arguments (argparse)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m stablelm2.training.launch",
                                 description="Load the paper preset's launch files with the tools that consume them.")
    ap.add_argument("command", choices=["check-tools"])
    ap.parse_args(argv)
    try:
        checks = check_tools()
    except LaunchError as exc:
        print(f"launch files refused: {exc}", file=sys.stderr)
        return 1
    for name, row in checks.items():
        print(f"{name}: {row['tool']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
