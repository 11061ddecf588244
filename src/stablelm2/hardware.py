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

The project's one timing loop lives here too: :func:`best_time` (the fastest run: the peaks,
chapter 03's FLOP/s — other processes only ever slow a run down) and :func:`median_time` (the
benchmark suite's statistic) call ``fn`` ``warmup`` times untimed, then time ``repeats`` calls.

It also holds the one table of datasheet facts about the GPUs a plan can be sized and priced for
(:data:`GPU_NAMES`, :func:`gpu`, :func:`gpus`): the dense bf16 peak, the rated power and the memory,
each with its source. Chapter 03 sizes memory with it, chapter 05 divides its FLOP/s by the peak
(:func:`gpu_for_device` matches a CUDA device's name to a row), chapter 09 prices power with it.

>>> hardware.gpu("A100-40GB").peak_tflops, hardware.gpu("A100-40GB").memory_gib
(312.0, 40)
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

# torch is imported inside the functions that measure: the config imports this module for GPU_NAMES
# and stays free of torch.

MATMUL_N = 2048
"""Side of the square fp32 matrices of the matmul peak."""
BANDWIDTH_BYTES = 256 * 2**20
"""Size of the buffer read by the bandwidth measurement (far larger than any CPU cache)."""


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n is not None:
        if n <= 0:
            raise ValueError(f"threads = {n} must be a positive number of threads (or None for torch's default)")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ the one timing loop


def _samples(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def best_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Fastest wall-clock time of ``fn()`` (seconds) over ``repeats`` runs after ``warmup`` untimed runs."""
    return min(_samples(fn, repeats, warmup), default=float("inf"))


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` (seconds) over ``repeats`` calls after ``warmup`` untimed calls, and the samples."""
    samples = _samples(fn, repeats, warmup)
    return statistics.median(samples), samples


@cache
def matmul_peak_flops(threads: int | None = None, dtype: str = "float32") -> float:
    """Measured FLOP/s of a 2048×2048 matmul with torch (2·n³ FLOPs, best of 5), memoised per
    ``threads`` (``None``: torch's current count) and ``dtype``: the peak a CPU run's model-FLOPs
    utilisation is taken against, as the paper's MFU is against the A100's bf16 peak (FACTS.md §3).

    ``dtype``: ``"float32"`` (default) or ``"bfloat16"`` (the peak a bf16-autocast run is measured
    against). Raises ValueError for another dtype.
    """
    import torch

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype = {dtype!r}: the matmul peak is measured for 'float32' or 'bfloat16'")
    dt = getattr(torch, dtype)
    with _threads(threads), torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(dt)
        b = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(dt)
        out = torch.empty(MATMUL_N, MATMUL_N, dtype=dt)
        seconds = best_time(lambda: torch.mm(a, b, out=out), repeats=5, warmup=2)
    return 2.0 * MATMUL_N**3 / seconds


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is no such file, e.g. macOS)."""
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return frozenset()
    for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags of native bf16 arithmetic (AVX-512 BF16 dot products, AMX tiles); without them bf16 is emulated."""


def cpu_bf16_flags(flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """Which of :data:`BF16_FLAGS` the CPU reports (``flags``: the set to read, default :func:`cpu_flags`)."""
    have = cpu_flags() if flags is None else flags
    return tuple(f for f in BF16_FLAGS if f in have)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(n_procs: int, cores: int | None = None) -> int:
    """Intra-op threads for each of ``n_procs`` processes sharing ``cores`` (default :func:`usable_cores`):
    cores // processes, at least 1, so the processes' threads never outnumber the cores. ValueError if
    ``n_procs`` < 1."""
    if n_procs < 1:
        raise ValueError(f"n_procs = {n_procs} must be at least 1")
    return max(1, (usable_cores() if cores is None else cores) // n_procs)


@cache
def memory_bandwidth(threads: int | None = None) -> float:
    """Measured read bandwidth in bytes/s: summing a 256 MiB fp32 buffer (best of 5), memoised."""
    import torch

    with _threads(threads), torch.no_grad():
        x = torch.ones(BANDWIDTH_BYTES // 4)
        seconds = best_time(lambda: x.sum(), repeats=5, warmup=1)
    return BANDWIDTH_BYTES / seconds


REUSE_FREED_MEMORY_ENV: dict[str, str] = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
"""The same setting as :func:`reuse_freed_memory` for a process about to start (glibc reads these at start-up):
chapter 05's training processes (:func:`stablelm2.training.launch.start`) and every chapter's kernel
(:func:`stablelm2.runner.execute`) get them unless the environment already sets them."""


def reuse_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse rather than hand every large block back to the OS (for
    the rest of this process); ``False`` where the C library has no ``mallopt`` (not glibc), which
    changes nothing. A process about to start gets the same through :data:`REUSE_FREED_MEMORY_ENV`.

    Measured on this project's CPU proxy (full vocabulary, one thread): a step spent more time in
    the kernel's page faults for freshly mapped logits than in arithmetic (0.69 s of system time
    against 0.52 s of user time per 512 tokens; 0.05 s with these settings).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, 1 << 30)
    return True


# ------------------------------------------------------------------------ GPU datasheet facts


@dataclass(frozen=True)
class GPU:
    """Datasheet facts of one accelerator (names as ``config.train.gpu`` spells them)."""

    name: str
    peak_tflops: float
    """Dense bf16 Tensor Core peak (TFLOP/s)."""
    tdp_w: float
    """Rated maximum board power (W)."""
    memory_gib: int
    """Memory of one GPU (GiB; chapter 03 sizes a layout against it)."""
    source: str
    """Where the three numbers come from."""


GPU_NAMES: tuple[str, ...] = ("A100-40GB", "A100-80GB", "H100-80GB")
"""The accelerators a plan can be sized and priced for, in the table's order (``config.train.gpu``'s
choices are these and ``"cpu"``)."""


@cache
def gpus() -> dict[str, GPU]:
    """The table of :data:`GPU_NAMES`: name → :class:`GPU` (built once). The paper's part, the A100-40GB
    of its 64 P4d nodes (Table 3, FACTS.md §3), reads its bf16 peak (§3, the MFU derivation) and TDP
    (§8, the carbon footprint) from ``facts.yaml``.

    Raises:
        ValueError: the rows differ from :data:`GPU_NAMES`, or an entry has a non-positive number.
    """
    from . import facts as F  # the spine's fact table (read when the table is first needed)

    a100 = "NVIDIA A100 datasheet (SXM4)"
    table = {
        # the paper's part: both numbers come from facts.yaml with their provenance
        "A100-40GB": GPU("A100-40GB", float(F.value("train.a100_peak_tflops_bf16")),
                         float(F.value("carbon.a100_tdp_w")), 40, a100 + " via facts.yaml"),
        "A100-80GB": GPU("A100-80GB", 312.0, 400.0, 80, a100),
        "H100-80GB": GPU("H100-80GB", 989.0, 700.0, 80, "NVIDIA H100 datasheet (SXM5, dense bf16)"),
    }
    if tuple(table) != GPU_NAMES:
        raise ValueError(f"GPU table rows {tuple(table)} differ from GPU_NAMES {GPU_NAMES}")
    for g in table.values():
        if not (g.peak_tflops > 0 and g.tdp_w > 0 and g.memory_gib > 0):
            raise ValueError(f"GPU table entry {g} has a non-positive number")
    return table


def gpu(name: str) -> GPU:
    """The :class:`GPU` called ``name`` (one of :data:`GPU_NAMES`).

    Raises :class:`~stablelm2.config.ConfigError` (a ValueError) naming the known GPUs and the
    closest spelling when ``name`` is not in the table.
    """
    table = gpus()
    if name not in table:
        from .config import ConfigError  # the config imports this module for GPU_NAMES

        hint = difflib.get_close_matches(str(name), list(table), n=1)
        raise ConfigError(
            f"gpu = {name!r} has no known memory, peak or power: it is not a GPU type this projector knows; "
            f"choose one of: {', '.join(table)}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    return table[name]


def gpu_for_device(device_name: str, default: str) -> GPU:
    """The table row of a CUDA device called ``device_name`` (``torch.cuda.get_device_name``).

    An H100 or H200 is the H100-80GB row (the H200 has the H100 SXM's compute, 989 TFLOP/s dense
    bf16 on both datasheets, and more memory); an A100 whose name says 80 is the A100-80GB row, any
    other A100 the A100-40GB row; any other device is ``default`` (``config.train.gpu``). Raises
    ConfigError (from :func:`gpu`) when that fallback is not in the table.
    """
    name = device_name
    key = "H100-80GB" if "H100" in name or "H200" in name else "A100-80GB" if "A100" in name and "80" in name else \
        "A100-40GB" if "A100" in name else default
    return gpu(key)
