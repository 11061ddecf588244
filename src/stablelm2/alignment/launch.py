"""Chapter 06 · Command line for the paper-scale stages (what ``launch.sh`` runs under ``accelerate launch``).

Each call runs one stage from a recipe YAML written by :func:`recipes.write_launch_files`, with the
same functions the ``cpu`` preset runs in-process; data is streamed from the Hub (``mode: hub``).

    accelerate launch --config_file accelerate_deepspeed_zero2.yaml -m stablelm2.alignment.launch \\
        --stage sft --recipe recipes/sft.yaml --init stabilityai/stablelm-2-1_6b --out $OUT/sft

Stages: ``sft``, ``dpo`` (reference = ``--init``), ``sk_data`` (one process: prompts from ``--base``,
continuations from ``--init``), ``self_knowledge`` (trains on ``--data``). The stage result is
written next to the model as ``result.json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..files import atomic_write_json
from . import dpo, self_knowledge, sft
from .recipes import Recipe
from .results import DPOResult, SelfKnowledgeResult, SFTResult


def main(argv: list[str] | None = None) -> int:
    """Run one alignment stage from its recipe YAML (Sec. 3.1–3.3) and return 0.

    ``sft``/``dpo``/``self_knowledge`` write the model to ``--out``/model and the stage result to
    ``--out``/result.json (rank 0 only); ``sk_data`` writes ``--out``/sk_data.json. A recipe of another
    stage, or ``sk_data`` without ``--base`` / ``self_knowledge`` without ``--data``, exits through
    argparse (``SystemExit`` 2) before any work.
    """
    p = argparse.ArgumentParser(prog="python -m stablelm2.alignment.launch", description=__doc__.split("\n")[0])
    p.add_argument("--stage", required=True, choices=("sft", "dpo", "sk_data", "self_knowledge"))
    p.add_argument("--recipe", required=True, type=Path, help="recipe YAML written by write_launch_files")
    p.add_argument("--init", required=True, help="model to start from (directory or Hub id)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--base", help="sk_data: the base model that writes the prompts")
    p.add_argument("--data", type=Path, help="self_knowledge: the directory sk_data wrote")
    a = p.parse_args(argv)
    recipe = Recipe.from_yaml(a.recipe)
    want = "self_knowledge" if a.stage == "sk_data" else a.stage
    if recipe.stage != want:
        p.error(f"--recipe {a.recipe} is the {recipe.stage!r} recipe, not {want!r}")
    res: SFTResult | DPOResult | SelfKnowledgeResult
    if a.stage == "sft":
        res = sft.train(recipe, a.init, a.out / "model")
    elif a.stage == "dpo":
        res = dpo.train(recipe, a.init, a.out / "model", ref=a.init)
    elif a.stage == "sk_data":
        if not a.base:
            p.error("--stage sk_data needs --base (the model that writes the prompts)")
        self_knowledge.make_data(recipe, a.base, a.init, a.out / "sk_data.json")
        return 0
    else:
        if a.data is None:
            p.error("--stage self_knowledge needs --data (the folder sk_data wrote)")
        res = self_knowledge.train(recipe, a.init, a.out / "model",
                                   data=self_knowledge.load_data(a.data / "sk_data.json"))
    if int(os.environ.get("RANK", "0")) == 0:  # one writer under accelerate
        atomic_write_json(a.out / "result.json", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
