"""Recipes as data: the paper's values, the batch arithmetic, the launch files."""

from __future__ import annotations

import pytest
import yaml

from stablelm2 import config, facts
from stablelm2.alignment import launch, recipes


def test_paper_recipes_use_the_papers_values():
    paper = config.load("paper")
    sft, dpo, sk = (recipes.build(paper, s) for s in recipes.STAGES)
    assert sft.args["num_train_epochs"] == facts.value("sft.epochs")
    assert sft.args["lr_scheduler_type"] == facts.value("sft.lr_schedule")
    assert sft.args["max_length"] == facts.value("sft.packing_max_tokens") and sft.args["packing"]
    assert sft.data["max_turns"] == facts.value("sft.max_turns")
    assert (sk.args["num_train_epochs"], sk.args["learning_rate"], sk.args["warmup_steps"]) == (
        facts.value("selfknow.epochs"), facts.value("selfknow.peak_lr"), facts.value("selfknow.warmup_steps"))
    assert sk.args["packing"] is facts.value("selfknow.packed")
    assert (dpo.args["beta"], dpo.args["learning_rate"]) == (
        facts.value("dpo.zephyr_recipe_beta_jan2024"), facts.value("dpo.zephyr_recipe_lr_jan2024"))
    assert "stripped" in dpo.provenance["beta"] and "stripped" in sft.provenance["learning_rate"]


def test_global_batch_composition():
    paper = config.load("paper")
    assert recipes.describe_batch(recipes.build(paper, "sft").batch) == (
        "512 sequences = 8 per device × 8 accumulation steps × 8 processes")
    assert recipes.build(paper, "self_knowledge").batch == {"global": 256, "per_device": 8, "accumulation": 4,
                                                            "processes": 8}
    assert recipes.build(config.load("cpu"), "sft").batch["accumulation"] == 2
    with pytest.raises(config.ConfigError, match=r"align.sft_global_batch = 500 is not a multiple of .* 8 × 8"):
        recipes.build(config.load("paper", **{"align.sft_global_batch": 500}), "sft")
    with pytest.raises(recipes.AlignmentError, match="unknown alignment stage 'rlhf'"):
        recipes.build(paper, "rlhf")


def test_launch_files_round_trip(tmp_path):
    paper = config.load("paper")
    files = recipes.write_launch_files(paper, tmp_path)
    for stage in recipes.STAGES:
        assert recipes.Recipe.from_yaml(files[f"recipe_{stage}"]) == recipes.build(paper, stage)
    acc = yaml.safe_load(files["accelerate"].read_text())
    assert acc["distributed_type"] == "DEEPSPEED" and acc["num_processes"] == 8
    script = files["launch"].read_text()
    assert script.count("accelerate launch") == 3 and "stablelm2.alignment.launch" in script
    assert "--init $OUT/sft/model --out $OUT/dpo" in script  # each stage starts from the last one's model
    assert facts.value("paper.released_weights")[0] in script
    with pytest.raises(SystemExit):  # a recipe of the wrong stage is refused before anything loads
        launch.main(["--stage", "dpo", "--recipe", str(files["recipe_sft"]), "--init", "x", "--out", str(tmp_path)])
    plan = recipes.plan(paper)
    assert "826,938" in plan[0]["steps"] and "469 steps" in plan[2]["steps"]


def test_a_stage_key_follows_the_shipped_samples(tmp_path, monkeypatch):
    """An edited conversation or preference sample gives a new stage key: no model trained on the old one is reused."""
    import shutil

    from stablelm2 import config
    from stablelm2.alignment import common, recipes

    recipe = recipes.build(config.load("smoke"), "sft")
    before = common.recipe_key(recipe, "model")
    assert common.recipe_key(recipe, "model") == before
    copy = tmp_path / "samples"
    shutil.copytree(common.SAMPLES_DIR, copy)
    (copy / "capybara.jsonl").write_text((copy / "capybara.jsonl").read_text() + "\n")
    monkeypatch.setattr(common, "SAMPLES_DIR", copy)
    assert common.recipe_key(recipe, "model") != before
