"""Chapter 03 · The Stable LM 2 1.6B architecture: released class, parameters, FLOPs, memory and MFU.

The model *is* transformers' ``StableLmForCausalLM`` (the class the released checkpoint loads
into); :func:`hf_config` turns the resolved ``cfg.model`` section into its ``StableLmConfig``
(transformers 5.x nests ``rope_theta`` and ``partial_rotary_factor`` under ``rope_parameters``).
The ``paper`` preset is the released 1.6B shape; ``smoke``/``cpu`` shrink the same shape with one
size dial (layers, width, heads, FFN). The 1.6B model is only ever built on the ``meta`` device here:
shapes without memory.

* :func:`build` — a seeded ``StableLmForCausalLM`` (normal(0, init_std) init, output projections
  ``scaled_normal`` as in the official GPT-NeoX config);
* :func:`load` / :func:`isolate_documents` — any checkpoint (ours or the released one) set up so that a
  plain forward of a packed batch keeps its documents apart (see below);
* :func:`param_counts` / :func:`counted_params` — parameters per component, analytic vs counted;
* :func:`flops_per_token` — training FLOPs per token: the dense 6N term plus attention;
* :func:`memory_per_gpu` / :func:`largest_micro_batch` — the per-GPU memory of the paper's layout
  (bf16, ZeRO-1 over 512 GPUs, no activation checkpointing) on an A100-40GB;
* :func:`mfu`, :func:`gpu_hours` — utilisation and the GPU-hours a token budget implies.

The chapter's study of it (differences from LLaMA, measured speed, claims, figures) is
:mod:`stablelm2.model_study`.

**Packed documents stay apart in every forward.** Pre-training packs several documents into one
sequence and restarts ``position_ids`` at each (the official config's ``reset_position_ids``).
transformers turns restarting positions into a block-diagonal causal mask only when the forward has
no attention mask *and no KV cache*; a model whose ``config.json`` says ``use_cache: true`` (the
released one) builds a cache in every plain forward, so its documents attend to each other unless the
caller remembers ``use_cache=False``. Here the model config says ``use_cache: false`` (saved so, and
set again by :func:`load` on any checkpoint), while ``generation_config.use_cache`` stays true, so
``generate`` still decodes with the KV cache.

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
from typing import Any

import torch
from transformers import StableLmConfig, StableLmForCausalLM

from . import facts as F
from . import hardware
from .config import Config

GENERATE_WITH_CACHE = True
"""``generation_config.use_cache`` of every model built or loaded here (``config.use_cache`` is False)."""
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
        use_cache=False,  # a plain forward builds no KV cache, so packed documents stay apart (module doc)
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


OUTPUT_PROJECTIONS = ("o_proj", "down_proj")
"""The two output projections of each block, initialised with GPT-NeoX's ``scaled_normal`` (:func:`output_std`)."""


def output_std(cfg: Config) -> float:
    """Std of the output projections' init: ``init_std``/√(2·layers) (GPT-NeoX's ``scaled_normal``, the official config)."""
    return cfg.model.init_std / math.sqrt(2.0 * cfg.model.n_layers)


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
            std_out = output_std(cfg)
            with torch.no_grad():
                for layer in model.model.layers:
                    layer.self_attn.o_proj.weight.normal_(0.0, std_out)
                    layer.mlp.down_proj.weight.normal_(0.0, std_out)
    if dtype is not None:
        model = model.to(dtype=dtype)  # type: ignore[call-arg]  # transformers' decorated Module.to
    return isolate_documents(model)


def isolate_documents(model: Any) -> Any:
    """Set ``model`` (a transformers causal LM) so that a plain forward of a packed batch isolates documents.

    ``config.use_cache = False``: a forward without ``past_key_values`` builds no cache, so transformers
    derives the block-diagonal mask from restarting ``position_ids``; ``generation_config.use_cache =
    True``: ``generate`` keeps decoding with the KV cache. Both are saved by ``save_pretrained``.
    Returns the same model (changed in place).
    """
    model.config.use_cache = False
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = GENERATE_WITH_CACHE
    return model


