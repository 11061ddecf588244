import dataclasses
import json
import math

import pytest
import torch

from stablelm2 import config, data
from stablelm2 import facts as F
from stablelm2.config import ConfigError
from stablelm2.ledger import CONFLICT, INCONCLUSIVE, REDUCED, Ledger
from stablelm2.training import ablations, figures


def test_proxy_config_scales_the_run_keeps_the_schedule_shape_and_sets_the_seed():
    assert ablations.proxy_config(config.load("smoke")).model.d_model == 32  # train.ablation_d_model
    cfg = config.load("cpu")
    c = ablations.proxy_config(cfg, kind="rsqrt", cooldown=False, batch_tokens=1024, seed=99)
    assert (c.model.d_model, c.model.vocab_size) == (cfg.train.ablation_d_model, 100_352)
    assert c.train.steps == cfg.train.ablation_steps and c.train.global_batch_tokens == 1024 and c.run.seed == 99
    assert (c.train.n_procs, c.train.checkpoint_every) == (1, 0)
    assert c.train.eval_every == c.train.steps // ablations.EVALS  # a held-out curve, not one point
    assert c.schedule.kind == "rsqrt" and c.schedule.cooldown_steps == 0
    b = ablations.proxy_config(cfg, kind="hybrid2")
    assert b.run.seed == cfg.run.seed
    assert b.schedule.warmup_steps / b.train.steps == pytest.approx(cfg.schedule.warmup_steps / cfg.train.steps, abs=0.05)
    assert b.schedule.cooldown_steps / b.train.steps == pytest.approx(cfg.schedule.cooldown_steps / cfg.train.steps,
                                                                      abs=0.05)
    ablations.check(cfg)
    assert ablations.seeds(cfg) == [1234, 1235, 1236]
    # the proxy's own peak rate, the floor kept at the same ratio; 0 keeps the preset's
    assert cfg.train.ablation_peak_lr == 1e-2
    assert (b.schedule.peak_lr, b.schedule.min_lr) == pytest.approx((1e-2, 1e-2 * cfg.schedule.min_lr / cfg.schedule.peak_lr))
    same = ablations.proxy_config(config.load("cpu", **{"train.ablation_peak_lr": 0.0, "train.ablation_micro_batch": 0}))
    assert (same.schedule.peak_lr, same.schedule.min_lr) == (cfg.schedule.peak_lr, cfg.schedule.min_lr)
    # the proxy's own micro-batch (one pass per 2,048-token step at cpu); 0 keeps train.micro_batch
    assert b.train.micro_batch == 16 and same.train.micro_batch == cfg.train.micro_batch == 4
    assert c.train.micro_batch == 8  # a 1,024-token batch is 8 sequences: the largest divisor of 16 that fits
    with pytest.raises(ConfigError, match="not a multiple of train.ablation_micro_batch × data.seq_len = 24 × 128"):
        config.load("cpu", **{"train.ablation_micro_batch": 24})
    assert not ablations.enabled(config.load("paper"))
    with pytest.raises(ConfigError, match="train.ablation_steps = 0"):
        ablations.proxy_config(config.load("paper"))
    with pytest.raises(ConfigError, match="train.ablation_seeds = 0"):
        ablations.check(config.load("smoke", **{"train.ablation_seeds": 0}))
    assert "~1B-parameter models on ~100B tokens each (S0, high)" in ablations.not_run_message()


