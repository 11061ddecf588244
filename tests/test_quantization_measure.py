"""Perplexity, KL, greedy generation, speed and the bandwidth bound, on engines with known logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stablelm2.quantization import measure

from .quant_fixtures import smoke_cfg


class Fixed:
    """An engine whose logits are a fixed table (row = position) — perplexity is known in closed form."""

    backend = "test"

    def __init__(self, table: np.ndarray):
        self.table = table
        self.n = 0

    def logits(self, ids):
        return self.table[: len(ids)]

    def prefill(self, ids):
        self.n = len(ids)
        return self.table[self.n - 1]

    def step(self, token):
        self.n += 1
        return self.table[self.n - 1]

    def close(self):
        pass


def test_compare_gives_exact_perplexity_and_kl():
    v = 5
    ref = Fixed(np.zeros((4, v)))                       # uniform over 5 tokens
    peaked = np.zeros((4, v))
    peaked[:, 0] = math.log(4.0)                        # p(token 0) = 4/8, others 1/8
    res = measure.compare({"same": Fixed(np.zeros((4, v))), "peaked": Fixed(peaked)}, ref, [[0, 0, 0, 0]], n_vocab=v)
    assert res["FP32"]["ppl"] == pytest.approx(5.0) and res["same"]["kl"] == pytest.approx(0.0, abs=1e-7)
    assert res["peaked"]["ppl"] == pytest.approx(2.0)
    expected_kl = 0.2 * math.log(0.2 / 0.5) + 4 * 0.2 * math.log(0.2 / 0.125)
    assert res["peaked"]["kl"] == pytest.approx(expected_kl, rel=1e-5)
    assert res["FP32"]["tokens"] == 3


def test_logits_beyond_the_vocabulary_are_ignored():
    ref = Fixed(np.zeros((3, 6)))
    padded = np.zeros((3, 6))
    padded[:, 5] = 50.0                                  # a padding row the tokenizer never emits
    res = measure.compare({"pad": Fixed(padded)}, ref, [[1, 2, 3]], n_vocab=5)
    assert res["pad"]["kl"] == pytest.approx(0.0, abs=1e-7)


def _kl_exact(ref: np.ndarray, other: np.ndarray) -> float:
    """Mean KL(ref ‖ other) per row, with every sum in Python's math.fsum (exactly rounded)."""
    out = []
    for a, b in zip(ref.astype(np.float64), other.astype(np.float64), strict=True):
        la = a - (a.max() + math.log(math.fsum(np.exp(a - a.max()))))
        lb = b - (b.max() + math.log(math.fsum(np.exp(b - b.max()))))
        out.append(math.fsum(np.exp(la) * (la - lb)))
    return math.fsum(out) / len(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_of_near_identical_logits_is_positive_and_exact(seed):
    """Logits that differ by ~1e-4 (an F16 / OV_FP16 export): KL ~1e-9 nats must come out positive and
    right to a few percent; float32 accumulation gave values like −2e-8 here."""
    rng = np.random.default_rng(seed)
    n_pos, v = 9, 100_289                                   # a real vocabulary: 100k-term sums
    ref = (3 * rng.standard_normal((n_pos, v))).astype(np.float32)
    near = (ref + 1e-4 * rng.standard_normal((n_pos, v))).astype(np.float32)
    res = measure.compare({"near": Fixed(near), "same": Fixed(ref.copy())}, Fixed(ref), [list(range(n_pos))],
                          n_vocab=v)
    want = _kl_exact(ref[:-1], near[:-1])
    assert 0 < want < 1e-7
    assert res["near"]["kl"] > 0
    assert res["near"]["kl"] == pytest.approx(want, rel=0.02)
    assert res["same"]["kl"] == 0.0                         # identical logits: exactly zero, never below
    assert res["near"]["ppl"] == pytest.approx(res["FP32"]["ppl"], rel=1e-4)


def test_greedy_and_speed():
    table = np.eye(8)[[1, 2, 3, 4, 5, 6, 7, 0]] * 10
    eng = Fixed(np.tile(table, (4, 1)))
    assert measure.greedy(eng, [0], 3) == [1, 2, 3]
    s = measure.speed(eng, [0, 1, 2, 3], 4, repeats=2)
    assert s["pp_tok_s"] > 0 and s["tg_tok_s"] > 0 and s["prompt_tokens"] == 4 and s["gen_tokens"] == 4
    with pytest.raises(ValueError):
        measure.speed(eng, [], 4)



@pytest.mark.parametrize(("call", "match"), [
    (lambda eng: measure.speed(eng, [0, 1], 4, repeats=0), "repeats = 0"),
    (lambda eng: measure.speed(eng, [0, 1], 4, repeats=-1), "repeats = -1"),
    (lambda eng: measure.speed(eng, [0, 1], 0), "gen_tokens = 0"),
    (lambda eng: measure.speed(eng, [], 4), "non-empty prompt"),
    (lambda eng: measure.greedy(eng, [0], 0), "n = 0"),
    (lambda eng: measure.greedy(eng, [], 2), "non-empty prompt"),
    (lambda eng: measure.compare({"x": eng}, eng, [], n_vocab=8), "at least one window"),
    (lambda eng: measure.compare({"x": eng}, eng, [[0, 1], [2]], n_vocab=8), r"window\(s\) \[1\]"),
    (lambda eng: measure.compare({"x": eng}, eng, [[0, 1]], n_vocab=0), "n_vocab = 0"),
    (lambda eng: measure.TorchEngine("no-such-checkpoint", threads=-1), "threads = -1"),
])
def test_counts_below_one_are_refused_naming_the_argument_before_the_engine_runs(call, match):
    class Untouchable:
        backend = "test"

        def __getattr__(self, name):
            raise AssertionError(f"the engine was used ({name}) before the arguments were checked")

    with pytest.raises(ValueError, match=match):
        call(Untouchable())


def test_bandwidth_bound():
    assert measure.bandwidth_bound(bytes_per_token=2e9, bandwidth=20e9) == 10.0
    with pytest.raises(ValueError):
        measure.bandwidth_bound(bytes_per_token=0, bandwidth=1)
    with pytest.raises(ValueError, match="positive finite"):
        measure.bandwidth_bound(bytes_per_token=math.nan, bandwidth=1)


def test_heldout_windows_are_deterministic_and_open_with_eot():
    from stablelm2 import tokenizer

    cfg = smoke_cfg()
    a = measure.heldout_windows(cfg, n_tokens=256, window=64)
    assert a == measure.heldout_windows(cfg, n_tokens=256, window=64)
    assert len(a) == 4 and all(len(w) == 64 for w in a) and a[0][0] == tokenizer.EOT_ID
    with pytest.raises(ValueError, match="window"):
        measure.heldout_windows(cfg, n_tokens=10, window=64)
