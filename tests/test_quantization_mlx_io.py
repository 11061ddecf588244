"""MLX 4-bit on MLX's Linux CPU build: conversion, generation, bytes per token."""

from __future__ import annotations

import numpy as np
import pytest

from stablelm2.quantization import measure, mlx_io

from .quant_fixtures import sample_ids, scratch, tiny_checkpoint


def test_mlx_runs_here():
    ok, why = mlx_io.available()
    assert ok, why


def test_mlx_q4_converts_generates_and_stays_close():
    out = mlx_io.export(tiny_checkpoint(), scratch("mlx") / "model-MLX_Q4.mlx")
    assert (out / "config.json").is_file() and mlx_io.folder_bytes(out) > 0
    assert 0 < mlx_io.bytes_per_token(out) < mlx_io.folder_bytes(out)
    eng = mlx_io.MLXEngine(out)
    ids = sample_ids(16)
    lg = eng.logits(ids)
    ref = measure.TorchEngine(tiny_checkpoint()).logits(ids)
    assert lg.shape == ref.shape
    assert np.corrcoef(lg.ravel(), ref.ravel())[0, 1] > 0.9
    # prefill + steps with the prompt cache equal one full pass
    steps = [eng.prefill(ids[:4])] + [eng.step(t) for t in ids[4:]]
    assert np.abs(np.stack(steps) - lg[3:]).max() < 1e-3
    assert len(measure.greedy(eng, ids[:4], 3)) == 3


def test_incomplete_mlx_folder(tmp_path):
    with pytest.raises(mlx_io.MLXError, match="not a complete MLX model folder"):
        mlx_io.MLXEngine(tmp_path)
