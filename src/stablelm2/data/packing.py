"""Tokenize, pack and mix: the batches the pre-training engine (chapter 05) consumes.

Each source is tokenized with Arcade100k, every document followed by ``<|endoftext|>``, and packed
on its own into sequences of ``cfg.data.seq_len`` tokens (documents run on across sequence
boundaries, as in GPT-NeoX). The mixture then draws, for every sequence of the global stream, a
source with probability equal to its sampling weight (numpy ``PCG64`` seeded from
``cfg.run.seed``) — the way NeoX's blended datasets mix samples. Position ids restart at 0 at the
start of every sequence and of every document (the official config's ``reset_position_ids``);
transformers turns such position ids into per-document causal masks (``reset_attention_mask``).
Labels equal ``input_ids`` except at document starts (-100: a document is never predicted from the
previous one) and on padding.

Sequence ``i`` of the global stream goes to rank ``(i // micro_batch) % world_size``; optimizer step
``k`` of a run with gradient accumulation ``A`` consumes global sequences ``[k·G, (k+1)·G)`` with
``G = global_batch_tokens / seq_len`` — :func:`batch_at` returns exactly those.

This streaming loader tokenizes the whole global stream on every rank (it keeps its own share):
the reference, and enough for one process. The engine of chapter 05 reads the same stream from
rank-local shards instead (:mod:`.shards`: packed once, in parallel; each rank reads only its own
micro-batches, ``1/world_size`` of every global batch).

>>> from stablelm2 import config
>>> from stablelm2.data import packed_loader
>>> cfg = config.load("smoke")
>>> batch = next(iter(packed_loader(cfg)))
>>> tuple(batch["input_ids"].shape), batch["position_ids"][0, 0].item()
((4, 64), 0)
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import tokenizer
from ..files import atomic_file, atomic_write_json, sha256_bytes, sha256_file
from . import sample
from .mixture import DocumentStream
from .sources import SourceError, StreamSpec, specs, table1

IGNORE = -100


@lru_cache(maxsize=8192)
def _tokens(text: str) -> tuple[int, ...]:
    return (*tokenizer.arcade100k().encode_ordinary(text), tokenizer.EOT_ID)


class SourcePacker:
    """One source's documents, tokenized and cut into ``seq_len`` sequences (with a carry-over buffer)."""

    def __init__(self, spec: StreamSpec, cfg: Any, split: str, *, cycle: bool = True):
        self.spec, self.seq_len = spec, cfg.data.seq_len
        self.stream = DocumentStream(spec, cfg, split, cycle=cycle)
        self.buf: list[int] = []
        self.starts: list[int] = []  # 1 where a document begins
        self.docs = 0

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                toks = _tokens(next(self.stream))
            except StopIteration:
                return False
            self.buf.extend(toks)
            self.starts.extend([1] + [0] * (len(toks) - 1))
            self.docs += 1
        return True

    def next_sequence(self, *, pad: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(input_ids, position_ids, labels) of the next sequence; None when a finite stream is spent."""
        L = self.seq_len
        full = self._fill(L)
        if not self.buf or (not full and not pad):
            return None
        n = min(L, len(self.buf))
        ids = np.full(L, tokenizer.EOT_ID, dtype=np.int64)
        ids[:n] = self.buf[:n]
        starts = np.zeros(L, dtype=bool)
        starts[:n] = self.starts[:n]
        starts[0] = True
        if n < L:
            starts[n] = True  # the padding is a pseudo-document of its own
        del self.buf[:n], self.starts[:n]
        idx = np.arange(L)
        last_start = np.maximum.accumulate(np.where(starts, idx, 0))
        pos = idx - last_start
        labels = ids.copy()
        labels[pos == 0] = IGNORE
        labels[n:] = IGNORE
        return ids, pos, labels

    def state(self) -> dict[str, Any]:
        """JSON-serialisable resume point: the stream's cursor, the carried-over tokens (``buf``), a 1 in
        ``starts`` for each of them that begins a document, and ``docs`` (documents read so far)."""
        return {"stream": self.stream.state(), "buf": list(self.buf), "starts": list(self.starts), "docs": self.docs}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume at a :meth:`state`: the stream's cursor and the carried-over tokens."""
        self.stream.restore(state["stream"])
        self.buf, self.starts, self.docs = list(state["buf"]), list(state["starts"]), int(state["docs"])


def default_weights(cfg: Any) -> dict[str, float]:
    """Sampling weights when none are given: Table 1's at ``hub``, sample size (bytes) at ``local``.

    Returns ``{source: weight}``, not normalised (:func:`resolve_weights` normalises): at ``hub`` the
    sampling-weight column of :func:`.sources.table1` (§2.2, Table 1), at ``local`` each shipped file's bytes.

    Raises:
        SourceError: at ``hub`` when Table 1's weights are unknown (no ``data.table1_path``), or as
            :func:`.sources.read_table1` for a bad Table 1 file.
    """
    if cfg.data.source == "hub":
        rows = table1(cfg)
        if any(r["sampling_weight"] is None for r in rows):
            raise SourceError("Table 1's sampling weights are unknown (stripped from the text); pass weights= "
                              "or set data.table1_path to a Table 1 CSV filled in from the paper")
        return {r["source"]: r["sampling_weight"] for r in rows}
    files = sample.manifest()["files"]
    return {name: float(files[meta["file"]]["bytes"]) for name, meta in sample.SAMPLE_SOURCES.items()}


def resolve_weights(cfg: Any, weights: dict[str, float] | None) -> dict[str, float]:
    """Validated, normalised weights over known sources (zero-weight sources dropped).

    ``weights`` (None: :func:`default_weights`) maps a source of :func:`.sources.specs` to a non-negative
    weight in any unit. Returns ``{source: probability}`` sorted by name, summing to 1.

    Raises:
        SourceError: an unknown source, a negative or non-finite weight, or weights summing to 0
            (and as :func:`default_weights`).
    """
    known = specs(cfg)
    weights = dict(weights) if weights is not None else default_weights(cfg)
    unknown = [k for k in weights if k not in known]
    if unknown:
        raise SourceError(f"unknown source(s) {', '.join(map(repr, unknown))} in weights; sources at "
                          f"data.source={cfg.data.source!r} are: {', '.join(known)}")
    bad = {k: v for k, v in weights.items() if not (isinstance(v, (int, float)) and v >= 0 and np.isfinite(v))}
    if bad:
        raise SourceError(f"weights must be finite and non-negative; got {bad}")
    total = sum(weights.values())
    if total <= 0:
        raise SourceError("weights sum to 0; give at least one source a positive weight")
    return {k: v / total for k, v in sorted(weights.items()) if v > 0}


class PackedLoader:
    """Micro-batches ``{input_ids, labels, position_ids}`` of one rank, infinite, exactly resumable.

    Each is an int64 tensor ``[micro_batch, seq_len]`` (``micro_batch`` None: ``cfg.train.micro_batch``).
    The source of every sequence is drawn with the :func:`resolve_weights` probabilities (``weights``
    None: :func:`default_weights`), seeded by ``cfg.run.seed`` and the split; this rank keeps the
    micro-batches ``i`` with ``i % world_size == rank`` of the global stream.

    Raises:
        SourceError: ``split`` not ``"train"``/``"val"``, ``rank`` outside ``[0, world_size)``, or bad
            weights (as :func:`resolve_weights`).
    """

    def __init__(self, cfg: Any, split: str = "train", *, rank: int = 0, world_size: int = 1,
                 weights: dict[str, float] | None = None, micro_batch: int | None = None):
        if split not in ("train", "val"):
            raise SourceError(f"split = {split!r}; use 'train' or 'val'")
        if world_size < 1 or not 0 <= rank < world_size:
            raise SourceError(f"rank = {rank}, world_size = {world_size}: need 0 ≤ rank < world_size")
        self.cfg, self.split, self.rank, self.world_size = cfg, split, rank, world_size
        self.micro_batch = micro_batch or cfg.train.micro_batch
        self.weights = resolve_weights(cfg, weights)
        all_specs = specs(cfg)
        self.names = list(self.weights)
        self.probs = np.array([self.weights[n] for n in self.names])
        self.packers = {n: SourcePacker(all_specs[n], cfg, split) for n in self.names}
        self.rng = np.random.Generator(np.random.PCG64([cfg.run.seed, 0 if split == "train" else 1]))
        self.micro_batches = 0
        self.sequences_per_source = {n: 0 for n in self.names}
        self.last_sources: list[str] = []

    def _fingerprint(self) -> dict[str, Any]:
        return {"seed": self.cfg.run.seed, "split": self.split, "seq_len": self.cfg.data.seq_len,
                "micro_batch": self.micro_batch, "world_size": self.world_size, "rank": self.rank,
                "weights": self.weights, "source": self.cfg.data.source,
                "max_docs_per_source": self.cfg.data.max_docs_per_source, "val_fraction": self.cfg.data.val_fraction}

    def next_sequence(self) -> tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The next sequence of the global stream, whichever rank it belongs to.

        Returns ``(source, (input_ids, position_ids, labels))``, each an int64 array ``[seq_len]``.
        """
        name = self.names[int(self.rng.choice(len(self.names), p=self.probs))]
        seq = self.packers[name].next_sequence()
        assert seq is not None  # training streams cycle, so they never run dry
        self.sequences_per_source[name] += 1
        return name, seq

    def __iter__(self) -> PackedLoader:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        mine: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.last_sources = []
        for r in range(self.world_size):
            for _ in range(self.micro_batch):
                name, seq = self.next_sequence()
                if r == self.rank:
                    mine.append(seq)
                    self.last_sources.append(name)
        self.micro_batches += 1
        return collate(mine)

    def epochs(self) -> dict[str, float]:
        """Completed passes over each source's documents so far (the 'epochs' column of Table 1)."""
        return {n: p.stream.epoch for n, p in self.packers.items()}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume at the next micro-batch (JSON-serialisable)."""
        return {"version": 1, "fingerprint": self._fingerprint(), "micro_batches": self.micro_batches,
                "rng": self.rng.bit_generator.state, "sequences_per_source": dict(self.sequences_per_source),
                "packers": {n: p.state() for n, p in self.packers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a :meth:`state_dict`: the next micro-batch is the one that followed it.

        Raises:
            SourceError: the state was saved with other settings (seed, split, sequence length,
                micro-batch, rank, world size, weights, data source, document cap, held-out
                fraction); the message names them.
        """
        mine = self._fingerprint()
        theirs = json.loads(json.dumps(state.get("fingerprint", {})))
        if json.loads(json.dumps(mine)) != theirs:
            diff = sorted(k for k in set(mine) | set(theirs) if json.dumps(mine.get(k)) != json.dumps(theirs.get(k)))
            raise SourceError(f"loader state was saved with different settings ({', '.join(diff)}); resume with "
                              "the same config, split, rank, world size and weights")
        self.micro_batches = int(state["micro_batches"])
        self.rng.bit_generator.state = state["rng"]
        self.sequences_per_source = dict(state["sequences_per_source"])
        for n, p in self.packers.items():
            p.restore(state["packers"][n])


def collate(seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack ``(input_ids, position_ids, labels)`` sequences of ``[seq_len]`` into one batch.

    Returns ``{"input_ids", "labels", "position_ids"}``: tensors ``[len(seqs), seq_len]``, the arrays' dtype.
    """
    ids, pos, labels = (np.stack(x) for x in zip(*seqs, strict=True))
    return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels),
            "position_ids": torch.from_numpy(pos)}


def batch_digest(batch: dict[str, torch.Tensor]) -> str:
    """Short sha256 of a batch's ``input_ids`` (to compare batches across runs and machines)."""
    return sha256_bytes(batch["input_ids"].numpy().astype(np.int64).tobytes())[:16]


def packed_loader(cfg: Any, split: str = "train", *, rank: int = 0, world_size: int = 1,
                  weights: dict[str, float] | None = None) -> PackedLoader:
    """The contract of chapter 05: micro-batches ``[cfg.train.micro_batch, cfg.data.seq_len]`` of LongTensors."""
    return PackedLoader(cfg, split, rank=rank, world_size=world_size, weights=weights)


def sample_sources(cfg: Any) -> dict[str, dict[str, str]]:
    """The sources a config reads, with their domain and language (the shipped sample at smoke/cpu)."""
    return {n: {"domain": s.domain, "language": s.language} for n, s in specs(cfg).items()}


def validation_sets(cfg: Any, *, batches: int | None = None) -> dict[str, list[dict[str, torch.Tensor]]]:
    """Held-out packed batches per source (hence per domain and language), for per-domain validation.

    Each source's validation documents are packed on their own (one pass, last sequence padded) into
    at most ``cfg.data.val_batches`` micro-batches of ``cfg.train.micro_batch`` sequences.
    """
    batches = batches or cfg.data.val_batches
    out: dict[str, list[dict[str, torch.Tensor]]] = {}
    for name, spec in specs(cfg).items():
        packer = SourcePacker(spec, cfg, "val", cycle=False)
        seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        while len(seqs) < batches * cfg.train.micro_batch:
            seq = packer.next_sequence(pad=True)
            if seq is None:
                break
            seqs.append(seq)
        out[name] = [collate(seqs[i:i + cfg.train.micro_batch]) for i in range(0, len(seqs), cfg.train.micro_batch)]
    return out


# ------------------------------------------------------------------------------ shards and "batch at step k"


def sequences_per_step(cfg: Any) -> int:
    """Sequences per optimizer step, ``G = cfg.train.global_batch_tokens // cfg.data.seq_len``."""
    return cfg.train.global_batch_tokens // cfg.data.seq_len


def pack_shards(cfg: Any, steps: int, out_dir: Path | str, *, weights: dict[str, float] | None = None,
                steps_per_shard: int = 4) -> dict[str, Any]:
    """Pack the first ``steps`` optimizer steps of the global stream into ``.npy`` shards + a manifest.

    The manifest records the settings, and for every shard its steps, sha256, and the source of each
    sequence, so a reader can check what went into any batch and fetch it with :func:`batch_at`.
    Shard ``shard_{first step:06d}.npy`` holds ``uint32`` ids ``[steps_per_shard · G, seq_len]`` (the
    last may hold fewer steps; ``G`` = :func:`sequences_per_step`); the manifest (``manifest.json``) is
    returned and written last.

    Raises:
        SourceError: ``steps < 1``, or bad weights (as :func:`resolve_weights`).
    """
    if steps < 1:
        raise SourceError(f"steps = {steps} must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    G = sequences_per_step(cfg)
    loader = PackedLoader(cfg, "train", weights=weights, micro_batch=1)
    shards = []
    for first in range(0, steps, steps_per_shard):
        n_steps = min(steps_per_shard, steps - first)
        ids, srcs = [], []
        for _ in range(n_steps * G):
            name, (seq, _, _) = loader.next_sequence()
            ids.append(seq)
            srcs.append(name)
        arr = np.stack(ids).astype(np.uint32)
        fname = f"shard_{first:06d}.npy"
        with atomic_file(out_dir / fname) as tmp:
            np.save(tmp, arr)
        shards.append({"file": fname, "first_step": first, "steps": n_steps, "sequences": len(ids),
                       "sha256": sha256_file(out_dir / fname),
                       "sources": srcs})
    manifest = {"fingerprint": loader._fingerprint(), "seq_len": cfg.data.seq_len, "sequences_per_step": G,
                "steps": steps, "tokenizer": "arcade100k", "eot_id": tokenizer.EOT_ID,
                "sequences_per_source": loader.sequences_per_source, "shards": shards}
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def batch_at(cfg: Any, step: int, *, shards_dir: Path | str | None = None,
             weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The exact global batch of optimizer step ``step``: ``input_ids``/``labels``/``position_ids``
    of shape ``[global_batch_tokens / seq_len, seq_len]`` plus the ``sources`` of its sequences.

    Read from packed shards when ``shards_dir`` holds a manifest that covers the step (hashes are
    checked); otherwise the stream is replayed from the start (same seed → same batch). Tensors are
    int64; ``step`` counts from 0.

    Raises:
        SourceError: a negative ``step``; shards packed with other settings, or a shard whose sha256
            differs from its manifest entry; bad weights (as :func:`resolve_weights`).
    """
    if step < 0:
        raise SourceError(f"step = {step} must not be negative")
    G = sequences_per_step(cfg)
    if shards_dir is not None and (Path(shards_dir) / "manifest.json").is_file():
        man = json.loads((Path(shards_dir) / "manifest.json").read_text())
        probe = PackedLoader(cfg, "train", weights=weights, micro_batch=1)._fingerprint()
        if json.loads(json.dumps(probe)) != man["fingerprint"]:
            raise SourceError(f"shards in {shards_dir} were packed with other settings; repack them for this config")
        for sh in man["shards"]:
            if sh["first_step"] <= step < sh["first_step"] + sh["steps"]:
                path = Path(shards_dir) / sh["file"]
                if sha256_file(path) != sh["sha256"]:
                    raise SourceError(f"{path} does not match its sha256 in the manifest; repack the shards")
                lo = (step - sh["first_step"]) * G
                ids = np.load(path)[lo:lo + G].astype(np.int64)
                return {**_from_ids(ids), "sources": sh["sources"][lo:lo + G]}
    loader = PackedLoader(cfg, "train", weights=weights, micro_batch=1)
    for _ in range(step * G):
        loader.next_sequence()
    got = [loader.next_sequence() for _ in range(G)]
    return {**collate([s for _, s in got]), "sources": [n for n, _ in got]}


def _from_ids(ids: np.ndarray) -> dict[str, torch.Tensor]:
    """Position ids and labels recomputed from packed ids (documents end at ``<|endoftext|>``)."""
    L = ids.shape[1]
    idx = np.arange(L)
    starts = np.zeros_like(ids, dtype=bool)
    starts[:, 0] = True
    starts[:, 1:] = ids[:, :-1] == tokenizer.EOT_ID
    last = np.maximum.accumulate(np.where(starts, idx, 0), axis=1)
    pos = idx - last
    labels = ids.copy()
    labels[pos == 0] = IGNORE
    return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels),
            "position_ids": torch.from_numpy(pos)}
