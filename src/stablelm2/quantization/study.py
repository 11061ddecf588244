"""Chapter 08's stages: which models, their formats, quality against fp32, tokenizer parity, the plan.

* :func:`check` — the chapter's parameters (formats, models, lengths), before any work;
* :func:`resolve_model` — ``"pretrained"`` (chapter 05), ``"dpo"`` (chapter 06), ``"random"`` (a seeded,
  untrained ``cfg.model``: the smoke model) or a Hub id (preset ``paper``: the released models);
* :func:`quantize` — every format of ``cfg.quant.formats`` of one model (see :mod:`.build`);
* :func:`quality` — perplexity, KL to fp32 and top-1 agreement of every format on held-out text;
* :func:`tokenizer_parity` — the GGUF's own tokenizer (llama.cpp) against ``tokenizer.arcade100k()``;
* :func:`plan` — what the ``paper`` preset does with the released models (printed when it cannot run).

>>> from stablelm2 import config
>>> from stablelm2.quantization import study
>>> cfg = config.load("smoke")
>>> study.check(cfg)
>>> [s["step"] for s in study.plan(config.load("paper"))][:2]
['download', 'convert']
"""

from __future__ import annotations

import gc
import json
import socket
from pathlib import Path
from typing import Any

from .. import chapters
from .. import config as config_lib
from ..config import LOCAL_MODELS, Config, ConfigError
from ..files import atomic_dir, atomic_write_text
from . import build as qbuild
from . import measure
from .formats import FORMATS, REFERENCE, QuantError, get
from .formats import check as check_formats
from .results import QualityRow, Readiness, TokenizerParity
from .results import QuantMetrics as QuantMetrics  # re-exported: the chapter's metrics.json schema
from .results import metrics as metrics  # re-exported: the notebook logs study.metrics(...)

CHAPTER = chapters.get("08").name


def check(cfg: Config) -> None:
    """Validate ``cfg.quant`` (ConfigError naming the field) before anything is built.

    The rules live with the fields (``config.QuantConfig.validate`` and ``config.check_across``, run by
    ``config.load``); this re-checks a config built another way, and the formats against the table."""
    config_lib.validate(cfg)
    try:
        check_formats(cfg.quant.formats)
        check_formats(cfg.quant.arch_formats)
    except QuantError as exc:
        raise ConfigError(f"quant.formats / quant.arch_formats: {exc}") from exc


def label(model: str) -> str:
    """A folder-safe name for a model entry (``stabilityai/stablelm-2-1_6b`` → ``stablelm-2-1_6b``)."""
    return model.rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------ models


def random_checkpoint(cfg: Config) -> Path:
    """A seeded, untrained StableLM of ``cfg.model`` with the tokenizer (the smoke model), built once."""
    import torch

    from .. import model, tokenizer

    out = cfg.chapter_dir(CHAPTER) / "models" / f"random-seed{cfg.run.seed}"
    ident = json.dumps(model.hf_config(cfg).to_dict(), sort_keys=True, default=str)
    stamp = out / "random.json"
    if stamp.is_file() and stamp.read_text() == ident:
        return out
    with atomic_dir(out) as tmp:
        model.build(cfg, dtype=torch.float32).save_pretrained(tmp)
        tokenizer.save_transformers(tmp)
        atomic_write_text(tmp / "random.json", ident)
    return out


def resolve_model(cfg: Config, model: str) -> Path:
    """A local checkpoint folder for a ``cfg.quant.models`` entry (building or downloading it if needed).

    ``"random"``, ``"pretrained"`` and ``"dpo"`` are the chapters' own models; a Hub id (``owner/name``)
    is downloaded (config, tokenizer and safetensors files only).

    Raises:
        ConfigError: ``model`` is neither a local model name nor a Hub id, or it is a Hub id while
            ``run.offline`` is True.
    """
    if model == "random":
        return random_checkpoint(cfg)
    if model == "pretrained":
        from ..training import pretrained

        return pretrained(cfg)
    if model == "dpo":
        from ..alignment import aligned

        return aligned(cfg, "dpo")
    if "/" not in model:
        raise ConfigError(f"unknown model {model!r}; use one of {LOCAL_MODELS} or a Hub id")
    if cfg.run.offline:
        raise ConfigError(f"{model} is on the Hub but run.offline is True")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.txt"]))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether huggingface.co answers (the ``paper`` preset needs it for the released models)."""
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def quantize(cfg: Config, model: str, *, progress: bool = True) -> dict[str, Path]:
    """Every format of ``cfg.quant.formats`` of one model, under ``build/<preset>/08_quantization/formats/``."""
    check(cfg)
    ckpt = resolve_model(cfg, model)
    out = cfg.chapter_dir(CHAPTER) / "formats" / label(model)
    return qbuild.build_formats(ckpt, out, list(cfg.quant.formats), threads=cfg.quant.threads, progress=progress)


# ------------------------------------------------------------------------------ quality


