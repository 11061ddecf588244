"""Build every requested format of one checkpoint, reuse what is already built, open any of them.

Layout of an output folder (one per source checkpoint)::

    model-F16.gguf  model-Q8_0.gguf  model-Q4_0.gguf  model-Q4_1.gguf  model-Q5_K_M.gguf
    model-OV_FP32.ov/  model-OV_FP16.ov/  model-OV_INT8.ov/  model-OV_INT4.ov/   (model.xml + model.bin)
    model-MLX_Q4.mlx/
    built.json                         the source's fingerprint and what was built from it

Every format name and the checkpoint are checked before anything is written; each output
appears whole or not at all; a format already built from the same source is reused.

>>> from stablelm2.quantization import build
>>> paths = build.build_formats("ckpt", "out", ["F16", "Q4_0", "OV_INT4"], threads=2)   # doctest: +SKIP
>>> eng = build.open_engine("Q4_0", paths["Q4_0"], threads=2)                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..files import atomic_write_json
from . import checkpoint as ckpt
from . import gguf_io
from .formats import REFERENCE, QuantError, check, get
from .measure import Engine, TorchEngine

STAMP = "built.json"


def fingerprint(checkpoint: Path | str) -> str:
    """Identity of a checkpoint: its config plus the name, size and modification time of its weight files."""
    checkpoint = Path(checkpoint)
    h = hashlib.sha256((checkpoint / "config.json").read_bytes())
    for f in ckpt.weight_files(checkpoint):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def path_of(out_dir: Path | str, fmt: str) -> Path:
    """Where format ``fmt`` of the checkpoint lives inside ``out_dir`` (``model-<fmt><suffix>``).

    Raises:
        QuantError: ``fmt`` is not a known format, or is ``FP32`` (the checkpoint itself, not built).
    """
    spec = get(fmt)
    if spec.backend == "torch":
        raise QuantError(f"{fmt} is the checkpoint itself, not a built format")
    return Path(out_dir) / f"model-{fmt}{spec.file_suffix}"


def _stamp(out_dir: Path) -> dict[str, Any]:
    f = out_dir / STAMP
    return json.loads(f.read_text()) if f.is_file() else {}


def build_formats(checkpoint: Path | str, out_dir: Path | str, formats: list[str] | tuple[str, ...], *,
                  threads: int = 2, progress: bool = True, trace_dtype: str = "float32",
                  overlap: bool = True) -> dict[str, Path]:
    """Build ``formats`` of ``checkpoint`` into ``out_dir``; returns {format: path} (FP32 → the checkpoint).

    ``trace_dtype`` is the torch dtype the OpenVINO trace loads the model in ("float16" halves the
    memory of tracing a large model; its IR then holds fp16 weights, as OV_FP16 does anyway).
    ``overlap``: build the llama.cpp formats (converter subprocess, then ``llama_model_quantize``) in a
    worker thread while this thread exports OpenVINO and MLX; the files are the same either way, only
    the wall time differs (on 2 cores the OpenVINO trace and NNCF leave one core mostly idle).
    These are the formats Stability released (Sec. 5.1) and their higher-precision references.

    Raises:
        QuantError: an unknown or repeated format, ``threads`` < 1, ``OV_FP32`` asked with a float16
            ``trace_dtype``, or ``out_dir`` not empty and not made by this function (nothing is written).
        CheckpointError: ``checkpoint`` is not a complete StableLM folder (:func:`.checkpoint.check`).
        ConverterError, GGUFError: llama.cpp's converter or quantizer failed (the format is not marked built).
    """
    specs = check(formats)  # every name checked before any work
    if threads < 1:
        raise QuantError(f"threads = {threads} must be at least 1")
    if trace_dtype != "float32" and "OV_FP32" in formats:
        raise QuantError(f"OV_FP32 needs trace_dtype='float32' (got {trace_dtype!r}): a float16 trace holds fp16 weights")
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    ckpt.check(checkpoint)
    fp = fingerprint(checkpoint)
    stamp = _stamp(out_dir)
    if not stamp and out_dir.is_dir() and any(out_dir.iterdir()):
        raise QuantError(f"{out_dir} exists, is not empty and holds no {STAMP}: it was not made by build_formats; "
                         "choose an empty or new folder")
    if stamp.get("source") != fp:  # built from another checkpoint (or never): drop what was built from it
        for name in stamp.get("built", {}):
            target = path_of(out_dir, name)
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        stamp = {"source": fp, "checkpoint": str(checkpoint), "built": {}}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {REFERENCE: checkpoint}
    todo = [s for s in specs if s.backend != "torch"]
    gguf = [s for s in todo if s.backend == "gguf"]
    rest = [s for s in todo if s.backend != "gguf"]
    need_f16 = bool(gguf)
    extra = 1 if need_f16 and "F16" not in formats else 0
    bar = tqdm(total=len(todo) + extra, desc="formats", disable=not progress)
    lock = threading.Lock()  # the stamp and the bar are shared by the two chains

    def mark(name: str) -> None:
        with lock:
            _mark(out_dir, stamp, name)

    def done(name: str) -> bool:
        with lock:
            return _done(out_dir, stamp, name)

    def gguf_chain() -> dict[str, Path]:
        got: dict[str, Path] = {}
        if not need_f16:
            return got
        f16 = path_of(out_dir, "F16")
        if not done("F16"):
            gguf_io.convert(checkpoint, f16, outtype="f16")
            mark("F16")
        got["F16"] = f16
        bar.update()  # F16 is one of the formats, or the extra step
        for spec in gguf:
            if spec.name == "F16":
                continue
            out = path_of(out_dir, spec.name)
            if not done(spec.name):
                gguf_io.quantize(f16, out, spec.name, threads=threads)
                mark(spec.name)
            got[spec.name] = out
            bar.update()
        return got

    def other_chain() -> dict[str, Path]:
        got: dict[str, Path] = {}
        traced = None
        ov_todo = [s for s in rest if s.backend == "openvino" and not done(s.name)]
        for spec in rest:
            out = path_of(out_dir, spec.name)
            if not done(spec.name):
                if spec.backend == "openvino":
                    from . import openvino_io

                    if traced is None:  # trace once, compress per format
                        traced = _trace(checkpoint, trace_dtype)
                    model = openvino_io.compress(traced.clone(), spec.name)
                    openvino_io.save(model, out, spec.name, {"checkpoint": str(checkpoint), "source": fp})
                    del model
                    if spec is ov_todo[-1]:
                        traced = None
                elif spec.backend == "mlx":
                    from . import mlx_io

                    mlx_io.export(checkpoint, out, spec.name)
                mark(spec.name)
            got[spec.name] = out
            bar.update()
        return got

    try:
        with _restore_stdio():  # the libraries of both chains swap sys.stdout/sys.stderr while they run
            if gguf and rest and overlap:
                # llama.cpp's converter (a subprocess) and quantizer (C, the GIL released) run beside the
                # OpenVINO trace and NNCF compression, which leave a core idle much of the time
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gguf") as pool:
                    pending = pool.submit(gguf_chain)
                    try:
                        built = other_chain()
                    finally:
                        built_gguf = pending.result()  # waits; re-raises the chain's error
                built.update(built_gguf)
            else:
                built = {**gguf_chain(), **other_chain()}
    finally:
        bar.close()
    paths.update(built)
    return {REFERENCE: checkpoint, **{n: paths[n] for n in ["F16", *(s.name for s in todo)] if n in paths}}


@contextlib.contextmanager
def _restore_stdio() -> Iterator[None]:
    """Put ``sys.stdout``/``sys.stderr`` back as they were when the block exits.

    The two chains of :func:`build_formats` run in two threads, and libraries in both replace the
    process-wide ``sys.stderr`` for a while and put back what they saw when they started: NNCF's rich
    progress display (``rich.live.Live`` redirects both streams) in this thread, the capture of
    llama.cpp's log (:func:`.gguf_io.quantize`) in the worker. Interleaved, one of them restores the
    other's stand-in — in a Jupyter kernel a rich ``FileProxy`` whose ``flush`` recurses through
    ``display()``, so the kernel fails the next ``execute_request`` before running it and the chapter
    hangs until its cell timeout (seen in chapter 08's speed cell).
    """
    out, err = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _trace(checkpoint: Path, dtype: str):
    import gc

    import torch
    from transformers import AutoModelForCausalLM

    from . import openvino_io

    if dtype not in ("float32", "float16"):
        raise QuantError(f"trace_dtype {dtype!r} must be 'float32' or 'float16'")
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=getattr(torch, dtype),
                                                 attn_implementation="sdpa").eval()
    traced = openvino_io.trace(model)
    del model
    gc.collect()
    return traced


def _done(out_dir: Path, stamp: dict[str, Any], fmt: str) -> bool:
    return fmt in stamp.get("built", {}) and path_of(out_dir, fmt).exists()


def _mark(out_dir: Path, stamp: dict[str, Any], fmt: str) -> None:
    stamp.setdefault("built", {})[fmt] = {"bytes": size_on_disk(fmt, path_of(out_dir, fmt))}
    atomic_write_json(out_dir / STAMP, stamp)


def size_on_disk(fmt: str, path: Path | str) -> int:
    """Bytes a format takes on disk: the GGUF file, the IR (xml + bin), the MLX or fp32 safetensors.

    Raises:
        QuantError: ``fmt`` is not a known format.
        OSError: ``path`` (or a file it should hold) does not exist.
    """
    spec = get(fmt)
    path = Path(path)
    if spec.backend == "gguf":
        return path.stat().st_size
    if spec.backend == "openvino":
        from .openvino_io import ir_bytes

        return ir_bytes(path)
    if spec.backend == "mlx":
        from .mlx_io import folder_bytes

        return folder_bytes(path)
    return ckpt.weights_bytes(path)


def open_engine(fmt: str, path: Path | str, *, threads: int = 2, n_ctx: int = 512,
                logits_all: bool = False) -> Engine:
    """An :class:`~.measure.Engine` for ``fmt`` at ``path`` on ``threads`` CPU threads.

    ``n_ctx`` (tokens) and ``logits_all`` only matter for llama.cpp; ``FP32`` opens the transformers
    checkpoint itself.

    Raises:
        QuantError: ``fmt`` is not a known format.
    """
    spec = get(fmt)
    if spec.backend == "torch":
        return TorchEngine(path, threads=threads)
    if spec.backend == "gguf":
        return gguf_io.LlamaCppEngine(path, n_ctx=n_ctx, threads=threads, logits_all=logits_all)
    if spec.backend == "openvino":
        from .openvino_io import OpenVINOEngine

        return OpenVINOEngine(path, threads=threads)
    from .mlx_io import MLXEngine

    return MLXEngine(path)
