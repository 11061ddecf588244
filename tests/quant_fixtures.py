"""A tiny random StableLM with the Arcade100k tokenizer, and its GGUF F16, built once per test process.

Shared by the ``test_quantization_*`` modules (module-level cache, so the llama.cpp converter runs
once however many modules use it).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache, lru_cache
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="stablelm2-quant-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def smoke_cfg():
    from stablelm2 import config

    return config.load("smoke", **{"carbon.meter": False})


@lru_cache(maxsize=1)
def tiny_checkpoint() -> Path:
    """The smoke preset's model (2 layers, width 64), seeded, saved with the tokenizer."""
    import torch

    from stablelm2 import model, tokenizer

    out = _ROOT / "tiny"
    m = model.build(smoke_cfg(), dtype=torch.float32)
    m.save_pretrained(out)
    tokenizer.save_transformers(out)
    return out


@lru_cache(maxsize=1)
def tiny_f16() -> Path:
    from stablelm2.quantization import gguf_io

    return gguf_io.convert(tiny_checkpoint(), _ROOT / "gguf" / "model-F16.gguf")


@cache
def tiny_gguf(fmt: str) -> Path:
    from stablelm2.quantization import gguf_io

    if fmt == "F16":
        return tiny_f16()
    return gguf_io.quantize(tiny_f16(), _ROOT / "gguf" / f"model-{fmt}.gguf", fmt, threads=2)


def scratch(name: str) -> Path:
    d = _ROOT / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def sample_ids(n: int = 48) -> list[int]:
    from stablelm2 import tokenizer

    text = ("The Rhine rises in the Swiss Alps, flows through Lake Constance and reaches the North Sea in "
            "the Netherlands. In 2024, 12345 tokens — naïve café, déjà vu. def f(x):\n    return x ** 2\n") * 3
    return tokenizer.encode(text)[:n]
