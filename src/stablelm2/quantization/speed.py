"""The Table 8 analogue: prompt and generation tokens/s per format, against the memory-bandwidth bound.

The timed generation is greedy, so it also shows that every format loads and generates (:func:`generations`).

Each format is opened alone (the 1.6B formats do not all fit in memory at once), timed on the same
prompt (``cfg.quant.prompt_tokens`` tokens of held-out text, processed as one batch) and the same
number of greedily generated tokens (``cfg.quant.gen_tokens``), with ``cfg.quant.threads`` threads,
best of ``cfg.quant.speed_repeats``. Decoding one token reads every weight once (all but the
embedding table, of which one row), so ``bandwidth / bytes_per_token`` bounds generation speed; the
row gives each format's fraction of that bound. MLX's CPU backend picks its own thread count.

>>> from stablelm2 import config
>>> from stablelm2.quantization import speed
>>> rows = speed.speed_rows(config.load("smoke"), {"Q4_0": "m-Q4_0.gguf"}, bandwidth=16e9)   # doctest: +SKIP
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..config import Config
from . import build as qbuild
from . import measure
from .formats import get


def bytes_per_token(fmt: str, path: Path | str) -> int:
    """Bytes of weights one generated token reads in format ``fmt`` (all but the embedding table;
    the GGUF count adds its one row).

    The FP32 reference counts 4 bytes per weight of its safetensors (it runs in fp32 whatever they store).
    """
    spec = get(fmt)
    if spec.backend == "gguf":
        from .gguf_io import inspect

        return inspect(path).bytes_per_token
    if spec.backend == "openvino":
        from .openvino_io import bytes_per_token as ov_bytes

        return ov_bytes(path)
    if spec.backend == "mlx":
        from .mlx_io import bytes_per_token as mlx_bytes

        return mlx_bytes(path)
    from safetensors import safe_open

    from .checkpoint import weight_files

    total = 0
    for f in weight_files(path):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                if "embed_tokens" not in key:
                    t = st.get_slice(key)
                    n = 1
                    for d in t.get_shape():
                        n *= d
                    total += n * 4  # the reference runs in fp32
    return total


def prompt_ids(cfg: Config, n: int) -> list[int]:
    """The first ``n`` tokens of the held-out text (the same prompt for every format)."""
    return measure.heldout_windows(cfg, n_tokens=n, window=n)[0]


def generations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each format generated during its speed run, decoded with Arcade100k."""
    from .. import tokenizer

    return [{"format": r["format"], "tokens": len(r["generated"]), "continuation": tokenizer.decode(r["generated"]),
             "ids": r["generated"]} for r in rows]


def speed_rows(cfg: Config, paths: dict[str, Path | str], *, bandwidth: float, progress: bool = True) -> list[dict[str, Any]]:
    """One row per format: size, bytes/token, pp and tg tokens/s, bandwidth bound and the fraction reached.

    The analogue of the paper's throughput table (Sec. 5.2, Table 8). ``bandwidth`` is the measured
    memory bandwidth in bytes/s; sizes are in bytes, rates in tokens per second (best of
    ``cfg.quant.speed_repeats``), ``frac_of_bound`` is 0–1 for a rate under the bound.
    """
    q = cfg.quant
    prompt = prompt_ids(cfg, q.prompt_tokens)
    rows = []
    for fmt, path in tqdm(list(paths.items()), desc="speed", disable=not progress):
        eng = qbuild.open_engine(fmt, path, threads=q.threads, n_ctx=q.prompt_tokens + q.gen_tokens + 16)
        try:
            s = measure.speed(eng, prompt, q.gen_tokens, repeats=q.speed_repeats)
        finally:
            eng.close()
            del eng
            gc.collect()
        bpt = bytes_per_token(fmt, path)
        bound = measure.bandwidth_bound(bytes_per_token=bpt, bandwidth=bandwidth)
        rows.append({
            "format": fmt, "backend": get(fmt).backend, "bytes_on_disk": qbuild.size_on_disk(fmt, path),
            "bytes_per_token": bpt, "pp_tok_s": s["pp_tok_s"], "tg_tok_s": s["tg_tok_s"], "tg_all": s["tg_all"],
            "bound_tok_s": bound, "frac_of_bound": s["tg_tok_s"] / bound,
            "threads": "MLX default" if get(fmt).backend == "mlx" else q.threads,
            "prompt_tokens": s["prompt_tokens"], "gen_tokens": s["gen_tokens"], "generated": s["generated"],
        })
    return rows
