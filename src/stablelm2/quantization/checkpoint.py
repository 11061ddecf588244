"""Check a transformers checkpoint folder before any format is built from it.

Every builder starts from a folder written by ``save_pretrained`` plus the Arcade100k tokenizer
(``tokenizer.save_transformers``), as chapters 05 and 06 produce and as the Hub repositories hold.
:func:`check` stops with a :class:`CheckpointError` naming the file when the folder is missing, is
not a StableLM, has no weights or no tokenizer — before anything is written.

>>> from stablelm2.quantization import checkpoint
>>> checkpoint.check("/nonexistent")
Traceback (most recent call last):
...
stablelm2.quantization.checkpoint.CheckpointError: checkpoint folder /nonexistent does not exist; ...
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..files import atomic_write_json

STABLELM_TYPES = ("stablelm", "stablelm_epoch")
ARCHITECTURES = ("StableLmForCausalLM", "StableLMEpochForCausalLM")


class CheckpointError(ValueError):
    """The folder is not a usable StableLM checkpoint; the message names the file and the fix."""


def check(path: Path | str) -> dict[str, Any]:
    """Return the checkpoint's ``config.json`` after checking the folder is a complete StableLM.

    Raises:
        CheckpointError: the folder or its ``config.json`` is missing, the JSON is invalid, the model is
            not a StableLM, or the safetensors weights or ``tokenizer.json`` are missing.
    """
    path = Path(path)
    fix = ("fix: pass a folder written by save_pretrained (chapters 05/06: training.pretrained(cfg), "
           "alignment.aligned(cfg, stage)) with the tokenizer saved beside it")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist; {fix}")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{cfg_file} is missing: {path} is not a transformers checkpoint; {fix}")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_file} is not valid JSON ({exc.msg}); the checkpoint is corrupt") from exc
    mtype = config.get("model_type")
    archs = config.get("architectures") or []
    if mtype not in STABLELM_TYPES or not any(a in ARCHITECTURES for a in archs):
        raise CheckpointError(
            f"{cfg_file} describes model_type={mtype!r}, architectures={archs}, not a StableLM "
            f"({'/'.join(STABLELM_TYPES)}, {'/'.join(ARCHITECTURES)}); this chapter quantizes Stable LM 2 only")
    weights = [path / "model.safetensors", path / "model.safetensors.index.json"]
    if not any(w.is_file() for w in weights):
        raise CheckpointError(f"{weights[0]} (or its .index.json) is missing: the checkpoint in {path} has no "
                              "safetensors weights; save it with save_pretrained(safe_serialization=True)")
    tok = path / "tokenizer.json"
    if not tok.is_file():
        raise CheckpointError(f"{tok} is missing: the GGUF must carry the Arcade100k tokenizer; "
                              "fix: stablelm2.tokenizer.save_transformers(folder)")
    return config


def weight_files(path: Path | str) -> list[Path]:
    """The safetensors files of a checkpoint (one file or the shards its index lists)."""
    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / n for n in names]
    return [path / "model.safetensors"]


def weights_bytes(path: Path | str) -> int:
    """Bytes of the checkpoint's weight files on disk."""
    return sum(f.stat().st_size for f in weight_files(path))


def release_style_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` with ``rope_theta``/``partial_rotary_factor`` at the top level too.

    transformers 5.x nests them under ``rope_parameters``; the released ``config.json`` (and
    tools that read it, such as ``mlx_lm``) has them at the top level. Both spellings are kept.
    """
    out = dict(config)
    for key, value in (config.get("rope_parameters") or {}).items():
        if key != "rope_type":
            out.setdefault(key, value)
    return out


def release_style_view(src: Path | str, dst: Path | str) -> Path:
    """A folder of links to ``src``'s files with a :func:`release_style_config` ``config.json``."""
    src, dst = Path(src).resolve(), Path(dst)
    config = check(src)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "config.json":
            link = dst / f.name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(f, link)
    atomic_write_json(dst / "config.json", release_style_config(config))
    return dst