def load(path: str, *, dtype: torch.dtype = torch.float32, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained(path)`` with :func:`isolate_documents` applied.

    For every checkpoint this project reads — its own, or a released one whose ``config.json`` says
    ``use_cache: true``. ``kwargs`` go to ``from_pretrained`` (e.g. ``attn_implementation``).
    """
    from transformers import AutoModelForCausalLM

    return isolate_documents(AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **kwargs))


def ffn_size(d_model: int, multiple_of: int | None = None) -> int:
    """SwiGLU width from the model width: 8/3·d rounded up to a multiple (default d/8; 256 at d = 2048).

    The rule that gives the released 5632 from 2048, and the ``smoke``/``cpu`` presets' FFN from theirs.
    """
    multiple_of = multiple_of or max(d_model // 8, 1)
    return -(-8 * d_model // (3 * multiple_of)) * multiple_of


RELEASED_KEYS = ("architectures", "bos_token_id", "eos_token_id", "hidden_act", "hidden_size", "initializer_range",
                 "intermediate_size", "max_position_embeddings", "model_type", "layer_norm_eps", "num_attention_heads",
                 "num_hidden_layers", "num_key_value_heads", "partial_rotary_factor", "rope_theta",
                 "tie_word_embeddings", "use_cache", "use_qkv_bias", "vocab_size")
"""Architecture keys of the released ``config.json`` (FACTS.md §9a) compared with :func:`hf_config`."""


def released_config_check(cfg: Config) -> list[dict[str, Any]]:
    """Our ``StableLmConfig`` key by key against the released ``config.json`` (facts ``hf.config.*``).

    ``use_cache`` is compared as the generation default: the released ``config.json``'s ``true`` asks
    ``generate`` to decode with the KV cache, which ours keeps in ``generation_config.json``; our
    ``config.json`` says ``false`` so that a plain forward isolates packed documents (module doc).
    """
    ours = hf_config(cfg).to_dict()
    ours.update(ours.get("rope_parameters") or {})
    ours["use_cache"] = GENERATE_WITH_CACHE  # where isolate_documents keeps it: generation_config.json
    rows = []
    for key in RELEASED_KEYS:
        released = F.value(f"hf.config.{key}")
        mine = ours.get(key)
        same = (float(mine) == float(released)) if isinstance(released, (int, float)) and not isinstance(
            released, bool) and mine is not None else mine == released
        note = "generation_config.json (config.json: false, so packed documents stay apart)" \
            if key == "use_cache" else ""
        rows.append({"key": key, "ours": mine, "released": released, "match": bool(same), "note": note})
    return rows


# ------------------------------------------------------------------------------ parameters


def param_counts(cfg: Config, *, layer_norm_bias: bool = True, final_norm_bias: bool = True,
                 qkv_bias: bool | None = None) -> dict[str, int]:
    """Parameters per component, from the shapes alone (``"total"`` sums them; Table 3's count).

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
      the convention of FACTS.md's cross-check); ``seq_len`` = the s used (default ``cfg.data.seq_len``).

    The FLOPs behind the MFU of Sec. 2.4 (170 TFLOP/s per A100). All values are floats, FLOPs per token.

    Raises:
        ValueError: ``seq_len`` (or ``cfg.data.seq_len``) is not positive.
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


# ------------------------------------------------------------------------------ memory


def activation_bytes_per_token_layer(cfg: Config, act_bytes: int = 2) -> int:
    """Bytes one block keeps for backward per token, without checkpointing (FlashAttention, no dropout).

    Stored tensors: LayerNorm-1 input and output, Q, K, V, the attention output, LayerNorm-2 input and
    output (8·d values), the gate, up, SiLU(gate) and gated product of the SwiGLU MLP (4·f values), all
    at ``act_bytes``; plus FlashAttention's fp32 log-sum-exp (one per head). No s×s score matrix.
    """
    m = cfg.model
    return act_bytes * (8 * m.d_model + 4 * m.d_ff) + 4 * m.n_heads


def memory_per_gpu(cfg: Config, *, micro_batch: int | None = None, n_gpus: int | None = None,
                   zero_stage: int | None = None, checkpointing: bool = False, grad_bytes: int = 4,
                   gpu: str | None = None) -> dict[str, Any]:
    """Per-GPU memory (bytes) of training ``cfg``'s model with the paper's layout.

    Mixed precision as in ZeRO (Rajbhandari et al. 2020): bf16 weights (2 B/param), gradients at
    ``grad_bytes`` (4: fp32 accumulation and all-reduce, as the official config sets; 2 for bf16),
    Adam state of 12 B/param (fp32 master, m, v) sharded over ``n_gpus`` from ZeRO stage 1 (gradients
    from stage 2, weights from stage 3). Activations per :func:`activation_bytes_per_token_layer`
    for every layer (or, with ``checkpointing``, each layer's input plus one layer's working set),
    plus the bf16 logits and their gradient. Framework buffers and fragmentation are not modelled:
    the margin is what they may use. The layout is Sec. 2.4's (ZeRO stage 1, no activation checkpointing).

    Returns bytes per GPU for ``weights``, ``gradients``, ``optimizer``, ``activations``, ``logits``, their
    ``total``, the GPU's ``capacity`` (GiB × 2³⁰), ``margin`` = capacity − total, and ``fits`` (a bool).

    Raises:
        ValueError: ``micro_batch``, ``n_gpus`` or ``grad_bytes`` is not positive; ``ConfigError`` (a
            ValueError) for an unknown GPU.
    """
    m, t = cfg.model, cfg.train
    mb = t.micro_batch if micro_batch is None else micro_batch
    n_gpus = t.n_procs if n_gpus is None else n_gpus
    zero = t.zero_stage if zero_stage is None else zero_stage
    gpu = t.gpu if gpu is None else gpu
    for name, v in (("micro_batch", mb), ("n_gpus", n_gpus), ("grad_bytes", grad_bytes)):
        if v <= 0:
            raise ValueError(f"{name} = {v} must be positive")
    capacity_gib = hardware.gpu(gpu).memory_gib  # ConfigError (a ValueError) for an unknown GPU
    n = param_counts(cfg)["total"]
    bf16 = t.precision == "bf16"
    tokens = mb * cfg.data.seq_len
    layer = activation_bytes_per_token_layer(cfg, 2 if bf16 else 4) * tokens
    if checkpointing:
        activations = m.n_layers * tokens * m.d_model * (2 if bf16 else 4) + layer
    else:
        activations = m.n_layers * layer
    out = {
        "weights": (2 if bf16 else 4) * n / (n_gpus if zero >= 3 else 1),
        "gradients": (grad_bytes if bf16 else 4) * n / (n_gpus if zero >= 2 else 1),
        "optimizer": (12 if bf16 else 8) * n / (n_gpus if zero >= 1 else 1),
        "activations": float(activations),
        "logits": 2.0 * (2 if bf16 else 4) * tokens * m.vocab_size,
    }
    out["total"] = sum(out.values())
    out["capacity"] = capacity_gib * 2.0**30
    out["margin"] = out["capacity"] - out["total"]
    out["fits"] = bool(out["margin"] >= 0)
    return out


def largest_micro_batch(cfg: Config, *, checkpointing: bool = False, **kw: Any) -> int:
    """Largest micro-batch that fits and divides the per-GPU sequences of one step (0 if none fits)."""
    per_gpu = cfg.train.global_batch_tokens // (cfg.data.seq_len * cfg.train.n_procs)
    best = 0
    for mb in range(1, per_gpu + 1):
        if per_gpu % mb == 0 and memory_per_gpu(cfg, micro_batch=mb, checkpointing=checkpointing, **kw)["fits"]:
            best = mb
    return best


# ------------------------------------------------------------------------------ utilisation and cost


def mfu(tflops_per_gpu: float, peak_tflops: float) -> float:
    """Model-FLOPs utilisation: achieved over peak TFLOP/s, a fraction (Sec. 2.4: 170 TFLOP/s per A100).

    Raises:
        ValueError: ``tflops_per_gpu`` < 0 or ``peak_tflops`` ≤ 0.
    """
    if tflops_per_gpu < 0 or peak_tflops <= 0:
        raise ValueError(f"need tflops ≥ 0 and peak > 0; got {tflops_per_gpu} and {peak_tflops}")
    return tflops_per_gpu / peak_tflops


def gpu_hours(tokens: float, flops_per_token_: float, tflops_per_gpu: float) -> float:
    """GPU-hours to process ``tokens`` at ``flops_per_token_`` training FLOPs each, at a sustained rate of
    ``tflops_per_gpu`` TFLOP/s per GPU (Sec. 7 books ~92k GPU-hours for the pre-training run).

    Raises:
        ValueError: ``tokens`` < 0, or the FLOPs per token or the rate not positive.
    """
    if tokens < 0 or flops_per_token_ <= 0 or tflops_per_gpu <= 0:
        raise ValueError("tokens must be ≥ 0 and the FLOPs per token and the rate positive")
    return tokens * flops_per_token_ / (tflops_per_gpu * 1e12) / 3600.0
