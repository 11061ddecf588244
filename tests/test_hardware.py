"""Measured machine peaks: plausible magnitudes, memoised, threads restored, bad input refused."""

from __future__ import annotations

import pytest
import torch

from stablelm2 import hardware


def test_matmul_peak_is_measured_and_memoised():
    before = torch.get_num_threads()
    peak = hardware.matmul_peak_flops()
    assert 1e8 < peak < 1e15  # between a very slow CPU and a large accelerator
    assert hardware.matmul_peak_flops() == peak  # memoised: same object, no second measurement
    assert torch.get_num_threads() == before


def test_memory_bandwidth_is_measured_and_memoised():
    bw = hardware.memory_bandwidth()
    assert 1e8 < bw < 1e13
    assert hardware.memory_bandwidth() == bw


def test_threads_are_set_and_restored():
    before = torch.get_num_threads()
    one = hardware.memory_bandwidth(1)
    assert one > 1e8
    assert torch.get_num_threads() == before


def test_bad_thread_count_is_refused():
    with pytest.raises(ValueError, match="threads = 0 must be a positive number of threads"):
        hardware.matmul_peak_flops(0)


def test_best_time_takes_the_fastest():
    calls = []
    t = hardware.best_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t >= 0
