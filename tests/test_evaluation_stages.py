"""Chapter 07 · stage-by-stage comparison, its claims, the paper plan, and the notebook at smoke."""

from __future__ import annotations

import pandas as pd
import pytest

from stablelm2 import config, record, runner
from stablelm2.evaluation import results, stages, tasks
from stablelm2.ledger import Ledger


def _table(base: float, dpo: float) -> pd.DataFrame:
    rows = []
    for stage, v in (("base", base), ("sft", (base + dpo) / 2), ("dpo", dpo)):
        for spec in tasks.LOCAL:
            rows.append({"task": spec.name, "metric": spec.metric, "stage": stage, "value": v, "stderr": 0.01, "n": 10})
    return pd.DataFrame(rows)


def test_released_models_come_from_the_published_files():
    assert stages.released_models() == {"base": "stabilityai/stablelm-2-1_6b",
                                        "dpo": "stabilityai/stablelm-2-zephyr-1_6b"}
    assert stages.stage_models(config.load("paper")) == stages.released_models()
    assert stages.stage_models(config.load("paper", **{"eval.model": "/models/mine"})) == {"model": "/models/mine"}


def test_paper_preset_plans_without_running():
    cfg = config.load("paper")
    assert stages.will_run(config.load("smoke")) and not stages.will_run(cfg)
    plan = stages.plan_table(cfg)
    assert set(plan["model"]) == {"base", "dpo"}
    shots = sorted({s.num_fewshot for s in tasks.default_tasks(cfg)})
    assert sorted(set(plan["shots"])) == shots and len(plan) == 2 * len(shots)
    assert all(c.startswith("lm_eval --model hf") for c in plan["command"])
    with pytest.raises(config.ConfigError, match="only meaningful at preset 'paper'"):
        config.load("cpu", **{"eval.launch": True})


def test_stage_claims_follow_the_numbers():
    led = Ledger("07_evaluation")
    c1, c2 = stages.stage_claims(led, _table(0.4, 0.3), {"base": 0.5, "dpo": 0.4})
    assert (c1.status, c2.status) == ("inconclusive at this scale", "inconclusive at this scale")  # one model each
    c1, c2 = stages.stage_claims(led, _table(0.3, 0.3), {"base": 0.4, "dpo": 0.4})
    assert (c1.status, c2.status) == ("inconclusive at this scale", "inconclusive at this scale")
    assert "a tie" in c1.evidence and "a tie" in c2.evidence  # a tie is never agreement (was `<=`)
    c1, c2 = stages.stage_claims(led, _table(0.0, 0.0), {"base": 0.0, "dpo": 0.0})
    assert (c1.status, c2.status) == ("reported only", "reported only")
    c1, c2 = stages.stage_claims(led, None, None)
    assert "planned, not run" in c1.evidence and "planned, not run" in c2.evidence
    mt, rank = stages.reported_claims(led)
    assert mt.status == rank.status == "reported only" and "ranks" in rank.evidence


def test_stage_figure_has_a_panel_per_task():
    import matplotlib.pyplot as plt

    fig = stages.plot_stages(_table(0.4, 0.3))
    assert len(fig.axes) == len(tasks.LOCAL)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["base", "sft", "dpo"]
    plt.close(fig)


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("07_evaluation", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "07_evaluation", root=build_dir)
    assert set(m["metrics"]) == results.EvaluationMetrics.__optional_keys__  # the library's schema: every part ran
    assert m["metrics"]["compare_self_max_abs_delta"] == 0.0
    scores = m["metrics"]["stage_scores"]
    assert {k.split("/")[0] for k in scores} == {"base", "sft", "dpo"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert set(m["metrics"]["needle_grid_mean"]) == {"base", "dpo"}
    claims = {c["id"]: c["status"] for c in m["claims"]}
    assert claims["evaluation.s7_headline.stablelm_2_1_6b"] == "consistent"
    assert "conflict" not in {s for k, s in claims.items() if k.startswith(("evaluation.tab4", "evaluation.s7"))}
    assert {"evaluation.stage_lastword", "evaluation.needle_base_vs_dpo", "evaluation.mtbench.stablelm_2_zephyr_1_6b"} <= set(claims)
    assert {f["name"] for f in m["figures"]} == {"tab5_multilingual_per_language", "fig3_mtbench",
                                                "tab4_stage_comparison", "fig5_needle_haystack",
                                                "fig_bpb_stages_domain", "fig_bpb_stages_language",
                                                "fig_bpb_stage_deltas"}
    # bits per byte: every stage and the unigram floor, and every accuracy judged against chance
    assert set(m["metrics"]["bpb_all"]) == {"base", "sft", "dpo", "unigram"}
    assert all(0 < v < 20 for v in m["metrics"]["bpb_all"].values())
    assert set(m["metrics"]["bpb_deltas"]) == {"base->sft", "sft->dpo", "unigram->base", "unigram->sft",
                                               "unigram->dpo"}
    assert all(v.startswith(("undecidable", "above", "below", "no chance"))
               for v in m["metrics"]["accuracy_verdicts"].values())
