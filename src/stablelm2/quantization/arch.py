"""The paper-size architecture with random weights: the released model as far as size and speed go.

How fast a format decodes depends on the shapes and the storage of the weights, not on their
values, so a seeded random ``StableLmForCausalLM`` of the paper's shape (chapter 03's
``model.build`` at preset ``paper``: 24 layers, width 2048, vocabulary 100,352) saved in fp16 is,
for bytes on disk and tokens per second, the released 1.6B model. No quality is claimed from it.
Its weights are drawn directly in fp16 from the distribution ``model.build`` uses (:func:`random_model`),
not the same values: 1.6B draws instead of 3.3B (transformers' default init, then ours) and a cast.

The checkpoint and its formats are built once and cached under ``build/cache/arch_1p6b/<key>/``
(the key hashes the architecture, the seed and the llama-cpp-python / OpenVINO / NNCF versions);
building them takes several minutes on 2 cores (the Q5_K_M k-quant search and NNCF INT4 are the
slow parts) and ~16 GB of disk. The OpenVINO trace reads the model in fp16 to stay within memory.

>>> from stablelm2 import config
>>> from stablelm2.quantization import arch
>>> paths = arch.formats(config.load("cpu"))                          # doctest: +SKIP
>>> rows = arch.speed(config.load("cpu"), paths, bandwidth=16e9)      # doctest: +SKIP
"""

from __future__ import annotations

import gc
import importlib.metadata as md
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..config import Config, build_root, load
from ..files import atomic_dir, sha256_json
from . import build as qbuild
from .formats import check
from .speed import speed_rows

if TYPE_CHECKING:
    import torch
    from transformers import StableLmForCausalLM

CACHE = "arch_1p6b"
INIT = "normal, drawn in the checkpoint's dtype"  # part of the cache key: another init is another checkpoint


def paper_config(cfg: Config) -> Config:
    """The ``paper`` preset with this run's seed (the architecture whose speed is measured)."""
    return load("paper", seed=cfg.run.seed)


def cache_dir(cfg: Config) -> Path:
    """``build/cache/arch_1p6b/<key>/``: shared by the chapter (every preset) and the benchmark."""
    from .. import model

    versions = {p: md.version(p) for p in ("llama-cpp-python", "openvino", "nncf", "transformers")}
    ident: dict[str, Any] = {"config": model.hf_config(paper_config(cfg)).to_dict(), "seed": cfg.run.seed, "dtype": "float16",
             "init": INIT, "versions": versions}
    ident["config"].pop("transformers_version", None)
    key = sha256_json(ident)[:12]
    return build_root() / "cache" / CACHE / key


def checkpoint(cfg: Config, *, progress: bool = True) -> Path:
    """The random paper-size checkpoint in fp16 with the Arcade100k tokenizer (built once, then reused)."""
    from .. import tokenizer

    out = cache_dir(cfg) / "hf"
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    with atomic_dir(out) as tmp, tqdm(total=2, desc="random 1.6B checkpoint", disable=not progress) as bar:
        m = random_model(paper_config(cfg))
        bar.update()
        m.save_pretrained(tmp)
        del m
        gc.collect()
        tokenizer.save_transformers(tmp)
        bar.update()
    return out


