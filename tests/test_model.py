"""Chapter 03: the released architecture, parameter counts, FLOPs, memory, GPU-hours, the notebook."""

from __future__ import annotations

import re

import pytest
import torch

from stablelm2 import config, facts, ledger, model, record, runner
from stablelm2.config import ConfigError


@pytest.fixture(scope="module")
def paper():
    return config.load("paper")


@pytest.fixture(scope="module")
def size(paper):
    return model.sizing(paper)


# ------------------------------------------------------------------ the released architecture


def test_hf_config_is_the_released_config(paper):
    hfc = model.hf_config(paper)
    assert hfc.rope_parameters["partial_rotary_factor"] == 0.25
    assert hfc.rope_parameters["rope_theta"] == 10_000
    assert all(r["match"] for r in model.released_config_check(paper))
    assert hfc.num_key_value_heads == hfc.num_attention_heads == 32


def test_meta_build_has_the_released_shapes(paper):
    m = model.build(paper, device="meta")
    assert next(m.parameters()).device.type == "meta"
    layer = m.model.layers[0]
    assert layer.self_attn.rotary_ndims == facts.value("model.rotary_dims")
    assert layer.self_attn.q_proj.bias.shape == (2048,) and layer.self_attn.o_proj.bias is None
    assert layer.mlp.gate_proj.bias is None and layer.mlp.down_proj.bias is None
    assert isinstance(layer.input_layernorm, torch.nn.LayerNorm) and layer.input_layernorm.bias.shape == (2048,)
    assert m.lm_head.weight is not m.model.embed_tokens.weight
    assert m.lm_head.bias is None


def test_build_is_seeded_and_uses_scaled_output_init():
    cfg = config.load("cpu")
    a, b = model.build(cfg), model.build(cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    c = model.build(config.load("cpu", seed=7))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)
    std_in = a.model.layers[0].self_attn.q_proj.weight.std().item()
    std_out = torch.cat([layer.mlp.down_proj.weight.flatten() for layer in a.model.layers]).std().item()
    assert std_in == pytest.approx(0.02, rel=0.05)
    assert std_out == pytest.approx(0.02 / (2 * cfg.model.n_layers) ** 0.5, rel=0.05)
    state = torch.get_rng_state()
    model.build(cfg)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


def test_one_size_dial_gives_the_ffn_width():
    assert model.ffn_size(2048, facts.value("model.mlp_multiple_of")) == facts.value("model.ffn_size")
    for preset in config.PRESETS:
        m = config.load(preset).model
        assert m.d_ff == model.ffn_size(m.d_model), preset


def test_small_model_trains_one_step():
    cfg = config.load("smoke")
    m = model.build(cfg)
    ids = torch.randint(0, cfg.model.vocab_size, (2, cfg.data.seq_len), generator=torch.Generator().manual_seed(0))
    loss = m(input_ids=ids, labels=ids).loss
    assert loss.item() == pytest.approx(torch.log(torch.tensor(float(cfg.model.vocab_size))).item(), rel=0.05)
    loss.backward()
    assert m.model.layers[0].self_attn.q_proj.weight.grad is not None


# ------------------------------------------------------------------ parameters


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
    rows = {r["difference"]: r for r in model.llama_differences(paper)}
    assert rows["rotary position embedding"]["Stable LM 2"].startswith("first 16 of 64")
    assert rows["rotary position embedding"]["LLaMA"].startswith("all 64")
    assert "LayerNorm" in rows["normalisation"]["Stable LM 2"] and "RMSNorm" in rows["normalisation"]["LLaMA"]
    assert "q_proj, self_attn.k_proj, self_attn.v_proj" in rows["linear-layer biases"]["Stable LM 2"]
    assert rows["linear-layer biases"]["LLaMA"] == "none"
    freqs = model.rotary_frequencies(paper)
    assert sum(f != 0 for f in freqs["Stable LM 2"]) == 16 and sum(f != 0 for f in freqs["LLaMA"]) == 64
    assert freqs["Stable LM 2"][0] == pytest.approx(1.0) and freqs["Stable LM 2"][1] == pytest.approx(10_000 ** -0.125)


