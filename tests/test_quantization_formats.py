"""Format names, backends and which ones Stability released."""

from __future__ import annotations

import pytest

from stablelm2 import facts
from stablelm2.quantization import formats as F


def test_released_formats_are_the_papers():
    released = {f.released_as for f in F.FORMATS.values() if f.released}
    assert released == set(facts.value("quant.formats"))
    assert [n for n, f in F.FORMATS.items() if f.released] == ["Q4_0", "Q4_1", "Q5_K_M", "OV_INT4"]


def test_unknown_quant_type_names_it_and_the_known_ones():
    with pytest.raises(F.QuantError, match=r"unknown quantization type 'Q4_K_S'.*known: FP32, F16, Q8_0"):
        F.get("Q4_K_S")
    with pytest.raises(F.QuantError, match="did you mean 'Q4_0'"):
        F.get("q4_0")
    with pytest.raises(F.QuantError, match="listed twice"):
        F.check(["Q4_0", "Q4_0"])


def test_llama_ftypes_are_llama_cpps():
    import llama_cpp

    assert F.llama_ftype(F.get("Q4_0")) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    assert F.llama_ftype(F.get("Q5_K_M")) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M
    with pytest.raises(F.QuantError):
        F.llama_ftype(F.get("F16"))
    with pytest.raises(F.QuantError):
        F.llama_ftype(F.get("OV_INT4"))


def test_table_rows():
    rows = F.table()
    assert len(rows) == len(F.FORMATS) and rows[0]["format"] == F.REFERENCE
    assert {r["backend"] for r in rows} == {"torch", "gguf", "openvino", "mlx"}
