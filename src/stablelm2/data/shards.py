"""Rank-local pre-training data: the global stream packed once into shards, each rank reading only its own.

Building (:func:`build`) is its own step, before training: it draws the mixture's source for every
sequence of the first ``steps`` optimizer steps (the same seeded ``PCG64`` draws as
:class:`.packing.PackedLoader`, vectorised), tokenizes each source's documents once, in parallel
over ``workers`` processes, packs each source's token stream into ``seq_len`` sequences (documents
run on across sequence boundaries; a source that runs out starts its next epoch, as the streaming
loader does) and writes the global batches as shard files, with a manifest of sha256 hashes.

The shards are cut along the batch: file ``c{chunk}_m{slot}.npy`` holds, for ``steps_per_shard``
steps, the ``micro_batch`` sequences of micro-batch slot ``m`` of each step (``slot = position //
micro_batch``, ``G / micro_batch`` slots per step). A run on ``W`` processes gives rank ``r`` the
contiguous slots ``[r·A, (r+1)·A)`` with ``A = G / (micro_batch · W)`` its gradient accumulation, so
a rank opens only its own ``A`` files per chunk and reads ``1/W`` of every global batch — and the
union of the ranks' micro-batches is the 1-process batch of the same step, for every ``W`` the
layout allows. Sequences are exactly those of :func:`.packing.batch_at` (tests check it), so the
streaming loader and the shards are two routes to one stream.

Cost per rank per step: reading ``G/W`` sequences (``4·L`` bytes each, uint32), instead of
tokenizing the whole global batch (``G·L`` tokens) as the streaming loader does on every rank.

>>> from stablelm2 import config
>>> from stablelm2.data import shards
>>> import tempfile
>>> cfg = config.load("smoke")
>>> man = shards.build(cfg, 2, tempfile.mkdtemp())
>>> man["slots"], man["sequences_per_step"]
(2, 8)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import tokenizer
from ..files import atomic_file, atomic_write_json, sha256_file
from .packing import _from_ids, resolve_weights, sequences_per_step
from .sources import SourceError, check_spec, specs

MANIFEST = "manifest.json"
FORMAT = 1
_CHUNK_CHARS = 1 << 20  # documents per tokenization task: about 1 MB of text


def _encode_many(texts: list[str]) -> np.ndarray:
    """Worker: Arcade100k ids of each text followed by ``<|endoftext|>``, concatenated (uint32)."""
    enc = tokenizer.arcade100k()
    eot = tokenizer.EOT_ID
    out: list[int] = []
    for t in texts:
        out.extend(enc.encode_ordinary(t))
        out.append(eot)
    return np.asarray(out, dtype=np.uint32)


class _SourceTokens:
    """One source's token stream (epoch after epoch), tokenized in parallel chunks, read in order."""

    def __init__(self, spec: Any, cfg: Any, pool: Executor | None, width: int = 2, cache_limit: int = 1 << 28):
        from .mixture import DocumentStream

        self.spec, self.cfg, self.pool, self.width, self.cache_limit = spec, cfg, pool, width, cache_limit
        self._stream_cls = DocumentStream
        self.buf = np.empty(0, dtype=np.uint32)
        self.epoch_tokens: list[np.ndarray] | None = []  # one epoch kept while small, replayed after it
        self.replay: np.ndarray | None = None
        self.replay_pos = 0
        self.epochs = 0
        self._gen = self._tokenized()

    def _chunks(self) -> Iterator[list[str]]:
        stream = self._stream_cls(self.spec, self.cfg, "train", cycle=False)
        chunk: list[str] = []
        size = 0
        for text in stream:
            chunk.append(text)
            size += len(text)
            if size >= _CHUNK_CHARS:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk

    def _one_epoch(self) -> Iterator[np.ndarray]:
        chunks = self._chunks()
        if self.pool is None:
            yield from map(_encode_many, chunks)
            return
        pending: list[Any] = []
        for chunk in chunks:  # keep a few chunks in flight, results in order
            pending.append(self.pool.submit(_encode_many, chunk))
            if len(pending) >= self.width:
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()

    def _tokenized(self) -> Iterator[np.ndarray]:
        while True:
            if self.replay is not None:
                yield self.replay
                continue
            kept = 0
            for arr in self._one_epoch():
                if self.epoch_tokens is not None:
                    self.epoch_tokens.append(arr)
                    kept += arr.size
                    if kept > self.cache_limit:
                        self.epoch_tokens = None  # too large to keep: the next epoch is streamed again
                yield arr
            self.epochs += 1
            if self.epoch_tokens is not None:
                self.replay = np.concatenate(self.epoch_tokens) if self.epoch_tokens else None
                self.epoch_tokens = None
                if self.replay is None or self.replay.size == 0:
                    raise SourceError(f"source {self.spec.name!r} gave no training tokens")

    def take(self, n_tokens: int) -> np.ndarray:
        """The next ``n_tokens`` tokens of the stream."""
        parts = [self.buf]
        have = self.buf.size
        while have < n_tokens:
            arr = next(self._gen)
            parts.append(arr)
            have += arr.size
        allt = np.concatenate(parts)
        self.buf = allt[n_tokens:]
        return allt[:n_tokens]


