"""Chapter 06 · The three fine-tuning recipes as data, their batch arithmetic, and the launch files.

A :class:`Recipe` is everything one stage needs, as plain data: the keyword arguments of TRL's
``SFTConfig`` / ``DPOConfig``, the keyword arguments of the data loader, where each value came from
(a fact of the paper or a documented assumption in the ``align`` config section) and how the
global batch is composed. :func:`build` makes it from the config; ``paper`` gives the paper's
values where the text kept them (3 SFT epochs, global batch 512, packing to 4096, cosine; 6
self-knowledge epochs, batch 256, 100 warm-up steps, lr 3e-6) and the documented defaults where
it lost them (SFT lr and warm-up, DPO β and lr: the Zephyr recipe's values).

At ``paper`` nothing trains here: :func:`write_launch_files` writes one YAML per recipe, an
Accelerate + DeepSpeed ZeRO-2 config for one 8-GPU node (the Alignment Handbook's layout) and a
``launch.sh`` that runs the stages through :mod:`stablelm2.alignment.launch` — the same code the
``cpu`` preset runs in-process.

>>> from stablelm2 import config
>>> from stablelm2.alignment import recipes
>>> r = recipes.build(config.load("paper"), "sft")
>>> recipes.describe_batch(r.batch)
'512 sequences = 8 per device × 8 accumulation steps × 8 processes'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import chat_formats, facts
from ..config import Config, ConfigError
from ..files import atomic_write_text
from ..training import layout  # the batch solver (chapter 05's, sequences of length 1 here)

STAGES = ("sft", "dpo", "self_knowledge")
BATCH_UNITS = {"sft": "packed sequences", "dpo": "preference pairs", "self_knowledge": "examples"}
"""What one element of each stage's global batch is."""
BASE_MODEL_HUB = facts.value("paper.released_weights")[0]
"""The released base model the paper's fine-tuning starts from."""


class AlignmentError(RuntimeError):
    """A stage cannot run here (unknown stage, paper scale without GPUs, missing inputs)."""


