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
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import hardware  # the spine's GPU table (hardware imports neither torch nor this module at import)

PRESETS = ("smoke", "cpu", "paper")
Preset = Literal["smoke", "cpu", "paper"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the field, the value and the fix."""


# --------------------------------------------------------------------------------------------
# Sections. Each field has a docstring-like comment; defaults are the `paper` values unless noted.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    preset: str = "paper"
    """Which scale: smoke (tests, seconds), cpu (a laptop, minutes), paper (GPU nodes + Hub)."""
    seed: int = 1234
    """Global seed (the official config's 1234). Same preset and parameters give the same numbers."""
    offline: bool = False
    """True: nothing may touch the network (smoke/cpu). The paper preset may use the Hub."""
    device: str = "auto"
    """'cpu', 'cuda' or 'auto' (cuda when available)."""
    threads: int = 0
    """torch intra-op threads; 0 keeps torch's default."""


@dataclass(frozen=True)
class DataConfig:
    source: str = "hub"
    """'hub' streams the paper's sources from the Hugging Face Hub; 'local' reads the shipped sample."""
    seq_len: int = 4096
    """Tokens per packed training sequence."""
    total_tokens: int = 2_000_000_000_000
    """Size of the pre-training mix in tokens (paper: ~2T, seen for two epochs)."""
    epochs: int = 2
    """Passes over the mix."""
    max_docs_per_source: int = 0
    """Cap on documents read per source (0 = no cap)."""
    val_fraction: float = 0.05
    """Share of the local sample held out for validation."""
    table1_path: str = ""
    """Optional path to a reader-filled Table 1 (CSV); empty = the paper's weights are unknown."""
    val_batches: int = 8
    """Held-out packed batches per source for per-domain/per-language validation loss."""
    bpe_vocab: int = 100_289
    """Vocabulary of the BPE trained here for chapter 02's compression study (Arcade100k-sized)."""
    study_chars: int = 0
    """Characters per sample source used by the compression study (0 = all)."""


@dataclass(frozen=True)
class ModelConfig:
    n_layers: int = 24
    """Transformer blocks."""
    d_model: int = 2048
    """Hidden width."""
    n_heads: int = 32
    """Attention heads (multi-head, no GQA)."""
    d_ff: int = 5632
    """SwiGLU intermediate size."""
    vocab_size: int = 100_352
    """Embedding rows: Arcade100k's 100,289 padded to a multiple of 64."""
    max_position_embeddings: int = 4096
    """Longest context the rotary embedding is configured for."""
    rotary_pct: float = 0.25
    """Share of each head's dimensions that rotate (RoPE on 25 %)."""
    rope_theta: float = 10_000.0
    """RoPE base."""
    norm_eps: float = 1e-5
    """LayerNorm epsilon."""
    qkv_bias: bool = True
    """Biases on the Q, K, V projections only."""
    tie_embeddings: bool = False
    """Whether input and output embeddings share weights (paper: untied). Only False is accepted: the
    checkpoint, GGUF/OpenVINO and MLX paths of this project assume a separate output matrix."""
    init_std: float = 0.02
    """Std of the normal initialisation."""


@dataclass(frozen=True)
class ScheduleConfig:
    kind: str = "hybrid"
    """'hybrid' (Eq. 1), 'hybrid2' (App. B hyb2), 'cosine', 'rsqrt' (Eq. 2) or 'constant'."""
    peak_lr: float = 1e-3
    """η_max."""
    min_lr: float = 1e-4
    """η_min."""
    warmup_steps: int = 9720
    """Linear warm-up steps."""
    total_steps: int = 540_000
    """T of Eq. 1: the horizon the cosine branch and the switch point are measured on."""
    switch_frac: float = 0.25
    """Where the cosine branch hands over to α/√(t+β), as a fraction of T (hyb: 1/4; hyb2 doubles it to 1/2)."""
    cooldown_steps: int = 80_000
    """Linear cool-down to zero at the end of the run."""
    cosine_period: float = 1.0
    """Period of Eq. 1's cosine in units of T: 1 = full period (η_min at T/2, T/4 its midpoint); 2 = half-cosine over T."""
    t_origin: str = "warmup_end"
    """What t of Eq. 1 counts from: 'warmup_end' (GPT-NeoX: steps after warm-up) or 'zero' (the global step)."""
    horizon_excludes_warmup: bool = True
    """True: Eq. 1's T is total_steps − warmup_steps (GPT-NeoX's lr-decay span); False: T = total_steps."""
    rsqrt_min: str = "additive"
    """How η_min enters Eq. 1's second branch: 'additive' η_min + α/√(t+β), 'none' α/√(t+β), 'clip' max(η_min, ·)."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 500_000
    """Optimizer steps of the run (paper: 420k + 80k cool-down)."""
    global_batch_tokens: int = 8_388_608
    """Tokens per optimizer step (2 × 2 × 512 × 4096)."""
    micro_batch: int = 2
    """Sequences per process per forward pass."""
    n_procs: int = 512
    """Data-parallel processes (GPUs at paper scale)."""
    n_nodes: int = 64
    """Machines (P4d: 8 A100-40GB each)."""
    zero_stage: int = 1
    """ZeRO stage: optimizer state sharded across processes."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    beta1: float = 0.9
    """AdamW β1."""
    beta2: float = 0.95
    """AdamW β2."""
    eps: float = 1e-8
    """AdamW ε."""
    grad_clip: float = 1.0
    """Global gradient-norm clipping."""
    precision: str = "bf16"
    """'bf16' (autocast, fp32 loss) or 'fp32'."""
    checkpoint_every: int = 1000
    """Write a resumable checkpoint every N steps (0 = never)."""
    eval_every: int = 1000
    """Held-out validation every N steps (0 = only at the end)."""
    gpu: str = "A100-40GB"
    """Accelerator the plan is priced for."""
    launch: bool = False
    """Paper preset only: really launch on the GPUs at hand instead of writing the plan."""
    backend: str = "auto"
    """ZeRO engine: 'torch' (DDP + ZeroRedundancyOptimizer), 'deepspeed' (via accelerate), 'auto' (DeepSpeed on CUDA if installed)."""
    trackers: str = "tensorboard"
    """Experiment tracker the engine logs to through accelerate: 'tensorboard' (event files in the run folder), 'wandb' (offline unless preset paper), 'trackio' (local), 'none'."""
    ablation_steps: int = 0
    """Optimizer steps of each App. A/B ablation run at small scale (0 = ablations not run, as at paper)."""
    ablation_batch_tokens: int = 4_194_304
    """Global batch of the App. A/B ablations and App. D's baseline (paper: the 4M-token baseline of App. D)."""
    ablation_d_model: int = 0
    """Width of the ablations' proxy model (0 = the preset's model; FFN scales along; the paper ablated 1B models)."""
    ablation_val_seqs: int = 4
    """Held-out sequences per source on which each ablation run's final validation loss is measured."""


@dataclass(frozen=True)
class AlignConfig:
    sft_epochs: int = 3
    """SFT epochs (paper: 3)."""
    sft_global_batch: int = 512
    """SFT global batch in sequences (paper: 512)."""
    sft_lr: float = 2e-5
    """SFT peak lr: stripped in the paper; default is the Zephyr recipe's 2e-5 (an assumption)."""
    sft_warmup_frac: float = 0.1
    """SFT warm-up share: stripped in the paper; 0.1 assumed."""
    sft_max_turns: int = 8
    """Samples with more than this many turns are dropped (paper: eight)."""
    sft_max_samples: int = 0
    """Cap on SFT samples per source (0 = all)."""
    dpo_beta: float = 0.01
    """DPO β: stripped in the paper ("lowered"); the Zephyr recipe's later 0.01."""
    dpo_lr: float = 5e-7
    """DPO lr: stripped in the paper; the Zephyr recipe's 5e-7."""
    dpo_epochs: int = 1
    """DPO epochs (Zephyr recipe, Jan 2024)."""
    dpo_min_chosen_score: float = 8.0
    """Pairs whose chosen response scores below this are dropped (UltraFeedback's 1–10 scale; paper: 8)."""
    sk_prompts: int = 10_000
    """Self-knowledge prompts (paper: 10k)."""
    sk_epochs: int = 6
    """Self-knowledge epochs (paper: 6)."""
    sk_batch: int = 256
    """Self-knowledge batch (paper: 256)."""
    sk_lr: float = 3e-6
    """Self-knowledge peak lr (paper: 3e-6, cosine to 0)."""
    sk_warmup_steps: int = 100
    """Self-knowledge warm-up steps (paper: 100)."""
    max_steps: int = 0
    """Cap on optimizer steps per stage (0 = as many as the epochs give)."""
    sft_turn: str = "exchange"
    """What one 'turn' of the >8-turn filter is: 'exchange' (a user message and its reply) or 'message'."""
    micro_batch: int = 8
    """Sequences per device per forward pass in every stage (not in the paper; an assumption)."""
    n_gpus: int = 8
    """Data-parallel processes of the fine-tuning plan (one 8-GPU node, as the Alignment Handbook's recipes)."""
    dpo_global_batch: int = 128
    """DPO pairs per step: not in the paper; the Zephyr recipe's 8 per device × 2 accumulation × 8 GPUs."""
    max_length: int = 1024
    """Longest tokenised DPO pair / self-knowledge example (Zephyr recipe: 1024); SFT packs to data.seq_len."""
    sk_max_new_tokens: int = 256
    """Tokens sampled per self-knowledge prompt and per continuation (not in the paper; an assumption)."""


@dataclass(frozen=True)
class EvalConfig:
    model: str = "stabilityai/stablelm-2-1_6b"
    """Model to evaluate at paper scale (a Hub id or a local path)."""
    limit: int = 0
    """Examples per task (0 = all)."""
    batch_size: int = 8
    """Harness batch size."""
    needle_depths: int = 35
    """Needle depths (App. C: 35)."""
    needle_min_ctx: int = 500
    """Shortest haystack in tokens."""
    needle_max_ctx: int = 4000
    """Longest haystack in tokens."""
    needle_n_ctx: int = 8
    """Context sizes between min and max."""
    needle_seeds: int = 10
    """Repeats, each with its own seed (App. C: 10 runs)."""
    needle_gen_tokens: int = 32
    """Tokens the model may generate to answer the needle question."""
    bootstrap_iters: int = 100_000
    """Harness bootstrap resamples for the stderr of non-mean metrics (the published runs: 100000)."""
    launch: bool = False
    """Paper preset only: really run the harness and the needle grid here instead of printing the plan."""


@dataclass(frozen=True)
class QuantConfig:
    formats: tuple[str, ...] = ("F16", "Q8_0", "Q4_0", "Q4_1", "Q5_K_M", "OV_FP16", "OV_INT4", "MLX_Q4")
    """Formats to build and compare (stablelm2.quantization.formats.FORMATS)."""
    models: tuple[str, ...] = ("stabilityai/stablelm-2-1_6b", "stabilityai/stablelm-2-zephyr-1_6b")
    """Models to quantize: 'pretrained' (ch05), 'dpo' (ch06), 'random' (seeded untrained cfg.model) or a Hub id."""
    threads: int = 2
    """Threads for inference speed measurements."""
    prompt_tokens: int = 64
    """Prompt length for prompt-processing speed."""
    gen_tokens: int = 32
    """Generated tokens for generation speed."""
    speed_repeats: int = 2
    """Timed repeats per format (the best is kept: other processes only slow a run down)."""
    ppl_tokens: int = 65_536
    """Held-out tokens for perplexity and KL to the fp32 model."""
    ppl_window: int = 4096
    """Tokens per perplexity window."""
    speed_study_1p6b: bool = True
    """Also time the paper-size architecture with random weights."""
    arch_formats: tuple[str, ...] = ("F16", "Q8_0", "Q4_0", "Q4_1", "Q5_K_M", "OV_FP16", "OV_INT4")
    """Formats of the paper-size speed study (random weights; artefacts cached under build/cache)."""


@dataclass(frozen=True)
class CarbonConfig:
    country: str = "USA"
    """ISO-3166 alpha-3 code (capitals) of the grid codecarbon's offline tracker meters against; checked
    against codecarbon's energy-mix table (stablelm2.grid), which would otherwise fall back to the world average."""
    pue: float = 1.1
    """Data-centre power usage effectiveness (paper: 1.1)."""
    intensity_kg_per_kwh: float = 0.385
    """Grid carbon intensity (paper: US average 0.385 kg CO2eq/kWh)."""
    price_per_gpu_hour: float = 3.5
    """Cloud price per GPU-hour (paper: ~3.5 USD)."""
    meter: bool = True
    """Meter each notebook run with codecarbon."""


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
        return self.run.preset

    @property
    def seed(self) -> int:
        return self.run.seed

    def chapter_dir(self, chapter: str) -> Path:
        """``build/<preset>/<chapter>/``: where a chapter writes its artefacts."""
        return build_root() / self.run.preset / chapter

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


_SECTION_TYPES: dict[str, type] = typing.get_type_hints(Config)
SECTIONS = _SECTION_TYPES
"""Section name → dataclass, e.g. ``SECTIONS["train"] is TrainConfig``."""


# --------------------------------------------------------------------------------------------
# Presets: the paper preset is the dataclass defaults; the others override a few fields.
# --------------------------------------------------------------------------------------------

_PRESET_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    "cpu": {
        "run": {"preset": "cpu", "offline": True, "device": "cpu"},
        "data": {"source": "local", "seq_len": 128, "total_tokens": 2_000_000, "epochs": 2, "val_batches": 2,
                 "bpe_vocab": 32_000},
        "model": dict(n_layers=4, d_model=128, n_heads=4, d_ff=352, max_position_embeddings=512),
        "schedule": dict(peak_lr=3e-3, min_lr=3e-4, warmup_steps=4, total_steps=44, cooldown_steps=6),
        "train": dict(steps=40, global_batch_tokens=1024, micro_batch=4, n_procs=2, n_nodes=1,
                      precision="fp32", checkpoint_every=20, eval_every=20, gpu="cpu", ablation_steps=12,
                      ablation_batch_tokens=512),
        "align": dict(sft_epochs=1, sft_global_batch=8, sft_lr=1e-3, sft_max_samples=0, dpo_lr=1e-4,
                      dpo_beta=0.1, dpo_epochs=1, sk_prompts=32, sk_epochs=2, sk_batch=16, sk_lr=3e-4,
                      sk_warmup_steps=5, max_steps=16, micro_batch=4, n_gpus=1, dpo_global_batch=8, max_length=128,
                      sk_max_new_tokens=16),
        "eval": dict(model="", limit=64, batch_size=8, needle_depths=7, needle_min_ctx=64,
                     needle_max_ctx=256, needle_n_ctx=4, needle_seeds=3, needle_gen_tokens=12,
                     bootstrap_iters=1000),
        "quant": dict(formats=("F16", "Q8_0", "Q4_0", "Q4_1", "Q5_K_M", "OV_FP32", "OV_FP16", "OV_INT8", "OV_INT4",
                               "MLX_Q4"), models=("pretrained", "dpo"), prompt_tokens=64, gen_tokens=32,
                      ppl_tokens=1024, ppl_window=256),
    },
    "smoke": {
        "run": {"preset": "smoke", "offline": True, "device": "cpu"},
        "data": {"source": "local", "seq_len": 64, "total_tokens": 100_000, "epochs": 1,
                 "max_docs_per_source": 20, "val_batches": 1,
                 "bpe_vocab": 4_000, "study_chars": 20_000},
        "model": dict(n_layers=2, d_model=64, n_heads=4, d_ff=176, max_position_embeddings=256),
        "schedule": dict(peak_lr=3e-3, min_lr=3e-4, warmup_steps=2, total_steps=12, cooldown_steps=2),
        "train": dict(steps=8, global_batch_tokens=512, micro_batch=4, n_procs=1, n_nodes=1,
                      precision="fp32", checkpoint_every=4, eval_every=0, gpu="cpu", ablation_steps=2,
                      ablation_batch_tokens=256, ablation_d_model=32, ablation_val_seqs=1),
        "align": dict(sft_epochs=1, sft_global_batch=4, sft_lr=1e-3, sft_max_samples=8, dpo_lr=1e-4,
                      dpo_beta=0.1, sk_prompts=8, sk_epochs=1, sk_batch=4, sk_lr=1e-3, sk_warmup_steps=1,
                      max_steps=3, micro_batch=2, n_gpus=1, dpo_global_batch=4, max_length=64,
                      sk_max_new_tokens=8),
        "eval": dict(model="", limit=4, batch_size=4, needle_depths=3, needle_min_ctx=32,
                     needle_max_ctx=64, needle_n_ctx=2, needle_seeds=2, needle_gen_tokens=6,
                     bootstrap_iters=100),
        "quant": dict(formats=("F16", "Q8_0", "Q4_0", "Q5_K_M", "OV_INT4", "MLX_Q4"), models=("random",),
                      prompt_tokens=16, gen_tokens=8, speed_repeats=1, ppl_tokens=256, ppl_window=64,
                      speed_study_1p6b=False),
        "carbon": {},
    },
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "run.preset": PRESETS,
    "run.device": ("auto", "cpu", "cuda"),
    "data.source": ("hub", "local"),
    "schedule.kind": ("hybrid", "hybrid2", "cosine", "rsqrt", "constant"),
    "schedule.t_origin": ("zero", "warmup_end"),
    "schedule.rsqrt_min": ("additive", "none", "clip"),
    "train.precision": ("bf16", "fp32"),
    "align.sft_turn": ("exchange", "message"),
    "train.gpu": (*hardware.GPU_NAMES, "cpu"),
    "train.backend": ("auto", "torch", "deepspeed"),
    "train.trackers": ("tensorboard", "wandb", "trackio", "none"),
}
_COUNTRY_FIELDS = ("carbon.country",)
"""Fields holding a grid country: each is checked against codecarbon's table (stablelm2.grid.country_code)."""
_FRACTIONS = {"data.val_fraction", "schedule.switch_frac", "align.sft_warmup_frac", "model.rotary_pct"}
_MAY_BE_ZERO = {
    "run.threads", "data.max_docs_per_source", "data.study_chars", "train.checkpoint_every", "train.eval_every",
    "align.sft_max_samples", "align.max_steps", "eval.limit", "schedule.cooldown_steps",
    "schedule.warmup_steps", "train.zero_stage", "model.init_std", "train.ablation_steps", "train.ablation_d_model", "schedule.min_lr",
}


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


def _coerce(qualified: str, value: Any, annotation: Any) -> Any:
    """Check (and gently coerce) one value against its annotation; raise ConfigError otherwise."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    tname = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{qualified} = {value!r} has the wrong type: expected {tname}, got {type(value).__name__}")


def _check_values(cfg: Config) -> None:
    for section, cls in _SECTION_TYPES.items():
        sec = getattr(cfg, section)
        for f in dataclasses.fields(cls):
            q = f"{section}.{f.name}"
            v = getattr(sec, f.name)
            if q in _CHOICES and v not in _CHOICES[q]:
                raise ConfigError(f"{q} = {v!r} is not allowed; choose one of: {', '.join(_CHOICES[q])}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{q} = {v!r} must be a finite number (NaN and infinity compare false with "
                                  "every bound, so no check could hold)")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if q in _FRACTIONS and not 0.0 <= v <= 1.0:
                    raise ConfigError(f"{q} = {v!r} must be a fraction between 0 and 1")
                if q in _MAY_BE_ZERO:
                    if v < 0:
                        raise ConfigError(f"{q} = {v!r} must not be negative (0 is allowed)")
                elif q not in _FRACTIONS and v <= 0:
                    raise ConfigError(f"{q} = {v!r} must be positive")
    m, s, t = cfg.model, cfg.schedule, cfg.train
    if m.d_model % m.n_heads:
        raise ConfigError(
            f"model.n_heads = {m.n_heads} does not divide model.d_model = {m.d_model}; "
            "pick a head count that divides the width"
        )
    if (m.d_model // m.n_heads) % 2 or int((m.d_model // m.n_heads) * m.rotary_pct) % 2:
        raise ConfigError(
            f"model.rotary_pct = {m.rotary_pct} gives an odd number of rotary dims per head "
            f"(head dim {m.d_model // m.n_heads}); rotary dims must be even"
        )
    if m.vocab_size < 100_289:
        raise ConfigError(
            f"model.vocab_size = {m.vocab_size} is smaller than Arcade100k's 100,289 tokens; "
            "use 100352 (padded to a multiple of 64)"
        )
    if cfg.data.seq_len > m.max_position_embeddings:
        raise ConfigError(
            f"data.seq_len = {cfg.data.seq_len} exceeds model.max_position_embeddings = "
            f"{m.max_position_embeddings}; shorten the sequences or raise the model's context"
        )
    if s.min_lr > s.peak_lr:
        raise ConfigError(f"schedule.min_lr = {s.min_lr} is above schedule.peak_lr = {s.peak_lr}; η_min must be ≤ η_max")
    if s.warmup_steps >= s.total_steps:
        raise ConfigError(
            f"schedule.warmup_steps = {s.warmup_steps} is not shorter than schedule.total_steps = "
            f"{s.total_steps}; the warm-up must end inside the run"
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
    frac = s.switch_frac * (2 if s.kind == "hybrid2" else 1)
    horizon = s.total_steps - (s.warmup_steps if s.horizon_excludes_warmup else 0)
    switch = frac * horizon + (s.warmup_steps if s.t_origin == "warmup_end" else 0)
    if s.kind in ("hybrid", "hybrid2") and not (s.warmup_steps <= switch < s.total_steps):
        raise ConfigError(
            f"schedule.switch_frac = {s.switch_frac} puts the switch at step {switch:.0f}, outside "
            f"[{s.warmup_steps}, {s.total_steps}); choose a fraction after the warm-up"
        )
    if s.kind in ("hybrid", "hybrid2") and not 0 < s.switch_frac < s.cosine_period / 2:
        raise ConfigError(
            f"schedule.switch_frac = {s.switch_frac} must lie strictly between 0 and schedule.cosine_period / 2 = "
            f"{s.cosine_period / 2}: Eq. 1's rsqrt branch needs the cosine still falling at the switch"
        )
    if s.kind == "rsqrt" and s.warmup_steps == 0:
        raise ConfigError("schedule.kind = 'rsqrt' needs schedule.warmup_steps > 0: Eq. 2 is η_max·√(warm-up/t)")
    per_step = t.micro_batch * t.n_procs * cfg.data.seq_len
    if t.global_batch_tokens % per_step:
        raise ConfigError(
            f"train.global_batch_tokens = {t.global_batch_tokens} is not a multiple of micro_batch × "
            f"n_procs × seq_len = {t.micro_batch} × {t.n_procs} × {cfg.data.seq_len} = {per_step}; "
            "change the batch, the micro-batch or the process count so they divide"
        )
    if t.n_procs % t.n_nodes:
        raise ConfigError(f"train.n_procs = {t.n_procs} is not divisible by train.n_nodes = {t.n_nodes}")
    if t.zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"train.zero_stage = {t.zero_stage} is not a ZeRO stage; use 0, 1, 2 or 3")
    if t.launch and cfg.run.preset != "paper":
        raise ConfigError("train.launch = True is only meaningful at preset 'paper'; smoke/cpu always train")
    if cfg.run.preset != "paper" and not cfg.run.offline:
        raise ConfigError(f"run.offline = False is not allowed at preset {cfg.run.preset!r}: smoke and cpu never touch the network")
    if cfg.run.offline and cfg.data.source == "hub":
        raise ConfigError("data.source = 'hub' needs the network but run.offline is True; use data.source = 'local'")
    e = cfg.eval
    if e.needle_min_ctx > e.needle_max_ctx:
        raise ConfigError(f"eval.needle_min_ctx = {e.needle_min_ctx} is above eval.needle_max_ctx = {e.needle_max_ctx}")
    if e.launch and cfg.run.preset != "paper":
        raise ConfigError("eval.launch = True is only meaningful at preset 'paper'; smoke/cpu always evaluate")
    if e.needle_max_ctx > m.max_position_embeddings:
        raise ConfigError(
            f"eval.needle_max_ctx = {e.needle_max_ctx} exceeds model.max_position_embeddings = "
            f"{m.max_position_embeddings}; the model cannot read a context that long"
        )
    if cfg.carbon.pue < 1.0:
        raise ConfigError(f"carbon.pue = {cfg.carbon.pue} is below 1; a PUE is total power over IT power, ≥ 1")
    _check_unhonoured(cfg)
    from . import grid  # the spine's table of grid regions (imports this module: imported here)

    for q in _COUNTRY_FIELDS:
        section, name = q.split(".")
        grid.country_code(getattr(getattr(cfg, section), name), q)


def _check_unhonoured(cfg: Config) -> None:
    """Refuse values of switches and choice fields that the pipeline would not honour (issue 14, kind 10)."""
    m, t, a = cfg.model, cfg.train, cfg.align
    if m.tie_embeddings:
        raise ConfigError(
            "model.tie_embeddings = True is not supported: the paper's model is untied, and this project's "
            "checkpoints (safetensors refuses shared tensors), GGUF/OpenVINO bytes-per-token and MLX export all "
            "assume a separate output matrix; leave it False"
        )
    if cfg.run.device == "cpu" and t.backend == "deepspeed":
        raise ConfigError(
            "train.backend = 'deepspeed' needs CUDA GPUs but run.device = 'cpu' (accelerate would run plain DDP "
            "and ignore the DeepSpeed plugin); use train.backend = 'torch' or 'auto', or run.device = 'cuda'"
        )
    if cfg.run.device == "cpu" and t.precision == "bf16":
        raise ConfigError(
            "train.precision = 'bf16' is applied on CUDA only (autocast) but run.device = 'cpu', so the run would "
            "train in fp32 while saying bf16; use train.precision = 'fp32' on CPU, or run.device = 'cuda'"
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
            + ", ".join(g for g in _CHOICES["train.gpu"] if g != "cpu")
        )
    if not 1.0 <= a.dpo_min_chosen_score <= 10.0:
        raise ConfigError(
            f"align.dpo_min_chosen_score = {a.dpo_min_chosen_score} is outside UltraFeedback's 1–10 scale (above it "
            "every scored pair is dropped, below it the filter keeps every pair); the paper uses 8"
        )


def load(preset: str = "cpu", **overrides: Any) -> Config:
    """Resolve ``preset`` plus ``overrides`` into a validated, frozen :class:`Config`.

    ``overrides`` whose value is ``None`` are ignored, so a notebook can pass its optional
    parameters straight through.
    """
    if preset not in PRESETS:
        hint = difflib.get_close_matches(str(preset), PRESETS, n=1)
        raise ConfigError(
            f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    values: dict[str, dict[str, Any]] = {s: {} for s in _SECTION_TYPES}
    for section, fields_ in _PRESET_OVERRIDES[preset].items():
        values[section].update(fields_)
    for key, value in overrides.items():
        if value is None:
            continue
        section, name = _resolve_key(key)
        if section == "run" and name == "preset":
            raise ConfigError("run.preset cannot be overridden; pass the preset as the first argument of load()")
        values[section][name] = value
    sections = {}
    for section, cls in _SECTION_TYPES.items():
        hints = typing.get_type_hints(cls)
        checked = {n: _coerce(f"{section}.{n}", v, hints[n]) for n, v in values[section].items()}
        sections[section] = cls(**checked)
    cfg = Config(**sections)
    _check_values(cfg)
    return cfg



def from_dict(d: dict[str, dict[str, Any]]) -> Config:
    """Rebuild a :class:`Config` from ``cfg.to_dict()`` (validated again)."""
    overrides = {f"{s}.{k}": v for s, fields in d.items() for k, v in fields.items() if (s, k) != ("run", "preset")}
    return load(d["run"]["preset"], **overrides)

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
                    if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                        docs[f"{section}.{stmt.target.id}"] = str(nxt.value.value)
    return docs