def _fingerprint(cfg: Any, weights: dict[str, float] | None) -> dict[str, Any]:
    """What the shards' contents depend on: the streaming loader's settings plus the batch geometry."""
    d = cfg.data
    return {"seed": cfg.run.seed, "split": "train", "seq_len": d.seq_len, "weights": resolve_weights(cfg, weights),
            "source": d.source, "max_docs_per_source": d.max_docs_per_source, "val_fraction": d.val_fraction,
            "global_batch_tokens": cfg.train.global_batch_tokens, "micro_batch": cfg.train.micro_batch}


def _save(path: Path, arr: np.ndarray) -> str:
    with atomic_file(path) as tmp:
        np.save(tmp, arr)
    return sha256_file(path)


def build(cfg: Any, steps: int, out_dir: Path | str, *, weights: dict[str, float] | None = None,
          steps_per_shard: int = 64, workers: int = 1) -> dict[str, Any]:
    """Pack the first ``steps`` global batches of ``cfg`` into rank-local shards; return the manifest.

    ``workers`` > 1 tokenizes in that many processes. An existing complete build with the same
    settings is reused (its manifest returned); the manifest is written last, atomically, so an
    interrupted build is never taken for a complete one. Every argument is checked before
    ``out_dir`` is touched: bad input leaves an earlier build (and its manifest) as it was.

    Raises:
        SourceError: ``steps``, ``steps_per_shard`` or ``workers`` below 1; ``G`` sequences per step
            (``train.global_batch_tokens // data.seq_len``) below 1 or not a multiple of
            ``train.micro_batch``; bad weights (as :func:`.packing.resolve_weights`); a source spec the
            loader cannot read (:func:`.sources.check_spec`); ``out_dir`` is a file, or holds a
            manifest that is not JSON.
    """
    if steps < 1 or steps_per_shard < 1 or workers < 1:
        raise SourceError(f"steps = {steps}, steps_per_shard = {steps_per_shard}, workers = {workers}: "
                          "each must be at least 1")
    L, G, mb = cfg.data.seq_len, sequences_per_step(cfg), cfg.train.micro_batch
    if G < 1 or mb < 1 or G % mb:
        raise SourceError(f"{G} sequences per step (train.global_batch_tokens {cfg.train.global_batch_tokens} // "
                          f"data.seq_len {L}) do not divide into micro-batches of {mb}; make "
                          "global_batch_tokens a multiple of seq_len × micro_batch")
    slots = G // mb
    w = resolve_weights(cfg, weights)
    names = list(w)
    all_specs = specs(cfg)
    for n in names:
        check_spec(all_specs[n])
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SourceError(f"out_dir {out} is a file; pass a folder for the shards")
    fingerprint = json.loads(json.dumps(_fingerprint(cfg, weights)))
    old = out / MANIFEST
    if old.is_file():
        try:
            man = json.loads(old.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{old} is not a shards manifest ({exc}); delete it, or build into another "
                              "folder") from None
        if man.get("fingerprint") == fingerprint and man.get("steps", 0) >= steps \
                and man.get("steps_per_shard") == steps_per_shard:
            return man
        old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    probs = np.array([w[n] for n in names])
    # the streaming loader's generator and draws: choice(p) one at a time consumes one double each,
    # so drawing a chunk at once continues the very same sequence of sources
    rng = np.random.Generator(np.random.PCG64([cfg.run.seed, 0]))
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        streams = {n: _SourceTokens(all_specs[n], cfg, pool, width=2 * workers) for n in names}
        files: dict[str, str] = {}
        chunks = []
        for c, first in enumerate(range(0, steps, steps_per_shard)):
            n_steps = min(steps_per_shard, steps - first)
            src = rng.choice(len(names), size=n_steps * G, p=probs)
            ids = np.empty((src.size, L), dtype=np.uint32)
            for s, name in enumerate(names):
                rows = np.flatnonzero(src == s)
                if rows.size:
                    ids[rows] = streams[name].take(rows.size * L).reshape(rows.size, L)
            ids = ids.reshape(n_steps, slots, mb, L)
            for m in range(slots):
                fname = f"c{c:05d}_m{m:04d}.npy"
                files[fname] = _save(out / fname, np.ascontiguousarray(ids[:, m]))
            sname = f"c{c:05d}_sources.npy"
            files[sname] = _save(out / sname, src.astype(np.uint8).reshape(n_steps, G))
            chunks.append({"chunk": c, "first_step": first, "steps": n_steps})
    finally:
        if pool is not None:
            pool.shutdown()
    man = {"format": FORMAT, "fingerprint": fingerprint, "steps": steps, "steps_per_shard": steps_per_shard,
           "seq_len": L, "sequences_per_step": G, "micro_batch": mb, "slots": slots, "sources": names,
           "tokenizer": "arcade100k", "eot_id": tokenizer.EOT_ID, "dtype": "uint32", "chunks": chunks,
           "files": files, "epochs_started": {n: streams[n].epochs + 1 for n in names},
           "workers": workers}
    atomic_write_json(out / MANIFEST, man)
    return man


