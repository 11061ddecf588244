"""Chapter 01/02 benchmarks: Arcade100k encode throughput, and the mix + pack pipeline, on one core.

* ``arcade100k_vs_cl100k`` — our tiktoken Arcade100k against tiktoken's own ``cl100k_base`` (same
  engine, same merges; only the regex and special tokens differ). Goal: ≥ 0.9× cl100k's bytes/s.
* ``arcade100k_vs_transformers`` — the same vocabulary through the transformers fast tokenizer that
  :func:`stablelm2.tokenizer.save_transformers` writes (Rust ``tokenizers``, parallelism off).
* ``mix_pack_vs_encode`` — the whole pipeline (read sample files, split, mix, tokenize, pack into
  batches) in tokens/s, against bare Arcade100k encoding of the same documents.

All run single-threaded over the shipped sample (≈2 MB of text in 8 languages/code).
Run with ``python -m stablelm2 bench tokenizer`` (or ``make bench``).
"""

from __future__ import annotations

import os
import tempfile

from .. import config, tokenizer
from ..data import packed_loader, sample
from . import median_time, result


def _texts() -> list[str]:
    return [d["text"] for name, meta in sample.SAMPLE_SOURCES.items() if not meta.get("restruct")
            for d in sample.documents(name)]


def encode_throughput(repeats: int = 5) -> list[dict]:
    """Two rows: Arcade100k's encode speed (MB/s, 10⁶ bytes of UTF-8) against tiktoken's ``cl100k_base``
    (goal ratio ≥ 0.9) and against the transformers fast tokenizer of the export (no goal).

    Medians over ``repeats`` passes over the sample's documents (the transformers one over ``repeats // 2``,
    at least 1); sets ``TOKENIZERS_PARALLELISM=false`` in this process's environment.
    """
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    texts = _texts()
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    arc, cl = tokenizer.arcade100k(), tokenizer.cl100k_base()
    with tempfile.TemporaryDirectory() as tmp:
        hf = Tokenizer.from_file(str(tokenizer.save_transformers(tmp) / "tokenizer.json"))

    def run_arc() -> None:
        for t in texts:
            arc.encode_ordinary(t)

    def run_cl() -> None:
        for t in texts:
            cl.encode_ordinary(t)

    def run_hf() -> None:
        for t in texts:
            hf.encode(t, add_special_tokens=False)

    t_arc, s_arc = median_time(run_arc, repeats)
    t_cl, s_cl = median_time(run_cl, repeats)
    t_hf, s_hf = median_time(run_hf, max(1, repeats // 2))
    mb = n_bytes / 1e6
    return [
        result("arcade100k_vs_cl100k", ours=mb / t_arc, peer=mb / t_cl, peer_name="tiktoken cl100k_base",
               unit="MB/s", higher_is_better=True, goal="ratio ≥ 0.9 (same engine)", goal_ratio=0.9,
               note=f"{mb:.2f} MB of sample text, one thread"),
        result("arcade100k_vs_transformers", ours=mb / t_arc, peer=mb / t_hf,
               peer_name="transformers fast tokenizer (same vocab)", unit="MB/s", higher_is_better=True,
               note="tokenizers.Tokenizer.encode per document, TOKENIZERS_PARALLELISM=false"),
    ]


def mix_pack(repeats: int = 3) -> dict:
    """One row: tokens/s of 200 packed micro-batches from chapter 01's loader (preset ``cpu``, token cache
    cleared each repeat) against bare Arcade100k encoding of the sample's documents (+1 EOS each)."""
    cfg = config.load("cpu")
    n_batches = 200
    tokens = n_batches * cfg.train.micro_batch * cfg.data.seq_len

    def pipeline() -> None:
        tokenizer_cache_clear()
        loader = packed_loader(cfg)
        for _ in range(n_batches):
            next(loader)

    texts = _texts()
    enc = tokenizer.arcade100k()
    per_doc = sum(len(enc.encode_ordinary(t)) + 1 for t in texts)

    def bare() -> None:
        for t in texts:
            enc.encode_ordinary(t)

    t_pipe, s_pipe = median_time(pipeline, repeats)
    t_bare, s_bare = median_time(bare, repeats)
    return result("mix_pack_vs_encode", ours=tokens / t_pipe, peer=per_doc / t_bare,
                  peer_name="bare Arcade100k encode", unit="tokens/s", higher_is_better=True,
                  note=f"{n_batches} micro-batches of {cfg.train.micro_batch}×{cfg.data.seq_len} at preset cpu, "
                       "including opening the sample files; token cache cleared each repeat")


def tokenizer_cache_clear() -> None:
    """Empty the packing pipeline's per-document token cache, so the next loader tokenizes again."""
    from ..data import packing

    packing._tokens.cache_clear()


BENCHMARKS = {"tokenizer_encode": encode_throughput, "mix_pack": mix_pack}
