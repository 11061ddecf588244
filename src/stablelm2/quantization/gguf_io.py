"""llama.cpp formats: convert (the official converter), quantize (``llama_model_quantize``), inspect, run.

* :func:`convert` — transformers checkpoint → GGUF F16 with llama.cpp's ``convert_hf_to_gguf.py``
  (see :mod:`.converter`); the file carries the Arcade100k vocabulary, merges and the
  ``stablelm2`` pre-tokenizer, which the converter picks by hashing how the tokenizer encodes
  a fixed probe text — so a converted file is also a check of chapter 02's tokenizer;
* :func:`quantize` — F16 GGUF → Q8_0 / Q4_0 / Q4_1 / Q5_K_M through ``llama_cpp.llama_model_quantize``;
* :func:`inspect` — scans a GGUF's header (with the ``gguf`` package's type tables) and checks it is whole: a missing,
  foreign, truncated or corrupt file stops with :class:`GGUFError` naming it, before llama.cpp
  ever opens it; also the bytes of weights one generated token reads;
* :class:`LlamaCppEngine` — ``llama_cpp.Llama`` behind the common engine interface.

>>> from stablelm2.quantization import gguf_io
>>> f16 = gguf_io.convert("ckpt", "m-F16.gguf")                        # doctest: +SKIP
>>> q4 = gguf_io.quantize(f16, "m-Q4_0.gguf", "Q4_0", threads=2)        # doctest: +SKIP
>>> gguf_io.inspect(q4).tensor_types                                   # doctest: +SKIP
{'Q4_0': 169, 'F32': 146, 'Q6_K': 1}
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import io
import logging
import mmap
import os
import re
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_file
from .formats import QuantError, get, llama_ftype

MAGIC = b"GGUF"
SOURCE_TYPES = ("F32", "F16", "BF16")
"""File types llama_model_quantize may start from (no re-quantizing of quantized files)."""


class GGUFError(ValueError):
    """A GGUF file is missing, foreign, truncated or corrupt; the message names the file."""


@dataclass
class GGUFInfo:
    path: Path
    file_bytes: int
    architecture: str
    file_type: str
    n_tensors: int
    n_params: int
    tensor_types: dict[str, int]
    """How many tensors of each ggml type the file holds."""
    matrix_types: dict[str, int]
    """How many weight matrices (two or more dimensions, each above 1) of each ggml type, most first."""
    params_by_type: dict[str, int]
    weight_bytes: int
    """Bytes of all tensor data."""
    bytes_per_token: int
    """Bytes of weights a single decoded token reads: everything but the embedding table, plus one row."""
    tokenizer_model: str | None = None
    tokenizer_pre: str | None = None
    n_vocab: int | None = None
    meta: dict[str, object] = field(default_factory=dict)


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAYS = {"tokenizer.ggml.tokens"}  # arrays whose length we keep (vocabulary size)


class _Cursor:
    """Little-endian reads from a memory-mapped GGUF with bounds checks (a short file raises EOFError)."""

    def __init__(self, buf: mmap.mmap):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise EOFError(f"header ends at byte {len(self.buf):,} while reading byte {self.pos + size:,}")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise EOFError(f"a {n:,}-byte string runs past the end of the file")
        out = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return out

    def value(self, vtype: int, key: str, meta: dict[str, object]):
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.take("<I"), self.take("<Q")
            if etype == _STRING:
                for _ in range(count):
                    self.pos += 8 + struct.unpack_from("<Q", self.buf, self.pos)[0]
                if self.pos > len(self.buf):
                    raise EOFError(f"array {key} runs past the end of the file")
            elif etype in _SCALARS:
                self.pos += count * struct.calcsize(_SCALARS[etype])
            else:
                raise ValueError(f"array {key} has unknown element type {etype}")
            if key in _KEEP_ARRAYS:
                meta[key + ".count"] = count
            return None
        raise ValueError(f"key {key} has unknown value type {vtype}")


def _scan(path: Path) -> tuple[dict[str, Any], list[tuple[str, int, int, int, list[int]]], int]:
    """Metadata, tensors (name, ggml type, elements, offset, dims) and data start of a GGUF file."""
    from gguf.constants import GGUF_DEFAULT_ALIGNMENT

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        cur = _Cursor(mm)
        cur.pos = 4
        version, n_tensors, n_kv = cur.take("<I"), cur.take("<Q"), cur.take("<Q")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            meta[key] = cur.value(cur.take("<I"), key, meta)
        tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            dims = [cur.take("<Q") for _ in range(cur.take("<I"))]
            ttype, offset = cur.take("<I"), cur.take("<Q")
            tensors.append((name, ttype, int(np.prod(dims, dtype=np.int64)), offset, dims))
        align = int(meta.get("general.alignment") or GGUF_DEFAULT_ALIGNMENT)
        start = -(-cur.pos // align) * align
    return meta, tensors, start


def inspect(path: Path | str) -> GGUFInfo:
    """Read and check a GGUF; :class:`GGUFError` naming the file when it is not whole.

    A fast scan of the header (the ``gguf`` package's reader parses every one of the ~330k vocabulary
    strings into numpy views, which takes seconds), checked against the file's size.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != MAGIC:
        raise GGUFError(f"{path} is not a GGUF file (it starts with {magic!r}, expected {MAGIC!r})")
    try:
        meta, tensors, start = _scan(path)
    except (EOFError, ValueError, UnicodeDecodeError, struct.error) as exc:
        raise GGUFError(f"{path} is truncated or corrupt: {exc}") from exc
    types: collections.Counter[str] = collections.Counter()
    matrices: collections.Counter[str] = collections.Counter()
    params: collections.Counter[str] = collections.Counter()
    weight_bytes = per_token = 0
    end = start
    for name, ttype, n, offset, dims in tensors:
        try:
            qtype = GGMLQuantizationType(ttype)
        except ValueError as exc:
            raise GGUFError(f"{path} is corrupt: tensor {name} has unknown type {ttype}") from exc
        block, block_bytes = GGML_QUANT_SIZES[qtype]
        nbytes = n // block * block_bytes
        end = max(end, start + offset + nbytes)
        types[qtype.name] += 1
        if len(dims) >= 2 and min(dims) > 1:
            matrices[qtype.name] += 1
        params[qtype.name] += n
        weight_bytes += nbytes
        per_token += nbytes // max(int(dims[-1]), 1) if name == "token_embd.weight" else nbytes
    if end > size:
        raise GGUFError(f"{path} is truncated: its tensors need {end:,} bytes but the file has {size:,}")
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise GGUFError(f"{path} has no general.architecture: it is corrupt or not a model file")
    ftype = meta.get("general.file_type")
    ftype_name = LlamaFileType(ftype).name.replace("MOSTLY_", "") if isinstance(ftype, int) else "unknown"
    return GGUFInfo(
        path=path, file_bytes=size, architecture=arch, file_type=ftype_name, n_tensors=len(tensors),
        n_params=sum(params.values()), tensor_types=dict(types), matrix_types=dict(matrices.most_common()),
        params_by_type=dict(params),
        weight_bytes=weight_bytes, bytes_per_token=per_token,
        tokenizer_model=meta.get("tokenizer.ggml.model"), tokenizer_pre=meta.get("tokenizer.ggml.pre"),
        n_vocab=meta.get("tokenizer.ggml.tokens.count"),
        meta={k: meta.get(k) for k in (f"{arch}.block_count", f"{arch}.embedding_length",
                                        f"{arch}.rope.dimension_count", f"{arch}.context_length")},
    )


