"""Measured machine peaks: plausible magnitudes, memoised, threads restored, bad input refused; the GPU table."""

from __future__ import annotations

import itertools

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


def test_gpu_table_is_one_typed_table_with_sources():
    assert tuple(hardware.gpus()) == hardware.GPU_NAMES
    a100 = hardware.gpu("A100-40GB")
    assert (a100.peak_tflops, a100.tdp_w, a100.memory_gib) == (312.0, 400.0, 40)
    assert "facts.yaml" in a100.source and all(g.source for g in hardware.gpus().values())
    with pytest.raises(ValueError, match="gpu = 'V100' has no known memory, peak or power"):
        hardware.gpu("V100")


def test_cuda_device_names_map_to_table_rows():
    assert hardware.gpu_for_device("NVIDIA H200", "A100-40GB").name == "H100-80GB"
    assert hardware.gpu_for_device("NVIDIA H100 80GB HBM3", "A100-40GB").name == "H100-80GB"
    assert hardware.gpu_for_device("NVIDIA A100-SXM4-80GB", "A100-40GB").name == "A100-80GB"
    assert hardware.gpu_for_device("NVIDIA A100-SXM4-40GB", "H100-80GB").name == "A100-40GB"
    assert hardware.gpu_for_device("NVIDIA L4", "A100-80GB").name == "A100-80GB"  # unknown: the config's GPU
    with pytest.raises(ValueError, match="'cpu' has no known memory"):
        hardware.gpu_for_device("NVIDIA L4", "cpu")


def _fake_clock(monkeypatch, durations):
    """perf_counter that advances by the next duration at every second reading (start, end pairs)."""
    now, steps = [0.0], iter(durations)
    readings = itertools.count()

    def perf_counter():
        if next(readings) % 2:
            now[0] += next(steps)
        return now[0]

    monkeypatch.setattr(hardware.time, "perf_counter", perf_counter)


def test_best_and_median_read_the_same_samples(monkeypatch):
    calls = []
    _fake_clock(monkeypatch, [3.0, 1.0, 2.0])
    assert hardware.best_time(lambda: calls.append(1), repeats=3, warmup=2) == 1.0
    assert len(calls) == 5
    _fake_clock(monkeypatch, [3.0, 1.0, 2.0])
    assert hardware.median_time(lambda: None, repeats=3) == (2.0, [3.0, 1.0, 2.0])
