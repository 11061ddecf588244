"""Pre-flight: what must hold before the paper's run is launched, resolved, printed, and refused by name.

:func:`check` resolves, on the machine that will launch (one node of the cluster):

* ``gpus`` — the GPUs torch sees and the memory of each, against chapter 03's per-GPU memory
  estimate (:func:`stablelm2.model.memory_per_gpu`) for the chosen micro-batch;
* ``backend`` — the collective backend (NCCL on GPUs, gloo on CPU), that torch has it, and the
  environment a multi-node launch needs (``MASTER_ADDR``/``MASTER_PORT``, or SLURM's job variables);
* ``disk`` — free space where the run writes, against the checkpoints it keeps
  (:func:`stablelm2.training.checkpoint.estimated_bytes` × the number on disk at once while saving);
* ``hub`` — that the Hugging Face Hub answers and that each dataset of the mix can be read (a
  gated or missing one is named);
* ``plan`` — the run's tokens, steps, hours, cost and tCO2eq (chapter 05's plan; informational).

Each item is ``ok`` or carries a named reason; :func:`require` raises :class:`PreflightError`
listing every failed item. The hardware and network queries go through a :class:`Probe` (the real
one by default); tests pass a fake probe.

>>> from stablelm2 import config
>>> from stablelm2.training import preflight
>>> probe = preflight.Probe(gpus=lambda: [("NVIDIA A100-SXM4-40GB", 40 * 2**30)] * 8,
...                        disk_free=lambda path: 10 * 2**40, hub=lambda ids: {i: None for i in ids},
...                        env=lambda: {"SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "p4d-[1-64]"},
...                        has_backend=lambda name: True)
>>> rows = preflight.check(config.load("paper"), "/tmp/run", probe=probe)
>>> [(r["item"], r["ok"]) for r in rows]
[('gpus', True), ('backend', True), ('disk', True), ('hub', True), ('plan', True)]
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config


class PreflightError(RuntimeError):
    """One or more pre-flight items failed; the message names each and its fix."""


def _real_gpus() -> list[tuple[str, int]]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [(torch.cuda.get_device_name(i), int(torch.cuda.get_device_properties(i).total_memory))
            for i in range(torch.cuda.device_count())]


def _real_disk_free(path: Path) -> int:
    p = Path(path)
    while not p.exists():
        p = p.parent
    return int(shutil.disk_usage(p).free)


def _real_hub(dataset_ids: list[str], api: Any = None) -> dict[str, str | None]:
    """``{dataset id: None if readable else the reason}`` (one metadata request per dataset).

    ``api``: a ``huggingface_hub.HfApi`` (default: a new one with this machine's token)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    api = api or HfApi()
    out: dict[str, str | None] = {}
    for ds in dataset_ids:
        try:
            info = api.dataset_info(ds)
            out[ds] = "gated: accept its terms on the Hub and log in (hf auth login)" if getattr(info, "gated", False) \
                and not _gated_access(api, ds) else None
        except GatedRepoError:
            out[ds] = "gated: accept its terms on the Hub and log in (hf auth login)"
        except RepositoryNotFoundError:
            out[ds] = "not found (or private without access)"
        except (HfHubHTTPError, OSError) as exc:
            out[ds] = f"the Hub did not answer ({type(exc).__name__}: {exc})"
    return out


def _gated_access(api: Any, ds: str) -> bool:
    """Whether this token may read a gated dataset: listing its files needs the access.

    Only the Hub's own "gated" answer means no access; an outage or another HTTP error propagates to the
    caller, which reports it as "the Hub did not answer" rather than as a missing licence acceptance.
    """
    from huggingface_hub.errors import GatedRepoError

    try:
        api.list_repo_files(ds, repo_type="dataset")
        return True
    except GatedRepoError:
        return False


def _real_has_backend(name: str) -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and {"nccl": dist.is_nccl_available, "gloo": dist.is_gloo_available}[name]())


@dataclass
class Probe:
    """The machine and network queries of a pre-flight (real by default; tests replace them)."""

    gpus: Callable[[], list[tuple[str, int]]] = _real_gpus
    """``[(name, total memory in bytes)]`` of the GPUs this node sees."""
    disk_free: Callable[[Path], int] = _real_disk_free
    """Free bytes on the file system that holds the path (or its nearest existing parent)."""
    hub: Callable[[list[str]], dict[str, str | None]] = _real_hub
    """For each dataset id, ``None`` when it can be read, else why not."""
    env: Callable[[], dict[str, str]] = field(default=lambda: dict(os.environ))
    """The environment the launch runs in."""
    has_backend: Callable[[str], bool] = _real_has_backend
    """Whether torch.distributed has the named collective backend."""


def offline_hub(dataset_ids: list[str]) -> dict[str, str | None]:
    """The Hub item of a run that must stay offline (``smoke``/``cpu``): every dataset not checked."""
    return {ds: "not checked: this run is offline (smoke and cpu never touch the network)" for ds in dataset_ids}


def probe_for(cfg: Config) -> Probe:
    """The real probe, except that an offline ``cfg`` never asks the Hub (:func:`offline_hub`)."""
    return Probe(hub=offline_hub) if cfg.run.offline else Probe()


def _row(item: str, ok: bool, detail: str, **numbers: Any) -> dict[str, Any]:
    return {"item": item, "ok": ok, "detail": detail, **numbers}


