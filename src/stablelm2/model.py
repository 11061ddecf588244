"""Chapter 03 · The Stable LM 2 1.6B architecture: released class, sizing, FLOPs, memory and MFU.

The model *is* transformers' ``StableLmForCausalLM`` (the class the released checkpoint loads
into); :func:`hf_config` turns the resolved ``cfg.model`` section into its ``StableLmConfig``
(transformers 5.x nests ``rope_theta`` and ``partial_rotary_factor`` under ``rope_parameters``).
The ``paper`` preset is the released 1.6B shape; ``smoke``/``cpu`` shrink the same shape with one
size dial (layers, width, heads, FFN). The 1.6B model is only ever built on the ``meta`` device here:
shapes without memory.

* :func:`build` — a seeded ``StableLmForCausalLM`` (normal(0, init_std) init, output projections
  ``scaled_normal`` as in the official GPT-NeoX config);
* :func:`param_counts` / :func:`counted_params` — parameters per component, analytic vs counted;
* :func:`flops_per_token` — training FLOPs per token: the dense 6N term plus attention;
* :func:`memory_per_gpu` / :func:`largest_micro_batch` — the per-GPU memory of the paper's layout
  (bf16, ZeRO-1 over 512 GPUs, no activation checkpointing) on an A100-40GB;
* :func:`mfu`, :func:`gpu_hours` — utilisation and the GPU-hours a token budget implies;
* :func:`llama_differences` — the three differences from LLaMA, read off instantiated modules;
* :func:`measure_fwd_bwd` — forward+backward FLOP/s of a small config on this machine.

>>> from stablelm2 import config, model
>>> paper = config.load("paper")
>>> model.param_counts(paper)["total"]
1644515328
>>> m = model.build(paper, device="meta")
>>> sum(p.numel() for p in m.parameters())
1644515328
>>> round(model.flops_per_token(paper)["total"] / 1e9, 2)
11.05
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from transformers import StableLmConfig, StableLmForCausalLM

from . import facts as F
from .config import Config

# Memory of the accelerators the plan can be priced for, in GiB (vendor datasheets).
GPU_MEMORY_GIB = {"A100-40GB": 40, "A100-80GB": 80, "H100-80GB": 80}
COMPONENTS = ("embedding", "attention", "qkv_bias", "mlp", "layer_norm_weight", "layer_norm_bias",
              "final_norm", "lm_head")


# ------------------------------------------------------------------------------ the model


def hf_config(cfg: Config) -> StableLmConfig:
    """The ``StableLmConfig`` of ``cfg.model`` (the released ``config.json`` at preset ``paper``)."""
    m = cfg.model
    eot = F.value("tokenizer.special.endoftext")
    return StableLmConfig(
        vocab_size=m.vocab_size,
        hidden_size=m.d_model,
        intermediate_size=m.d_ff,
        num_hidden_layers=m.n_layers,
        num_attention_heads=m.n_heads,
        num_key_value_heads=m.n_heads,
        hidden_act="silu",
        max_position_embeddings=m.max_position_embeddings,
        initializer_range=m.init_std,
        layer_norm_eps=m.norm_eps,
        use_cache=True,
        tie_word_embeddings=m.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": float(m.rope_theta),
                         "partial_rotary_factor": float(m.rotary_pct)},
        use_qkv_bias=m.qkv_bias,
        qk_layernorm=False,
        use_parallel_residual=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=eot,
        eos_token_id=eot,
        architectures=["StableLmForCausalLM"],
    )


def build(cfg: Config, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> StableLmForCausalLM:
    """A freshly initialised ``StableLmForCausalLM`` for ``cfg``, the same for the same ``cfg.run.seed``.

    Weights are normal(0, ``init_std``); the two output projections of each block (attention
    ``o_proj`` and MLP ``down_proj``) use GPT-NeoX's ``scaled_normal``, std = init_std/√(2·layers),
    as the official config asks. ``device="meta"`` gives shapes without memory (the 1.6B here).
    The global torch RNG is left untouched.
    """
    hfc = hf_config(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.run.seed)
        with torch.device(device):
            model = StableLmForCausalLM(hfc)
        if str(device) != "meta":
            std_out = cfg.model.init_std / math.sqrt(2.0 * cfg.model.n_layers)
            with torch.no_grad():
                for layer in model.model.layers:
                    layer.self_attn.o_proj.weight.normal_(0.0, std_out)
                    layer.mlp.down_proj.weight.normal_(0.0, std_out)
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model


# ------------------------------------------------------------------------------ parameters


def param_counts(cfg: Config, *, layer_norm_bias: bool = True, final_norm_bias: bool = True,
                 qkv_bias: bool | None = None) -> dict[str, int]:
    """Parameters per component, from the shapes alone (``"total"`` sums them).

    The switches give the variants the sources disagree on: the HF class has biases on every
    LayerNorm; the official GPT-NeoX config says ``use_bias_in_norms: false`` and
    ``use_bias_in_attn_linear: false``.
    """
    m = cfg.model
    d, f, n_layers, v = m.d_model, m.d_ff, m.n_layers, m.vocab_size
    qkv = m.qkv_bias if qkv_bias is None else qkv_bias
    out = {
        "embedding": v * d,
        "attention": n_layers * 4 * d * d,
        "qkv_bias": n_layers * 3 * d if qkv else 0,
        "mlp": n_layers * 3 * d * f,
        "layer_norm_weight": n_layers * 2 * d,
        "layer_norm_bias": n_layers * 2 * d if layer_norm_bias else 0,
        "final_norm": d + (d if final_norm_bias else 0),
        "lm_head": 0 if m.tie_embeddings else v * d,
    }
    out["total"] = sum(out.values())
    return out


def _component(name: str) -> str:
    if name.startswith("model.embed_tokens."):
        return "embedding"
    if name.startswith("lm_head."):
        return "lm_head"
    if name.startswith("model.norm."):
        return "final_norm"
    if ".self_attn." in name:
        return "qkv_bias" if name.endswith(".bias") else "attention"
    if ".mlp." in name:
        return "mlp"
    if "layernorm." in name:
        return "layer_norm_bias" if name.endswith(".bias") else "layer_norm_weight"
    raise ValueError(f"parameter {name!r} does not belong to a known StableLM component")


def counted_params(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per component counted on an instantiated model (works on ``meta``)."""
    out = dict.fromkeys(COMPONENTS, 0)
    for name, p in model.named_parameters():
        out[_component(name)] += p.numel()
    out["total"] = sum(out.values())
    return out