def test_shortlist_is_a_normalised_distribution_over_the_whole_vocabulary():
    counts = {5: 10, 7: 6, 2: 3, 9: 1}
    ref = ablations.Reference(counts, alpha=0.5, vocab=12, k=2)
    assert ref.shortlist == [5, 7] and ref.classes == 3
    # the unigram model sums to 1 over all 12 tokens; so does the "other" class's share over the 10 tokens outside
    assert sum(math.exp(-ref.unigram_nats(t)) for t in range(12)) == pytest.approx(1.0, abs=1e-12)
    assert sum(math.exp(-ref.tail_nats(t)) for t in range(12) if t not in (5, 7)) == pytest.approx(1.0, abs=1e-12)
    assert ref.tail_nats(5) == 0.0 and ref.tail_nats(2) == pytest.approx(-math.log(3.5 / (3.5 + 1.5 + 8 * 0.5)))
    batch = {"input_ids": torch.tensor([[5, 2, 7, 11]]), "labels": torch.tensor([[5, 2, -100, 11]]),
             "position_ids": torch.tensor([[0, 1, 2, 3]])}
    got = ref.map_batch(batch)
    assert got["input_ids"].tolist() == [[0, 2, 1, 2]] and got["labels"].tolist() == [[0, 2, -100, 2]]
    assert got["position_ids"] is batch["position_ids"]
    full = ablations.Reference(counts, alpha=0.5, vocab=12, k=0)
    assert full.classes == 12 and full.map_batch(batch) is batch and full.tail_nats(2) == 0.0
    with pytest.raises(ValueError, match="below the 4 distinct tokens"):
        ablations.Reference(counts, alpha=0.5, vocab=3)


def test_bits_per_byte_counts_the_tail_and_the_bytes():
    stats = {"a": {"tokens": 10, "bytes": 40, "tail_nats": 2.0, "unigram_nats": 30.0},
             "b": {"tokens": 5, "bytes": 10, "tail_nats": 0.0, "unigram_nats": 20.0}}
    ln2 = math.log(2)
    assert ablations.bits_per_byte({"a": 1.0, "b": 2.0}, stats) == pytest.approx((10 + 2 + 10) / ln2 / 50)
    assert ablations.bits_per_byte({"a": 1.0, "b": 2.0}, stats, ["b"]) == pytest.approx(10 / ln2 / 10)
    assert ablations.unigram_bpb(stats) == pytest.approx(50 / ln2 / 50)


def test_batch_multiples_are_the_papers_and_the_loss_window_counts_tokens():
    assert ablations.batch_multiples() == [1, 2, 3, 4]
    h = {"layout": {"global_batch_tokens": 256}, "steps": [{"loss": x} for x in (5.0, 4.0, 3.0, 2.0)]}
    assert ablations.smoothed_loss(h, 512) == 2.5 and ablations.smoothed_loss(h, 100) == 2.0
    assert ablations.smoothed_loss(h, 2048) == float("inf")


def test_mixes_change_only_what_they_name():
    cfg = config.load("smoke")
    mixes = ablations.default_mixes(cfg)
    assert tuple(mixes) == ablations.MIXES
    base = data.resolve_weights(cfg, None)
    assert mixes["control"] == base
    assert mixes["code ×4"]["code"] == pytest.approx(4 * base["code"])
    assert all(mixes["no non-English"][n] == 0 for n in ablations.groups(cfg)["non-English"])
    assert mixes["non-English ×3"]["web_en"] == base["web_en"]
    assert sorted(ablations.groups(cfg)) == ["English", "code", "non-English"]


def test_seeds_pair_the_arms_same_init_and_data_for_the_same_seed():
    cfg = config.load("smoke")
    ref = ablations.Reference({1: 3, 2: 1}, alpha=0.1, vocab=100_352, k=cfg.train.ablation_vocab)
    a = ablations.proxy_config(cfg, kind="cosine", seed=5)
    b = ablations.proxy_config(cfg, kind="rsqrt", seed=5)
    other = ablations.proxy_config(cfg, kind="cosine", seed=6)
    wa, wb, wo = (ref.model_factory(c).state_dict() for c in (a, b, other))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wo[k]) for k in wa)
    first = [next(iter(data.packed_loader(c)))["input_ids"] for c in (a, b, other)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])