def random_model(cfg: Config, dtype: torch.dtype | None = None) -> StableLmForCausalLM:
    """``cfg.model`` as a ``StableLmForCausalLM`` with seeded random weights drawn directly in ``dtype`` (fp16);
    :func:`checkpoint` builds it for :func:`paper_config`.

    The distribution of ``model.build`` (Sec. 2.2 and the official config): every linear and embedding
    weight normal(0, ``init_std``), the attention ``o_proj`` and MLP ``down_proj`` normal(0,
    ``init_std``/√(2·layers)), biases 0, LayerNorms 1 and 0; the values differ from ``model.build``'s
    (which draws transformers' default init first, in fp32). Same ``cfg.run.seed``, same weights.

    Buffers (the rotary frequencies) are those the module's own constructor computes, cast to ``dtype`` as
    ``model.build`` casts them.

    Raises:
        TypeError: a parameter or buffer belongs to a module this init does not know (a new transformers layer
            type), or the checkpoint would hold a tensor it did not set.
    """
    import torch

    from .. import model as model_lib

    dtype = dtype or torch.float16
    m = model_lib.build(cfg, device="meta", dtype=dtype).to_empty(device="cpu")
    std = cfg.model.init_std
    std_out = model_lib.output_std(cfg)
    gen = torch.Generator().manual_seed(cfg.run.seed)
    drawn: set[str] = set()
    with torch.no_grad():
        for name, mod in m.named_modules():
            own = dict(mod.named_parameters(recurse=False))
            if isinstance(mod, torch.nn.LayerNorm):
                own["weight"].fill_(1.0)
            elif isinstance(mod, torch.nn.Linear):
                own["weight"].normal_(0.0, std_out if name.endswith(model_lib.OUTPUT_PROJECTIONS) else std, generator=gen)
            elif isinstance(mod, torch.nn.Embedding):
                own["weight"].normal_(0.0, std, generator=gen)
            elif own:
                raise TypeError(f"{name} ({type(mod).__name__}) has parameters this random init does not know")
            if "bias" in own:
                own["bias"].zero_()
            drawn.update(f"{name}.{k}" if name else k for k in own)
        for name, mod in m.named_modules():  # buffers (not saved: the rotary frequencies) as the module's init sets them
            own_buffers = [k for k, _ in mod.named_buffers(recurse=False)]
            if own_buffers and not name.endswith("rotary_emb"):
                raise TypeError(f"{name} ({type(mod).__name__}) has buffers this random init does not know")
            if own_buffers:
                fresh = type(mod)(config=m.config)
                for k in own_buffers:
                    getattr(mod, k).copy_(getattr(fresh, k))
    saved = set(m.state_dict())
    if saved != drawn:
        raise TypeError(f"the checkpoint would hold tensors this random init did not set: {sorted(saved - drawn)[:5]}")
    return m


def formats(cfg: Config, *, progress: bool = True) -> dict[str, Path]:
    """Every format of ``cfg.quant.arch_formats`` of the random paper-size model (built once, cached).

    Returns ``{format: path}`` as :func:`.build.build_formats`; :class:`~.formats.QuantError` for an
    unknown or repeated format name, before anything is built.
    """
    names: list[str] = list(cfg.quant.arch_formats)
    check(names)
    ckpt = checkpoint(cfg, progress=progress)
    return qbuild.build_formats(ckpt, cache_dir(cfg) / "formats", names, threads=cfg.quant.threads,
                                progress=progress, trace_dtype="float16")


def speed(cfg: Config, paths: dict[str, Path], *, bandwidth: float, progress: bool = True) -> list[dict[str, Any]]:
    """Prompt-processing and generation tokens/s of each format of the paper-size model (one at a time).

    The Table 8 analogue (Sec. 5.2) on this machine: :func:`.speed.speed_rows`, ``bandwidth`` in bytes/s.
    """
    names = [n for n in cfg.quant.arch_formats if n in paths]
    return speed_rows(cfg, {n: paths[n] for n in names}, bandwidth=bandwidth, progress=progress)


def sizes(cfg: Config, paths: dict[str, Path]) -> dict[str, int]:
    """Bytes on disk: the fp16 checkpoint (``FP16_safetensors``), each format, and the INT4 ``model.bin`` alone."""
    out = {"FP16_safetensors": qbuild.size_on_disk("FP32", checkpoint(cfg, progress=False))}
    out.update({fmt: qbuild.size_on_disk(fmt, p) for fmt, p in paths.items() if fmt != "FP32"})
    if "OV_INT4" in paths:
        out["OV_INT4_bin"] = (Path(paths["OV_INT4"]) / "model.bin").stat().st_size
    return out
