"""Chapter 03's study of the architecture: how it differs from LLaMA, its sizing, measured speed, claims.

Built on :mod:`stablelm2.model` (the released class, parameter counts, FLOPs, memory):

* :func:`llama_differences` / :func:`rotary_frequencies` — the three differences from LLaMA, read
  off instantiated modules (partial rotary, LayerNorm, QKV biases);
* :func:`measure_fwd_bwd` / :func:`measure_small` — forward+backward FLOP/s of small configs on this
  machine against its measured matmul peak;
* :func:`sizing` / :func:`record_claims` — every number of the chapter and its claims in the ledger;
* :func:`plot_memory`, :func:`plot_rotary`, :func:`plot_throughput`, :func:`summary` — its figures.

>>> from stablelm2 import config, model_study
>>> rows = model_study.llama_differences(config.load("paper"))
>>> [r["difference"] for r in rows][:1]
['rotary position embedding']
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch

from . import facts as F
from .config import Config
from .model import (
    build,
    counted_params,
    ffn_size,
    flops_per_token,
    gpu_hours,
    hf_config,
    largest_micro_batch,
    megatron_flops_per_token,
    memory_per_gpu,
    mfu,
    param_counts,
    released_config_check,
)

# ------------------------------------------------------------------------------ versus LLaMA


def llama_twin(cfg: Config, device: str = "meta") -> torch.nn.Module:
    """A LLaMA of the same width, depth, heads, FFN and vocabulary (RMSNorm, full RoPE, no biases)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    m = cfg.model
    lc = LlamaConfig(vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.d_ff,
                     num_hidden_layers=m.n_layers, num_attention_heads=m.n_heads, num_key_value_heads=m.n_heads,
                     max_position_embeddings=m.max_position_embeddings, rms_norm_eps=m.norm_eps,
                     tie_word_embeddings=m.tie_embeddings, attention_bias=False, mlp_bias=False,
                     rope_parameters={"rope_type": "default", "rope_theta": float(m.rope_theta)})
    with torch.device(device):
        return LlamaForCausalLM(lc)


def _biases(layer: torch.nn.Module) -> str:
    names = [n.removesuffix(".bias") for n, _ in layer.named_parameters() if n.endswith(".bias")]
    return ", ".join(n for n in names if "layernorm" not in n) or "none"


def llama_differences(cfg: Config) -> list[dict[str, str]]:
    """The three differences from LLaMA (Sec. 2.4), read off the instantiated modules (built on ``meta``)."""
    ours: Any = build(cfg, device="meta")  # transformers models: attributes the type checker cannot see
    twin: Any = llama_twin(cfg)
    a, la = ours.model.layers[0], twin.model.layers[0]
    head_dim = cfg.model.d_model // cfg.model.n_heads
    ln = a.input_layernorm
    rows = [
        {"difference": "rotary position embedding",
         "Stable LM 2": f"first {a.self_attn.rotary_ndims} of {head_dim} head dims rotate "
                        f"(rotary_emb.inv_freq has {ours.model.rotary_emb.inv_freq.shape[0]} frequencies)",
         "LLaMA": f"all {head_dim} head dims rotate "
                  f"(rotary_emb.inv_freq has {twin.model.rotary_emb.inv_freq.shape[0]} frequencies)"},
        {"difference": "normalisation",
         "Stable LM 2": f"{type(ln).__name__}: weight {tuple(ln.weight.shape)} + bias "
                        f"{tuple(ln.bias.shape) if ln.bias is not None else None} (input, post-attention, final)",
         "LLaMA": f"{type(la.input_layernorm).__name__}: weight {tuple(la.input_layernorm.weight.shape)}, no bias"},
        {"difference": "linear-layer biases",
         "Stable LM 2": f"{_biases(a)}; none on o_proj, gate/up/down_proj, lm_head",
         "LLaMA": f"{_biases(la)}"},
        {"difference": "parameters (same width, depth, FFN, vocabulary)",
         "Stable LM 2": f"{sum(p.numel() for p in ours.parameters()):,}",
         "LLaMA": f"{sum(p.numel() for p in twin.parameters()):,}"},
    ]
    return rows