def test_a_study_runs_every_arm_with_every_seed_and_its_rows_survive_json(tmp_path):
    cfg = config.load("smoke")
    rows = ablations.schedule_study(cfg, tmp_path, kinds=("cosine", "rsqrt"))
    assert [r["schedule"] for r in rows] == ["cosine", "rsqrt"]
    for r in rows:
        assert r["seeds"] == ablations.seeds(cfg) and len(r["seeds"]) >= 3
        assert len(r["final_val_bpb_by_seed"]) == len(r["bpb_curves"]) == len(r["seeds"])
        assert all(math.isfinite(x) and x > 0 for x in r["final_val_bpb_by_seed"])
        assert r["final_val_bpb"] == pytest.approx(sum(r["final_val_bpb_by_seed"]) / len(r["seeds"]))
        assert r["bpb_curves"][0]["tokens"][-1] == r["tokens"]
    # paired: the same seed in two arms trains the same data from the same init, so the first step's loss agrees
    assert rows[0]["curve"]["loss"][0] == rows[1]["curve"]["loss"][0]
    assert json.loads(json.dumps(rows)) == rows
    again = ablations.schedule_study(cfg, tmp_path, kinds=("cosine", "rsqrt"))  # read back from the cache
    assert again == rows
    # its FLOPs (hence MFU) are those of the shortlisted proxy that trained, not of the full-vocabulary model
    from stablelm2 import model

    h = json.loads(next((tmp_path / "appB" / "cosine").glob("*/history.json")).read_text())
    proxy = ablations.proxy_config(cfg, kind="cosine")
    short = dataclasses.replace(proxy, model=dataclasses.replace(proxy.model, vocab_size=cfg.train.ablation_vocab + 1))
    assert h["flops_per_token"] == pytest.approx(model.flops_per_token(short)["total"])
    assert h["flops_per_token"] < model.flops_per_token(proxy)["total"] / 10
    figures.plot_schedules(rows)


def _rows_b(rsqrt, cosine, hyb, hyb2, seeds=None):
    curve = {"step": [1, 2], "loss": [11.0, 10.0], "lr": [0.0, 1e-3], "tokens": [1, 2]}
    rows = []
    for k, v, lr in (("cosine", cosine, 2e-3), ("rsqrt", rsqrt, 1e-3), ("hybrid", hyb, 1.5e-3), ("hybrid2", hyb2, 1.8e-3)):
        vals = v if isinstance(v, list) else [v]
        rows.append({"schedule": k, "label": ablations.LABELS[k], "final_val_bpb": sum(vals) / len(vals),
                     "final_val_bpb_by_seed": vals, "seeds": seeds or list(range(len(vals))), "average_lr": lr,
                     "steps": 2, "curve": curve, "tokens": 2, "unigram_bpb": 3.0,
                     "bpb_curves": [{"step": [1, 2], "tokens": [1, 2], "bpb": [4.0, x]} for x in vals]})
    return rows


def test_schedule_findings_from_one_seed_are_inconclusive():
    led = Ledger("05_pretraining")
    got = {c.id: c for c in ablations.schedule_claims(led, _rows_b(rsqrt=2.9, cosine=2.8, hyb=2.86, hyb2=2.84))}
    for cid in ("pretraining.appB_rsqrt_below_cosine", "pretraining.appB_avg_lr_orders_hyb"):
        assert got[cid].status == INCONCLUSIVE and got[cid].stats["n_seeds"] == 1, got[cid].evidence
    assert "1 seed: a test needs at least 3" in got["pretraining.appB_rsqrt_below_cosine"].evidence
    assert {r["claim"] for r in led.references} == {"schedule.avg_lr_cosine", "schedule.avg_lr_hybrid",
                                                    "schedule.avg_lr_hybrid2"}
    figures.plot_schedules(_rows_b(2.9, 2.8, 2.86, 2.84))


