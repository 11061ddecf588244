"""Chapter 03 · stablelm2.model_study: sizing, differences from LLaMA, claims, measured speed, the notebook."""

from __future__ import annotations

import pytest

from stablelm2 import config, facts, ledger, model, model_study, record, runner


@pytest.fixture(scope="module")
def paper():
    return config.load("paper")


@pytest.fixture(scope="module")
def size(paper):
    return model_study.sizing(paper)


def test_param_counts_analytic_equal_counted(paper, size):
    assert size["analytic"] == size["counted"]
    assert size["counted"]["total"] == facts.value("model.n_params_with_norm_bias")
    assert size["counted"]["embedding"] == facts.value("model.embedding_params")
    assert size["counted"]["mlp"] // 24 == facts.value("model.mlp_params_per_layer")
    small = config.load("smoke")
    assert model.param_counts(small) == model.counted_params(model.build(small, device="meta"))


def test_card_count_variants(paper, size):
    v = size["variants"]
    assert v["per-layer LayerNorms without bias, final with bias"] == facts.value("model.n_params_card")
    assert v["HF class (every LayerNorm with bias)"] - facts.value("model.n_params_card") == facts.value(
        "model.n_params_diff_norm_bias")
    assert v["no LayerNorm bias at all (NeoX use_bias_in_norms: false)"] == 1_644_414_976
    assert v["no norm bias, no QKV bias (NeoX config as written)"] == 1_644_414_976 - 24 * 3 * 2048


def test_llama_differences_read_off_the_modules(paper):
    rows = {r["difference"]: r for r in model_study.llama_differences(paper)}
    assert rows["rotary position embedding"]["Stable LM 2"].startswith("first 16 of 64")
    assert rows["rotary position embedding"]["LLaMA"].startswith("all 64")
    assert "LayerNorm" in rows["normalisation"]["Stable LM 2"] and "RMSNorm" in rows["normalisation"]["LLaMA"]
    assert "q_proj, self_attn.k_proj, self_attn.v_proj" in rows["linear-layer biases"]["Stable LM 2"]
    assert rows["linear-layer biases"]["LLaMA"] == "none"
    freqs = model_study.rotary_frequencies(paper)
    assert sum(f != 0 for f in freqs["Stable LM 2"]) == 16 and sum(f != 0 for f in freqs["LLaMA"]) == 64
    assert freqs["Stable LM 2"][0] == pytest.approx(1.0) and freqs["Stable LM 2"][1] == pytest.approx(10_000 ** -0.125)


def test_memory_layout_of_the_paper(paper, size):
    m2 = size["memory"][2]
    assert m2["fits"] and not size["memory"][4]["fits"]
    assert m2["optimizer"] == pytest.approx(12 * 1_644_515_328 / 512)
    assert m2["weights"] == 2 * 1_644_515_328 and m2["gradients"] == 4 * 1_644_515_328
    per_token_layer = 2 * (8 * 2048 + 4 * 5632) + 4 * 32
    assert m2["activations"] == 24 * per_token_layer * 2 * 4096
    assert size["largest_micro_batch"] == facts.value("train.micro_batch")
    assert size["memory_ckpt"]["activations"] < m2["activations"] / 10
    assert model.memory_per_gpu(paper, micro_batch=2, zero_stage=0)["optimizer"] == pytest.approx(12 * 1_644_515_328)
    assert model.memory_per_gpu(paper, gpu="A100-80GB", micro_batch=4)["fits"]


def test_measuring_needs_a_positive_repeat_count():
    with pytest.raises(ValueError, match="repeats = 0 must be positive"):
        model_study.measure_fwd_bwd(config.load("smoke"), repeats=0)


def test_mfu_and_gpu_hours(size):
    assert size["mfu"] == pytest.approx(170 / 312)
    assert size["mfu_high"] == pytest.approx(200 / 312)
    assert size["gpu_hours"] == pytest.approx(4e12 * 11_047_796_736 / 170e12 / 3600)
    assert size["gpu_hours_neox_ckpt"] == pytest.approx(92_274.688, rel=1e-6)


def test_claims_recorded(size):
    led = ledger.Ledger("03_model")
    model_study.record_claims(led, size)
    by = {c.id: c for c in led.claims}
    status = {k: c.status for k, c in by.items()}
    assert status["model.ffn_size"] == "re-derived" and status["model.params_hf"] == "consistent"
    assert by["model.params_hf"].kind == "consistency"  # its target is FACTS.md's arithmetic, not the paper
    assert status["model.params_card"] == "conflict"
    assert "the variants that give the card's 1,644,417,024: per-layer LayerNorms without bias" in by["model.params_card"].evidence
    assert status["model.hf_config"] == "consistent" and by["model.hf_config"].kind == "consistency"
    assert status["model.neox_norm_bias"] == status["model.neox_attn_bias"] == "conflict"
    assert by["model.neox_norm_bias"].kind == "consistency"
    assert status["model.activation_checkpointing"] == "reported only"
    assert "met by GPT-NeoX's count with checkpointing" in by["model.activation_checkpointing"].evidence
    assert status["model.mfu_high"] == "consistent" and status["model.micro_batch"] == "re-derived"
    # owned elsewhere: referenced, not recorded again
    assert not {"model.mfu", "model.gpu_hours", "model.gpu_hours_neox_ckpt", "model.train_flops"} & set(by)
    assert {r["claim"] for r in led.references} == {"overview.mfu", "carbon.gpu_hours", "carbon.flops_model"}


def test_the_summary_sentence_follows_the_counts(size):
    text = model_study.summary(size)
    assert "the layouts tried that give the card's number: per-layer LayerNorms without bias" in text
    changed = {**size, "variants": {k: v + 1 for k, v in size["variants"].items()}}
    assert "the layouts tried that give the card's number: none" in model_study.summary(changed)


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("03_model", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "03_model", root=build_dir)
    metrics = m["metrics"]
    assert set(metrics) == model_study.ModelMetrics.__optional_keys__  # the library's schema: every part ran
    assert metrics["params_counted"] == 1_644_515_328
    assert metrics["params_card_variant"] == facts.value("model.n_params_card")
    assert metrics["largest_micro_batch"] == 2
    assert metrics["measured_presets"] == ["smoke"]
    assert 0 < m["timings"]["fraction_of_peak_smoke"] < 2
    claims = {c["id"]: c for c in m["claims"]}
    assert claims["model.params_card"]["status"] == "conflict"
    assert "per-layer LayerNorms without bias" in claims["model.params_card"]["evidence"]
    assert claims["model.micro_batch"]["status"] == "re-derived"
    assert {f["name"] for f in m["figures"]} >= {"fig3_rotary_dims", "tab3_memory_per_gpu", "fig_model_cpu_throughput"}