def rotary_frequencies(cfg: Config) -> dict[str, list[float]]:
    """Rotation per position (radians) of every head dimension, from each model's own rotary module.

    Read off the cos/sin tables that ``rotary_emb`` produces at position 1; StableLM's head dims
    beyond ``rotary_ndims`` are passed through unrotated (0), as ``StableLmAttention`` does.
    """
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from transformers.models.stablelm.modeling_stablelm import StableLmRotaryEmbedding

    head_dim = cfg.model.d_model // cfg.model.n_heads
    x, pos = torch.zeros(1, 1, head_dim), torch.tensor([[1]])
    out = {}
    for name, rot in (("Stable LM 2", StableLmRotaryEmbedding(hf_config(cfg))),
                      ("LLaMA", LlamaRotaryEmbedding(llama_twin(cfg).config))):  # type: ignore[arg-type]
        cos, sin = rot(x, pos)
        full = torch.zeros(head_dim)
        angle = torch.atan2(sin[0, 0], cos[0, 0])
        full[: angle.shape[0]] = angle
        out[name] = full.tolist()
    return out


# ------------------------------------------------------------------------------ measured here


def measure_fwd_bwd(cfg: Config, *, repeats: int = 3, micro_batch: int | None = None,
                    seq_len: int | None = None) -> dict[str, float]:
    """Time forward+backward (loss on all tokens) of ``cfg``'s model on this CPU, best of ``repeats``.

    Returns the analytic FLOPs of one step (:func:`flops_per_token` × tokens), the achieved FLOP/s
    and the fraction of this machine's measured fp32 matmul peak (:func:`hardware.matmul_peak_flops`):
    ``micro_batch``, ``seq_len``, ``seconds`` (one step, the best), ``flops``, ``flops_per_s``,
    ``matmul_peak_flops_per_s``, ``fraction_of_peak``. Input ids are seeded random ``[micro_batch, seq_len]``.

    Raises:
        ValueError: ``repeats`` is not positive.
    """
    from . import hardware

    if repeats <= 0:
        raise ValueError(f"repeats = {repeats} must be positive")
    b = cfg.train.micro_batch if micro_batch is None else micro_batch
    s = cfg.data.seq_len if seq_len is None else seq_len
    threads = cfg.run.threads or None
    model = build(cfg)
    model.train()
    gen = torch.Generator().manual_seed(cfg.run.seed)
    ids = torch.randint(0, cfg.model.vocab_size, (b, s), generator=gen)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        seconds = hardware.best_time(step, repeats=repeats, warmup=1)
    finally:
        torch.set_num_threads(before)
    flops = flops_per_token(cfg, s)["total"] * b * s
    peak = hardware.matmul_peak_flops(threads)
    return {"micro_batch": b, "seq_len": s, "seconds": seconds, "flops": flops,
            "flops_per_s": flops / seconds, "matmul_peak_flops_per_s": peak, "fraction_of_peak": flops / seconds / peak}


def measure_small(cfg: Config, presets: tuple[str, ...] | None = None,
                  repeats: int | None = None) -> list[dict[str, Any]]:
    """:func:`measure_fwd_bwd` for the small presets: at smoke only ``smoke`` (1 timed pass), else
    ``smoke`` and ``cpu`` (best of 3)."""
    from . import config

    smoke = cfg.run.preset == "smoke"
    presets = presets or (("smoke",) if smoke else ("smoke", "cpu"))
    repeats = repeats or (1 if smoke else 3)
    rows = []
    for name in presets:
        small = config.load(name, overrides={"run.seed": cfg.run.seed, "run.threads": cfg.run.threads})
        rows.append({"preset": name, "params": param_counts(small)["total"],
                     **measure_fwd_bwd(small, repeats=repeats)})
    return rows


# ------------------------------------------------------------------------------ the chapter's claims


