"""Presets and the typed, validated configuration of every chapter.

One entry point: :func:`load` resolves a preset (``smoke``, ``cpu`` or ``paper``) plus overrides
into a frozen :class:`Config`. Every field is typed and documented; a bad value fails *before any
work starts* with a :class:`ConfigError` that names the field, the value and what is allowed.

>>> from stablelm2 import config
>>> cfg = config.load("smoke", seed=7, **{"train.steps": 4})
>>> cfg.run.seed, cfg.train.steps, cfg.model.n_layers
(7, 4, 2)

Overrides are keyed ``"section.field"`` (or ``section__field``, which is a valid Python keyword
for papermill parameters), or by the bare field name when only one section has it.

Validation sits beside the fields, in three layers:

- each field's type: a choice field is a ``Literal`` (its allowed values are its type), and every
  number declares its range with the field (:func:`positive`, :func:`non_negative`,
  :func:`fraction`; a numeric field without one is refused when this module is imported);
  checked whenever a section is built (``TrainConfig(steps=-1)`` raises), so a preset with a
  bad value or a misspelt field fails at import;
- each section's ``validate()``: rules between the fields of one section;
- :func:`check_across`: the rules that join sections (batch × sequence length, the network and the
  preset, the device and the precision), run by :func:`load` after every section's own.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from . import (
    chapters,  # the chapter registry (imports nothing of this package)
    hardware,  # the spine's GPU table (hardware imports neither torch nor this module at import)
)

Preset = Literal["smoke", "cpu", "paper"]
PRESETS: tuple[str, ...] = typing.get_args(Preset)
Device = Literal["auto", "cpu", "cuda"]
DataSource = Literal["hub", "local"]
ScheduleKind = Literal["hybrid", "hybrid2", "cosine", "rsqrt", "constant"]
TOrigin = Literal["zero", "warmup_end"]
RsqrtMin = Literal["additive", "none", "clip"]
Precision = Literal["bf16", "fp32"]
GpuName = Literal["A100-40GB", "A100-80GB", "H100-80GB", "cpu"]
"""``hardware.GPU_NAMES`` and ``"cpu"`` (checked to agree when this module is imported)."""
Backend = Literal["auto", "torch", "deepspeed"]
Tracker = Literal["tensorboard", "wandb", "trackio", "none"]
TurnUnit = Literal["exchange", "message"]
QuantFormat = Literal["FP32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_K_M", "OV_FP32", "OV_FP16", "OV_INT8", "OV_INT4",
                      "MLX_Q4"]
"""The names of ``stablelm2.quantization.formats.FORMATS`` (that module checks they agree at import)."""
LOCAL_MODELS: tuple[str, ...] = ("pretrained", "dpo", "random")
"""``quant.models`` entries that are this project's own models (any other entry is a Hub id ``owner/name``)."""

