"""Chapter 03 · stablelm2.model: the released class, parameter counts, FLOPs, memory, bad input."""

from __future__ import annotations

import re

import pytest
import torch

from stablelm2 import config, facts, model
from stablelm2.config import ConfigError


@pytest.fixture(scope="module")
def paper():
    return config.load("paper")


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


def test_param_counts_analytic_equal_counted_on_the_module(paper):
    counted = model.counted_params(model.build(paper, device="meta"))
    assert model.param_counts(paper) == counted
    assert counted["total"] == facts.value("model.n_params_with_norm_bias")
    small = config.load("smoke")
    assert model.param_counts(small) == model.counted_params(model.build(small, device="meta"))



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


# ------------------------------------------------------------------ packed documents (issue 14, kind 6)


def _packed(lengths=(7, 9, 5), seed=1):
    g = torch.Generator().manual_seed(seed)
    docs = [torch.randint(0, 1000, (1, n), generator=g) for n in lengths]
    pos = torch.cat([torch.arange(d.shape[1]) for d in docs]).unsqueeze(0)
    return docs, torch.cat(docs, dim=1), pos


PACKINGS = ((7, 9, 5), (1, 20), (12, 1, 1, 7))
"""Rows of 21 tokens, each split into documents differently (a one-token document included)."""


def _isolated(net, atol=1e-5, **forward):
    """Each document's logits in a plain forward of a packed batch (one row per packing of
    :data:`PACKINGS`) equal those of the document alone."""
    rows = [_packed(lengths, seed=i) for i, lengths in enumerate(PACKINGS)]
    packed = torch.cat([r[1] for r in rows])
    pos = torch.cat([r[2] for r in rows])
    with torch.no_grad():
        both = net(input_ids=packed, position_ids=pos, **forward).logits
        for i, (docs, _, _) in enumerate(rows):
            start = 0
            for d in docs:
                alone = net(input_ids=d, position_ids=torch.arange(d.shape[1]).unsqueeze(0), use_cache=False).logits
                if not torch.allclose(both[i:i + 1, start:start + d.shape[1]], alone, atol=atol):
                    return False
                start += d.shape[1]
    return True


def test_a_plain_forward_of_a_packed_batch_keeps_documents_apart(tmp_path):
    cfg = config.load("smoke")
    net = model.build(cfg).eval()
    assert net.config.use_cache is False and net.generation_config.use_cache is True
    assert _isolated(net)  # no use_cache argument: what a caller who forgets it gets
    assert _isolated(net, use_cache=False)
    docs, packed, pos = _packed()
    with torch.no_grad():  # the same batch without restarting positions mixes the documents (the test can fail)
        leaky = net(input_ids=packed).logits
        alone = net(input_ids=docs[1], use_cache=False).logits
    assert not torch.allclose(leaky[:, 7:16], alone, atol=1e-3)
    # saved and loaded by plain transformers (no help from this package): still isolated
    net.save_pretrained(tmp_path / "m")
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"), dtype=torch.float32).eval()
    assert plain.config.use_cache is False and plain.generation_config.use_cache is True
    assert _isolated(plain)


def test_load_isolates_a_checkpoint_whose_config_asks_for_the_cache(tmp_path):
    """A released-style config.json (``use_cache: true``) leaks in a plain forward; :func:`model.load` fixes it."""
    from transformers import AutoModelForCausalLM

    net = model.build(config.load("smoke")).eval()
    net.config.use_cache = True
    net.generation_config.use_cache = True
    net.save_pretrained(tmp_path / "released")
    raw = AutoModelForCausalLM.from_pretrained(str(tmp_path / "released"), dtype=torch.float32).eval()
    assert raw.config.use_cache is True and not _isolated(raw, atol=1e-4)  # the fault, as the issue saw it
    loaded = model.load(tmp_path / "released").eval()
    assert loaded.config.use_cache is False and _isolated(loaded)
    from stablelm2.alignment import common

    assert _isolated(common.load_model(tmp_path / "released").eval())


def test_generation_still_decodes_with_the_kv_cache():
    net = model.build(config.load("smoke")).eval()
    ids = torch.randint(0, 1000, (1, 6), generator=torch.Generator().manual_seed(3))
    out = net.generate(ids, max_new_tokens=4, do_sample=False, return_dict_in_generate=True,
                       pad_token_id=facts.value("tokenizer.special.endoftext"))
    assert out.past_key_values is not None and out.sequences.shape == (1, 10)
    with torch.no_grad():  # greedy with the cache = greedy recomputed from scratch
        seq = ids
        for _ in range(4):
            nxt = net(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(seq, out.sequences)