def sizing(paper: Config) -> dict[str, Any]:
    """The paper-scale numbers of chapter 03 (parameters, FLOPs, memory, MFU, GPU-hours) in one dict."""
    counted = counted_params(build(paper, device="meta"))
    fpt = flops_per_token(paper)
    tokens = F.value("train.epochs") * F.value("train.total_tokens")
    tf, tf_hi, peak = (F.value("train.tflops_per_gpu"), F.value("train.tflops_per_gpu_high"),
                       F.value("train.a100_peak_tflops_bf16"))
    return {
        "released_config": released_config_check(paper),
        "counted": counted,
        "analytic": param_counts(paper),
        "variants": {
            "HF class (every LayerNorm with bias)": param_counts(paper)["total"],
            "per-layer LayerNorms without bias, final with bias": param_counts(paper, layer_norm_bias=False)["total"],
            "no LayerNorm bias at all (NeoX use_bias_in_norms: false)":
                param_counts(paper, layer_norm_bias=False, final_norm_bias=False)["total"],
            "no norm bias, no QKV bias (NeoX config as written)":
                param_counts(paper, layer_norm_bias=False, final_norm_bias=False, qkv_bias=False)["total"],
        },
        "flops_per_token": fpt,
        "neox_flops_per_token": {ck: megatron_flops_per_token(paper, checkpointing=ck) for ck in (False, True)},
        "tokens": tokens,
        "mfu": mfu(tf, peak), "mfu_high": mfu(tf_hi, peak),
        "gpu_hours": gpu_hours(tokens, fpt["total"], tf),
        "gpu_hours_high": gpu_hours(tokens, fpt["total"], tf_hi),
        "gpu_hours_neox_no_ckpt": gpu_hours(tokens, megatron_flops_per_token(paper, checkpointing=False), tf),
        "gpu_hours_neox_ckpt": gpu_hours(tokens, megatron_flops_per_token(paper, checkpointing=True), tf),
        "memory": {mb: memory_per_gpu(paper, micro_batch=mb) for mb in (1, 2, 4)},
        "memory_ckpt": memory_per_gpu(paper, checkpointing=True),
        "largest_micro_batch": largest_micro_batch(paper),
    }


def _names(xs: list[str]) -> str:
    return ", ".join(xs) if xs else "none"


