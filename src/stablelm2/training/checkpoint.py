"""Resumable checkpoints: written atomically, verified before use, refused when they do not fit.

A checkpoint is one folder ``<run>/checkpoints/step_0000050/`` holding

* ``model.safetensors`` — the weights (safetensors, fp32 on CPU);
* ``optimizer.pt`` — the optimizer state (AdamW moments; with ZeRO-1 the shards gathered to rank 0);
* ``trainer_state.json`` — step, tokens seen, scheduler state, every rank's data-loader position and
  RNG states (torch, Python, NumPy), and the run's running sums with the length of its metrics log
  (no per-step history: that streams to ``metrics.jsonl``, so the file does not grow with the run);
* ``meta.json`` — the run's identity (the config fields that shape the weights, the process count)
  with its fingerprint, and the sha256 of every file above.

The folder is written under a temporary name and renamed into place only when every file is on
disk (``os.replace`` is atomic), so a run killed while saving leaves the previous checkpoint intact
and never a half-written one under a real name. :func:`verify` re-hashes the files and compares
the identity before anything is loaded: a damaged checkpoint or one from another configuration is
refused with a :class:`CheckpointError` that says what differs, and nothing is written.

This module is plain file I/O (rank 0 writes, every rank reads); the engine does the collective
parts (gathering ZeRO shards, loader positions and RNG states).

>>> import tempfile, torch
>>> from pathlib import Path
>>> from stablelm2.training import checkpoint
>>> root = Path(tempfile.mkdtemp())
>>> ident = {"model": {"d_model": 8}, "world_size": 1}
>>> p = checkpoint.save(root, 5, model_state={"w": torch.ones(2)}, optimizer_state={"state": {}},
...                     trainer_state={"step": 5}, identity=ident)
>>> p.name, checkpoint.latest(root) == p
('step_0000005', True)
>>> checkpoint.load(p, ident).trainer_state["step"]
5
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..config import Config
from ..files import (
    atomic_dir,
    atomic_write_text,
    fsync_dir,
    fsync_file,
    json_default,
    sha256_file,
    sha256_json,
)

FILES = ("model.safetensors", "optimizer.pt", "trainer_state.json")
_STEP_DIR = re.compile(r"^step_(\d{7,})$")
# Fields that do not change the weights a run produces: how often it saves or evaluates, where it
# logs, the hardware it is priced for, the cluster size of the paper plan (the real process count is recorded),
# and the settings of the appendix ablations (separate runs with their own identity).
_NOT_IDENTITY = {"train": {"checkpoint_every", "eval_every", "launch", "gpu", "n_nodes", "n_procs", "backend",
                           "ablation_steps", "ablation_batch_tokens", "ablation_d_model", "ablation_val_seqs", "ablation_seeds",
                           "ablation_vocab", "ablation_peak_lr", "ablation_micro_batch", "trackers"}}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or from another run; the message names the problem and the fix."""


def identity(cfg: Config, world_size: int, **extra: Any) -> dict[str, Any]:
    """What must match for a checkpoint to continue this run: the config sections that shape the weights, and
    for local data the code and sample it was trained with (:func:`local_inputs_digest`; at ``data.source =
    'hub'`` a cluster run must resume across an edit of, say, its logging, so code is not part of it)."""
    full = cfg.to_dict()
    out: dict[str, Any] = {}
    for section in ("model", "data", "schedule", "train"):
        out[section] = {k: v for k, v in full[section].items() if k not in _NOT_IDENTITY.get(section, set())}
    out["seed"] = cfg.run.seed
    out["world_size"] = world_size
    if cfg.data.source != "hub":  # a cached small model; a cluster run resumes across code edits
        out["local_inputs"] = local_inputs_digest()
    out.update({k: v for k, v in extra.items()})
    return json.loads(json.dumps(out, sort_keys=True, default=list))


def local_inputs_digest(pkg_dir: Path | None = None) -> str:
    """sha256 over what decides a local run's weights besides its config: the source of every ``stablelm2``
    module the engine imports (data loading, split rule, model, schedule, …) and the data files beside them
    (the shipped sample and its manifest). A cleaned sample, a new split or a changed engine therefore never
    reuses a model cached for the old one. ``pkg_dir``: a package folder to digest; by default this package,
    digested once per process (a process runs the code it loaded, and a run directory named from it must not
    move when a file is edited while the run trains)."""
    return _this_package_digest() if pkg_dir is None else _digest(pkg_dir)


