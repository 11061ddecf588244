"""Chapter 05 · Pre-training: batch layout, the engine, checkpoints, launch files, plan, ablations.

* :mod:`.layout` — global batch → micro-batch × accumulation × processes × sequence length;
* :mod:`.engine` — the training loop on accelerate (DDP) with ZeRO-1, logging, validation;
* :mod:`.backends` — ZeRO-1 by PyTorch (`ZeroRedundancyOptimizer`) or by DeepSpeed, behind one interface;
* :mod:`.checkpoint` — atomic, verified checkpoints for exact resume (no per-step history inside);
* :mod:`.metrics` — the per-step JSON-lines log that survives a kill, and the experiment trackers;
* :mod:`.launch` — local runs with torchrun; accelerate / DeepSpeed / SLURM files for 64 P4d nodes;
* :mod:`.preflight` — what must hold before the paper's run is launched, refused by name;
* :mod:`.plan` — the full plan of a run (steps, tokens, GPU-hours, cost, energy, tCO2eq);
* :mod:`.ablations` — Appendices A, B and D at small scale;
* :mod:`.figures` — the chapter's plots.

:func:`pretrained` is what later chapters use: a folder holding a small StableLM trained by this
chapter's engine (``save_pretrained``, safetensors) and its Arcade100k tokenizer, built on first
use and reused afterwards.

>>> from stablelm2 import config
>>> from stablelm2.training import pretrained
>>> path = pretrained(config.load("smoke"))                    # doctest: +SKIP
>>> from transformers import AutoModelForCausalLM, AutoTokenizer
>>> model = AutoModelForCausalLM.from_pretrained(path)         # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .. import chapters
from ..config import Config, ConfigError
from ..files import atomic_dir, atomic_write_json
from .results import History

CHAPTER = chapters.get("05").name


def run_dir(cfg: Config) -> Path:
    """Where the chapter's main run of ``cfg`` trains (keyed by the run's identity)."""
    return cfg.chapter_dir(CHAPTER) / "runs" / f"main-{_key(cfg)}"


def _key(cfg: Config) -> str:
    from . import checkpoint, engine

    return checkpoint.fingerprint(engine.run_identity(cfg, cfg.train.n_procs))[:12]


def pretrained_dir(cfg: Config) -> Path:
    """Where :func:`pretrained` puts (or finds) the model of ``cfg``."""
    return cfg.chapter_dir(CHAPTER) / "pretrained" / _key(cfg)


def pretrained(cfg: Config, *, progress: bool = True) -> Path:
    """A trained small StableLM plus its tokenizer for ``cfg`` (trained here on first use).

    Trains with the chapter's engine on ``cfg.train.n_procs`` processes (2 at ``cpu`` through
    torchrun, 1 at ``smoke`` in this process), resuming an interrupted run, then writes the model
    (``save_pretrained``, safetensors) and ``tokenizer.save_transformers`` into one folder, atomically.
    At ``paper`` nothing is trained here: the released ``stabilityai/stablelm-2-1_6b`` is the model.

    Raises:
        ConfigError: ``cfg.run.preset`` is ``paper`` (use the released checkpoint, ``eval.model``).
    """
    if cfg.run.preset == "paper":
        raise ConfigError("training.pretrained: at preset 'paper' this project does not pre-train a 1.6B model; use "
                          f"the released checkpoint {cfg.eval.model!r} from the Hub (eval.model)")
    out = pretrained_dir(cfg)
    stamp = out / "pretrained.json"
    if stamp.is_file() and (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    rd = run_dir(cfg)
    history = train_main(cfg, progress=progress, out=rd)
    from .. import tokenizer

    with atomic_dir(out) as tmp:  # replaces an incomplete earlier attempt (one without the stamp)
        shutil.copytree(rd / "model", tmp)
        tokenizer.save_transformers(tmp)
        atomic_write_json(tmp / "pretrained.json",
                          {"fingerprint": history["fingerprint"], "identity": history["identity"],
                           "summary": history["summary"], "run_dir": str(rd), "preset": cfg.run.preset}, indent=1)
    return out


def train_main(cfg: Config, *, progress: bool = True, out: Path | None = None) -> History:
    """The chapter's main run of ``cfg`` (read back when finished, resumed when interrupted) in ``out``
    (default :func:`run_dir`)."""
    from . import engine, launch, metrics

    out = out or run_dir(cfg)
    hist = out / "history.json"
    if hist.is_file() and (out / "model").is_dir():
        return metrics.load_history(out)
    if cfg.train.n_procs == 1:
        return engine.train(cfg, out, resume=True, progress=progress)
    return launch.spawn(cfg, out, cfg.train.n_procs, resume=True, progress=progress)


def main_run(cfg: Config, *, progress: bool = True) -> dict[str, Any]:
    """The chapter's training run: ``trained``, ``history``, ``model_dir`` and a ``message`` saying what ran.

    At ``smoke``/``cpu`` it is :func:`pretrained`'s run. At ``paper`` it trains only on GPUs and only
    with ``train.launch=True`` (the paper's configuration on the GPUs at hand, same global batch),
    after :mod:`.preflight` passes for them (:class:`.preflight.PreflightError` names what fails);
    otherwise it trains nothing and says so.
    """
    import torch

    from . import launch

    if cfg.run.preset != "paper":
        path = pretrained(cfg, progress=progress)
        h = train_main(cfg, progress=progress)
        return {"trained": True, "history": h, "model_dir": path,
                "message": f"Trained {h['summary']['steps']} steps ({h['summary']['tokens']:,} tokens) on "
                           f"{h['world_size']} process(es); model and tokenizer in {path}."}
    gpus = torch.cuda.device_count()
    if gpus == 0:
        return {"trained": False, "history": None, "model_dir": None,
                "message": "No GPU on this machine: **nothing was trained.** The plan and the launch files above are "
                           f"what the paper's run needs: `sbatch {launch.FILES['slurm']}` on a cluster of "
                           f"{cfg.train.n_nodes} P4d nodes."}
    if not cfg.train.launch:
        return {"trained": False, "history": None, "model_dir": None,
                "message": f"{gpus} GPU(s) here, but `launch` is False: **nothing was trained.** Rerun with "
                           "launch=True to train the paper's configuration on them (same global batch, more "
                           "accumulation)."}
    out = cfg.chapter_dir(CHAPTER) / "runs" / f"paper-{_key(cfg)}"
    from .. import config as config_lib
    from . import preflight

    here = config_lib.from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "n_procs": gpus, "n_nodes": 1}})
    print(preflight.describe(preflight.require(preflight.check(here, out))), flush=True)  # refuses by name
    h = launch.spawn(cfg, out, gpus, resume=True, progress=progress)
    return {"trained": True, "history": h, "model_dir": out / "model",
            "message": f"Trained the paper's configuration on {gpus} GPU(s): {h['summary']['steps']} steps."}


def claims(ledger: Any, history: History) -> list[Any]:
    """What a small run can say about the paper's throughput numbers: reported only, with ours beside them.

    The paper's 170 and 200 TFLOP/s per A100 (Sec. 2.4); ours in tokens/s and MFU from ``history["summary"]``.
    """
    from .. import facts as F

    s = history["summary"]
    ours = (f"this run: {s['tokens_per_s']:,.0f} tokens/s, MFU {s['mfu']:.1%} of {history['peak_basis']} "
            f"({history['world_size']} process(es), {history['backend']} backend)")
    ledger.refer("overview.mfu", "00_overview", f"MFU of the paper's run (170 of 312 TFLOP/s bf16 per A100); {ours}")
    return [
        ledger.report_only("pretraining.tflops_per_gpu", "throughput per A100 in the paper's layout",
                           fact="train.tflops_per_gpu", why=f"needs A100s; {ours}"),
        ledger.report_only("pretraining.tflops_high", "200 TFLOP/s with less data parallelism and more accumulation",
                           fact="train.tflops_per_gpu_high", why=f"needs A100s ({F.get('train.n_gpus').cite()} of them)"),
    ]
