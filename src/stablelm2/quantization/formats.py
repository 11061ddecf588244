"""The formats chapter 08 builds, what each one is, and which of them Stability released.

A format name picks a backend and its setting:

* ``gguf`` — llama.cpp: ``F16`` is the converter's output (the reference GGUF); ``Q8_0``,
  ``Q4_0``, ``Q4_1`` and ``Q5_K_M`` come from ``llama_model_quantize`` on that F16 file;
* ``openvino`` — an OpenVINO IR traced from the transformers model (``OV_FP32``, ``OV_FP16``),
  with NNCF weight compression for ``OV_INT8`` and ``OV_INT4``;
* ``mlx`` — ``mlx_lm.convert`` with 4-bit affine quantization (``MLX_Q4``; MLX's CPU build).

``FP32`` is the reference every format is compared with: the transformers checkpoint itself.

>>> from stablelm2.quantization import formats
>>> formats.get("Q4_0").backend, formats.get("Q4_0").released
('gguf', True)
>>> formats.get("Q3_K")
Traceback (most recent call last):
...
stablelm2.quantization.formats.QuantError: unknown quantization type 'Q3_K'; known: FP32, F16, Q8_0, Q4_0, Q4_1, Q5_K_M, OV_FP32, OV_FP16, OV_INT8, OV_INT4, MLX_Q4
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass

from .. import facts
from ..config import QuantFormat

REFERENCE = "FP32"
"""The unquantized transformers model (fp32 on CPU)."""


class QuantError(ValueError):
    """Bad request: unknown format, a format the backend cannot build, bad parameters."""


@dataclass(frozen=True)
class Format:
    """One format chapter 08 builds: its name, backend, nominal bits per weight and how it is made."""

    name: str
    backend: str
    """'torch' (the reference), 'gguf' (llama.cpp), 'openvino' or 'mlx'."""
    bits: float
    """Nominal bits per weight of the quantized matrices (block scales excluded)."""
    what: str
    released_as: str | None = None
    """The entry of ``facts: quant.formats`` this format reproduces, if Stability released it."""
    llama_ftype: int | None = None
    """``LLAMA_FTYPE_MOSTLY_*`` for ``llama_model_quantize`` (None: the converter writes it)."""
    nncf_mode: str | None = None
    """``nncf.CompressWeightsMode`` name for OpenVINO weight compression."""
    ir_fp16: bool = False
    """OpenVINO: store the IR's weights in fp16."""

    @property
    def released(self) -> bool:
        """Whether Stability released this format (one of ``facts: quant.formats``, Sec. 5.1)."""
        return self.released_as is not None and self.released_as in facts.value("quant.formats")

    @property
    def file_suffix(self) -> str:
        """Suffix of the built file or folder: ``.gguf``, ``.ov``, ``.mlx`` (``""`` for the checkpoint)."""
        return {"gguf": ".gguf", "openvino": ".ov", "mlx": ".mlx", "torch": ""}[self.backend]


def _ftype(name: str) -> int:
    import llama_cpp

    return int(getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}"))


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("FP32", "torch", 32, "transformers checkpoint in fp32 (the reference)"),
    Format("F16", "gguf", 16, "llama.cpp GGUF, 16-bit floats (converter output; GGUF reference)"),
    Format("Q8_0", "gguf", 8, "llama.cpp 8-bit, blocks of 32 with one fp16 scale"),
    Format("Q4_0", "gguf", 4, "llama.cpp 4-bit, blocks of 32, one fp16 scale (symmetric)", "GGUF Q4_0"),
    Format("Q4_1", "gguf", 4, "llama.cpp 4-bit, blocks of 32, fp16 scale and minimum", "GGUF Q4_1"),
    Format("Q5_K_M", "gguf", 5, "llama.cpp 5-bit k-quant, super-blocks of 256; some tensors at 6 bits",
           "GGUF Q5_K_M"),
    Format("OV_FP32", "openvino", 32, "OpenVINO IR, fp32 weights"),
    Format("OV_FP16", "openvino", 16, "OpenVINO IR, fp16 weights", ir_fp16=True),
    Format("OV_INT8", "openvino", 8, "OpenVINO IR, NNCF INT8 asymmetric per-channel weights", nncf_mode="INT8_ASYM"),
    Format("OV_INT4", "openvino", 4, "OpenVINO IR, NNCF INT4 asymmetric, groups of 128 (embeddings and "
           "output layer INT8, NNCF's default)", "OpenVINO INT4 (NNCF)", nncf_mode="INT4_ASYM"),
    Format("MLX_Q4", "mlx", 4, "MLX 4-bit affine, groups of 64 (mlx_lm.convert, CPU build)"),
)}
"""Every format by name, in display order."""
if tuple(FORMATS) != typing.get_args(QuantFormat):  # the config's choice type names exactly these
    raise RuntimeError(f"config.QuantFormat {typing.get_args(QuantFormat)} must list formats.FORMATS {tuple(FORMATS)}")

GGUF_FTYPES = {"Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_K_M": "Q5_K_M"}
INT4_GROUP = 128
"""NNCF INT4 group size (the common choice for OpenVINO LLM exports)."""
MLX_GROUP = 64
"""MLX quantization group size (mlx_lm's default)."""


def get(name: str) -> Format:
    """The :class:`Format` called ``name``; :class:`QuantError` naming the known ones otherwise."""
    if name not in FORMATS:
        upper = {k.upper(): k for k in FORMATS}
        hint = [upper[str(name).upper()]] if str(name).upper() in upper else \
            difflib.get_close_matches(str(name), list(FORMATS), n=1)
        raise QuantError(f"unknown quantization type {name!r}; known: {', '.join(FORMATS)}"
                         + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return FORMATS[name]


def llama_ftype(fmt: Format) -> int:
    """The ``LLAMA_FTYPE_MOSTLY_*`` value ``llama_model_quantize`` takes for ``fmt``.

    Raises:
        QuantError: ``fmt`` is not a llama.cpp quantization type (not GGUF, or ``F16``).
    """
    if fmt.backend != "gguf" or fmt.name == "F16":
        raise QuantError(f"{fmt.name} is not made by llama_model_quantize")
    return _ftype(GGUF_FTYPES[fmt.name])


def check(names: tuple[str, ...] | list[str]) -> list[Format]:
    """Validate a list of format names (all of them, before any work starts); their :class:`Format` in order.

    Raises:
        QuantError: a name is unknown (the message suggests the nearest one) or listed twice.
    """
    out = [get(n) for n in names]
    dup = {n for n in names if list(names).count(n) > 1}
    if dup:
        raise QuantError(f"format(s) {', '.join(sorted(dup))} listed twice")
    return out


def table() -> list[dict[str, object]]:
    """Rows for display: name, backend, nominal bits, released by Stability, description."""
    return [{"format": f.name, "backend": f.backend, "bits": f.bits, "released": f.released, "what": f.what}
            for f in FORMATS.values()]