@dataclass(frozen=True)
class Recipe:
    """One stage as data (YAML-serialisable)."""

    stage: str
    trainer: str
    args: dict[str, Any]
    data: dict[str, Any]
    batch: dict[str, int]
    provenance: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    step_cap: int = 0
    """At most this many optimizer steps (0 = as many as the epochs give); set from ``align.max_steps``."""

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a plain dict (field name → value, nested dicts copied)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """The recipe :meth:`to_dict` gave; a missing or unknown key raises ``TypeError``."""
        return cls(**d)

    def to_yaml(self) -> str:
        """The recipe as YAML text (fields in declaration order), read back by :meth:`from_yaml`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, path: Path | str) -> Recipe:
        """The recipe in the YAML file ``path`` (as :meth:`to_yaml` wrote it); ``TypeError`` as
        :meth:`from_dict`."""
        return cls.from_dict(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def check_stage(stage: str) -> str:
    """``stage`` itself when it is one of :data:`STAGES`.

    Raises:
        AlignmentError: ``stage`` is not ``sft``, ``dpo`` or ``self_knowledge``.
    """
    if stage not in STAGES:
        raise AlignmentError(f"unknown alignment stage {stage!r}; stages are: {', '.join(STAGES)}")
    return stage


def compose_batch(global_batch: int, micro: int, procs: int, field_name: str) -> dict[str, int]:
    """``global = per-device × accumulation × processes`` (in sequences), solved by chapter 05's
    :func:`stablelm2.training.layout.solve`; ConfigError naming ``align.<field_name>`` when it does not divide."""
    try:
        lay = layout.solve(global_batch, seq_len=1, n_procs=procs, micro_batch=micro)
    except layout.LayoutError as e:
        raise ConfigError(
            f"align.{field_name} = {global_batch} is not a multiple of align.micro_batch × align.n_gpus = "
            f"{micro} × {procs} = {micro * procs}; change the batch, the micro-batch or the process count") from e
    return {"global": lay.global_batch_tokens, "per_device": lay.micro_batch, "accumulation": lay.grad_accum,
            "processes": lay.n_procs}


def describe_batch(batch: dict[str, int], unit: str = "sequences") -> str:
    """E.g. ``'512 sequences = 8 per device × 8 accumulation steps × 8 processes'``."""
    return (f"{batch['global']} {unit} = {batch['per_device']} per device × {batch['accumulation']} "
            f"accumulation steps × {batch['processes']} process{'es' if batch['processes'] != 1 else ''}")


def _cite(fact_id: str) -> str:
    return f"paper: {fact_id} = {facts.get(fact_id).cite()}"


def _common(cfg: Config, batch: dict[str, int]) -> dict[str, Any]:
    gpu = cfg.run.preset == "paper"
    return {
        "per_device_train_batch_size": batch["per_device"],
        "gradient_accumulation_steps": batch["accumulation"],
        "max_steps": -1,  # the epochs decide; align.max_steps caps them (see common.cap_steps)
        "seed": cfg.run.seed, "data_seed": cfg.run.seed,
        "bf16": gpu, "activation_checkpointing": gpu, "use_cpu": cfg.run.device == "cpu",
        "logging_steps": 1, "save_strategy": "no", "report_to": "none", "optim": "adamw_torch",
        "dataloader_num_workers": 0, "disable_tqdm": False,
    }


def _format_extra() -> dict[str, str]:
    """The chat format every stage renders conversations in (the released zephyr format, at every preset)."""
    return {"chat_format": chat_formats.DEFAULT.name}


def _format_prov() -> dict[str, str]:
    fmt = chat_formats.DEFAULT
    return {"chat_format": f"released format of stablelm-2-zephyr-1_6b: {facts.get(fmt.fact).cite()!r}; "
                           "special-token text in data stays text (chat_formats.encode)"}


def build(cfg: Config, stage: str) -> Recipe:
    """The recipe of ``stage`` at ``cfg``'s preset (raises ConfigError on a batch that does not divide)."""
    check_stage(stage)
    a = cfg.align
    mode = cfg.data.source
    if stage == "sft":
        batch = compose_batch(a.sft_global_batch, a.micro_batch, a.n_gpus, "sft_global_batch")
        args = {**_common(cfg, batch), "num_train_epochs": a.sft_epochs, "learning_rate": a.sft_lr,
                "lr_scheduler_type": facts.value("sft.lr_schedule"), "warmup_steps": a.sft_warmup_frac,
                "packing": True, "packing_strategy": "bfd_split", "max_length": cfg.data.seq_len,
                "assistant_only_loss": True}
        data: dict[str, Any] = {"mode": mode, "max_turns": a.sft_max_turns, "turn_unit": a.sft_turn,
                "max_samples": a.sft_max_samples}
        prov = {"num_train_epochs": _cite("sft.epochs"), "lr_scheduler_type": _cite("sft.lr_schedule"),
                "global batch": _cite("sft.global_batch_seqs"), "max_length": _cite("sft.packing_max_tokens"),
                "max_turns": _cite("sft.max_turns"),
                "learning_rate": "assumption: align.sft_lr (paper value stripped; Zephyr SFT recipe's 2e-5)",
                "warmup_steps": "assumption: align.sft_warmup_frac (paper value stripped; Zephyr's 0.1)",
                "per-device batch": "assumption: align.micro_batch", "packing_strategy":
                "ours: best-fit decreasing, long conversations split rather than cut"}
        return Recipe(stage, "SFTTrainer", args, data, batch, {**prov, **_format_prov()}, _format_extra(),
                      step_cap=a.max_steps)
    if stage == "dpo":
        batch = compose_batch(a.dpo_global_batch, a.micro_batch, a.n_gpus, "dpo_global_batch")
        args = {**_common(cfg, batch), "num_train_epochs": a.dpo_epochs, "learning_rate": a.dpo_lr,
                "beta": a.dpo_beta, "lr_scheduler_type": facts.value("dpo.zephyr_recipe_scheduler_jan2024"),
                "warmup_steps": facts.value("dpo.zephyr_recipe_warmup_jan2024"), "max_length": a.max_length}
        data = {"mode": mode, "min_chosen_score": a.dpo_min_chosen_score}
        prov = {"beta": "assumption: align.dpo_beta (paper: 'lowered', value stripped; "
                        f"Zephyr Jan 2024 = {facts.get('dpo.zephyr_recipe_beta_jan2024').cite()})",
                "learning_rate": "assumption: align.dpo_lr (paper: 'lowered', value stripped; "
                                 f"Zephyr = {facts.get('dpo.zephyr_recipe_lr_jan2024').cite()})",
                "num_train_epochs": f"assumption: align.dpo_epochs (Zephyr Jan 2024 = "
                                    f"{facts.get('dpo.zephyr_recipe_epochs_jan2024').cite()})",
                "lr_scheduler_type": _cite("dpo.zephyr_recipe_scheduler_jan2024") + " (Zephyr recipe)",
                "warmup_steps": _cite("dpo.zephyr_recipe_warmup_jan2024") + " (Zephyr recipe)",
                "min_chosen_score": _cite("dpo.min_chosen_score"),
                "global batch": "assumption: align.dpo_global_batch (Zephyr recipe: 8 × 2 × 8 GPUs)",
                "reference model": "the SFT model (paper: DPO after SFT, Zephyr recipe)"}
        return Recipe(stage, "DPOTrainer", args, data, batch, {**prov, **_format_prov()}, _format_extra(),
                      step_cap=a.max_steps)
    batch = compose_batch(a.sk_batch, a.micro_batch, a.n_gpus, "sk_batch")
    args = {**_common(cfg, batch), "num_train_epochs": a.sk_epochs, "learning_rate": a.sk_lr,
            "lr_scheduler_type": "cosine", "warmup_steps": a.sk_warmup_steps, "packing": False,
            "max_length": a.max_length, "assistant_only_loss": True}
    extra = {"n_prompts": a.sk_prompts, "max_new_tokens": a.sk_max_new_tokens, **_format_extra()}
    prov = {"num_train_epochs": _cite("selfknow.epochs"), "global batch": _cite("selfknow.batch_size"),
            "warmup_steps": _cite("selfknow.warmup_steps"), "learning_rate": _cite("selfknow.peak_lr"),
            "lr_scheduler_type": _cite("selfknow.lr_schedule"), "packing": _cite("selfknow.packed"),
            "n_prompts": _cite("selfknow.n_prompts"),
            "max_new_tokens": "assumption: align.sk_max_new_tokens",
            "negative token": "ours: <|extra0|> replaces the <|assistant|> marker (see chat.py)", **_format_prov()}
    return Recipe(stage, "SFTTrainer", args, {"mode": mode}, batch, prov, extra, step_cap=a.max_steps)