@lru_cache(maxsize=1)
def _this_package_digest() -> str:
    return _digest(None)


def _digest(pkg_dir: Path | None) -> str:
    from .. import fingerprint as fp

    digests = fp.source_digests(fp.module_closure(["stablelm2.training.engine"], pkg_dir), pkg_dir)
    return sha256_json(digests)


def fingerprint(ident: dict[str, Any]) -> str:
    """sha256 (hex) of an :func:`identity` as JSON with sorted keys (run names, ``meta.json``'s check)."""
    return sha256_json(ident)


def step_dir(root: Path, step: int) -> Path:
    """The folder of checkpoint ``step`` under ``root``: ``step_`` and the step zero-padded to 7 digits."""
    return Path(root) / f"step_{step:07d}"


def all_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest(root: Path) -> Path | None:
    """The newest checkpoint folder under ``root`` (``None`` when there is none)."""
    found = all_checkpoints(root)
    return found[-1][1] if found else None


def save(root: Path, step: int, *, model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any],
         trainer_state: dict[str, Any], identity: dict[str, Any], keep: int = 1,
         extra_files: dict[str, Path] | None = None) -> Path:
    """Write checkpoint ``step`` atomically; keep the newest ``keep`` checkpoints. Returns its folder.

    ``extra_files`` (name → existing file or folder) are moved in as well, e.g. an engine's own
    optimizer shards; they are hashed like the rest. Older checkpoints are deleted only after the
    new one is in place (``keep`` ≤ 0 keeps them all).

    Raises:
        CheckpointError: checkpoint ``step`` already exists under ``root`` (nothing is written).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    if final.exists():
        raise CheckpointError(f"{final} already exists; a run never writes the same step twice")
    with atomic_dir(final) as tmp:
        tmp.mkdir()
        save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()},
                  str(tmp / "model.safetensors"), metadata={"step": str(step)})
        torch.save(optimizer_state, tmp / "optimizer.pt")
        atomic_write_text(tmp / "trainer_state.json", json.dumps(trainer_state, default=json_default))
        for name, src in (extra_files or {}).items():
            shutil.move(str(src), str(tmp / name))
        hashes = {}
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            fsync_file(f)
            hashes[str(f.relative_to(tmp))] = sha256_file(f)
        meta = {"step": step, "identity": identity, "fingerprint": fingerprint(identity), "files": hashes,
                "format": 1, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1, sort_keys=True))  # fsynced
    fsync_dir(root)
    for _, old in all_checkpoints(root)[:-keep] if keep > 0 else []:
        trash = root / f".trash-{old.name}-{os.getpid()}"
        os.replace(old, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return final


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}{k}"
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_differences(va, vb, key + "."))
        elif va != vb:
            out.append(f"{key}: checkpoint {va!r}, this run {vb!r}")
    return out


def verify(path: Path, expected_identity: dict[str, Any]) -> dict[str, Any]:
    """Check that ``path`` is complete, undamaged and from this run; return its ``meta.json``.

    Every file is re-hashed against ``meta.json`` and the identity's fingerprint compared with
    ``expected_identity``'s.

    Raises:
        CheckpointError: ``meta.json`` is missing or unreadable, a file is unlisted, missing or fails its
            sha256, or the checkpoint is from another run (the message lists up to 8 differing fields and
            says what to delete).
    """
    path = Path(path)
    meta_file = path / "meta.json"
    others = [p.name for _, p in all_checkpoints(path.parent) if p != path]
    fix = (f"delete {path} to resume from {others[-1]}" if others else
           f"delete {path.parent} (or choose another output folder) to start afresh")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        files = meta["files"]
        ident = meta["identity"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged: meta.json is missing or unreadable ({exc}); {fix}") from exc
    for name in FILES:
        if name not in files:
            raise CheckpointError(f"checkpoint {path} is damaged: {name} is not listed in meta.json; {fix}")
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is damaged: {name} is missing; {fix}")
        if sha256_file(f) != digest:
            raise CheckpointError(f"checkpoint {path} is damaged: {name} does not match its sha256 in meta.json; {fix}")
    if meta.get("fingerprint") != fingerprint(expected_identity):
        diff = _differences(ident, expected_identity)
        raise CheckpointError(
            f"checkpoint {path} belongs to a different run and cannot be resumed here: "
            + "; ".join(diff[:8]) + ("; …" if len(diff) > 8 else "")
            + ". Resume with the same configuration and process count, or write to another output folder"
        )
    return meta


RANK_STATE_BYTES = 32_000
"""``trainer_state.json`` bytes per rank: RNG states (torch 5,056 B, NumPy and Python 624 words each, as
JSON numbers) and a shard loader's position — measured ≈ 30 kB on this project's runs."""


def size_breakdown(cfg: Config, *, world_size: int | None = None, backend: str | None = None) -> dict[str, int]:
    """Bytes of one checkpoint of ``cfg`` (no per-step history), by file.

    ``model.safetensors`` holds fp32 weights (4 B/param); the ``torch`` backend's ``optimizer.pt`` the
    AdamW moments (8 B/param, gathered); the ``deepspeed`` backend's folder its ZeRO-1 shards (fp32
    master weights and moments, 12 B/param, plus bf16 module weights, 2 B/param); ``trainer_state.json``
    :data:`RANK_STATE_BYTES` per rank. ``world_size`` defaults to ``train.n_procs``; ``backend`` to
    DeepSpeed on GPU clusters, torch on CPU.
    """
    from .. import model

    n = model.param_counts(cfg)["total"]
    world = cfg.train.n_procs if world_size is None else world_size
    backend = backend or ("torch" if cfg.train.gpu == "cpu" or cfg.train.backend == "torch" else "deepspeed")
    out = {"model.safetensors": 4 * n, "trainer_state.json": RANK_STATE_BYTES * world}
    if backend == "deepspeed":
        out["deepspeed"] = 14 * n
    else:
        out["optimizer.pt"] = 8 * n
    out["total"] = sum(out.values())
    return out


def estimated_bytes(cfg: Config, **kw: Any) -> int:
    """Total bytes of one checkpoint of ``cfg`` (:func:`size_breakdown`)."""
    return size_breakdown(cfg, **kw)["total"]


def read_trainer_state(path: Path) -> dict[str, Any]:
    """``trainer_state.json`` of a checkpoint folder (after :func:`verify`); :class:`CheckpointError` if it
    was written by an engine that kept the per-step history in it."""
    state = json.loads((Path(path) / "trainer_state.json").read_text(encoding="utf-8"))
    if "metrics" not in state:
        raise CheckpointError(f"checkpoint {path} was written by an older engine (per-step history inside, no "
                              "metrics-log length); delete its run folder to start afresh")
    return state


@dataclass
class Loaded:
    """A checkpoint read back by :func:`load`: its folder, step, the three states and ``meta.json``."""

    path: Path
    step: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    trainer_state: dict[str, Any]
    meta: dict[str, Any]


def load(path: Path, expected_identity: dict[str, Any], *, verified: bool = False) -> Loaded:
    """Verify (unless already ``verified``) and read a checkpoint (tensors on the CPU).

    Raises :class:`CheckpointError` as :func:`verify`.
    """
    path = Path(path)
    meta = verify(path, expected_identity) if not verified else json.loads((path / "meta.json").read_text())
    return Loaded(
        path=path, step=int(meta["step"]),
        model_state=load_file(str(path / "model.safetensors")),
        optimizer_state=torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True),
        trainer_state=json.loads((path / "trainer_state.json").read_text(encoding="utf-8")),
        meta=meta,
    )


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch CPU and CUDA, Python, NumPy) in JSON-able form."""
    import random

    import numpy as np

    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],  # type: ignore[attr-defined]
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    import random

    import numpy as np

    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
    v, keys, gauss = state["python"]
    random.setstate((v, tuple(keys), gauss))
    name, nkeys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(nkeys, dtype=np.uint32), pos, has_gauss, cached))
