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
