"""OpenVINO formats: the traced IR with its KV cache matches fp32; NNCF INT8/INT4 load and generate."""

from __future__ import annotations

import numpy as np
import pytest

from stablelm2 import tokenizer
from stablelm2.quantization import build, measure, openvino_io

from .quant_fixtures import sample_ids, scratch, tiny_checkpoint

OV = ("OV_FP32", "OV_FP16", "OV_INT8", "OV_INT4")


@pytest.fixture(scope="module")
def ov_paths():
    return build.build_formats(tiny_checkpoint(), scratch("ov"), list(OV), progress=False)


def test_fp32_ir_matches_transformers_in_one_pass_and_token_by_token(ov_paths):
    ids = sample_ids(20)
    ref = measure.TorchEngine(tiny_checkpoint()).logits(ids)
    eng = openvino_io.OpenVINOEngine(ov_paths["OV_FP32"], threads=2)
    full = eng.logits(ids)
    assert np.abs(full - ref).max() < 1e-4
    steps = [eng.prefill(ids[:5])]
    steps += [eng.step(t) for t in ids[5:]]
    assert np.abs(np.stack(steps) - ref[4:]).max() < 1e-4
    eng.close()


def test_every_format_generates_and_weights_shrink(ov_paths):
    sizes = {f: openvino_io.ir_bytes(p) for f, p in ov_paths.items() if f != "FP32"}
    assert sizes["OV_FP16"] < 0.55 * sizes["OV_FP32"]
    assert sizes["OV_INT4"] <= sizes["OV_INT8"] < sizes["OV_FP16"]
    per_token = {f: openvino_io.bytes_per_token(ov_paths[f]) for f in OV}
    assert per_token["OV_INT4"] < per_token["OV_INT8"] < per_token["OV_FP16"] < per_token["OV_FP32"]
    for f in OV:
        eng = openvino_io.OpenVINOEngine(ov_paths[f])
        assert len(measure.greedy(eng, sample_ids(6), 4)) == 4
        eng.close()


def test_quality_order(ov_paths):
    ids = sample_ids(48)
    ref = measure.TorchEngine(tiny_checkpoint())
    engines = {f: openvino_io.OpenVINOEngine(ov_paths[f]) for f in OV}
    res = measure.compare(engines, ref, [ids[:24], ids[24:]], n_vocab=tokenizer.arcade100k().n_vocab)
    assert res["OV_FP32"]["kl"] < 1e-6
    assert res["OV_FP16"]["kl"] < res["OV_INT8"]["kl"] < res["OV_INT4"]["kl"]


def test_incomplete_ir_names_the_file(tmp_path):
    (tmp_path / "model.xml").write_text("<net/>")
    with pytest.raises(openvino_io.OpenVINOError, match="model.bin is missing"):
        openvino_io.OpenVINOEngine(tmp_path)


def test_fp32_needs_an_fp32_trace(tmp_path):
    from stablelm2.quantization.formats import QuantError

    with pytest.raises(QuantError, match="OV_FP32 needs trace_dtype"):
        build.build_formats(tiny_checkpoint(), tmp_path / "o", ["OV_FP32"], trace_dtype="float16", progress=False)
    assert not (tmp_path / "o").exists()