def record_claims(led: Any, size: dict[str, Any]) -> None:
    """Record chapter 03's claims (parameters, the config's flags, memory, MFU) in a ledger.

    Every sentence of evidence is computed from the counts it states. The MFU at 170 TFLOP/s is
    chapter 00's check; the GPU-hours and training FLOPs are chapter 09's (referenced here).
    """
    c, n_layers = size["counted"], F.value("model.n_layers")
    checks = size["released_config"]
    bad = [r["key"] for r in checks if not r["match"]]
    led.check("model.hf_config", "Keys of our StableLmConfig equal to the released config.json (architecture keys)",
              ours=len(checks) - len(bad), paper=len(checks),
              note=f"compared: {', '.join(r['key'] for r in checks)}; differ: {_names(bad)}")
    led.derive("model.ffn_size", "SwiGLU width: 8/3 × hidden size rounded up to the config's mlp_multiple_of",
               ours=ffn_size(F.value("model.hidden_size"), F.value("model.mlp_multiple_of")), fact="model.ffn_size")
    led.measure("model.params_hf", "Parameters of StableLmForCausalLM at the released shape, counted on the meta model",
                ours=c["total"], fact="model.n_params_with_norm_bias")
    for key, fact, per_layer in (("embedding", "model.embedding_params", False), ("lm_head", "model.lm_head_params", False),
                                 ("attention", "model.attn_weight_params_per_layer", True),
                                 ("qkv_bias", "model.qkv_bias_params_per_layer", True),
                                 ("mlp", "model.mlp_params_per_layer", True)):
        led.check(f"model.params_{key}", f"{key} parameters{' per layer' if per_layer else ''}, counted",
                  ours=c[key] // n_layers if per_layer else c[key], fact=fact)
    v = size["variants"]
    card = F.value("model.n_params_card")
    variants = "; ".join(f"{k}: {n:,}" for k, n in v.items())
    hits = [k for k, n in v.items() if n == card]
    led.measure("model.params_card", "The model card's parameter count vs the HF class's count",
                ours=c["total"], fact="model.n_params_card",
                note=f"variants of the norm and bias layout: {variants}; the variants that give the card's "
                     f"{card:,}: {_names(hits)}")
    no_bias = v["no LayerNorm bias at all (NeoX use_bias_in_norms: false)"]
    equal_to = [name for name, n in (("the card", card), ("the HF count", c["total"])) if n == no_bias]
    led.check("model.neox_norm_bias", "Official GPT-NeoX config use_bias_in_norms vs the HF class",
              fact="train.use_bias_in_norms_config", ours=c["layer_norm_bias"] > 0,
              note=f"the HF class has {c['layer_norm_bias'] + F.value('model.hidden_size'):,} LayerNorm bias parameters; "
                   f"without them the model has {no_bias:,} parameters, equal to: {_names(equal_to)}")
    led.check("model.neox_attn_bias", "Official GPT-NeoX config use_bias_in_attn_linear vs the HF class",
              fact="train.use_bias_in_attn_linear_config", ours=c["qkv_bias"] > 0,
              note=f"the instantiated model has {c['qkv_bias']:,} QKV-bias parameters")
    tf, tf_hi, peak = (F.value("train.tflops_per_gpu"), F.value("train.tflops_per_gpu_high"),
                       F.value("train.a100_peak_tflops_bf16"))
    led.refer("overview.mfu", "00_overview", f"MFU at {tf} TFLOP/s per A100 (bf16 peak {peak})")
    led.derive("model.mfu_high", f"MFU at {tf_hi} TFLOP/s per A100", ours=size["mfu_high"], fact="train.mfu_high")
    m2 = size["memory"][2]
    per_gpu = F.value("train.global_batch_seqs") // F.value("train.n_gpus")
    led.derive("model.micro_batch", f"Largest micro-batch dividing {per_gpu} sequences/GPU/step that fits an A100-40GB "
               "without activation checkpointing (bf16, ZeRO-1 over 512 GPUs)", ours=size["largest_micro_batch"],
               fact="train.micro_batch",
               note=f"micro-batch 2 needs {m2['total'] / 2**30:.1f} GiB of 40 (margin {m2['margin'] / 2**30:.1f} GiB); "
                    f"micro-batch 4 needs {size['memory'][4]['total'] / 2**30:.1f} GiB")
    led.refer("carbon.gpu_hours", "09_carbon", "GPU-hours of two epochs by FLOP convention (with and without "
              "GPT-NeoX's count of the recomputed forward pass)")
    led.refer("carbon.flops_model", "09_carbon", "training FLOPs (6N + 12·L·d·s) × tokens seen")
    lo, hi = F.get("carbon.gpu_hours").interval()  # type: ignore[misc]  # a printed number: never None
    neox, neox_ck = size["gpu_hours_neox_no_ckpt"], size["gpu_hours_neox_ckpt"]
    hours_say = [name for name, h in (("without checkpointing", neox), ("with checkpointing", neox_ck)) if lo <= h <= hi]
    memory_says = "not needed" if m2["fits"] else "needed"
    led.report_only("model.activation_checkpointing", "Official config checkpoint-activations vs the paper's "
                    "'completely remove activation checkpointing'", fact="train.activation_checkpointing_config",
                    kind="derivation",
                    why=f"two indirect readings, neither a measurement of the run: memory says checkpointing is "
                        f"{memory_says} at micro-batch 2 ({m2['total'] / 2**30:.1f} GiB of 40); the ~92k GPU-hours "
                        f"(interval [{lo:,.0f}, {hi:,.0f}]) are met by GPT-NeoX's count {_names(hours_say)} "
                        f"({neox:,.0f} without, {neox_ck:,.0f} with)")


# ------------------------------------------------------------------------------ figures


def plot_memory(size: dict[str, Any], gpu: str = "A100-40GB") -> Any:
    """Per-GPU memory by component for micro-batches 1, 2, 4 (and 2 with checkpointing) vs capacity."""
    import matplotlib.pyplot as plt

    cases = {f"mb {mb}": mem for mb, mem in size["memory"].items()}
    cases["mb 2 + act. ckpt"] = size["memory_ckpt"]
    parts = ("weights", "gradients", "optimizer", "activations", "logits")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bottom = [0.0] * len(cases)
    for part in parts:
        vals = [c[part] / 2**30 for c in cases.values()]
        ax.bar(list(cases), vals, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    cap = next(iter(cases.values()))["capacity"] / 2**30
    ax.axhline(cap, color="crimson", lw=1.5, ls="--", label=f"{gpu} ({cap:.0f} GiB)")
    ax.set(title="Memory per GPU: bf16, ZeRO-1 over 512 GPUs, 4096-token sequences", ylabel="GiB",
           xlabel="micro-batch (sequences per GPU per pass)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def plot_rotary(freqs: dict[str, list[float]]) -> Any:
    """Rotation per position of every head dimension: Stable LM 2 (25 %) vs LLaMA (all)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, f in freqs.items():
        ax.step(range(len(f)), f, where="mid", label=name)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set(title="Which head dimensions rotate (angle per position, from each model's rotary module)",
           xlabel="head dimension", ylabel="radians per position")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_throughput(rows: list[dict[str, Any]]) -> Any:
    """Achieved forward+backward FLOP/s of the small configs vs this machine's matmul peak."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [r["preset"] for r in rows]
    ax.bar(names, [r["flops_per_s"] / 1e9 for r in rows], color="steelblue", label="forward+backward (analytic FLOPs)")
    ax.axhline(rows[0]["matmul_peak_flops_per_s"] / 1e9, color="crimson", ls="--",
               label="fp32 matmul peak, 2048² (measured)")
    ax.set(title="Training FLOP/s on this CPU", ylabel="GFLOP/s", xlabel="model size (preset)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def summary(size: dict[str, Any]) -> str:
    """Chapter 03's findings in a few sentences (markdown), every number computed from ``size``."""
    c, v = size["counted"], size["variants"]
    card = F.value("model.n_params_card")
    m2, m4 = size["memory"][2], size["memory"][4]
    hours, paper_hours = size["gpu_hours"], F.value("carbon.gpu_hours")
    return (
        f"**Parameters.** The HF class at the released shape has **{c['total']:,}** parameters "
        f"({'analytic = counted' if size['analytic'] == c else 'analytic ≠ counted'}); "
        f"the card's {card:,} is {abs(c['total'] - card):,} {'fewer' if card < c['total'] else 'more'}; the "
        f"layouts tried that give the card's number: {_names([k for k, n in v.items() if n == card])}.  \n"
        f"**Memory.** Micro-batch 2 needs {m2['total'] / 2**30:.1f} GiB of {m2['capacity'] / 2**30:.0f} without "
        f"activation checkpointing (margin {m2['margin'] / 2**30:.1f} GiB); micro-batch 4 would need "
        f"{m4['total'] / 2**30:.1f} GiB, so {size['largest_micro_batch']} is the largest that fits.  \n"
        f"**Utilisation and cost.** MFU {size['mfu']:.1%} at {F.value('train.tflops_per_gpu')} TFLOP/s and "
        f"{size['mfu_high']:.1%} at {F.value('train.tflops_per_gpu_high')}. Two epochs of the ~2T-token mix "
        f"({size['tokens']:.3g} tokens) at {F.value('train.tflops_per_gpu')} TFLOP/s of model FLOPs take "
        f"**{hours:,.0f} GPU-hours**, {hours / paper_hours:.0%} of the paper's ~{paper_hours:,}; counted as "
        f"GPT-NeoX logs throughput with activation checkpointing on, **{size['gpu_hours_neox_ckpt']:,.0f}**."
    )


class ModelMetrics(TypedDict, total=False):
    """Chapter 03's numbers in ``metrics.json`` (Sec. 2.4, Table 3); a part is there once its cell ran."""

    params_counted: int
    """Parameters of the paper's configuration, counted on the model built here."""
    params_card_variant: int
    """The count under the reading that matches the model card (per-layer LayerNorms without bias, final with)."""
    flops_per_token: float
    """Training FLOPs per token (dense 6N plus attention)."""
    mfu: float
    """Model FLOPs utilisation implied by the paper's GPU-hours, 0–1."""
    mfu_high: float
    gpu_hours: float
    """A100 GPU-hours the paper's run takes at :attr:`mfu`."""
    gpu_hours_neox_ckpt: float
    """The same, counting FLOPs as GPT-NeoX's logger does with activation checkpointing."""
    memory_mb2_gib: float
    """Training memory per GPU at micro-batch 2 (GiB)."""
    largest_micro_batch: int
    """Largest micro-batch that fits in an A100-40GB."""
    measured_presets: list[str]
    """Small presets whose forward+backward was timed here."""
    measured_flops: dict[str, float]
    """Preset → FLOPs of one forward+backward."""


def metrics(*, size: dict[str, Any] | None = None,
            measured: list[dict[str, Any]] | None = None) -> ModelMetrics:
    """The parts of chapter 03's numbers given (a part left ``None`` is left out).

    ``size``: :func:`sizing` of the paper's configuration; ``measured``: :func:`measure_small`.
    """
    out: ModelMetrics = {}
    if size is not None:
        out["params_counted"] = size["counted"]["total"]
        out["params_card_variant"] = size["variants"]["per-layer LayerNorms without bias, final with bias"]
        out["flops_per_token"] = size["flops_per_token"]["total"]
        out["mfu"], out["mfu_high"], out["gpu_hours"] = size["mfu"], size["mfu_high"], size["gpu_hours"]
        out["gpu_hours_neox_ckpt"] = size["gpu_hours_neox_ckpt"]
        out["memory_mb2_gib"] = size["memory"][2]["total"] / 2**30
        out["largest_micro_batch"] = size["largest_micro_batch"]
    if measured is not None:
        out["measured_presets"] = [r["preset"] for r in measured]
        out["measured_flops"] = {r["preset"]: r["flops"] for r in measured}
    return out