# ------------------------------------------------------------------ FLOPs, memory, MFU, GPU-hours


def test_flops_per_token(paper):
    f = model.flops_per_token(paper)
    n_matmul = 1_644_515_328 - 205_520_896 - 98_304 * 2 - 4096 - 147_456
    assert f["dense"] == 6 * n_matmul
    assert f["attention"] == 12 * 24 * 2048 * 4096
    assert f["total"] == f["dense"] + f["attention"]
    assert model.flops_per_token(paper, seq_len=2048)["attention"] == f["attention"] / 2
    neox = model.megatron_flops_per_token(paper, checkpointing=True)
    assert neox / model.megatron_flops_per_token(paper, checkpointing=False) == pytest.approx(4 / 3)


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


def test_mfu_and_gpu_hours(size):
    assert size["mfu"] == pytest.approx(170 / 312)
    assert size["mfu_high"] == pytest.approx(200 / 312)
    assert size["gpu_hours"] == pytest.approx(4e12 * 11_047_796_736 / 170e12 / 3600)
    assert size["gpu_hours_neox_ckpt"] == pytest.approx(92_274.688, rel=1e-6)


def test_claims_recorded(size):
    led = ledger.Ledger("03_model")
    model.record_claims(led, size)
    status = {c.id: c.status for c in led.claims}
    assert status["model.params_hf"] == status["model.ffn_size"] == "re-derived"
    assert status["model.params_card"] == "conflict"
    assert status["model.hf_config"] == "re-derived"
    assert status["model.neox_norm_bias"] == status["model.neox_attn_bias"] == "conflict"
    assert status["model.activation_checkpointing"] == "conflict"
    assert status["model.mfu"] == status["model.mfu_high"] == status["model.micro_batch"] == "re-derived"
    assert status["model.gpu_hours"] == "conflict"
    assert status["model.gpu_hours_neox_ckpt"] == "re-derived"
    assert status["model.train_flops"] == "re-derived"


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("overrides, message", [
    ({"model.n_heads": 30}, "model.n_heads = 30 does not divide model.d_model = 2048"),
    ({"model.n_layers": 0}, "model.n_layers = 0 must be positive"),
    ({"model.d_model": -64}, "model.d_model = -64 must be positive"),
    ({"model.d_ff": 0}, "model.d_ff = 0 must be positive"),
    ({"model.vocab_size": 50_000}, "model.vocab_size = 50000 is smaller than Arcade100k's 100,289 tokens"),
])
def test_bad_model_config_is_refused(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load("paper", **overrides)


def test_bad_sizing_arguments(paper):
    with pytest.raises(ValueError, match="micro_batch = 0 must be positive"):
        model.memory_per_gpu(paper, micro_batch=0)
    with pytest.raises(ValueError, match="gpu = 'V100' has no known memory"):
        model.memory_per_gpu(paper, gpu="V100")
    with pytest.raises(ValueError, match="seq_len = 0 must be positive"):
        model.flops_per_token(paper, seq_len=0)
    with pytest.raises(ValueError, match="repeats = 0 must be positive"):
        model.measure_fwd_bwd(config.load("smoke"), repeats=0)


# ------------------------------------------------------------------ the notebook


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("03_model", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "03_model", root=build_dir)
    metrics = m["metrics"]
    assert metrics["params_counted"] == 1_644_515_328
    assert metrics["params_card_variant"] == facts.value("model.n_params_card")
    assert metrics["largest_micro_batch"] == 2
    assert metrics["measured_presets"] == ["smoke"]
    assert 0 < m["timings"]["fraction_of_peak_smoke"] < 2
    claims = {c["id"]: c for c in m["claims"]}
    assert claims["model.params_card"]["status"] == "conflict"
    assert "per-layer norms without bias" in claims["model.params_card"]["evidence"]
    assert claims["model.mfu"]["status"] == "re-derived"
    assert {f["name"] for f in m["figures"]} >= {"fig3_rotary_dims", "tab3_memory_per_gpu", "fig_model_cpu_throughput"}
