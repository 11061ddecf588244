"""A tiny random StableLM with the real Arcade100k tokenizer, for the alignment tests."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_model_dir(path: Path, *, d_model: int = 32, seed: int = 0) -> Path:
    """Save a 2-layer StableLM (vocab 100,352) and ``tokenizer.save_transformers`` into ``path``."""
    from transformers import StableLmConfig, StableLmForCausalLM

    from stablelm2 import tokenizer

    cfg = StableLmConfig(vocab_size=100_352, hidden_size=d_model, intermediate_size=3 * d_model,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=256, partial_rotary_factor=0.25, use_qkv_bias=True,
                         tie_word_embeddings=False, bos_token_id=tokenizer.EOT_ID, eos_token_id=tokenizer.EOT_ID)
    torch.manual_seed(seed)
    StableLmForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_transformers(path)
    return path