def convert(checkpoint: Path | str, out: Path | str, *, outtype: str = "f16") -> Path:
    """Checkpoint folder → GGUF (F16 by default) with llama.cpp's converter; the result is inspected.

    The F16 file is the source of the released GGUF formats (Sec. 5.1). ``outtype`` is one of
    :data:`.converter.OUTTYPES`; returns ``out``.

    Raises:
        CheckpointError: ``checkpoint`` is not a complete StableLM folder.
        ConverterError: the converter is not installed, ``outtype`` is unknown, or the converter failed.
        GGUFError: the written file is not whole, or its pre-tokenizer is not ``stablelm2`` (Arcade100k).
    """
    from . import converter
    from .checkpoint import check

    check(checkpoint)
    out = converter.convert(checkpoint, out, outtype=outtype)
    info = inspect(out)
    if info.tokenizer_pre != "stablelm2":
        raise GGUFError(f"{out}: the converter recognised the tokenizer as {info.tokenizer_pre!r}, not 'stablelm2' "
                        "(Arcade100k); the checkpoint's tokenizer does not encode like the released one")
    return out


def quantize(src: Path | str, dst: Path | str, fmt: str, *, threads: int = 2) -> Path:
    """Quantize an F16/F32 GGUF to ``fmt`` with ``llama_model_quantize``; atomic, returns ``dst``.

    ``fmt`` is ``Q8_0`` or one of the released Q4_0, Q4_1, Q5_K_M (Sec. 5.1); ``threads`` CPU threads.

    Raises:
        QuantError: ``fmt`` is not a llama.cpp quantization type, or ``threads`` < 1.
        GGUFError: ``src`` is not whole, not a stablelm model or already quantized, or the quantizer
            failed (``dst`` is unchanged; the message carries llama.cpp's log).
    """
    import llama_cpp

    spec = get(fmt)
    if spec.backend != "gguf" or spec.name == "F16":
        raise QuantError(f"{fmt} is not a llama.cpp quantization type; use one of Q8_0, Q4_0, Q4_1, Q5_K_M")
    if threads < 1:
        raise QuantError(f"threads = {threads} must be at least 1")
    src, dst = Path(src), Path(dst)
    info = inspect(src)
    if info.architecture != "stablelm":
        raise GGUFError(f"{src} holds a {info.architecture!r} model, not stablelm")
    if info.file_type not in SOURCE_TYPES:
        raise GGUFError(f"{src} is already quantized ({info.file_type}); quantize from the F16 GGUF instead")
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = llama_ftype(spec)
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    with atomic_file(dst) as tmp:
        with _c_stderr() as log:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            raise GGUFError(f"llama_model_quantize failed on {src} → {fmt} (return code {rc}):\n{log()[-3000:]}")
    fallback = re.search(r"(\d+) of (\d+) tensor\(s\) required fallback quantization", log())
    if fallback:  # one line instead of llama.cpp's warning per tensor; inspect() lists every tensor's type
        print(f"[llama.cpp] {fmt}: {fallback[1]} of {fallback[2]} tensors stored in another type (their rows are "
              "not a multiple of the block size)", flush=True)
    return dst