def matmul_params(cfg: Config) -> int:
    """Parameters that multiply activations: everything but the embedding lookup, norms and biases."""
    c = param_counts(cfg)
    return c["attention"] + c["mlp"] + c["lm_head"] + (c["embedding"] if cfg.model.tie_embeddings else 0)


# ------------------------------------------------------------------------------ FLOPs


def flops_per_token(cfg: Config, seq_len: int | None = None) -> dict[str, float]:
    """Training FLOPs per token (forward + backward = 3 × forward).

    * ``dense`` = 6·N with N = :func:`matmul_params` (every weight that multiplies an activation,
      LM head included; the input-embedding lookup, norms and biases do no matmul);
    * ``attention`` = 12·L·d·s: scores QKᵀ and the weighted sum AV at full (non-causal) length s,
      the PaLM/Megatron convention that MFU figures use;
    * ``total`` = dense + attention; ``dense_all_params`` = 6 × every parameter (Chinchilla-style,
      the convention of FACTS.md's cross-check).
    """
    m = cfg.model
    s = cfg.data.seq_len if seq_len is None else seq_len
    if s <= 0:
        raise ValueError(f"seq_len = {s} must be positive")
    dense = 6.0 * matmul_params(cfg)
    attention = 12.0 * m.n_layers * m.d_model * s
    return {"dense": dense, "attention": attention, "total": dense + attention,
            "dense_all_params": 6.0 * param_counts(cfg)["total"], "seq_len": float(s)}


def megatron_flops_per_token(cfg: Config, *, checkpointing: bool) -> float:
    """FLOPs per token as GPT-NeoX logs them (Narayanan et al. 2021, arXiv:2104.04473).

    72·L·h²·(1 + s/(6h) + V/(16·L·h)) per token, with the leading 72 (= 24 × 3) raised to 96
    (= 24 × 4) when activation checkpointing is on: the recomputed forward is counted, so the
    logged "TFLOPs" become hardware FLOPs rather than model FLOPs.
    """
    m = cfg.model
    h, n_layers, s, v = m.d_model, m.n_layers, cfg.data.seq_len, m.vocab_size
    factor = 4 if checkpointing else 3
    return 24.0 * factor * n_layers * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * n_layers * h))
