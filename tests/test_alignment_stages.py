"""The chapter end to end at smoke: aligned() contract, reuse, the notebook's numbers and claims."""

from __future__ import annotations

import pytest

from stablelm2 import config, record, runner
from stablelm2.alignment import AlignmentError, aligned, stages


def test_paper_preset_writes_the_plan_and_refuses_to_train(build_dir):
    cfg = config.load("paper")
    res = stages.run_all(cfg)
    assert res["ran"] is False and [r["stage"] for r in res["plan"]] == ["sft", "dpo", "self_knowledge"]
    assert (build_dir / "paper" / "06_alignment" / "launch" / "launch.sh").is_file()
    with pytest.raises(AlignmentError, match="needs GPUs and the Hub.*launch.sh"):
        aligned(cfg, "dpo")
    with pytest.raises(AlignmentError, match="unknown alignment stage"):
        aligned(config.load("smoke"), "ppo")


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("06_alignment", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "06_alignment", root=build_dir)
    x = m["metrics"]
    assert set(x) == stages.AlignmentMetrics.__required_keys__  # the library's schema, every key logged
    # the filters on the shipped samples, capped at 8 kept rows per source (align.sft_max_samples)
    assert x["sft_kept"] == 56 and x["dpo_read"] == 64 and x["dpo_kept"] == 47
    assert (x["dpo_tied"], x["dpo_duplicated"], x["dpo_low_chosen"]) == (3, 4, 5)
    assert x["sft_steps"] == x["dpo_steps"] == x["sk_steps"] == 3
    assert x["sft_loss_last_quarter"] < x["sft_loss_first_quarter"]
    assert 0 <= x["sk_before"] <= 1 and 0 <= x["sk_after"] <= 1 and x["sk_prompts"] == 8
    claims = {c["id"]: c for c in m["claims"]}
    assert claims["align.sft_global_batch"]["status"] == "re-derived"
    assert claims["align.self_knowledge_global_batch"]["status"] == "re-derived"
    assert claims["align.dpo_filters"]["status"] == claims["align.sk_negative_token"]["status"] == "reproduced"
    assert claims["align.dpo_reward_accuracy"]["status"] == "inconclusive at this scale"  # one seed
    assert claims["align.sft_n_samples"]["status"] == claims["align.dpo_beta"]["status"] == "reported only"
    assert {f["name"] for f in m["figures"]} == {"fig6_sft_loss", "fig6_dpo_rewards", "fig6_self_knowledge"}
    # the contract later chapters use: the built stages are found, not rebuilt
    cfg = config.load("smoke")
    res = stages.ensure(cfg, "self_knowledge")
    assert res["reused"] and (aligned(cfg, "dpo") / "model.safetensors").is_file()
