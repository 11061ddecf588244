import json

import pytest

from stablelm2 import bench
from stablelm2.bench import BenchError


def test_ratio_is_ours_relative_to_peer_and_greater_is_better():
    faster = bench.result("t", ours=1.0, peer=2.0, peer_name="p", unit="s", higher_is_better=False, goal_ratio=1.0)
    assert faster["ratio"] == 2.0 and faster["meets_goal"] is True
    slower = bench.result("t", ours=50.0, peer=100.0, peer_name="p", unit="tok/s", higher_is_better=True,
                          goal_ratio=0.9)
    assert slower["ratio"] == 0.5 and slower["meets_goal"] is False


def test_median_time_counts_calls():
    calls = []
    med, samples = bench.median_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(samples) == 3 and med >= 0


def test_unknown_benchmark_is_refused(tmp_path):
    with pytest.raises(BenchError, match="unknown benchmark"):
        bench.run(["nope"], out=tmp_path / "r.json")
    with pytest.raises(BenchError, match="at least 1"):
        bench.run(["runner_overhead"], repeats=0, out=tmp_path / "r.json")


@pytest.mark.slow
def test_runner_overhead_benchmark_writes_results(tmp_path):
    out = bench.run(["runner_overhead"], repeats=1, out=tmp_path / "r.json")
    data = json.loads(out.read_text())
    (row,) = data["results"]
    assert row["name"] == "runner_overhead_per_notebook" and row["peer_name"] == "bare papermill"
    assert row["ours"] > 0 and row["peer"] > 0 and row["ratio"] == pytest.approx(row["peer"] / row["ours"], rel=1e-3)


def test_training_ratio_spread_pairs_every_repeat():
    from stablelm2.bench import training

    # engine repeats at 2 s and 1 s per step, Trainer repeats at 4 s and 2 s (100 tokens/step)
    ours, peer, spread = training._spread([[2.0, 2.0, 3.0], [1.0]], [[4.0], [2.0, 2.0]], 100)
    assert ours == [50.0, 100.0] and peer == [25.0, 50.0]
    assert spread == [1.0, 4.0]  # 50/50 … 100/25


def test_training_bench_runs_bf16_only_where_the_cpu_computes_it(monkeypatch):
    from stablelm2 import hardware
    from stablelm2.bench import training

    monkeypatch.setattr(hardware, "cpu_bf16_flags", lambda flags=None: ())
    assert training.precision() == "fp32" and training._cfg().train.precision == "fp32"
    monkeypatch.setattr(hardware, "cpu_bf16_flags", lambda flags=None: ("avx512_bf16",))
    assert training.precision() == "bf16" and training._cfg().train.precision == "bf16"
    assert training.GOAL_RATIO == 1.15 and training.GOAL_MFU == 0.5
