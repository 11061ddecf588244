"""Apple MLX format, on MLX's Linux CPU build: ``mlx_lm.convert`` with 4-bit quantization, and a runner.

The paper ran MLX on Apple silicon. MLX also ships a CPU build for Linux (``mlx[cpu]``), and
``mlx_lm`` has the StableLM architecture, so the same conversion and the same 4-bit affine
quantization (groups of 64, mlx_lm's default) run here; the speed is that of MLX's CPU backend
on this machine, not of an Apple GPU. ``mlx_lm`` reads ``rope_theta``/``partial_rotary_factor``
at the top level of ``config.json`` as the released file has them, so the conversion reads the
checkpoint through a release-style view (:func:`checkpoint.release_style_view`).

>>> from stablelm2.quantization import mlx_io
>>> out = mlx_io.export("ckpt", "m.MLX_Q4.mlx")          # doctest: +SKIP
>>> eng = mlx_io.MLXEngine(out)                          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_dir
from .checkpoint import check, release_style_view
from .formats import MLX_GROUP, QuantError, get


class MLXError(ValueError):
    """An MLX model folder is missing or incomplete; the message names the file."""


def available() -> tuple[bool, str]:
    """Whether MLX runs here, and why not when it does not."""
    try:
        import mlx.core as mx
        import mlx_lm  # noqa: F401
    except ImportError as exc:
        return False, f"MLX is not installed ({exc}); pip install 'mlx[cpu]' mlx-lm"
    return True, f"MLX {mx.__version__ if hasattr(mx, '__version__') else ''} on {mx.default_device()}"


def export(checkpoint: Path | str, out: Path | str, fmt: str = "MLX_Q4") -> Path:
    """Checkpoint folder → MLX folder quantized to 4 bits; the folder appears whole or not at all.

    4-bit affine quantization in groups of :data:`.formats.MLX_GROUP` weights (mlx_lm's default), for the
    MLX row of the paper's throughput table (Sec. 5.2, Table 8), here on MLX's CPU build. Returns ``out``.

    Raises:
        QuantError: ``fmt`` is not an MLX format (``MLX_Q4``).
        CheckpointError: ``checkpoint`` is not a complete StableLM folder.
    """
    spec = get(fmt)
    if spec.backend != "mlx":
        raise QuantError(f"{fmt} is not an MLX format; use MLX_Q4")
    from mlx_lm import convert

    check(checkpoint)
    out = Path(out)
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(dir=out.parent, prefix=".mlx-src-") as view:
        src = release_style_view(checkpoint, Path(view) / "ckpt")
        with contextlib.redirect_stdout(io.StringIO()):  # mlx_lm prints [INFO] lines
            convert(str(src), str(tmp), quantize=True, q_bits=int(spec.bits), q_group_size=MLX_GROUP)
    return out


def folder_bytes(path: Path | str) -> int:
    """Bytes of the MLX weights on disk (the safetensors files)."""
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


class MLXEngine:
    """An MLX model folder behind the common engine interface (prompt cache for generation).

    Raises :class:`MLXError` when ``path`` lacks ``config.json`` or ``*.safetensors``.
    """

    backend = "mlx"

    def __init__(self, path: Path | str):
        path = Path(path)
        if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
            raise MLXError(f"{path} is not a complete MLX model folder (config.json and *.safetensors needed)")
        import mlx.core as mx
        from mlx_lm import load
        from mlx_lm.models.cache import make_prompt_cache

        self._mx = mx
        self._make_cache = make_prompt_cache
        self.model, self.tokenizer = load(str(path))  # type: ignore[misc]  # (model, tokenizer) without return_config
        self._cache: Any = None

    def _forward(self, ids: list[int], cache) -> np.ndarray:
        mx = self._mx
        out = self.model(mx.array([ids]), cache=cache)
        out = out.astype(mx.float32)
        mx.eval(out)
        return np.array(out[0])

    def logits(self, ids: list[int]) -> np.ndarray:
        """Float32 logits ``[len(ids), vocab]`` of every position of ``ids`` (no cache)."""
        return self._forward(ids, None)

    def prefill(self, ids: list[int]) -> np.ndarray:
        """Run ``ids`` into a fresh prompt cache; float32 logits ``[vocab]`` of the last position."""
        self._cache = self._make_cache(self.model)
        return self._forward(ids, self._cache)[-1]

    def step(self, token: int) -> np.ndarray:
        """Append ``token`` to :meth:`prefill`'s cache; float32 logits ``[vocab]`` of the next position."""
        return self._forward([token], self._cache)[-1]

    def close(self) -> None:
        """Drop the model and its cache."""
        self.model = None
        self._cache = None


def bytes_per_token(path: Path | str) -> int:
    """Bytes of weights one decoded token reads: every tensor except the (quantized) embedding table."""
    from safetensors import safe_open

    total = 0
    for f in Path(path).glob("*.safetensors"):
        with safe_open(str(f), framework="numpy") as st:
            for key in st.keys():
                if "embed_tokens" in key:
                    continue
                t = st.get_slice(key)
                n = int(np.prod(t.get_shape(), dtype=np.int64))
                total += n * np.dtype(_NP_DTYPES[t.get_dtype()]).itemsize
    return total


_NP_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "uint16", "U32": "uint32", "U8": "uint8", "I32": "int32"}
