"""Peaks of the machine at hand, measured with torch: matrix-multiply FLOP/s and memory read bandwidth.

Chapters compare what they achieve against these measured peaks rather than a datasheet: chapter
03 divides its forward+backward FLOP/s by :func:`matmul_peak_flops`, chapter 08 divides decode
speed by :func:`memory_bandwidth`. Both are measured once per process (memoised) and are the best
of a few repeats, so another process loading the cores lowers them — measure the peak in the same
run as what you compare it with.

>>> from stablelm2 import hardware
>>> hardware.matmul_peak_flops() > 1e9            # doctest: +SKIP
True
>>> hardware.memory_bandwidth() > 1e9             # doctest: +SKIP
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import torch

MATMUL_N = 2048
"""Side of the square fp32 matrices of the matmul peak."""
BANDWIDTH_BYTES = 256 * 2**20
"""Size of the buffer read by the bandwidth measurement (far larger than any CPU cache)."""


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        if n <= 0:
            raise ValueError(f"threads = {n} must be a positive number of threads (or None for torch's default)")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def best_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Fastest wall-clock time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@cache
def matmul_peak_flops(threads: int | None = None) -> float:
    """Measured FLOP/s of a 2048×2048 fp32 matmul with torch (2·n³ FLOPs, best of 5), memoised."""
    with _threads(threads), torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(MATMUL_N, MATMUL_N, generator=gen)
        b = torch.randn(MATMUL_N, MATMUL_N, generator=gen)
        out = torch.empty(MATMUL_N, MATMUL_N)
        seconds = best_time(lambda: torch.mm(a, b, out=out), repeats=5, warmup=2)
    return 2.0 * MATMUL_N**3 / seconds


@cache
def memory_bandwidth(threads: int | None = None) -> float:
    """Measured read bandwidth in bytes/s: summing a 256 MiB fp32 buffer (best of 5), memoised."""
    with _threads(threads), torch.no_grad():
        x = torch.ones(BANDWIDTH_BYTES // 4)
        seconds = best_time(lambda: x.sum(), repeats=5, warmup=1)
    return BANDWIDTH_BYTES / seconds