def test_schedule_findings_decide_over_seeds_and_say_where_the_runs_sit():
    rows = _rows_b(rsqrt=[2.90, 2.91, 2.895], cosine=[2.80, 2.805, 2.81], hyb=[2.86, 2.85, 2.84],
                   hyb2=[2.84, 2.86, 2.845], seeds=[1, 2, 3])
    led = Ledger("05")
    got = {c.id: c for c in ablations.schedule_claims(led, rows)}
    c = got["pretraining.appB_rsqrt_below_cosine"]
    assert c.status == REDUCED and c.stats["seeds"] == [1, 2, 3] and c.stats["p_value"] < 0.05
    assert c.stats["effect"] == pytest.approx((0.10 + 0.105 + 0.085) / 3)
    assert "12 of 12 runs end below the unigram model's 3.000 bits per byte" in c.evidence
    assert got["pretraining.appB_avg_lr_orders_hyb"].status == INCONCLUSIVE
    # the opposite direction, significant, is a conflict
    flipped = _rows_b(rsqrt=[2.80, 2.805, 2.81], cosine=[2.90, 2.91, 2.895], hyb=2.86, hyb2=2.84, seeds=[1, 2, 3])
    for r in flipped[2:]:
        r["final_val_bpb_by_seed"] *= 3
    assert ablations.schedule_claims(Ledger("05"), flipped)[0].status == CONFLICT
    # above the floor: the sentence says the comparison cannot speak for models that use context
    for r in rows:
        r["unigram_bpb"] = 2.0
    assert "0 of 12 runs end below" in ablations.plateau_sentence(rows)
    assert "cannot speak for models that use context" in ablations.plateau_sentence(rows)
    scope = ablations.scope(config.load("cpu"), list(got.values()), {"appB": rows})
    assert [s["finding"] for s in scope] == list(got)
    assert "over 3 paired seeds" in scope[0]["can"] and "excludes 0" in scope[0]["can"]
    hyb = got["pretraining.appB_avg_lr_orders_hyb"].stats
    assert f"nor an effect below {hyb['detectable_effect']:.3g} (what 3 seeds detect 80% of the time" in scope[1]["cannot"]


def _rows_d(its, reached=None, base_bpb=2.9):
    rows = []
    for m, per in zip((1, 2, 4), its, strict=True):
        rows.append({"multiple": m, "batch_tokens": 256 * m, "reached": all(reached or [True]),
                     "reached_by_seed": reached if m == 4 and reached else [True] * len(per),
                     "iterations_by_seed": per, "iterations": sum(per) / len(per), "seeds": list(range(len(per))),
                     "tokens_by_seed": [256 * m * x for x in per], "tokens": 256 * m * sum(per) / len(per),
                     "loss": 3.0, "curve": {"step": [1], "loss": [3.0], "lr": [1e-3], "tokens": [1]},
                     "final_val_bpb_by_seed": [base_bpb if m == 1 else 2.9] * len(per), "unigram_bpb": 3.0,
                     "below_unigram_by_seed": [(base_bpb if m == 1 else 2.9) < 3.0] * len(per)})
    for r in rows:
        r["final_val_bpb"] = sum(r["final_val_bpb_by_seed"]) / len(r["final_val_bpb_by_seed"])
        r["iteration_speedup"], r["token_cost"] = rows[0]["iterations"] / r["iterations"], r["tokens"] / rows[0]["tokens"]
    return rows


def test_batch_findings_decide_over_seeds_and_count_a_miss_as_a_lower_bound():
    got = ablations.batch_claims(Ledger("05"), _rows_d([[20], [12], [9]]))[0]
    assert got.status == INCONCLUSIVE and "2.22× fewer iterations, 1.80× the tokens" in got.evidence
    got = ablations.batch_claims(Ledger("05"), _rows_d([[20, 22, 21], [12, 13, 12], [9, 10, 10]]))[0]
    assert got.status == REDUCED and got.stats["4x"] == [9, 10, 10] and got.stats["effect"] == pytest.approx(34 / 3)
    missed = ablations.batch_claims(Ledger("05"), _rows_d([[20, 22, 21], [12, 13, 12], [9, 11, 10]],
                                                          reached=[True, False, True]))[0]
    assert missed.stats["4x"] == [9, 12, 10] and "in 1 of 3 seeds the 4× batch did not reach" in missed.evidence
    figures.plot_batches(_rows_d([[20, 22, 21], [12, 13, 12], [9, 11, 10]]))