def read_manifest(shards_dir: Path | str, cfg: Any, weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The manifest of ``shards_dir``, checked against ``cfg`` (SourceError names what differs and the fix)."""
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise SourceError(f"{shards_dir} holds no {MANIFEST}; build the shards first (stablelm2.data.shards.build, "
                          f"or `python -m stablelm2.data.shards --preset {cfg.run.preset} --out {shards_dir}`)")
    man = json.loads(path.read_text(encoding="utf-8"))
    mine = json.loads(json.dumps(_fingerprint(cfg, weights)))
    if man.get("fingerprint") != mine:
        diff = sorted(k for k in set(mine) | set(man.get("fingerprint", {}))
                      if json.dumps(mine.get(k)) != json.dumps(man["fingerprint"].get(k)))
        raise SourceError(f"shards in {shards_dir} were built with other settings ({', '.join(diff)}); rebuild them "
                          "for this config")
    return man


class ShardLoader:
    """Micro-batches ``{input_ids, labels, position_ids}`` of one rank, read from its own shard files only.

    Step ``k``, accumulation ``a``: the micro-batch in slot ``rank·A + a`` of global batch ``k``.
    Exactly resumable (:meth:`state_dict`); sha256 of each file is checked when the rank first opens it.
    Each micro-batch is int64 tensors ``[micro_batch, seq_len]``: rows of :func:`.packing.batch_at`'s batch.

    Raises:
        SourceError: ``rank`` outside ``[0, world_size)``; no manifest in ``shards_dir`` or one built with
            other settings (:func:`read_manifest`); a step's slots not divisible over ``world_size``.
    """

    def __init__(self, cfg: Any, shards_dir: Path | str, *, rank: int = 0, world_size: int = 1,
                 weights: dict[str, float] | None = None):
        if world_size < 1 or not 0 <= rank < world_size:
            raise SourceError(f"rank = {rank}, world_size = {world_size}: need 0 ≤ rank < world_size")
        self.dir = Path(shards_dir)
        self.man = read_manifest(self.dir, cfg, weights)
        slots = self.man["slots"]
        if slots % world_size:
            raise SourceError(f"{slots} micro-batches per step do not divide over {world_size} processes; "
                              "choose a process count that divides them")
        self.rank, self.world_size = rank, world_size
        self.accum = slots // world_size
        self.micro_batches = 0
        self.opened: list[str] = []
        self._cache: dict[str, np.ndarray] = {}

    @property
    def my_slots(self) -> range:
        """This rank's micro-batch slots of every step, ``[rank·A, (rank+1)·A)`` (``A`` = :attr:`accum`)."""
        return range(self.rank * self.accum, (self.rank + 1) * self.accum)

    def _open(self, fname: str) -> np.ndarray:
        if fname not in self._cache:
            path = self.dir / fname
            if sha256_file(path) != self.man["files"].get(fname):
                raise SourceError(f"{path} does not match its sha256 in the manifest; rebuild the shards")
            self._cache = {fname: np.load(path, mmap_mode="r")}  # one chunk open at a time
            self.opened.append(fname)
        return self._cache[fname]

    def micro_batch_at(self, step: int, a: int) -> dict[str, torch.Tensor]:
        """This rank's accumulation micro-batch ``a`` (``0 ≤ a < accum``) of optimizer step ``step`` (from 0).

        Returns ``{"input_ids", "labels", "position_ids"}``, int64 tensors ``[micro_batch, seq_len]``.

        Raises:
            SourceError: ``step`` is past the steps the shards hold, or the shard file's sha256 differs
                from the manifest.
        """
        if step >= self.man["steps"]:
            raise SourceError(f"step {step + 1} is past the {self.man['steps']} steps the shards in {self.dir} hold; "
                              "build more steps")
        c, k = divmod(step, self.man["steps_per_shard"])
        arr = self._open(f"c{c:05d}_m{self.rank * self.accum + a:04d}.npy")
        return _from_ids(np.asarray(arr[k], dtype=np.int64))

    def __iter__(self) -> ShardLoader:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        step, a = divmod(self.micro_batches, self.accum)
        batch = self.micro_batch_at(step, a)
        self.micro_batches += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable resume point: the shards' fingerprint, rank, world size, micro-batches read."""
        return {"version": 1, "kind": "shards", "fingerprint": self.man["fingerprint"], "rank": self.rank,
                "world_size": self.world_size, "micro_batches": self.micro_batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at a :meth:`state_dict`: the next micro-batch is the one that followed it.

        Raises:
            SourceError: the state is not a shard loader's, or was saved for other shards, rank or world size.
        """
        if state.get("kind") != "shards" or state.get("fingerprint") != self.man["fingerprint"] or \
                (state.get("rank"), state.get("world_size")) != (self.rank, self.world_size):
            raise SourceError("loader state was saved for other shards, rank or world size; resume with the same "
                              "config, process count and shards")
        self.micro_batches = int(state["micro_batches"])


def main(argv: list[str] | None = None) -> int:
    """``python -m stablelm2.data.shards --preset P --out DIR [--steps N] [--workers W]``: the build step."""
    import argparse

    from .. import config as config_lib

    ap = argparse.ArgumentParser(prog="python -m stablelm2.data.shards")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=None, help="steps to pack (default: the preset's train.steps)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    cfg = config_lib.load(args.preset)
    man = build(cfg, args.steps or cfg.train.steps, args.out, workers=args.workers)
    print(f"[shards] {man['steps']} steps × {man['sequences_per_step']} sequences in {len(man['files'])} files "
          f"under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