def recipe_table(cfg: Config) -> list[dict[str, Any]]:
    """Every stage's key values at this preset and at ``paper``, with where each paper value comes from."""
    from .. import config as _config

    def show(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    paper = _config.load("paper")
    rows = []
    for stage in STAGES:
        here, ref = build(cfg, stage), build(paper, stage)
        keys = ["num_train_epochs", "learning_rate", "lr_scheduler_type", "warmup_steps", "max_length"]
        keys += ["beta"] if stage == "dpo" else ["packing"]
        for k in keys:
            rows.append({"stage": stage, "setting": k, "paper preset": show(ref.args[k]),
                         cfg.run.preset: show(here.args[k]),
                         "where the paper value comes from": ref.provenance.get(k, "TRL/config default")})
        unit = BATCH_UNITS[stage]
        rows.append({"stage": stage, "setting": "global batch", "paper preset": describe_batch(ref.batch, unit),
                     cfg.run.preset: describe_batch(here.batch, unit),
                     "where the paper value comes from": ref.provenance.get("global batch", "")})
    return rows


# ------------------------------------------------------------------------------ paper launch files

_ACCELERATE_ZERO2 = {
    "compute_environment": "LOCAL_MACHINE", "debug": False,
    "deepspeed_config": {"offload_optimizer_device": "none", "offload_param_device": "none",
                         "zero3_init_flag": False, "zero_stage": 2},
    "distributed_type": "DEEPSPEED", "downcast_bf16": "no", "machine_rank": 0,
    "main_training_function": "main", "mixed_precision": "bf16", "num_machines": 1,
    "rdzv_backend": "static", "same_network": True, "use_cpu": False,
}


def write_launch_files(cfg: Config, out_dir: Path) -> dict[str, Path]:
    """Write the paper-scale plan: recipes, the Accelerate/DeepSpeed config and ``launch.sh``."""
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    for stage in STAGES:
        rec = build(cfg, stage)
        path = out_dir / "recipes" / f"{stage}.yaml"
        atomic_write_text(path, f"# Stable LM 2 1.6B · {stage} recipe (stablelm2.alignment.recipes)\n" + rec.to_yaml())
        files[f"recipe_{stage}"] = path
    acc = dict(_ACCELERATE_ZERO2, num_processes=cfg.align.n_gpus)
    files["accelerate"] = out_dir / "accelerate_deepspeed_zero2.yaml"
    atomic_write_text(files["accelerate"], yaml.safe_dump(acc, sort_keys=False))
    root = "${OUT:-" + str(out_dir.parent) + "}"  # the chapter folder, where stablelm2.alignment.aligned looks
    launch = "accelerate launch --config_file accelerate_deepspeed_zero2.yaml -m stablelm2.alignment.launch"
    script = "\n".join([
        "#!/usr/bin/env bash",
        "# Stable LM 2 1.6B fine-tuning on one 8-GPU node (Alignment Handbook layout: Accelerate + DeepSpeed).",
        "# Written by stablelm2.alignment.recipes.write_launch_files; run from this folder with the Hub reachable.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f"OUT={root}",
        f"{launch} --stage sft --recipe recipes/sft.yaml --init {BASE_MODEL_HUB} --out $OUT/sft",
        f"{launch} --stage dpo --recipe recipes/dpo.yaml --init $OUT/sft/model --out $OUT/dpo",
        "# self-knowledge data: prompts from the base model, continuations from the DPO model (one process)",
        "python -m stablelm2.alignment.launch --stage sk_data --recipe recipes/self_knowledge.yaml "
        f"--init $OUT/dpo/model --base {BASE_MODEL_HUB} --out $OUT/sk_data",
        f"{launch} --stage self_knowledge --recipe recipes/self_knowledge.yaml --init $OUT/dpo/model "
        "--data $OUT/sk_data --out $OUT/self_knowledge",
        "",
    ])
    files["launch"] = out_dir / "launch.sh"
    atomic_write_text(files["launch"], script)
    files["launch"].chmod(0o755)
    return files


def plan(cfg: Config) -> list[dict[str, Any]]:
    """The paper-scale plan, stage by stage: inputs, batch, steps where they follow from the facts."""
    rows = []
    for stage in STAGES:
        r = build(cfg, stage)
        if stage == "sft":
            n = facts.value("sft.n_samples")
            steps = (f"{n:,} samples × {r.args['num_train_epochs']} epochs, packed to {r.args['max_length']} "
                     "tokens: the step count depends on the packing (known only after tokenising)")
            src = ", ".join(facts.value("sft.hf_datasets"))
        elif stage == "dpo":
            steps = (f"{r.args['num_train_epochs']} epoch over the filtered pairs (count known after the "
                     f"filters run on the Hub data), {r.batch['global']} pairs per step")
            src = ", ".join(facts.value("dpo.hf_datasets_card_text"))
        else:
            n = r.extra["n_prompts"]
            total = 2 * n * r.args["num_train_epochs"]
            steps = (f"{n:,} prompts × 2 continuations × {r.args['num_train_epochs']} epochs / "
                     f"{r.batch['global']} = {-(-total // r.batch['global']):,} steps")
            src = f"{n:,} first messages generated by {BASE_MODEL_HUB}"
        rows.append({"stage": stage, "trainer": f"trl.{r.trainer}", "data": src,
                     "batch": describe_batch(r.batch, BATCH_UNITS[stage]), "steps": steps,
                     "lr": r.args["learning_rate"], "schedule": r.args["lr_scheduler_type"]})
    return rows
