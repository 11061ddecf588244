import pytest

from stablelm2 import config, data
from stablelm2.config import ConfigError
from stablelm2.ledger import INCONCLUSIVE, REDUCED, Ledger
from stablelm2.training import ablations, figures


def test_proxy_config_scales_the_run_and_keeps_the_schedule_shape():
    assert ablations.proxy_config(config.load("smoke")).model.d_model == 32  # train.ablation_d_model
    cfg = config.load("cpu")
    c = ablations.proxy_config(cfg, kind="rsqrt", cooldown=False, batch_tokens=1024)
    assert (c.model.d_model, c.model.d_ff, c.model.vocab_size) == (cfg.model.d_model, cfg.model.d_ff, 100_352)
    assert c.train.steps == cfg.train.ablation_steps and c.train.global_batch_tokens == 1024
    assert (c.train.n_procs, c.train.checkpoint_every, c.train.eval_every) == (1, 0, 0)
    assert c.schedule.kind == "rsqrt" and c.schedule.cooldown_steps == 0
    b = ablations.proxy_config(cfg, kind="hybrid2")
    assert b.schedule.warmup_steps / b.train.steps == pytest.approx(cfg.schedule.warmup_steps / cfg.train.steps, abs=0.05)
    assert b.schedule.cooldown_steps / b.train.steps == pytest.approx(cfg.schedule.cooldown_steps / cfg.train.steps,
                                                                      abs=0.05)
    ablations.check(cfg)
    assert not ablations.enabled(config.load("paper"))
    with pytest.raises(ConfigError, match="train.ablation_steps = 0"):
        ablations.proxy_config(config.load("paper"))
    assert "~1B-parameter models on ~100B tokens each (S0, high)" in ablations.not_run_message()


def test_batch_multiples_are_the_papers_and_the_loss_window_counts_tokens():
    assert ablations.batch_multiples() == [1, 2, 3, 4]
    h = {"layout": {"global_batch_tokens": 256}, "steps": [{"loss": x} for x in (5.0, 4.0, 3.0, 2.0)]}
    assert ablations.smoothed_loss(h, 512) == 2.5 and ablations.smoothed_loss(h, 100) == 2.0
    assert ablations.smoothed_loss(h, 2048) == float("inf")


def test_mixes_change_only_what_they_name():
    cfg = config.load("smoke")
    mixes = ablations.default_mixes(cfg)
    base = data.resolve_weights(cfg, None)
    assert mixes["control"] == base
    assert mixes["code ×4"]["code"] == pytest.approx(4 * base["code"])
    assert all(mixes["no non-English"][n] == 0 for n in ablations.groups(cfg)["non-English"])
    assert mixes["non-English ×3"]["web_en"] == base["web_en"]
    assert sorted(ablations.groups(cfg)) == ["English", "code", "non-English"]


def _rows_b(rsqrt, cosine, hyb, hyb2):
    curve = {"step": [1, 2], "loss": [11.0, 10.0], "lr": [0.0, 1e-3], "tokens": [1, 2]}
    return [{"schedule": k, "label": ablations.LABELS[k], "final_val_loss": v, "average_lr": lr, "steps": 2,
             "curve": curve, "final_train_loss": v, "tokens": 2}
            for k, v, lr in (("cosine", cosine, 2e-3), ("rsqrt", rsqrt, 1e-3), ("hybrid", hyb, 1.5e-3),
                             ("hybrid2", hyb2, 1.8e-3))]


def test_schedule_findings_from_one_seed_are_inconclusive():
    led = Ledger("05_pretraining")
    got = {c.id: c for c in ablations.schedule_claims(led, _rows_b(rsqrt=9.0, cosine=8.0, hyb=8.6, hyb2=8.4))}
    for cid in ("pretraining.appB_rsqrt_below_cosine", "pretraining.appB_avg_lr_orders_hyb"):
        assert got[cid].status == INCONCLUSIVE and got[cid].stats["n_seeds"] == 1, got[cid].evidence
    assert "1 seed: a test needs at least 3" in got["pretraining.appB_rsqrt_below_cosine"].evidence
    assert {r["claim"] for r in led.references} == {"schedule.avg_lr_cosine", "schedule.avg_lr_hybrid",
                                                    "schedule.avg_lr_hybrid2"}
    figures.plot_schedules(_rows_b(9, 8, 8.6, 8.4))


def test_schedule_findings_decide_over_seeds():
    rows = _rows_b(rsqrt=9.0, cosine=8.0, hyb=8.6, hyb2=8.4)
    by = {r["schedule"]: r for r in rows}
    for r in rows:
        r["seeds"] = [1, 2, 3]
    by["rsqrt"]["final_val_loss_by_seed"] = [9.0, 9.1, 8.95]
    by["cosine"]["final_val_loss_by_seed"] = [8.0, 8.05, 8.1]
    by["hybrid"]["final_val_loss_by_seed"] = [8.6, 8.5, 8.4]
    by["hybrid2"]["final_val_loss_by_seed"] = [8.4, 8.6, 8.45]
    got = {c.id: c for c in ablations.schedule_claims(Ledger("05"), rows)}
    c = got["pretraining.appB_rsqrt_below_cosine"]
    assert c.status == REDUCED and c.stats["seeds"] == [1, 2, 3] and c.stats["p_value"] < 0.05
    assert got["pretraining.appB_avg_lr_orders_hyb"].status == INCONCLUSIVE


def test_batch_and_mix_findings_from_one_seed_are_inconclusive():
    led = Ledger("05_pretraining")
    curve = {"step": [1], "loss": [3.0], "lr": [1e-3], "tokens": [1]}
    rows = [{"multiple": m, "batch_tokens": 256 * m, "reached": True, "iterations": it, "tokens": 256 * m * it,
             "loss": 3.0, "curve": curve} for m, it in ((1, 20), (2, 12), (4, 9))]
    for r in rows:
        r["iteration_speedup"], r["token_cost"] = 20 / r["iterations"], r["tokens"] / rows[0]["tokens"]
    got = {c.id: c for c in ablations.batch_claims(led, rows)}
    d = got["pretraining.appD_fewer_iterations_more_tokens"]
    assert d.status == INCONCLUSIVE and "2.22× fewer iterations, 1.80× the tokens" in d.evidence
    rows[-1]["reached"] = False
    assert ablations.batch_claims(led, rows)[0].status == INCONCLUSIVE
    figures.plot_batches(rows)

    def mix(name, en, code, ne, share):
        return {"mix": name, "group_loss": {"English": en, "code": code, "non-English": ne},
                "share": {"English": 1 - share, "code": 0.1, "non-English": share}}

    mixes = [mix("control", 8.0, 7.0, 9.0, 0.5), mix("code ×4", 8.2, 6.5, 9.1, 0.4),
             mix("no non-English", 7.8, 7.0, 10.0, 0.0), mix("non-English ×3", 8.3, 7.1, 8.8, 0.75)]
    got = {c.id: c for c in ablations.mixture_claims(led, mixes)}
    assert got["pretraining.appA_more_code_hurts_english"].status == INCONCLUSIVE
    assert got["pretraining.appA_language_saturates"].status == INCONCLUSIVE
    figures.plot_mixes(mixes)
