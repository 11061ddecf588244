"""Chapter 08 · Quantization and inference: the released formats, their quality and their speed.

Stability released Stable LM 2 1.6B for edge devices as GGUF Q4_0, Q4_1 and Q5_K_M (llama.cpp) and
as OpenVINO INT4 (NNCF), and reported throughput in llama.cpp, MLX and OpenVINO (Table 8), with
lower precision giving "almost 2x". This package builds those formats from any transformers
checkpoint with the real tools and measures them:

* :mod:`.formats` — the format names (``F16``, ``Q8_0``, ``Q4_0``, ``Q4_1``, ``Q5_K_M``, ``OV_FP32``,
  ``OV_FP16``, ``OV_INT8``, ``OV_INT4``, ``MLX_Q4``) and what each one is;
* :mod:`.checkpoint` — checks a checkpoint folder before anything is built;
* :mod:`.converter` — llama.cpp's ``convert_hf_to_gguf.py``, fetched once from the llama-cpp-python sdist;
* :mod:`.gguf_io` / :mod:`.openvino_io` / :mod:`.mlx_io` — convert, quantize, inspect and run each backend;
* :mod:`.build` — every requested format of one checkpoint, atomically, reusing what is built;
* :mod:`.measure` — perplexity and KL to fp32, greedy generation, tokens/s, the bandwidth bound;
* :mod:`.speed` — the Table 8 analogue rows; :mod:`.arch` — the paper-size model with random weights;
* :mod:`.study` — the chapter's stages (models per preset, quality, tokenizer parity, the plan);
* :mod:`.claims`, :mod:`.figures` — ledger entries and plots.

>>> from stablelm2 import config
>>> from stablelm2.quantization import study, build
>>> cfg = config.load("smoke")
>>> paths = study.quantize(cfg, "random")                            # doctest: +SKIP
>>> sorted(paths)                                                    # doctest: +SKIP
['F16', 'FP32', 'MLX_Q4', 'OV_INT4', 'Q4_0', 'Q5_K_M', 'Q8_0']
>>> eng = build.open_engine("Q4_0", paths["Q4_0"], threads=2)        # doctest: +SKIP
"""

from __future__ import annotations

from .build import build_formats, open_engine, size_on_disk
from .formats import FORMATS, REFERENCE, Format, QuantError

__all__ = ["FORMATS", "REFERENCE", "Format", "QuantError", "build_formats", "open_engine", "size_on_disk"]
