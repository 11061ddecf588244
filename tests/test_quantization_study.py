"""The chapter's parameters, plan, paper-preset readiness and claims (on synthetic rows)."""

from __future__ import annotations

import pytest

from stablelm2 import config
from stablelm2.config import ConfigError
from stablelm2.ledger import Ledger
from stablelm2.quantization import claims, study

from .quant_fixtures import tiny_gguf


@pytest.mark.parametrize("overrides, message", [
    ({"quant.formats": "F16,Q3_K"}, "unknown quantization type 'Q3_K'"),
    ({"quant.formats": "FP32,Q4_0"}, "fp32 reference is always measured"),
    ({"quant.arch_formats": "F16,OV_FP32"}, "traces in fp16"),
    ({"quant.models": "stabilityai/stablelm-2-1_6b"}, "run.offline is True"),
    ({"quant.models": "mystery"}, "neither one of"),
    ({"quant.ppl_window": 512}, "ppl_window"),
    ({"quant.prompt_tokens": 300}, "max_position_embeddings"),
])
def test_bad_parameters_fail_before_work(overrides, message):
    with pytest.raises(ConfigError, match=message):
        study.check(config.load("smoke", **overrides))


def test_presets_are_valid():
    for preset in ("smoke", "cpu", "paper"):
        study.check(config.load(preset))
    assert config.load("cpu").quant.models == ("pretrained", "dpo")
    assert all("/" in m for m in config.load("paper").quant.models)


def test_paper_preset_without_the_hub_plans_and_says_so():
    cfg = config.load("paper")
    state = study.ready(cfg)  # the test suite blocks the network
    assert not state["runs"] and "Did not run" in state["message"]
    steps = {s["step"]: s for s in study.plan(cfg)}
    assert "stabilityai/stablelm-2-zephyr-1_6b" in steps["download"]["what"]
    assert steps["quantize"]["what"] == "Q8_0, Q4_0, Q4_1, Q5_K_M"
    assert study.ready(config.load("smoke"))["runs"]


def _q(fmt, backend, ppl, kl):
    return {"format": fmt, "backend": backend, "ppl": ppl, "ppl_vs_fp32_pct": 100 * (ppl / 10 - 1), "kl": kl,
            "top1_agree": 1.0, "tokens": 100}


def test_quality_claims_name_what_each_file_holds():
    led = Ledger("08_quantization")
    rows = [_q("FP32", "torch", 10.0, 0.0), _q("Q8_0", "gguf", 10.02, 1e-4), _q("Q5_K_M", "gguf", 10.1, 1e-3),
            _q("Q4_0", "gguf", 10.4, 1e-2), _q("Q4_1", "gguf", 10.3, 8e-3)]
    made = {c.id: c for c in claims.quality_claims(led, rows, "pretrained")}
    assert made["quant.q8_0_ppl.pretrained"].status == "reported only"
    kl = made["quant.kl_order.pretrained.Q8_0_Q5_K_M"]
    assert kl.status == "inconclusive at this scale" and "Q8_0 diverges less from fp32 than Q5_K_M" in kl.what
    fell = {"Q5_K_M": {"Q5_1": 25, "Q8_0": 5}, "Q8_0": {"Q8_0": 30}}
    made = {c.id: c for c in claims.quality_claims(Ledger("08"), rows, "pretrained", fell)}
    kl = made["quant.kl_order.pretrained.Q8_0_Q5_K_M"]
    assert "than Q5_1 (built as Q5_K_M)" in kl.what and "Q5_K_M's file holds Q5_1 ×25, Q8_0 ×5" in kl.evidence


def test_actual_format_reads_the_majority_type():
    assert claims.actual_format("Q5_K_M", {"Q5_K": 20, "Q6_K": 5, "Q8_0": 5}) == "Q5_K_M"
    assert claims.actual_format("Q5_K_M", {"Q5_1": 25, "Q8_0": 5}) == "Q5_1 (built as Q5_K_M)"
    assert claims.actual_format("OV_INT4", None) == "OV_INT4"


