"""The paper-size speed study's random checkpoint: weights drawn directly in fp16 from ``model.build``'s distribution."""

import math

import pytest
import torch
from transformers import StableLmForCausalLM

from stablelm2 import config, model
from stablelm2.quantization import arch


def test_random_model_draws_model_builds_distribution_in_fp16_and_is_seeded(tmp_path):
    cfg = config.load("smoke")
    m = arch.random_model(cfg)
    assert {p.dtype for p in m.parameters()} == {torch.float16}
    assert set(m.state_dict()) == set(model.build(cfg).state_dict())  # the same tensors as chapter 03's model
    std, layers = cfg.model.init_std, cfg.model.n_layers
    layer = m.model.layers[0]
    assert layer.mlp.up_proj.weight.float().std().item() == pytest.approx(std, rel=0.05)
    assert layer.mlp.down_proj.weight.float().std().item() == pytest.approx(std / math.sqrt(2 * layers), rel=0.05)
    assert m.model.embed_tokens.weight.float().std().item() == pytest.approx(std, rel=0.02)
    assert torch.all(layer.input_layernorm.weight == 1) and torch.all(layer.input_layernorm.bias == 0)
    if layer.self_attn.q_proj.bias is not None:
        assert torch.all(layer.self_attn.q_proj.bias == 0)
    same, other = arch.random_model(cfg), arch.random_model(config.load("smoke", seed=cfg.run.seed + 1))
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), same.state_dict().values(), strict=True))
    assert not torch.equal(m.model.embed_tokens.weight, other.model.embed_tokens.weight)
    # the buffers no checkpoint holds (rotary frequencies) are model.build's, not to_empty's leftover memory
    built = dict(model.build(cfg, dtype=torch.float16).named_buffers())
    assert built and all(torch.equal(b, built[k]) for k, b in m.named_buffers())
    # what is saved loads back as the same model: the same logits in memory and reloaded
    m.save_pretrained(tmp_path)
    back = StableLmForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert torch.equal(back.lm_head.weight, m.lm_head.weight.float())
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.allclose(m.float()(ids).logits, back(ids).logits, atol=1e-5)
