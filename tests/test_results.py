"""The chapters' metrics.json numbers built by the library (chapters 00–09), from typed results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stablelm2 import carbon, config, facts, model_study, overview, schedule, tokenizer, tokenizer_study
from stablelm2.alignment import results as align
from stablelm2.carbon import results as carbon_results
from stablelm2.data import results as data
from stablelm2.evaluation import results as evaluation
from stablelm2.ledger import Ledger
from stablelm2.quantization import results as quant
from stablelm2.training import results as train


def _quality_row(fmt: str, ppl: float, kl: float) -> quant.QualityRow:
    return {"format": fmt, "backend": "gguf", "bits": 8.5, "ppl": ppl, "ppl_vs_fp32_pct": 0.0, "kl": kl,
            "top1_agree": 0.987654321, "tokens": 256, "bytes_on_disk": 1000}


def test_quantization_metrics_hold_only_the_parts_given_rounded_to_six_places():
    assert quant.metrics() == {}
    m = quant.metrics(quality={"random": [_quality_row("FP32", 12.3456789, 0.0),
                                          _quality_row("Q8_0", 12.3500004, 1.23456789e-4)]},
                      generated=[{"format": "Q8_0", "tokens": 2, "continuation": "ab", "ids": [7, 9]}])
    assert set(m) == {"quality", "generated"}
    assert m["quality"]["random"]["Q8_0"] == {"ppl": 12.35, "kl": 0.000123, "top1_agree": 0.987654}
    assert m["generated"] == {"Q8_0": [7, 9]}
    assert set(quant.metrics(arch_sizes={"Q4_0": 5})) == {"arch_sizes"}


def _stage(**extra: object) -> dict[str, object]:
    return {"stage": "x", "model_dir": "m", "batch": {}, "batch_line": "", "log": [], "steps": 3,
            "timings": {"train_s": 1.0, "total_s": 2.0}, **extra}


def test_alignment_metrics_count_malformed_rows_as_neither_kept_nor_over_the_turn_limit():
    ident = {"rate": 0.25, "per_fact": {}, "answers": []}
    res = {"ran": True,
           "sft": _stage(data_report={"rows": [], "examples": {},
                                      "totals": {"read": 64, "kept": 56, "too_many_turns": 5}},
                         first_loss=2.123456, final_loss=1.987654),
           "dpo": _stage(data_report={"rows": [], "examples": {},
                                      "totals": {"read": 64, "kept": 47, "tied_ranking": 3,
                                                 "duplicated_content": 4, "low_chosen_score": 5}},
                         train_pairs_after={"rewards/accuracies": 0.66666, "rewards/margins": 0.0123456},
                         held_out_after={"rewards/accuracies": 0.5}),
           "self_knowledge": _stage(prompt_stats={"kept": 8}, fact_rate_positives=0.5, before=ident,
                                    after={**ident, "rate": 0.75}, after_negative=ident)}
    m = align.metrics(res)  # a partial RunAll: the keys metrics() reads
    assert set(m) == align.AlignmentMetrics.__required_keys__
    assert m["sft_malformed"] == 3 and m["sft_loss_first_quarter"] == 2.1235
    assert (m["dpo_tied"], m["dpo_duplicated"], m["dpo_low_chosen"]) == (3, 4, 5)
    assert m["dpo_train_accuracy"] == 0.6667 and m["dpo_train_margin"] == 0.01235
    assert (m["sk_before"], m["sk_after"], m["sk_steps"]) == (0.25, 0.75, 3)


def test_pretraining_metrics_hold_only_the_parts_given_with_the_notebooks_rounding():
    assert train.metrics() == {}
    plan = {"steps": 10, "tokens": 40, "gpu_hours": 1.5, "wall_days": 0.1, "cost_usd": 2.0, "energy_mwh": 0.3,
            "emissions_t": 0.01, "cooldown_tokens": 8, "not_logged": 1}
    m = train.metrics(plan=plan, preflight=[{"item": "gpus", "ok": False, "detail": "none"}])
    assert m == {"plan": {k: v for k, v in plan.items() if k != "not_logged"}, "preflight": {"gpus": False}}
    summary: train.Summary = {"steps": 2, "tokens": 1024, "final_loss": 3.1234567, "final_val_loss": 3.3333349,
                              "final_domains": {}, "mean_lr": 1e-3, "tokens_per_s": 1.0, "mfu": 0.1, "wall_s": 1.0}
    step: train.StepRecord = {"step": 1, "loss": 4.0000051, "lr": 1e-3, "grad_norm": 1.0, "tokens": 512,
                              "step_s": 1.0, "tokens_per_s": 512.0, "mfu": 0.1, "t_end": 1.0}
    history: train.History = {"fingerprint": "f", "identity": {}, "layout": {}, "world_size": 1, "backend": "gloo",
                              "device": "cpu", "weights": None, "metrics_log": "m", "steps": [step], "evals": [],
                              "last_eval": None, "summary": summary}
    assert train.metrics(history=history) == {"steps_trained": 2, "tokens": 1024, "final_loss": 3.12346,
                                              "final_val_loss": 3.33333, "world_size": 1, "first_loss": 4.00001}
    held = {"table": pd.DataFrame({"model": ["pretrained", "unigram", "pretrained"], "group": ["all", "all", "web"],
                                   "bpb": [1.2345678, 2.0000049, 9.0]}),
            "paired": pd.DataFrame({"group": ["web", "all"], "from": ["unigram", "unigram"],
                                    "delta_bpb": [0.0, -0.7654321], "lo": [0.0, -0.8], "hi": [0.0, -0.7000051]})}
    got = train.metrics(held=held)
    assert got == {"main_bpb": {"pretrained": 1.23457, "unigram": 2.0}, "main_minus_unigram_bpb": [-0.76543, -0.8, -0.70001]}
    got = train.metrics(schedules=[{"schedule": "rsqrt", "final_val_bpb_by_seed": [1.234564, 1.0], "average_lr": 1.234567891e-4}],
                        batches=[{"multiple": 2, "iterations_by_seed": [3], "tokens_by_seed": [6], "reached_by_seed": [True],
                                  "token_cost": 1.0}],
                        mixes=[{"mix": "control", "group_bpb_by_seed": [{"en": 1.000006}]}],
                        ablation_plan=[{"study": "App. B", "tokens": 10, "gpu_hours": 12.5}])
    assert got["appB"] == {"rsqrt": {"final_val_bpb_by_seed": [1.23456, 1.0], "average_lr": 0.00012346}}
    assert got["appD"] == [{"multiple": 2, "iterations_by_seed": [3], "tokens_by_seed": [6], "reached_by_seed": [True]}]
    assert got["appA"] == {"control": [{"en": 1.00001}]}
    assert got["ablation_plan"] == {"App. B": {"tokens": 10, "gpu_hours": 12}}
    assert set(got) | set(m) | {"steps_trained", "tokens", "final_loss", "final_val_loss", "world_size", "first_loss",
                               "main_bpb", "main_minus_unigram_bpb"} == train.PretrainingMetrics.__optional_keys__


def test_evaluation_metrics_hold_only_the_parts_given_with_the_notebooks_rounding():
    assert evaluation.metrics() == {}
    m = evaluation.metrics(compare_self=pd.DataFrame({"delta": [0.0, -0.25, 0.125]}),
                           stage_tab=pd.DataFrame({"stage": ["base", "dpo"], "task": ["arc", "arc"],
                                                   "value": [0.123456789, None]}))
    assert m["compare_self_rows"] == 3 and m["compare_self_max_abs_delta"] == 0.25
    assert m["stage_scores"]["base/arc"] == 0.123456789 and np.isnan(m["stage_scores"]["dpo/arc"])

    class Windows:
        ids = [1, 2, 3]
        nbytes = np.array([10, 20, 5])

    held = {"table": pd.DataFrame({"model": ["base", "unigram", "base"], "group": ["all", "all", "web"],
                                   "bpb": [1.23456, 2.00004, 9.0]}), "windows": Windows()}
    pairs = pd.DataFrame({"group": ["all", "web"], "from": ["base", "base"], "to": ["sft", "sft"],
                          "delta_bpb": [-0.012345, 1.0], "lo": [-0.02, 1.0], "hi": [-0.00444449, 1.0]})
    assert evaluation.metrics(held=held, bpb_pairs=pairs) == {
        "bpb_all": {"base": 1.2346, "unigram": 2.0}, "bpb_windows": 3, "bpb_bytes": 35,
        "bpb_deltas": {"base->sft": [-0.0123, -0.02, -0.0044]}}
    ll = pd.DataFrame({"stage": ["sft"], "task": ["arc"], "mean_nll": [1.234567]})
    verdicts = pd.DataFrame({"stage": ["sft"], "task": ["arc"], "verdict": ["undecidable at this scale"]})
    assert evaluation.metrics(task_nll=ll, verdicts=verdicts) == {
        "task_mean_nll": {"sft/arc": 1.2346}, "accuracy_verdicts": {"sft/arc": "undecidable at this scale"}}
    assert evaluation.metrics(needle_grid_mean={"base": 0.5}, needle_results={"base": [{}, {}], "dpo": [{}, {}]}) == {
        "needle_grid_mean": {"base": 0.5}, "needle_trials": 2}
    with pytest.raises(ValueError, match="needle_grid_mean and needle_results together"):
        evaluation.metrics(needle_grid_mean={"base": 0.5})


def test_data_mix_metrics_hold_only_the_parts_given_with_the_notebooks_rounding():
    assert data.metrics() == {}
    purity = pd.DataFrame({"purity": [0.987654, 1.0, None], "stopword_purity": [0.912345, 0.95, None],
                           "duplicates_across": [1, 0, 0], "duplicates_within": [0, 2, 0]},
                          index=["multilingual_de", "multilingual_fr", "code"])
    m = data.metrics(table1_known=False, domain_shares={"web": 0.123456}, language_shares={"en": 0.87654},
                     mix=[{"source": "code", "tokens": 7}, {"source": "web"}], purity=purity,
                     before_after=pd.DataFrame({"purity_before": [0.5]}, index=["multilingual_de"]),
                     perplexity=pd.DataFrame({"source": ["b", "a", "b", "c"], "kept": [True, True, True, False]}),
                     validation={"web": [], "code": []})
    assert m == {"table1_known": False, "domain_split": {"web": 0.1235}, "language_split": {"en": 0.8765},
                 "sample_tokens": {"code": 7}, "sample_purity": {"multilingual_de": 0.9877, "multilingual_fr": 1.0},
                 "sample_stopword_purity": {"multilingual_de": 0.9123, "multilingual_fr": 0.95},
                 "min_multilingual_purity": 0.9877, "sample_shared_documents": 3,
                 "purity_before": {"multilingual_de": 0.5}, "perplexity_kept_sources": ["a", "b"],
                 "validation_sources": ["code", "web"]}
    loader = data.metrics(observed_shares=pd.DataFrame({"abs_error": [0.01, -0.5, 0.03]}), resume_exact=True,
                          same_seed_same_batch=False, first_batch_sha256="ab",
                          shards={"shards": [{"sha256": "0123456789abcdef0123"}]}, shard_steps=2, batch_at_exact=True)
    assert loader == {"max_share_error": 0.03, "resume_exact": True, "same_seed_same_batch": False,
                      "first_batch_sha256": "ab", "shard_steps": 2, "shard_hashes": ["0123456789abcdef"],
                      "batch_at_exact": True}
    assert set(m) | set(loader) == data.DataMixMetrics.__optional_keys__
    with pytest.raises(ValueError, match="shards, shard_steps, batch_at_exact together"):
        data.metrics(shards={"shards": []})


def test_tokenizer_metrics_hold_only_the_parts_given_with_the_notebooks_rounding():
    assert tokenizer_study.metrics() == {}
    m = tokenizer_study.metrics(n_vocab=100, ranks=range(90), specials={"a": 1, "b": 2}, vocab_padded=128,
                                max_digits=(1, 3), digits=pd.DataFrame({"arcade100k": [1, 12], "cl100k_base": [1, 4]}),
                                ordinary_ids=[tokenizer.EOT_ID + 1], hf_agreement={"texts": 9, "identical": 8},
                                bytes_per_token={"arcade100k": 3.456789},
                                by_language=pd.DataFrame({"arcade100k": [3.123456]}, index=["en"]),
                                by_domain=pd.DataFrame({"arcade100k": [2.000049]}, index=["code"]))
    assert m == {"n_vocab": 100, "n_merges": 90, "n_special": 2, "vocab_padded": 128, "pad_multiple_of_64": True,
                 "max_digits_per_token_arcade": 1, "max_digits_per_token_cl100k": 3, "tokens_12_digit_arcade": 12.0,
                 "tokens_12_digit_cl100k": 4.0, "special_text_is_ordinary": True, "hf_agreement_texts": 9,
                 "hf_agreement_identical": 8, "bytes_per_token": {"arcade100k": 3.4568},
                 "bytes_per_token_by_language": {"arcade100k": {"en": 3.1235}},
                 "bytes_per_token_by_domain": {"arcade100k": {"code": 2.0}}}
    assert set(m) == tokenizer_study.TokenizerMetrics.__optional_keys__
    assert tokenizer_study.metrics(ordinary_ids=[tokenizer.EOT_ID]) == {"special_text_is_ordinary": False}
    with pytest.raises(ValueError, match="max_digits, digits together"):
        tokenizer_study.metrics(max_digits=(1, 3))


def test_schedule_metrics_hold_only_the_parts_given():
    assert schedule.metrics() == {}
    cont = {"step": 100.0, "value_cosine": 0.5, "value_rsqrt": 0.75, "slope_cosine": -1.0, "slope_rsqrt": -0.5,
            "alpha": 2.0, "beta": 3.0}
    check = {"default": 2.6e-4, "best": {"lr": 2.5e-4}, "naive": 5.8e-4, "solved_T": 5e5, "n_readings": 72,
             "modernbert": {"lr": 1e-4}}
    smoke = config.load("smoke")
    m = schedule.metrics(continuity=cont, kinds={"rsqrt": {"average": 3e-4}}, check=check,
                         modernbert=check["modernbert"],
                         comparison=pd.DataFrame({"lr": [1e-4, 2e-4]}, index=pd.Index(["ours", "modernbert"])),
                         preset=smoke, lambdalr_max_abs_gap=0.0)
    assert m == {"switch_step": 100.0, "switch_value_gap": 0.25, "switch_slope_gap": 0.5, "alpha": 2.0, "beta": 3.0,
                 "average_lr": {"rsqrt": 3e-4}, "lr_420k_default": 2.6e-4, "lr_420k_best": 2.5e-4,
                 "lr_420k_naive": 5.8e-4, "lr_420k_solved_T": 5e5, "n_readings": 72, "lr_420k_modernbert": 1e-4,
                 "schedule_comparison": {"ours": 1e-4, "modernbert": 2e-4}, "preset_steps": smoke.train.steps,
                 "preset_average_lr": schedule.average_lr(smoke), "lambdalr_max_abs_gap": 0.0}
    assert set(m) == schedule.ScheduleMetrics.__optional_keys__
    with pytest.raises(ValueError, match="modernbert and comparison together"):
        schedule.metrics(modernbert=check["modernbert"])


def test_model_metrics_hold_only_the_parts_given():
    assert model_study.metrics() == {}
    size = {"counted": {"total": 1_644_515_328}, "variants": {"per-layer LayerNorms without bias, final with bias": 7},
            "flops_per_token": {"total": 1.2e10, "dense": 1e10}, "mfu": 0.5, "mfu_high": 0.6, "gpu_hours": 9.0,
            "gpu_hours_neox_ckpt": 8.0, "memory": {2: {"total": 3 * 2**30}}, "largest_micro_batch": 2}
    m = model_study.metrics(size=size, measured=[{"preset": "smoke", "flops": 5.0, "seconds": 1.0}])
    assert m == {"params_counted": 1_644_515_328, "params_card_variant": 7, "flops_per_token": 1.2e10, "mfu": 0.5,
                 "mfu_high": 0.6, "gpu_hours": 9.0, "gpu_hours_neox_ckpt": 8.0, "memory_mb2_gib": 3.0,
                 "largest_micro_batch": 2, "measured_presets": ["smoke"], "measured_flops": {"smoke": 5.0}}
    assert set(m) == model_study.ModelMetrics.__optional_keys__


def test_carbon_metrics_hold_only_the_parts_given_with_the_notebooks_rounding():
    assert carbon_results.metrics() == {}
    fp = carbon.footprint(gpu_hours=92_000, power_w=296.44349, pue=1.1, intensity=0.385)
    at_tdp = carbon.footprint(gpu_hours=92_000, power_w=400, pue=1.1, intensity=0.385)
    paper = carbon.project(tokens=4e12, flops_per_token=1.2e10, gpu="A100-40GB", n_gpus=512, tflops=170)
    m = carbon_results.metrics(rebuilt={"implied_power_w": 296.44349, "tdp_w": 400.0, "footprint": fp,
                                        "at_tdp": at_tdp},
                               sensitivity=[{"input": "pue", "swing_t": 1.234567}], paper_run=paper)
    assert m["implied_power_w"] == 296.443 and m["implied_power_frac_tdp"] == 0.7411
    assert m["energy_mwh"] == round(fp.energy_mwh, 4) and m["emissions_t_at_tdp"] == round(at_tdp.emissions_t, 4)
    assert m["energy_mwh_at_tdp"] == round(92_000 * 400 * 1.1 / 1e6, 4)
    assert m["sensitivity_swing_t"] == {"pue": 1.2346}
    assert m["paper_run"]["gpu_hours"] == round(paper.gpu_hours, 4) and m["paper_run"]["n_gpus"] == 512
    assert set(m) == carbon_results.CarbonMetrics.__optional_keys__


def test_overview_metrics_count_the_facts_and_the_conflicting_claims():
    led = Ledger("00_overview")
    led.check("a.same", "same", ours=1.0, paper=1.0)
    led.check("a.off", "off", ours=2.0, paper=1.0)
    m = overview.metrics(led.claims)
    assert m == {"n_facts": len(facts.all_facts()), "n_unknown": overview.facts_by_confidence()["unknown"],
                 "n_claims": 2, "n_conflicts": [c.status for c in led.claims].count("conflict")}
    assert m["n_conflicts"] == 1 and set(m) == overview.OverviewMetrics.__required_keys__
