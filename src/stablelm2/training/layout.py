"""Batch layout: from a global batch in tokens to micro-batches and gradient accumulation.

Stable LM 2 stepped the optimizer on 8,388,608 tokens: a micro-batch of 2 sequences of 4,096
tokens on each of 512 A100s, accumulated twice (Table 3: 2 × 2 × 512 × 4096). The solver runs
that arithmetic backwards: given the target global batch (tokens), the sequence length, the number
of data-parallel processes and the micro-batch, it derives the gradient accumulation, and refuses a
layout that does not divide exactly. The global batch is part of the *experiment*; the process
count is part of the *hardware*: the same preset gives the same global batch on 1 or on 2
processes, only the accumulation changes.

>>> from stablelm2.training import layout
>>> lay = layout.solve(8_388_608, seq_len=4096, n_procs=512, micro_batch=2)
>>> lay.grad_accum, lay.global_batch_seqs
(2, 2048)
>>> print(lay.describe())
global batch 8,388,608 tokens = micro-batch 2 × accumulation 2 × 512 processes × 4,096 tokens (2,048 sequences per step)
>>> layout.solve(1024, seq_len=128, n_procs=1, micro_batch=4).grad_accum
2
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..config import Config


class LayoutError(ValueError):
    """The batch does not divide into micro-batches × processes × sequence length; the message says how to fix it."""


@dataclass(frozen=True)
class BatchLayout:
    """One optimizer step: ``micro_batch × grad_accum × n_procs`` sequences of ``seq_len`` tokens."""

    global_batch_tokens: int
    seq_len: int
    n_procs: int
    micro_batch: int
    grad_accum: int

    @property
    def global_batch_seqs(self) -> int:
        """Sequences per optimizer step (all processes, all accumulation steps)."""
        return self.global_batch_tokens // self.seq_len

    @property
    def micro_tokens(self) -> int:
        """Tokens in one micro-batch of one process."""
        return self.micro_batch * self.seq_len

    @property
    def tokens_per_proc(self) -> int:
        """Tokens one process reads per optimizer step."""
        return self.micro_tokens * self.grad_accum

    def describe(self) -> str:
        """The effective global batch, spelled out factor by factor."""
        return (f"global batch {self.global_batch_tokens:,} tokens = micro-batch {self.micro_batch} × "
                f"accumulation {self.grad_accum} × {self.n_procs} process{'es' if self.n_procs > 1 else ''} × "
                f"{self.seq_len:,} tokens ({self.global_batch_seqs:,} sequences per step)")

    def to_dict(self) -> dict[str, Any]:
        """The five fields plus ``global_batch_seqs`` (sequences per step), for JSON."""
        return {**asdict(self), "global_batch_seqs": self.global_batch_seqs}


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LayoutError(f"{name} = {value!r} must be a positive integer")
    return value


def solve(global_batch_tokens: int, *, seq_len: int, n_procs: int, micro_batch: int) -> BatchLayout:
    """The gradient accumulation that makes ``global_batch_tokens`` exactly; :class:`LayoutError` if none.

    The paper's layout (Sec. 2.4, Table 3, App. D) is ``solve(8_388_608, seq_len=4096, n_procs=512,
    micro_batch=2)``: accumulation 2. ``seq_len`` is in tokens. The :class:`LayoutError` names a
    non-positive argument, or suggests micro-batches and process counts that do divide.
    """
    g = _positive("global_batch_tokens", global_batch_tokens)
    s = _positive("seq_len", seq_len)
    p = _positive("n_procs", n_procs)
    m = _positive("micro_batch", micro_batch)
    if g % s:
        raise LayoutError(
            f"global batch {g:,} tokens is not a whole number of {s:,}-token sequences; "
            f"use a multiple of {s:,} (e.g. {max(1, g // s) * s:,})"
        )
    per_micro_step = m * p * s
    if g % per_micro_step:
        seqs = g // s
        micro = [b for b in range(1, seqs // p + 1) if (seqs // p) % b == 0] if seqs % p == 0 else []
        procs = [q for q in range(1, seqs // m + 1) if (seqs // m) % q == 0] if seqs % m == 0 else []
        hint = []
        if micro:
            hint.append(f"a micro-batch that divides {seqs // p} (e.g. {', '.join(map(str, micro[-4:]))})")
        if procs:
            hint.append(f"a process count that divides {seqs // m} (e.g. {', '.join(map(str, procs[:4]))})")
        raise LayoutError(
            f"global batch {g:,} tokens ({seqs:,} sequences) does not divide into micro-batch {m} × "
            f"{p} process{'es' if p > 1 else ''} × {s:,} tokens = {per_micro_step:,} tokens per micro-step; "
            + ("choose " + " or ".join(hint) if hint else "change the global batch")
        )
    return BatchLayout(g, s, p, m, g // per_micro_step)


def from_config(cfg: Config, n_procs: int | None = None) -> BatchLayout:
    """The layout of ``cfg`` on ``n_procs`` processes (default: ``cfg.train.n_procs``).

    Raises :class:`LayoutError` as :func:`solve`.
    """
    return solve(cfg.train.global_batch_tokens, seq_len=cfg.data.seq_len,
                 n_procs=cfg.train.n_procs if n_procs is None else n_procs, micro_batch=cfg.train.micro_batch)
