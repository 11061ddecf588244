"""Chapter 08's notebook at the smoke preset: every format of the tiny model, its table and claims."""

from __future__ import annotations

import pytest

from stablelm2 import record, runner
from stablelm2.quantization import study


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("08_quantization", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "08_quantization", root=build_dir)
    # the library's schema (study.QuantMetrics); smoke skips the 1.6B speed study, so no arch_sizes
    assert set(m["metrics"]) == study.QuantMetrics.__optional_keys__ - {"arch_sizes"}
    q = m["metrics"]["quality"]["random"]
    assert set(q) == {"FP32", "F16", "Q8_0", "Q4_0", "Q5_K_M", "OV_INT4", "MLX_Q4"}
    assert abs(q["Q8_0"]["ppl"] / q["FP32"]["ppl"] - 1) < 0.01
    assert q["F16"]["kl"] < q["Q8_0"]["kl"] < q["Q4_0"]["kl"]
    assert m["metrics"]["tokenizer_parity"]["all_identical"] is True
    assert set(m["metrics"]["generated"]) == set(q)
    claims = {c["id"]: c["status"] for c in m["claims"]}
    assert claims["quant.gguf_tokenizer"] == "reproduced" and claims["quant.frameworks"] == "reproduced"
    assert claims["quant.q8_0_ppl.random"] == "reported only"
    assert {s for k, s in claims.items() if k.startswith("quant.kl_order.")} == {"inconclusive at this scale"}
    types = m["metrics"]["tensor_types"]["random"]
    assert "Q5_K" not in types["Q5_K_M"]  # the tiny model's widths are not multiples of 256: llama.cpp falls back
    kl = next(c for c in m["claims"] if c["id"] == "quant.kl_order.random.Q8_0_Q5_K_M")
    assert "(built as Q5_K_M)" in kl["what"]
    assert [f["name"] for f in m["figures"]] == ["fig8_quality_vs_fp32"]