def quality(cfg: Config, paths: dict[str, Path], *, progress: bool = True) -> list[QualityRow]:
    """Perplexity, KL(fp32 ‖ format) and top-1 agreement of every format on the same held-out windows.

    ``paths`` is :func:`quantize`'s ``{format: path}`` (``FP32`` included). One row per format: KL in
    nats per token, ``ppl_vs_fp32_pct`` in percent, ``bytes_on_disk`` in bytes. The paper asks users to
    assess this degradation themselves (Sec. 5.2).
    """
    from .. import tokenizer

    q = cfg.quant
    windows = measure.heldout_windows(cfg, n_tokens=q.ppl_tokens, window=q.ppl_window)
    reference = qbuild.open_engine(REFERENCE, paths[REFERENCE], threads=q.threads)
    engines = {}
    try:
        for fmt, path in paths.items():
            if fmt != REFERENCE:
                engines[fmt] = qbuild.open_engine(fmt, path, threads=q.threads, n_ctx=q.ppl_window, logits_all=True)
        res = measure.compare(engines, reference, windows, n_vocab=tokenizer.arcade100k().n_vocab)
    finally:
        for eng in [reference, *engines.values()]:
            eng.close()
        gc.collect()
    base = res[REFERENCE]["ppl"]
    return [{"format": fmt, "backend": get(fmt).backend, "bits": get(fmt).bits, "ppl": r["ppl"],
             "ppl_vs_fp32_pct": 100 * (r["ppl"] / base - 1), "kl": r["kl"], "top1_agree": r["top1_agree"],
             "tokens": r["tokens"], "bytes_on_disk": qbuild.size_on_disk(fmt, paths[fmt])}
            for fmt, r in res.items()]


def tokenizer_parity(gguf_path: Path, *, per_source: int = 4) -> TokenizerParity:
    """Encode and decode sample documents (``per_source`` of every source; 0 = all) and every special token
    with the GGUF's tokenizer and with Arcade100k.

    The GGUF side is llama.cpp's own tokenizer reading the file (``llama_tokenize``, and each token's
    piece for decoding); the other side is chapter 02's ``tokenizer.arcade100k()``.
    """
    from .. import tokenizer
    from ..data import sample

    texts = []
    for name in sample.SAMPLE_SOURCES:
        docs = [d["text"] for d in sample.documents(name) if d.get("text")]
        texts += docs[:per_source] if per_source else docs
    specials = "".join(tokenizer.special_tokens()) + " after <|im_start|>user\nHi 12345<|im_end|>"
    from .gguf_io import LlamaCppEngine

    eng = LlamaCppEngine(gguf_path, n_ctx=64, threads=1)
    try:
        ours = [tokenizer.encode(t) for t in texts]
        encoded = sum(eng.tokenize(t) == ids for t, ids in zip(texts, ours, strict=True))
        decoded = sum(eng.detokenize(ids) == t for t, ids in zip(texts, ours, strict=True))
        special = eng.tokenize(specials, special=True) == tokenizer.encode(specials, allow_special=True)
        literal = eng.tokenize(specials) == tokenizer.encode(specials)
    finally:
        eng.close()
    return {"pre_tokenizer": eng.info.tokenizer_pre, "gguf_vocab": eng.info.n_vocab, "documents": len(texts),
            "tokens": sum(map(len, ours)), "documents_encoded_identically": encoded,
            "documents_decoded_identically": decoded, "special_tokens_identical": special,
            "special_text_as_plain_text_identical": literal,
            "all_identical": encoded == decoded == len(texts) and special and literal}


# ------------------------------------------------------------------------------ the paper preset


def plan(cfg: Config) -> list[dict[str, Any]]:
    """The steps chapter 08 takes on each model at this preset (what ``paper`` would do with the Hub)."""
    q = cfg.quant
    gguf = [f for f in q.formats if FORMATS[f].backend == "gguf" and f != "F16"]
    ov = [f for f in q.formats if FORMATS[f].backend == "openvino"]
    mlx = [f for f in q.formats if FORMATS[f].backend == "mlx"]
    steps = [
        {"step": "download", "tool": "huggingface_hub.snapshot_download", "what": ", ".join(q.models)},
        {"step": "convert", "tool": "llama.cpp convert_hf_to_gguf.py --outtype f16", "what": "GGUF F16 (reference)"},
        {"step": "quantize", "tool": "llama_cpp.llama_model_quantize", "what": ", ".join(gguf)},
        {"step": "openvino", "tool": "openvino.convert_model + nncf.compress_weights", "what": ", ".join(ov)},
        {"step": "mlx", "tool": "mlx_lm.convert (4-bit, groups of 64)", "what": ", ".join(mlx)},
        {"step": "quality", "tool": "perplexity + KL to fp32",
         "what": f"{q.ppl_tokens:,} held-out tokens in windows of {q.ppl_window}"},
        {"step": "speed", "tool": "prefill + greedy decode",
         "what": f"{q.prompt_tokens} prompt tokens, {q.gen_tokens} generated, {q.threads} threads"},
    ]
    return steps


def ready(cfg: Config) -> Readiness:
    """Whether the chapter runs here, and the message the notebook shows when it does not."""
    check(cfg)
    hub = [m for m in cfg.quant.models if "/" in m]
    if hub and not hub_reachable():
        return {"runs": False, "message": (
            f"**Did not run.** Preset `{cfg.run.preset}` quantizes the released models ({', '.join(hub)}) from the "
            "Hugging Face Hub, which this machine cannot reach. The plan below is what it would do; the `cpu` "
            "preset runs the same code on the chapters' small models and times the paper-size architecture.")}
    return {"runs": True, "message": f"Quantizing {', '.join(cfg.quant.models)} into {', '.join(cfg.quant.formats)}."}