if typing.get_args(GpuName) != (*hardware.GPU_NAMES, "cpu"):
    raise RuntimeError(f"config.GpuName {typing.get_args(GpuName)} must be hardware.GPU_NAMES "
                       f"{hardware.GPU_NAMES} plus 'cpu'; update one to match the other")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the field, the value and the fix."""


# --------------------------------------------------------------------------------------------
# Range rules, declared with each numeric field.
# --------------------------------------------------------------------------------------------

RANGE_RULES: dict[str, tuple[typing.Callable[[float], bool], str]] = {
    "positive": (lambda v: v > 0, "must be positive"),
    "non-negative": (lambda v: v >= 0, "must not be negative (0 is allowed)"),
    "fraction": (lambda v: 0.0 <= v <= 1.0, "must be a fraction between 0 and 1"),
}
"""Rule name → (test, what the error says). Every ``int``/``float`` field names one in its metadata."""

_T = TypeVar("_T", int, float)


def positive(default: _T) -> _T:
    """A numeric field that must be > 0."""
    return field(default=default, metadata={"range": "positive"})


def non_negative(default: _T) -> _T:
    """A numeric field that must be ≥ 0 (0 usually means 'off' or 'all'; the field's docstring says which)."""
    return field(default=default, metadata={"range": "non-negative"})


def fraction(default: _T) -> _T:
    """A numeric field that must lie in [0, 1]."""
    return field(default=default, metadata={"range": "fraction"})


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a section class (read once per class)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return "str"
    if typing.get_origin(annotation) is tuple:
        return "tuple"
    return getattr(annotation, "__name__", str(annotation))


def _check_field(q: str, value: Any, annotation: Any, noun: str = "value") -> Any:
    """``value`` of field ``q`` checked against its annotation (ints widened to float where a float is
    declared); ConfigError on the wrong type, a value outside a ``Literal`` or a non-finite float."""
    origin = typing.get_origin(annotation)
    wrong = ConfigError(f"{q} = {value!r} has the wrong type: expected {_type_name(annotation)}, "
                        f"got {type(value).__name__}")
    if annotation is bool:
        if not isinstance(value, bool):
            raise wrong
    elif annotation is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise wrong
        value = int(value)
    elif annotation is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise wrong
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{q} = {value!r} must be a finite number (NaN and infinity compare false with "
                              "every bound, so no check could hold)")
    elif annotation is str:
        if not isinstance(value, str):
            raise wrong
    elif origin is Literal:
        allowed = typing.get_args(annotation)
        if not isinstance(value, str):
            raise wrong
        if value not in allowed:
            raise ConfigError(f"{q} = {value!r} is not allowed; choose one of: {', '.join(allowed)}")
    elif origin is tuple:
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            raise wrong
        item = typing.get_args(annotation)[0]
        if typing.get_origin(item) is Literal:
            allowed = typing.get_args(item)
            for v in value:
                if v not in allowed:
                    hint = difflib.get_close_matches(v.upper(), allowed, n=1)
                    raise ConfigError(f"{q} = {','.join(value)}: unknown {noun} {v!r}; known: {', '.join(allowed)}"
                                      + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            twice = sorted({v for v in value if value.count(v) > 1})
            if twice:
                raise ConfigError(f"{q}: {noun}(s) {', '.join(twice)} listed twice")
    else:
        raise TypeError(f"{q}: the config cannot check fields annotated {annotation!r}")
    return value


class _Section:
    """Base of every section: its fields are checked when it is built, its own rules by ``validate()``."""

    NAME: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            q = f"{self.NAME}.{f.name}"
            value = _check_field(q, getattr(self, f.name), hints[f.name], f.metadata.get("noun", "value"))
            rule = f.metadata.get("range")
            if rule is not None and not RANGE_RULES[rule][0](value):
                raise ConfigError(f"{q} = {value!r} {RANGE_RULES[rule][1]}")
            object.__setattr__(self, f.name, value)

    def validate(self) -> None:
        """Rules between this section's fields (none unless the section says so)."""


# --------------------------------------------------------------------------------------------
# Sections. Each field has a docstring; defaults are the `paper` values unless noted.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig(_Section):
    preset: Preset = "paper"
    """Which scale: smoke (tests, seconds), cpu (a laptop, minutes), paper (GPU nodes + Hub)."""
    seed: int = positive(1234)
    """Global seed (the official config's 1234). Same preset and parameters give the same numbers."""
    offline: bool = False
    """True: nothing may touch the network (smoke/cpu). The paper preset may use the Hub."""
    device: Device = "auto"
    """'cpu', 'cuda' or 'auto' (cuda when available)."""
    threads: int = non_negative(0)
    """torch intra-op threads; 0 keeps torch's default."""


@dataclass(frozen=True)
class DataConfig(_Section):
    source: DataSource = "hub"
    """'hub' streams the paper's sources from the Hugging Face Hub; 'local' reads the shipped sample."""
    seq_len: int = positive(4096)
    """Tokens per packed training sequence."""
    total_tokens: int = positive(2_000_000_000_000)
    """Size of the pre-training mix in tokens (paper: ~2T, seen for two epochs)."""
    epochs: int = positive(2)
    """Passes over the mix."""
    max_docs_per_source: int = non_negative(0)
    """Cap on documents read per source (0 = no cap)."""
    val_fraction: float = fraction(0.05)
    """Share of the local sample held out for validation."""
    table1_path: str = ""
    """Optional path to a reader-filled Table 1 (CSV); empty = the paper's weights are unknown."""
    val_batches: int = positive(8)
    """Held-out packed batches per source for per-domain/per-language validation loss."""
    bpe_vocab: int = positive(100_289)
    """Vocabulary of the BPE trained here for chapter 02's compression study (Arcade100k-sized)."""
    study_chars: int = non_negative(0)
    """Characters per sample source used by the compression study (0 = all)."""


@dataclass(frozen=True)
class ModelConfig(_Section):
    n_layers: int = positive(24)
    """Transformer blocks."""
    d_model: int = positive(2048)
    """Hidden width."""
    n_heads: int = positive(32)
    """Attention heads (multi-head, no GQA)."""
    d_ff: int = positive(5632)
    """SwiGLU intermediate size."""
    vocab_size: int = positive(100_352)
    """Embedding rows: Arcade100k's 100,289 padded to a multiple of 64."""
    max_position_embeddings: int = positive(4096)
    """Longest context the rotary embedding is configured for."""
    rotary_pct: float = fraction(0.25)
    """Share of each head's dimensions that rotate (RoPE on 25 %)."""
    rope_theta: float = positive(10_000.0)
    """RoPE base."""
    norm_eps: float = positive(1e-5)
    """LayerNorm epsilon."""
    qkv_bias: bool = True
    """Biases on the Q, K, V projections only."""
    tie_embeddings: bool = False
    """Whether input and output embeddings share weights (paper: untied). Only False is accepted: the
    checkpoint, GGUF/OpenVINO and MLX paths of this project assume a separate output matrix."""
    init_std: float = non_negative(0.02)
    """Std of the normal initialisation."""

    def validate(self) -> None:
        """Rules between this section's fields; ConfigError naming the field and the fix."""
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"model.n_heads = {self.n_heads} does not divide model.d_model = {self.d_model}; "
                "pick a head count that divides the width"
            )
        head = self.d_model // self.n_heads
        if head % 2 or int(head * self.rotary_pct) % 2:
            raise ConfigError(
                f"model.rotary_pct = {self.rotary_pct} gives an odd number of rotary dims per head "
                f"(head dim {head}); rotary dims must be even"
            )
        if self.vocab_size < 100_289:
            raise ConfigError(
                f"model.vocab_size = {self.vocab_size} is smaller than Arcade100k's 100,289 tokens; "
                "use 100352 (padded to a multiple of 64)"
            )
        if self.tie_embeddings:
            raise ConfigError(
                "model.tie_embeddings = True is not supported: the paper's model is untied, and this project's "
                "checkpoints (safetensors refuses shared tensors), GGUF/OpenVINO bytes-per-token and MLX export "
                "all assume a separate output matrix; leave it False"
            )


@dataclass(frozen=True)
class ScheduleConfig(_Section):
    kind: ScheduleKind = "hybrid"
    """'hybrid' (Eq. 1), 'hybrid2' (App. B hyb2), 'cosine', 'rsqrt' (Eq. 2) or 'constant'."""
    peak_lr: float = positive(1e-3)
    """η_max."""
    min_lr: float = non_negative(1e-4)
    """η_min."""
    warmup_steps: int = non_negative(9720)
    """Linear warm-up steps."""
    total_steps: int = positive(540_000)
    """T of Eq. 1: the horizon the cosine branch and the switch point are measured on."""
    switch_frac: float = fraction(0.25)
    """Where the cosine branch hands over to α/√(t+β), as a fraction of T (hyb: 1/4; hyb2 doubles it to 1/2)."""
    cooldown_steps: int = non_negative(80_000)
    """Linear cool-down to zero at the end of the run."""
    cosine_period: float = positive(1.0)
    """Period of Eq. 1's cosine in units of T: 1 = full period (η_min at T/2, T/4 its midpoint); 2 = half-cosine over T."""
    t_origin: TOrigin = "warmup_end"
    """What t of Eq. 1 counts from: 'warmup_end' (GPT-NeoX: steps after warm-up) or 'zero' (the global step)."""
    horizon_excludes_warmup: bool = True
    """True: Eq. 1's T is total_steps − warmup_steps (GPT-NeoX's lr-decay span); False: T = total_steps."""
    rsqrt_min: RsqrtMin = "additive"
    """How η_min enters Eq. 1's second branch: 'additive' η_min + α/√(t+β), 'none' α/√(t+β), 'clip' max(η_min, ·)."""

    def validate(self) -> None:
        """Rules between this section's fields (Eq. 1's switch inside the run, η_min ≤ η_max); ConfigError."""
        if self.min_lr > self.peak_lr:
            raise ConfigError(f"schedule.min_lr = {self.min_lr} is above schedule.peak_lr = {self.peak_lr}; "
                              "η_min must be ≤ η_max")
        if self.warmup_steps >= self.total_steps:
            raise ConfigError(
                f"schedule.warmup_steps = {self.warmup_steps} is not shorter than schedule.total_steps = "
                f"{self.total_steps}; the warm-up must end inside the run"
            )
        hybrid = self.kind in ("hybrid", "hybrid2")
        frac = self.switch_frac * (2 if self.kind == "hybrid2" else 1)
        horizon = self.total_steps - (self.warmup_steps if self.horizon_excludes_warmup else 0)
        switch = frac * horizon + (self.warmup_steps if self.t_origin == "warmup_end" else 0)
        if hybrid and not (self.warmup_steps <= switch < self.total_steps):
            raise ConfigError(
                f"schedule.switch_frac = {self.switch_frac} puts the switch at step {switch:.0f}, outside "
                f"[{self.warmup_steps}, {self.total_steps}); choose a fraction after the warm-up"
            )
        if hybrid and not 0 < self.switch_frac < self.cosine_period / 2:
            raise ConfigError(
                f"schedule.switch_frac = {self.switch_frac} must lie strictly between 0 and schedule.cosine_period "
                f"/ 2 = {self.cosine_period / 2}: Eq. 1's rsqrt branch needs the cosine still falling at the switch"
            )
        if self.kind == "rsqrt" and self.warmup_steps == 0:
            raise ConfigError("schedule.kind = 'rsqrt' needs schedule.warmup_steps > 0: Eq. 2 is η_max·√(warm-up/t)")


@dataclass(frozen=True)
class TrainConfig(_Section):
    steps: int = positive(500_000)
    """Optimizer steps of the run (paper: 420k + 80k cool-down)."""
    global_batch_tokens: int = positive(8_388_608)
    """Tokens per optimizer step (2 × 2 × 512 × 4096)."""
    micro_batch: int = positive(2)
    """Sequences per process per forward pass."""
    n_procs: int = positive(512)
    """Data-parallel processes (GPUs at paper scale)."""
    n_nodes: int = positive(64)
    """Machines (P4d: 8 A100-40GB each)."""
    zero_stage: int = non_negative(1)
    """ZeRO stage: optimizer state sharded across processes."""
    weight_decay: float = positive(0.1)
    """AdamW weight decay."""
    beta1: float = positive(0.9)
    """AdamW β1."""
    beta2: float = positive(0.95)
    """AdamW β2."""
    eps: float = positive(1e-8)
    """AdamW ε."""
    grad_clip: float = positive(1.0)
    """Global gradient-norm clipping."""
    precision: Precision = "bf16"
    """'bf16' (autocast, fp32 loss) or 'fp32'."""
    checkpoint_every: int = non_negative(1000)
    """Write a resumable checkpoint every N steps (0 = never)."""
    eval_every: int = non_negative(1000)
    """Held-out validation every N steps (0 = only at the end)."""
    gpu: GpuName = "A100-40GB"
    """Accelerator the plan is priced for."""
    launch: bool = False
    """Paper preset only: really launch on the GPUs at hand instead of writing the plan."""
    backend: Backend = "auto"
    """ZeRO engine: 'torch' (DDP + ZeroRedundancyOptimizer), 'deepspeed' (via accelerate), 'auto' (DeepSpeed on CUDA if installed)."""
    trackers: Tracker = "tensorboard"
    """Experiment tracker the engine logs to through accelerate: 'tensorboard' (event files in the run folder), 'wandb' (offline unless preset paper), 'trackio' (local), 'none'."""
    ablation_steps: int = non_negative(0)
    """Optimizer steps of each App. A/B ablation run at small scale (0 = ablations not run, as at paper)."""
    ablation_batch_tokens: int = positive(4_194_304)
    """Global batch of the App. A/B ablations and App. D's baseline (paper: the 4M-token baseline of App. D)."""
    ablation_d_model: int = non_negative(0)
    """Width of the ablations' proxy model (0 = the preset's model; FFN scales along; the paper ablated 1B models)."""
    ablation_val_seqs: int = positive(4)
    """Held-out sequences per source on which each ablation run's held-out bits per byte are measured."""
    ablation_seeds: int = positive(3)
    """Seeds per arm of every ablation (paired: seed i gives every arm the same init and data order); ≥ 3 to test."""
    ablation_vocab: int = non_negative(0)
    """Output shortlist of the ablations' proxy: the K most frequent training tokens plus one class for the rest (0 = full vocabulary)."""
    ablation_peak_lr: float = non_negative(0.0)
    """Peak learning rate of the ablations' proxy (0 = schedule.peak_lr; schedule.min_lr scales with it): a narrow
    proxy trains stably at a higher rate than the preset's model and leaves the unigram plateau sooner."""
    ablation_micro_batch: int = non_negative(0)
    """Sequences per micro-batch of the ablations' proxy (0 = train.micro_batch). The proxy is small enough to take a
    whole global batch in one pass, and fewer, larger passes cost less per token (chapter 05's ``cpu`` proxy: 160
    steps of 2,048 tokens in 26 s at 16 sequences against 32 s at 4, one thread); the gradient is the same mean."""

    def validate(self) -> None:
        """Rules between this section's fields; ConfigError naming the field and the fix."""
        if self.n_procs % self.n_nodes:
            raise ConfigError(f"train.n_procs = {self.n_procs} is not divisible by train.n_nodes = {self.n_nodes}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"train.zero_stage = {self.zero_stage} is not a ZeRO stage; use 0, 1, 2 or 3")


@dataclass(frozen=True)
class AlignConfig(_Section):
    sft_epochs: int = positive(3)
    """SFT epochs (paper: 3)."""
    sft_global_batch: int = positive(512)
    """SFT global batch in sequences (paper: 512)."""
    sft_lr: float = positive(2e-5)
    """SFT peak lr: stripped in the paper; default is the Zephyr recipe's 2e-5 (an assumption)."""
    sft_warmup_frac: float = fraction(0.1)
    """SFT warm-up share: stripped in the paper; 0.1 assumed."""
    sft_max_turns: int = positive(8)
    """Samples with more than this many turns are dropped (paper: eight)."""
    sft_max_samples: int = non_negative(0)
    """Cap on SFT samples per source (0 = all)."""
    dpo_beta: float = positive(0.01)
    """DPO β: stripped in the paper ("lowered"); the Zephyr recipe's later 0.01."""
    dpo_lr: float = positive(5e-7)
    """DPO lr: stripped in the paper; the Zephyr recipe's 5e-7."""
    dpo_epochs: int = positive(1)
    """DPO epochs (Zephyr recipe, Jan 2024)."""
    dpo_min_chosen_score: float = positive(8.0)
    """Pairs whose chosen response scores below this are dropped (UltraFeedback's 1–10 scale; paper: 8)."""
    sk_prompts: int = positive(10_000)
    """Self-knowledge prompts (paper: 10k)."""
    sk_epochs: int = positive(6)
    """Self-knowledge epochs (paper: 6)."""
    sk_batch: int = positive(256)
    """Self-knowledge batch (paper: 256)."""
    sk_lr: float = positive(3e-6)
    """Self-knowledge peak lr (paper: 3e-6, cosine to 0)."""
    sk_warmup_steps: int = positive(100)
    """Self-knowledge warm-up steps (paper: 100)."""
    max_steps: int = non_negative(0)
    """Cap on optimizer steps per stage (0 = as many as the epochs give)."""
    sft_turn: TurnUnit = "exchange"
    """What one 'turn' of the >8-turn filter is: 'exchange' (a user message and its reply) or 'message'."""
    micro_batch: int = positive(8)
    """Sequences per device per forward pass in every stage (not in the paper; an assumption)."""
    n_gpus: int = positive(8)
    """Data-parallel processes of the fine-tuning plan (one 8-GPU node, as the Alignment Handbook's recipes)."""
    dpo_global_batch: int = positive(128)
    """DPO pairs per step: not in the paper; the Zephyr recipe's 8 per device × 2 accumulation × 8 GPUs."""
    max_length: int = positive(1024)
    """Longest tokenised DPO pair / self-knowledge example (Zephyr recipe: 1024); SFT packs to data.seq_len."""
    sk_max_new_tokens: int = positive(256)
    """Tokens sampled per self-knowledge prompt and per continuation (not in the paper; an assumption)."""

    def validate(self) -> None:
        """Rules on this section's values; ConfigError naming the field and the fix."""
        if not 1.0 <= self.dpo_min_chosen_score <= 10.0:
            raise ConfigError(
                f"align.dpo_min_chosen_score = {self.dpo_min_chosen_score} is outside UltraFeedback's 1–10 scale "
                "(above it every scored pair is dropped, below it the filter keeps every pair); the paper uses 8"
            )
        per_step = self.micro_batch * self.n_gpus
        for name in ("sft_global_batch", "dpo_global_batch", "sk_batch"):  # chapter 06's batches (recipes.py)
            if getattr(self, name) % per_step:
                raise ConfigError(
                    f"align.{name} = {getattr(self, name)} is not a multiple of align.micro_batch × align.n_gpus = "
                    f"{self.micro_batch} × {self.n_gpus} = {per_step}; change the batch, the micro-batch or the "
                    "process count")


@dataclass(frozen=True)
class EvalConfig(_Section):
    model: str = "stabilityai/stablelm-2-1_6b"
    """Model to evaluate at paper scale (a Hub id or a local path)."""
    limit: int = non_negative(0)
    """Examples per task (0 = all)."""
    batch_size: int = positive(8)
    """Harness batch size."""
    needle_depths: int = positive(35)
    """Needle depths (App. C: 35)."""
    needle_min_ctx: int = positive(500)
    """Shortest haystack in tokens."""
    needle_max_ctx: int = positive(4000)
    """Longest haystack in tokens."""
    needle_n_ctx: int = positive(8)
    """Context sizes between min and max."""
    needle_seeds: int = positive(10)
    """Repeats, each with its own seed (App. C: 10 runs)."""
    needle_gen_tokens: int = positive(32)
    """Tokens the model may generate to answer the needle question."""
    bootstrap_iters: int = positive(100_000)
    """Harness bootstrap resamples for the stderr of non-mean metrics (the published runs: 100000)."""
    launch: bool = False
    """Paper preset only: really run the harness and the needle grid here instead of printing the plan."""

    def validate(self) -> None:
        """Rules between this section's fields; ConfigError naming the field and the fix."""
        if self.needle_min_ctx > self.needle_max_ctx:
            raise ConfigError(f"eval.needle_min_ctx = {self.needle_min_ctx} is above eval.needle_max_ctx = "
                              f"{self.needle_max_ctx}")


@dataclass(frozen=True)
class QuantConfig(_Section):
    formats: tuple[QuantFormat, ...] = field(default=("F16", "Q8_0", "Q4_0", "Q4_1", "Q5_K_M", "OV_FP16", "OV_INT4", "MLX_Q4"),
                                             metadata={"noun": "quantization type"})
    """Formats to build and compare (stablelm2.quantization.formats.FORMATS)."""
    models: tuple[str, ...] = ("stabilityai/stablelm-2-1_6b", "stabilityai/stablelm-2-zephyr-1_6b")
    """Models to quantize: 'pretrained' (ch05), 'dpo' (ch06), 'random' (seeded untrained cfg.model) or a Hub id."""
    threads: int = positive(2)
    """Threads for inference speed measurements."""
    prompt_tokens: int = positive(64)
    """Prompt length for prompt-processing speed."""
    gen_tokens: int = positive(32)
    """Generated tokens for generation speed."""
    speed_repeats: int = positive(2)
    """Timed repeats per format (the best is kept: other processes only slow a run down)."""
    ppl_tokens: int = positive(65_536)
    """Held-out tokens for perplexity and KL to the fp32 model."""
    ppl_window: int = positive(4096)
    """Tokens per perplexity window."""
    speed_study_1p6b: bool = True
    """Also time the paper-size architecture with random weights."""
    arch_formats: tuple[QuantFormat, ...] = field(default=("F16", "Q8_0", "Q4_0", "Q4_1", "Q5_K_M", "OV_FP16",
                                                           "OV_INT4"), metadata={"noun": "quantization type"})
    """Formats of the paper-size speed study (random weights; artefacts cached under build/cache)."""


    def validate(self) -> None:
        """Chapter 08's rules on this section (formats, models, the perplexity window); ConfigError."""
        if "FP32" in self.formats:
            raise ConfigError("quant.formats lists 'FP32': the fp32 reference is always measured; drop it")
        if "OV_FP32" in self.arch_formats:
            raise ConfigError("quant.arch_formats = ... 'OV_FP32': the paper-size study traces in fp16 to fit in "
                              "memory; use OV_FP16 as its OpenVINO baseline")
        for m in self.models:
            if m not in LOCAL_MODELS and "/" not in m:
                raise ConfigError(f"quant.models entry {m!r} is neither one of {LOCAL_MODELS} nor a Hub id "
                                  "'owner/name'")
        if self.ppl_window < 2 or self.ppl_tokens < self.ppl_window:
            raise ConfigError(f"quant.ppl_window = {self.ppl_window} must be ≥ 2 and ≤ quant.ppl_tokens = "
                              f"{self.ppl_tokens}")


@dataclass(frozen=True)
class CarbonConfig(_Section):
    country: str = "USA"
    """ISO-3166 alpha-3 code (capitals) of the grid codecarbon's offline tracker meters against; checked
    against codecarbon's energy-mix table (stablelm2.grid), which would otherwise fall back to the world average."""
    pue: float = positive(1.1)
    """Data-centre power usage effectiveness (paper: 1.1)."""
    intensity_kg_per_kwh: float = positive(0.385)
    """Grid carbon intensity (paper: US average 0.385 kg CO2eq/kWh)."""
    price_per_gpu_hour: float = positive(3.5)
    """Cloud price per GPU-hour (paper: ~3.5 USD)."""
    meter: bool = True
    """Meter each notebook run with codecarbon."""

    def validate(self) -> None:
        """Rules on this section's values (the country is checked by :func:`load` against codecarbon's table).

        Raises:
            ConfigError: ``carbon.pue`` is below 1.
        """
        if self.pue < 1.0:
            raise ConfigError(f"carbon.pue = {self.pue} is below 1; a PUE is total power over IT power, ≥ 1")


@dataclass(frozen=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    carbon: CarbonConfig = field(default_factory=CarbonConfig)

    @property
    def preset(self) -> str:
        """``run.preset``: the preset this config was loaded at (``smoke``, ``cpu`` or ``paper``)."""
        return self.run.preset

    @property
    def seed(self) -> int:
        """``run.seed``: the run's random seed."""
        return self.run.seed

    def chapter_dir(self, chapter: str) -> Path:
        """``build/<preset>/<chapter name>/``: where a chapter writes its artefacts.

        ``chapter`` is a number (``"05"``), slug or name (:func:`stablelm2.chapters.get`); an unknown
        one raises :class:`ConfigError` naming the known chapters (a typo never makes a new folder).
        """
        try:
            name = chapters.get(chapter).name
        except chapters.ChapterError as exc:
            raise ConfigError(str(exc)) from None
        return build_root() / self.run.preset / name

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Section name → {field: value} (a deep copy; tuples stay tuples)."""
        return dataclasses.asdict(self)


_SECTION_TYPES: dict[str, type] = typing.get_type_hints(Config)
SECTIONS = _SECTION_TYPES
"""Section name → dataclass, e.g. ``SECTIONS["train"] is TrainConfig``."""


def _declare_sections() -> None:
    """Name every section and refuse a numeric field that declares no range rule (at import)."""
    for name, cls in _SECTION_TYPES.items():
        cls.NAME = name  # type: ignore[attr-defined]
        for f in dataclasses.fields(cls):
            hint = _hints(cls)[f.name]
            if hint in (int, float) and f.metadata.get("range") not in RANGE_RULES:
                raise TypeError(f"{name}.{f.name} is a number without a range rule: declare it with positive(), "
                                "non_negative() or fraction() so its bound is explicit")


_declare_sections()


def choices() -> dict[str, tuple[str, ...]]:
    """``{"section.field": allowed values}`` of every choice field, read from its ``Literal`` type."""
    return {f"{s}.{f.name}": typing.get_args(_hints(cls)[f.name])
            for s, cls in _SECTION_TYPES.items() for f in dataclasses.fields(cls)
            if typing.get_origin(_hints(cls)[f.name]) is Literal}


# --------------------------------------------------------------------------------------------
# Presets, built from section instances: the paper preset is the dataclass defaults, the others
# change a few fields (a misspelt field or a bad value fails when this module is imported).
# --------------------------------------------------------------------------------------------

PRESET_CONFIGS: dict[str, Config] = {
    "paper": Config(),
    "cpu": Config(
        run=RunConfig(preset="cpu", offline=True, device="cpu"),
        data=DataConfig(source="local", seq_len=128, total_tokens=2_000_000, epochs=2, val_batches=2,
                        bpe_vocab=32_000),
        model=ModelConfig(n_layers=4, d_model=128, n_heads=4, d_ff=352, max_position_embeddings=512),
        schedule=ScheduleConfig(peak_lr=6e-3, min_lr=6e-4, warmup_steps=8, total_steps=110, cooldown_steps=16),
        train=TrainConfig(steps=100, global_batch_tokens=2048, micro_batch=4, n_procs=2, n_nodes=1,
                          precision="fp32", checkpoint_every=50, eval_every=50, gpu="cpu", ablation_steps=160,
                          ablation_batch_tokens=2048, ablation_d_model=32, ablation_vocab=1024, ablation_seeds=3,
                          ablation_val_seqs=16, ablation_peak_lr=1e-2, ablation_micro_batch=16),
        align=AlignConfig(sft_epochs=1, sft_global_batch=8, sft_lr=1e-3, sft_max_samples=0, dpo_lr=1e-4,
                          dpo_beta=0.1, dpo_epochs=1, sk_prompts=32, sk_epochs=2, sk_batch=16, sk_lr=3e-4,
                          sk_warmup_steps=5, max_steps=16, micro_batch=4, n_gpus=1, dpo_global_batch=8,
                          max_length=128, sk_max_new_tokens=16),
        eval=EvalConfig(model="", limit=64, batch_size=8, needle_depths=7, needle_min_ctx=64,
                        needle_max_ctx=256, needle_n_ctx=4, needle_seeds=3, needle_gen_tokens=12,
                        bootstrap_iters=1000),
        quant=QuantConfig(formats=("F16", "Q8_0", "Q4_0", "Q4_1", "Q5_K_M", "OV_FP32", "OV_FP16", "OV_INT8",
                                   "OV_INT4", "MLX_Q4"), models=("pretrained", "dpo"), prompt_tokens=64,
                          gen_tokens=32, ppl_tokens=1024, ppl_window=256),
    ),
    "smoke": Config(
        run=RunConfig(preset="smoke", offline=True, device="cpu"),
        data=DataConfig(source="local", seq_len=64, total_tokens=100_000, epochs=1, max_docs_per_source=20,
                        val_batches=1, bpe_vocab=4_000, study_chars=20_000),
        model=ModelConfig(n_layers=2, d_model=64, n_heads=4, d_ff=176, max_position_embeddings=256),
        schedule=ScheduleConfig(peak_lr=3e-3, min_lr=3e-4, warmup_steps=2, total_steps=12, cooldown_steps=2),
        train=TrainConfig(steps=8, global_batch_tokens=512, micro_batch=4, n_procs=1, n_nodes=1,
                          precision="fp32", checkpoint_every=4, eval_every=0, gpu="cpu", ablation_steps=2,
                          ablation_batch_tokens=256, ablation_d_model=32, ablation_val_seqs=1,
                          ablation_vocab=256, ablation_seeds=3),
        align=AlignConfig(sft_epochs=1, sft_global_batch=4, sft_lr=1e-3, sft_max_samples=8, dpo_lr=1e-4,
                          dpo_beta=0.1, sk_prompts=8, sk_epochs=1, sk_batch=4, sk_lr=1e-3, sk_warmup_steps=1,
                          max_steps=3, micro_batch=2, n_gpus=1, dpo_global_batch=4, max_length=64,
                          sk_max_new_tokens=8),
        eval=EvalConfig(model="", limit=4, batch_size=4, needle_depths=3, needle_min_ctx=32,
                        needle_max_ctx=64, needle_n_ctx=2, needle_seeds=2, needle_gen_tokens=6,
                        bootstrap_iters=100),
        quant=QuantConfig(formats=("F16", "Q8_0", "Q4_0", "Q5_K_M", "OV_INT4", "MLX_Q4"), models=("random",),
                          prompt_tokens=16, gen_tokens=8, speed_repeats=1, ppl_tokens=256, ppl_window=64,
                          speed_study_1p6b=False),
    ),
}
"""Preset name → its :class:`Config` before overrides (validated across sections by :func:`load`)."""
if tuple(PRESET_CONFIGS) != ("paper", "cpu", "smoke") or any(c.run.preset != p for p, c in PRESET_CONFIGS.items()):
    raise RuntimeError("every preset's run.preset must be its own name")

_COUNTRY_FIELDS = ("carbon.country",)
"""Fields holding a grid country: each is checked against codecarbon's table (stablelm2.grid.country_code)."""


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def build_root() -> Path:
    """Where results go: ``$STABLELM2_BUILD_DIR`` or ``<repository>/build``."""
    env = os.environ.get("STABLELM2_BUILD_DIR")
    if env:
        return Path(env).resolve()
    return repo_root() / "build"


def repo_root() -> Path:
    """The repository this package lives in (the folder holding ``pyproject.toml``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "stablelm2").is_dir():
            return parent
    return Path.cwd()


def _field_index() -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for section, cls in _SECTION_TYPES.items():
        for f in dataclasses.fields(cls):
            index.setdefault(f.name, []).append(section)
    return index


def _resolve_key(key: str) -> tuple[str, str]:
    key = key.replace("__", ".")
    if "." in key:
        section, name = key.split(".", 1)
        if section not in _SECTION_TYPES:
            raise ConfigError(
                f"unknown config section {section!r} in override {key!r}; "
                f"sections are: {', '.join(_SECTION_TYPES)}"
            )
        names = [f.name for f in dataclasses.fields(_SECTION_TYPES[section])]
        if name not in names:
            hint = difflib.get_close_matches(name, names, n=3)
            raise ConfigError(
                f"unknown config key {key!r}: section {section!r} has no field {name!r}"
                + (f"; did you mean {', '.join(section + '.' + h for h in hint)}?" if hint else
                   f"; its fields are: {', '.join(names)}")
            )
        return section, name
    index = _field_index()
    if key not in index:
        every = [f"{s}.{n}" for n, ss in index.items() for s in ss] + list(index)
        hint = difflib.get_close_matches(key, every, n=3)
        raise ConfigError(
            f"unknown config key {key!r}"
            + (f"; did you mean {', '.join(hint)}?" if hint else "; use 'section.field', e.g. 'train.steps'")
        )
    if len(index[key]) > 1:
        raise ConfigError(
            f"config key {key!r} is ambiguous (it is in sections {', '.join(index[key])}); "
            f"write it as one of {', '.join(s + '.' + key for s in index[key])}"
        )
    return index[key][0], key


def _coerce(value: Any, annotation: Any) -> Any:
    """Read an override the way the command line and papermill hand it over: text → the field's type
    (``"6"`` → 6, ``"false"`` → False, ``"F16,Q4_0"`` → a tuple), a whole float → int, a list → tuple.
    Anything else is returned as it is, for the section to check (and refuse with the field's name)."""
    origin = typing.get_origin(annotation)
    if annotation is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                return value
    if annotation is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if origin is tuple:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list):
            return tuple(value)
    return value


def check_across(cfg: Config) -> None:
    """The rules that join sections, in one place (each section's own rules are its ``validate()``).

    Raises :class:`ConfigError` naming both fields and the fix.
    """
    m, s, t, d, e, run = cfg.model, cfg.schedule, cfg.train, cfg.data, cfg.eval, cfg.run
    if d.seq_len > m.max_position_embeddings:
        raise ConfigError(
            f"data.seq_len = {d.seq_len} exceeds model.max_position_embeddings = "
            f"{m.max_position_embeddings}; shorten the sequences or raise the model's context"
        )
    if s.cooldown_steps >= t.steps:
        raise ConfigError(
            f"schedule.cooldown_steps = {s.cooldown_steps} is not shorter than train.steps = {t.steps}; "
            "the cool-down must start inside the run"
        )
    if s.warmup_steps + s.cooldown_steps > t.steps:
        raise ConfigError(
            f"schedule.warmup_steps = {s.warmup_steps} plus schedule.cooldown_steps = {s.cooldown_steps} is "
            f"longer than train.steps = {t.steps}; the warm-up must end before the cool-down starts"
        )
    per_step = t.micro_batch * t.n_procs * d.seq_len
    if t.global_batch_tokens % per_step:
        raise ConfigError(
            f"train.global_batch_tokens = {t.global_batch_tokens} is not a multiple of micro_batch × "
            f"n_procs × seq_len = {t.micro_batch} × {t.n_procs} × {d.seq_len} = {per_step}; "
            "change the batch, the micro-batch or the process count so they divide"
        )
    if t.launch and run.preset != "paper":
        raise ConfigError("train.launch = True is only meaningful at preset 'paper'; smoke/cpu always train")
    if run.preset != "paper" and not run.offline:
        raise ConfigError(f"run.offline = False is not allowed at preset {run.preset!r}: smoke and cpu never "
                          "touch the network")
    if run.offline and d.source == "hub":
        raise ConfigError("data.source = 'hub' needs the network but run.offline is True; use data.source = 'local'")
    if e.launch and run.preset != "paper":
        raise ConfigError("eval.launch = True is only meaningful at preset 'paper'; smoke/cpu always evaluate")
    if e.needle_max_ctx > m.max_position_embeddings:
        raise ConfigError(
            f"eval.needle_max_ctx = {e.needle_max_ctx} exceeds model.max_position_embeddings = "
            f"{m.max_position_embeddings}; the model cannot read a context that long"
        )
    quant = cfg.quant
    for entry in quant.models:
        if "/" in entry and run.offline:
            raise ConfigError(f"quant.models entry {entry!r} is a Hub model but run.offline is True; use "
                              f"{', '.join(LOCAL_MODELS)} at preset {run.preset!r}")
    if quant.ppl_window > m.max_position_embeddings:
        raise ConfigError(f"quant.ppl_window = {quant.ppl_window} exceeds model.max_position_embeddings = "
                          f"{m.max_position_embeddings}")
    if quant.prompt_tokens + quant.gen_tokens > m.max_position_embeddings:
        raise ConfigError(f"quant.prompt_tokens + quant.gen_tokens = {quant.prompt_tokens + quant.gen_tokens} exceeds "
                          f"model.max_position_embeddings = {m.max_position_embeddings}")
    if t.ablation_steps > 0:  # chapter 05's ablations: a proxy of width ablation_d_model on one process
        width = t.ablation_d_model or m.d_model
        if width % m.n_heads or (width // m.n_heads) % 2 or int((width // m.n_heads) * m.rotary_pct) % 2:
            raise ConfigError(
                f"train.ablation_d_model = {t.ablation_d_model} gives the ablations' proxy a width of {width}, which "
                f"model.n_heads = {m.n_heads} does not split into even heads with even rotary dims; choose a multiple "
                f"of {2 * m.n_heads} that keeps them even")
        mb, mb_name = (t.ablation_micro_batch, "train.ablation_micro_batch") if t.ablation_micro_batch else \
            (t.micro_batch, "train.micro_batch")
        if t.ablation_batch_tokens % (mb * d.seq_len):
            raise ConfigError(
                f"train.ablation_batch_tokens = {t.ablation_batch_tokens} is not a multiple of {mb_name} × "
                f"data.seq_len = {mb} × {d.seq_len} = {mb * d.seq_len} (the ablations run on "
                "one process); change the batch or the micro-batch so they divide")
    _check_unhonoured(cfg)
    from . import grid  # the spine's table of grid regions (imports this module: imported here)

    for q in _COUNTRY_FIELDS:
        section, name = q.split(".")
        grid.country_code(getattr(getattr(cfg, section), name), q)


def _check_unhonoured(cfg: Config) -> None:
    """Refuse values of switches and choice fields that the pipeline would not honour (issue 14, kind 10)."""
    t = cfg.train
    if cfg.run.device == "cpu" and t.backend == "deepspeed":
        raise ConfigError(
            "train.backend = 'deepspeed' needs CUDA GPUs but run.device = 'cpu' (accelerate would run plain DDP "
            "and ignore the DeepSpeed plugin); use train.backend = 'torch' or 'auto', or run.device = 'cuda'"
        )
    if cfg.run.device == "cpu" and t.precision == "bf16" and not hardware.cpu_bf16_flags():
        raise ConfigError(
            "train.precision = 'bf16' on CPU needs a CPU that computes bf16 (flags avx512_bf16 or amx_bf16); this one "
            "reports neither, so the run would train in fp32 while saying bf16; use train.precision = 'fp32' on "
            "this CPU, or run.device = 'cuda'"
        )
    if cfg.run.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "run.device = 'cuda' but torch sees no CUDA device on this machine (the run would fall back to "
                "the CPU); use run.device = 'cpu' or 'auto'"
            )
    if cfg.run.preset == "paper" and t.gpu == "cpu":
        raise ConfigError(
            "train.gpu = 'cpu' at preset 'paper': the paper-scale plan is priced per GPU; choose one of "
            + ", ".join(hardware.GPU_NAMES)
        )


def validate(cfg: Config) -> Config:
    """Every section's own rules, then :func:`check_across`; returns ``cfg`` (ConfigError otherwise).

    Field types, choices and ranges were checked when the sections were built.
    """
    for section in _SECTION_TYPES:
        getattr(cfg, section).validate()
    check_across(cfg)
    return cfg


def load(preset: str = "cpu", overrides: typing.Mapping[str, Any] | None = None, **fields: Any) -> Config:
    """Resolve ``preset`` plus ``overrides`` and ``fields`` into a validated, frozen :class:`Config`.

    Both are keyed ``"section.field"``, ``section__field`` or a bare field name (see
    :func:`_resolve_key`). ``fields`` are a notebook's own parameters, passed as keywords; those whose
    value is ``None`` are ignored, so a notebook can pass its optional parameters straight through.
    ``overrides`` is the mapping every notebook declares as its ``overrides`` parameter (the runner's
    ``-p section.field=value``, papermill's ``-y "overrides: {train.steps: 5}"``): any field of any
    section. A field set by both to different values is refused. Raises :class:`ConfigError` (unknown
    preset or field, wrong type, a value outside its choices or range, a rule between fields) before
    any work.
    """
    if preset not in PRESETS:
        hint = difflib.get_close_matches(str(preset), PRESETS, n=1)
        raise ConfigError(
            f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, typing.Mapping) or not all(isinstance(k, str) for k in overrides):
        raise ConfigError(
            f"overrides = {overrides!r} must be a mapping of 'section.field' to value, e.g. {{'train.steps': 5}} "
            "(from papermill: -y \"overrides: {train.steps: 5}\"; from the runner: -p train.steps=5)"
        )
    values: dict[str, dict[str, Any]] = {s: {} for s in _SECTION_TYPES}
    given: dict[tuple[str, str], str] = {}
    for origin, items in (("parameter", fields), ("overrides", overrides)):
        for key, value in items.items():
            if value is None:
                continue
            section, name = _resolve_key(key)
            if section == "run" and name == "preset":
                raise ConfigError("run.preset cannot be overridden; pass the preset as the first argument of load()")
            if (section, name) in given and values[section][name] != value:
                raise ConfigError(
                    f"{section}.{name} is set twice: {values[section][name]!r} by the notebook's "
                    f"{given[section, name]} and {value!r} by overrides; set it in one place"
                )
            values[section][name] = value
            given[section, name] = f"parameter {key!r}" if origin == "parameter" else "overrides"
    base = PRESET_CONFIGS[preset]
    sections = {}
    for section, cls in _SECTION_TYPES.items():
        hints = _hints(cls)
        changed = {n: _coerce(v, hints[n]) for n, v in values[section].items()}
        sections[section] = dataclasses.replace(getattr(base, section), **changed)
    return validate(Config(**sections))


def from_dict(d: dict[str, dict[str, Any]]) -> Config:
    """Rebuild a :class:`Config` from ``cfg.to_dict()`` (validated again)."""
    values = {f"{s}.{k}": v for s, fields in d.items() for k, v in fields.items() if (s, k) != ("run", "preset")}
    return load(d["run"]["preset"], values)


def describe(cfg: Config) -> str:
    """A short human-readable summary of a resolved configuration (for notebook headers)."""
    lines = []
    for section in _SECTION_TYPES:
        sec = getattr(cfg, section)
        parts = ", ".join(f"{f.name}={getattr(sec, f.name)!r}" for f in dataclasses.fields(sec))
        lines.append(f"[{section}] {parts}")
    return "\n".join(lines)


def field_docs() -> dict[str, str]:
    """``{"section.field": docstring}`` for every field, read from this module's source."""
    import ast

    docs: dict[str, str] = {}
    tree = ast.parse(Path(__file__).read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config") and node.name != "Config":
            section = next((s for s, c in _SECTION_TYPES.items() if c.__name__ == node.name), None)
            if section is None:
                continue
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                        docs[f"{section}.{stmt.target.id}"] = str(nxt.value.value)
    return docs