def test_read_tensor_types_with_ggufs_reader(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "t.gguf"
    w = GGUFWriter(str(path), "stablelm")
    w.add_tensor("a.weight", np.zeros((4, 8), dtype=np.float16))
    w.add_tensor("b.weight", np.zeros((4, 8), dtype=np.float32))
    w.add_tensor("norm.weight", np.zeros(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert claims.read_tensor_types(path) == {"F16": 1, "F32": 1}  # the 1-D norm is not a matrix
    with pytest.raises(FileNotFoundError, match="build the formats first"):
        claims.read_tensor_types(tmp_path / "missing.gguf")
    half = tmp_path / "half.gguf"
    half.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        claims.read_tensor_types(half)


@pytest.mark.parametrize("fmt", ["Q4_0", "Q5_K_M"])  # one plain type; a k-quant mix with fallbacks
def test_tensor_types_read_back_as_ggufs_reader_reads_them(fmt):
    """The chapter's fast read-back of what llama.cpp wrote agrees with the ``gguf`` package's reader."""
    from collections import Counter

    from gguf import GGUFReader

    path = tiny_gguf(fmt)
    oracle = Counter(t.tensor_type.name for t in GGUFReader(path).tensors if len(t.shape) >= 2 and min(t.shape) > 1)
    assert claims.read_tensor_types(path) == dict(oracle.most_common())
    assert sum(oracle.values()) > 1


def test_size_and_speed_claims_against_the_released_files():
    led = Ledger("08_quantization")
    sizes = {"FP16_safetensors": 3_289_069_184, "Q4_0": 985_359_232, "Q4_1": 1_075_274_624,
             "OV_INT4": 1_054_000_000, "OV_INT4_bin": 1_052_291_306}
    made = {c.id: c for c in claims.size_claims(led, sizes)}
    assert made["quant.size_fp16"].status == "reproduced"  # 3.289 GB in the printed 3.29's [3.285, 3.295)
    assert made["quant.size_q4_0"].status == "conflict" and made["quant.size_q4_0"].paper == 983  # 985.4 MB ∉ [982.5, 983.5)
    assert made["quant.size_ov_int4"].status == "reproduced"  # 1.0523 GB in [1.045, 1.055)
    assert made["quant.size_q4_1"].status == "conflict" and made["quant.size_q4_1"].paper == 1.07  # 1.0753 ∉ [1.065, 1.075)

    def row(fmt, backend, tg, bound):
        return {"format": fmt, "backend": backend, "tg_tok_s": tg, "bound_tok_s": bound, "frac_of_bound": tg / bound,
                "threads": 2}

    rows = [row("F16", "gguf", 5.0, 5.2), row("Q4_0", "gguf", 9.5, 19.0), row("OV_FP16", "openvino", 4.0, 5.0),
            row("OV_INT4", "openvino", 12.0, 16.0)]
    made = {c.id: c for c in claims.speed_claims(led, rows, 17e9)}
    assert made["quant.speedup_gguf"].status == "reproduced" and made["quant.speedup_gguf"].ours == pytest.approx(1.9)
    assert made["quant.speedup_ov"].status == "conflict"  # 3x is not "almost 2x" ([1.5, 2])
    assert made["quant.speedup_ov"].setting == "OpenVINO"
    assert made["quant.tab8"].status == "reported only"
    # the repeats' spread is the ratio's interval: a best-of ratio of 2.1 whose repeats reach 1.96 meets [1.5, 2]
    noisy = [{**row("F16", "gguf", 5.0, 5.2), "tg_all": [5.0, 4.9]},
             {**row("Q4_0", "gguf", 10.5, 19.0), "tg_all": [10.5, 9.8]}]
    c = {c.id: c for c in claims.speed_claims(Ledger("08_quantization"), noisy, 17e9)}["quant.speedup_gguf"]
    assert c.ours == pytest.approx(2.1) and c.ours_interval == pytest.approx([9.8 / 5.0, 10.5 / 4.9])
    assert c.status == "reproduced"


def test_framework_claim():
    led = Ledger("08_quantization")
    gen = [{"format": "Q4_0", "tokens": 3, "ids": [11, 11, 11]}, {"format": "OV_INT4", "tokens": 3, "ids": [11, 11, 11]}]
    c = claims.framework_claim(led, gen, {"Q4_0": "gguf", "OV_INT4": "openvino"})
    assert c.status == "conflict" and "not run: Apple MLX" in c.evidence
    assert "every generation repeats one token, so the texts cannot show whether the formats agree" in c.evidence
    gen[1]["ids"] = [5, 6, 7]
    c = claims.framework_claim(led, gen, {"Q4_0": "gguf", "OV_INT4": "openvino"})
    assert "2 distinct continuation(s) of 2" in c.evidence