def test_batch_findings_cannot_decide_while_the_baseline_is_on_the_unigram_plateau():
    its = [[20, 22, 21], [12, 13, 12], [9, 10, 10]]
    left = ablations.batch_claims(Ledger("05"), _rows_d(its))
    assert [c.status for c in left[:2]] == [REDUCED, REDUCED]  # 4x: fewer iterations, 1.8x the tokens
    plateau = ablations.batch_claims(Ledger("05"), _rows_d(its, base_bpb=3.01))
    fewer, tokens = plateau[:2]
    assert fewer.status == INCONCLUSIVE and tokens.status == INCONCLUSIVE
    assert fewer.stats["p_value"] == left[0].stats["p_value"]  # the test is still shown, only not counted
    assert "in 0 of 3 seeds" in fewer.evidence and "not counted (agreement)" in fewer.evidence
    assert ablations.baseline_plateau_reason(_rows_d(its)[0]) == ""
    flat = _rows_d(its)
    flat[0]["first_reach_by_seed"] = [6, 21, 20]  # seed 0's baseline was at its final loss by step 6 of 20
    fewer = ablations.batch_claims(Ledger("05"), flat)[0]
    assert fewer.status == INCONCLUSIVE and "first reached its final value at iteration 6, 21, 20 of 20, 22, 21" \
        in fewer.evidence
    flat[0]["first_reach_by_seed"] = [20, 21, 20]
    assert ablations.batch_claims(Ledger("05"), flat)[0].status == REDUCED


def test_first_passage_is_the_first_step_the_smoothed_loss_reaches_the_target():
    h = {"layout": {"global_batch_tokens": 100}, "steps": [{"loss": x} for x in (5.0, 4.0, 3.0, 3.2, 2.9, 3.1)]}
    assert ablations.first_passage(h, 3.1, 200) == 4  # windows of 2 steps: 4.5, 3.5, 3.1 → step 4
    assert ablations.first_passage(h, 3.0, 100) == 3
    assert ablations.first_passage(h, 1.0, 100) == 6  # never: the run's length
    assert ablations.smoothed_loss(h, 200) == pytest.approx(3.0)


def _mix(name, en, code, ne, share):
    per = [{"English": e, "code": c, "non-English": n} for e, c, n in zip(en, code, ne, strict=True)]
    return {"mix": name, "group_bpb_by_seed": per, "seeds": [1, 2, 3][:len(per)],
            "group_bpb": {g: sum(x[g] for x in per) / len(per) for g in per[0]},
            "group_unigram_bpb": {"English": 3.0, "code": 2.5, "non-English": 3.2},
            "share": {"English": 1 - share, "code": 0.1, "non-English": share},
            "final_val_bpb_by_seed": [2.9] * len(per), "final_val_bpb": 2.9, "unigram_bpb": 3.0}


def test_mix_findings_from_one_seed_are_inconclusive_and_decide_over_three():
    one = [_mix("control", [2.8], [2.0], [3.0], 0.5), _mix("code ×4", [2.82], [1.9], [3.1], 0.4),
           _mix("no non-English", [2.78], [2.0], [3.5], 0.0), _mix("non-English ×3", [2.83], [2.1], [2.9], 0.75)]
    got = {c.id: c for c in ablations.mixture_claims(Ledger("05"), one)}
    assert got["pretraining.appA_more_code_hurts_english"].status == INCONCLUSIVE
    assert got["pretraining.appA_language_saturates"].status == INCONCLUSIVE
    three = [_mix("control", [2.80, 2.81, 2.79], [2.0] * 3, [3.0, 3.02, 3.01], 0.5),
             _mix("code ×4", [2.85, 2.87, 2.84], [1.9] * 3, [3.1] * 3, 0.4),
             _mix("no non-English", [2.78] * 3, [2.0] * 3, [3.5, 3.45, 3.55], 0.0),
             _mix("non-English ×3", [2.83] * 3, [2.1] * 3, [2.95, 2.98, 2.96], 0.75)]
    got = {c.id: c for c in ablations.mixture_claims(Ledger("05"), three)}
    assert got["pretraining.appA_more_code_hurts_english"].status == REDUCED
    sat = got["pretraining.appA_language_saturates"]
    assert sat.status == REDUCED and sat.stats["first share's gain"] == pytest.approx([0.5, 0.43, 0.54])
    figures.plot_mixes(three)