@contextlib.contextmanager
def _c_stderr() -> Iterator[Callable[[], str]]:
    """Capture llama.cpp's log inside the block — written by C to file descriptor 2, or passed by
    llama-cpp-python's log callback to ``sys.stderr`` — and yield a reader of the text."""
    sys.stderr.flush()
    buf, py = tempfile.TemporaryFile(), io.StringIO()
    saved = os.dup(2)
    os.dup2(buf.fileno(), 2)
    text: list[str] = []
    try:
        with contextlib.redirect_stderr(py):
            yield lambda: "".join(text)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        buf.seek(0)
        text += [buf.read().decode("utf-8", "replace"), py.getvalue()]
        buf.close()


class LlamaCppEngine:
    """A GGUF in ``llama_cpp.Llama``: full logits for perplexity, prefill/step for speed.

    ``logits_all=True`` keeps every position's logits (perplexity); speed runs use ``False``, as
    llama-bench does, so prompt processing does not pay for the output layer at every position.
    ``n_ctx`` is the context (and batch) length in tokens. A file that is not whole stops with
    :class:`GGUFError` (from :func:`inspect`) before llama.cpp opens it.
    """

    backend = "gguf"

    def __init__(self, path: Path | str, *, n_ctx: int = 512, threads: int = 2, logits_all: bool = False,
                 seed: int = 0):
        import llama_cpp

        self.info = inspect(path)
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        self._llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=threads,
            n_threads_batch=threads, logits_all=logits_all, seed=seed, verbose=False,
        )
        self.logits_all = logits_all
        self.n_vocab = self.llm.n_vocab()

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text`` by the GGUF's own tokenizer (no BOS; ``special``: parse special tokens)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, ids: list[int]) -> str:
        """The text of ``ids``: each token's piece (``llama_token_to_piece``, as llama.cpp streams output).

        ``Llama.detokenize`` copies pieces through a 32-byte buffer and silently drops longer ones
        (cl100k has tokens of 32+ spaces or dashes), and ``llama_detokenize`` tidies spaces before
        punctuation; the raw pieces are the exact bytes.
        """
        lc = self._llama_cpp
        vocab = lc.llama_model_get_vocab(self.llm.model)
        size = 256
        buf = ctypes.create_string_buffer(size)
        out = bytearray()
        for tok in ids:
            n = lc.llama_token_to_piece(vocab, lc.llama_token(tok), buf, size, 0, False)
            if n < 0:
                size = -n
                buf = ctypes.create_string_buffer(size)
                n = lc.llama_token_to_piece(vocab, lc.llama_token(tok), buf, size, 0, False)
            out += buf.raw[:n]
        return out.decode("utf-8", errors="replace")

    def _last(self) -> np.ndarray:
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def logits(self, ids: list[int]) -> np.ndarray:
        """Float32 logits ``[len(ids), n_vocab]`` of every position of ``ids``, from an empty KV cache.

        Raises:
            QuantError: the engine was opened with ``logits_all=False``.
        """
        if not self.logits_all:
            raise QuantError("this engine was opened with logits_all=False; open it with logits_all=True")
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)

    def prefill(self, ids: list[int]) -> np.ndarray:
        """Run ``ids`` from an empty KV cache; float32 logits ``[n_vocab]`` of the last position."""
        self.llm.reset()
        self.llm.eval(ids)
        return self._last()

    def step(self, token: int) -> np.ndarray:
        """Append ``token`` to the KV cache; float32 logits ``[n_vocab]`` of the next position."""
        self.llm.eval([token])
        return self._last()

    def close(self) -> None:
        """Free the llama.cpp model and context."""
        self.llm.close()