def _gpus(cfg: Config, probe: Probe) -> dict[str, Any]:
    from .. import model

    need = model.memory_per_gpu(cfg, gpu=cfg.train.gpu if cfg.train.gpu != "cpu" else "A100-40GB")["total"]
    gpus = probe.gpus()
    per_node = cfg.train.n_procs // cfg.train.n_nodes
    if not gpus:
        return _row("gpus", False, f"no CUDA GPU on this node; the run needs {per_node} per node with "
                                   f"≥ {need / 2**30:.1f} GiB each (chapter 03, micro-batch {cfg.train.micro_batch})",
                    need_bytes=need, found=0)
    smallest = min(mem for _, mem in gpus)
    problems = []
    if len(gpus) < per_node:
        problems.append(f"{len(gpus)} GPU(s) here, the layout needs {per_node} per node "
                        f"({cfg.train.n_procs} processes on {cfg.train.n_nodes} nodes)")
    if smallest < need:
        problems.append(f"{smallest / 2**30:.1f} GiB per GPU is less than chapter 03's estimate of {need / 2**30:.1f} "
                        f"GiB at micro-batch {cfg.train.micro_batch}; lower train.micro_batch (accumulation grows)")
    names = sorted({n for n, _ in gpus})
    detail = "; ".join(problems) or (f"{len(gpus)} × {', '.join(names)}, {smallest / 2**30:.1f} GiB each ≥ "
                                     f"{need / 2**30:.1f} GiB needed at micro-batch {cfg.train.micro_batch}")
    return _row("gpus", not problems, detail, need_bytes=need, found=len(gpus), memory_bytes=smallest)


def _backend(cfg: Config, probe: Probe, has_gpus: bool) -> dict[str, Any]:
    name = "nccl" if has_gpus else "gloo"
    env = probe.env()
    problems = []
    if not probe.has_backend(name):
        problems.append(f"torch.distributed has no {name} backend in this build; install a torch with {name}")
    slurm = "SLURM_JOB_ID" in env
    if cfg.train.n_nodes > 1 and not slurm and not ("MASTER_ADDR" in env and "MASTER_PORT" in env):
        problems.append("a multi-node run needs SLURM's job environment (submit with sbatch) or MASTER_ADDR and "
                        "MASTER_PORT set for the rendezvous")
    where = (f"SLURM job {env['SLURM_JOB_ID']} on {env.get('SLURM_JOB_NODELIST', '?')}" if slurm else
             f"MASTER_ADDR={env.get('MASTER_ADDR', 'unset')}, MASTER_PORT={env.get('MASTER_PORT', 'unset')}")
    return _row("backend", not problems, "; ".join(problems) or f"{name}; {where}", backend=name)


def _disk(cfg: Config, out_dir: Path, probe: Probe, keep: int) -> dict[str, Any]:
    from . import checkpoint

    size = checkpoint.estimated_bytes(cfg)
    need = size * (keep + 1)  # while saving, the new checkpoint is written before the oldest is deleted
    free = probe.disk_free(Path(out_dir))
    ok = free >= need
    detail = (f"{free / 2**30:,.0f} GiB free at {out_dir}; checkpoints need {need / 2**30:,.1f} GiB "
              f"({keep} kept + 1 being written, {size / 2**30:,.1f} GiB each)")
    if not ok:
        detail += "; free space or point the run at a larger file system"
    return _row("disk", ok, detail, need_bytes=need, free_bytes=free, checkpoint_bytes=size)


def _hub(cfg: Config, probe: Probe) -> dict[str, Any]:
    from ..data.sources import specs

    ids = sorted({s.hub_id for s in specs(cfg).values() if s.hub_id})
    if cfg.data.source != "hub" or not ids:
        return _row("hub", True, "the mix reads local files; the Hub is not needed", datasets=0)
    got = probe.hub(ids)
    bad = {ds: why for ds, why in got.items() if why}
    by_reason: dict[str, list[str]] = {}
    for ds, why in sorted(bad.items()):
        by_reason.setdefault(why, []).append(ds)
    detail = "; ".join(f"{', '.join(d)}: {why}" if len(d) < 3 else f"{why} ({len(d)} datasets: {', '.join(d)})"
                       for why, d in by_reason.items()) or f"all {len(ids)} datasets readable"
    return _row("hub", not bad, detail, datasets=len(ids), unreadable=sorted(bad))


def _plan(cfg: Config) -> dict[str, Any]:
    from . import plan

    p = plan.build(cfg)
    return _row("plan", True, f"{p['steps']:,} steps, {p['tokens']:,} tokens, {p['gpu_hours']:,.0f} GPU-hours "
                              f"({p['wall_days']:.1f} days on {p['n_gpus']} GPUs), ${p['cost_usd']:,.0f}, "
                              f"{p['emissions_t']:.1f} tCO2eq",
                steps=p["steps"], tokens=p["tokens"], gpu_hours=p["gpu_hours"], cost_usd=p["cost_usd"],
                emissions_t=p["emissions_t"])


def check(cfg: Config, out_dir: Path | str, *, probe: Probe | None = None, keep: int = 1) -> list[dict[str, Any]]:
    """Resolve every pre-flight item for launching ``cfg`` into ``out_dir``; rows ``{item, ok, detail, …}``."""
    probe = probe or Probe()
    gpus = _gpus(cfg, probe)
    return [gpus, _backend(cfg, probe, gpus["found"] > 0), _disk(cfg, Path(out_dir), probe, keep), _hub(cfg, probe),
            _plan(cfg)]


def require(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` unchanged when every item passed; else :class:`PreflightError` naming each failed item."""
    failed = [r for r in rows if not r["ok"]]
    if failed:
        raise PreflightError("pre-flight refuses to launch: " + " | ".join(f"{r['item']}: {r['detail']}"
                                                                           for r in failed))
    return rows


def describe(rows: list[dict[str, Any]]) -> str:
    """One line per item, as printed before a launch."""
    return "\n".join(f"[{'ok' if r['ok'] else 'FAIL'}] {r['item']}: {r['detail']}" for r in rows)