def test_the_plateau_is_judged_on_the_runs_the_comparison_rests_on():
    # App. A: an arm without non-English text ends above the floor by design; only the control mix counts
    mixes = [_mix("control", [2.8] * 3, [2.0] * 3, [3.0] * 3, 0.5), _mix("no non-English", [2.78] * 3, [2.0] * 3,
                                                                       [3.5] * 3, 0.0)]
    mixes[1]["final_val_bpb_by_seed"] = [3.1] * 3
    p = ablations.plateau(mixes)
    assert (p["runs"], p["below"], p["left"], p["which"]) == (3, 3, True, "control-mix runs")
    assert ablations.plateau_sentence(mixes).startswith("3 of 3 control-mix runs end below")
    # App. D: the larger batches stop at the baseline's loss; only the baseline's runs count
    rows = _rows_d([[20, 22, 21], [12, 13, 12], [9, 10, 10]], base_bpb=3.01)
    p = ablations.plateau(rows)
    assert (p["runs"], p["below"], p["left"], p["which"]) == (3, 0, False, "baseline runs")
    # App. B: every run
    assert ablations.plateau(_rows_b(rsqrt=2.9, cosine=2.8, hyb=2.86, hyb2=3.1))["runs"] == 4


def test_paper_plan_prices_the_same_arms_and_seeds():
    paper = config.load("paper")
    rows = {r["study"].split(" ·")[0]: r for r in ablations.paper_plan(paper)}
    tok = F.value("appendix.ablation_tokens")
    assert rows["App. B"]["runs"] == 4 * 3 and rows["App. B"]["tokens"] == pytest.approx(3 * 4 * tok)
    assert rows["App. D"]["tokens"] == pytest.approx(3 * (1 + 2 + 3 + 4) * tok)
    assert rows["App. A"]["arms"] == ", ".join(ablations.MIXES)
    assert rows["App. B"]["steps_per_baseline_run"] == round(tok / 4_194_304)
    hours = 6 * F.value("appendix.ablation_model_params") * 3 * 4 * tok / (F.value("train.tflops_per_gpu") * 1e12) / 3600
    assert rows["App. B"]["gpu_hours"] == pytest.approx(hours, rel=1e-9)
    assert json.loads(json.dumps(list(rows.values()))) == list(rows.values())


def test_batch_study_on_two_workers_gives_the_serial_numbers(tmp_path):
    """App. D submits a seed's larger batches as its baseline finishes: a different order, the same runs."""
    serial = ablations.batch_study(config.load("smoke"), tmp_path / "one")
    pooled = ablations.batch_study(config.load("smoke", overrides={"train.n_procs": 2}), tmp_path / "two")
    assert [r["multiple"] for r in pooled] == [1, 2, 3, 4]
    for a, b in zip(serial, pooled, strict=True):
        assert (a["iterations_by_seed"], a["loss_by_seed"], a["final_val_bpb_by_seed"]) == \
            (b["iterations_by_seed"], b["loss_by_seed"], b["final_val_bpb_by_seed"])


def test_a_failed_run_cancels_the_runs_still_queued_and_is_raised():
    from concurrent.futures import Future

    done, failed, queued, other = Future(), Future(), Future(), Future()
    done.set_result({"summary": {}})
    failed.set_exception(FloatingPointError("step 3: loss is nan"))
    with pytest.raises(FloatingPointError, match="loss is nan"):
        ablations.results([done, failed, queued], cancel=[other])
    assert queued.cancelled() and other.cancelled() and not done.cancelled()
    assert ablations.results([done]) == [{"summary": {}}]
