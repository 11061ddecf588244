"""Bits per byte of held-out text: windows, scoring, the unigram floor, bootstrap tables, verdicts."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from stablelm2 import config, tokenizer
from stablelm2.data import sample, split
from stablelm2.evaluation import bpb

from .quant_fixtures import tiny_checkpoint


@pytest.fixture(scope="module")
def cfg():
    return config.load("smoke", **{"carbon.meter": False})


@pytest.fixture(scope="module")
def wins(cfg):
    return bpb.held_out(cfg, window=16)


def test_windows_cover_every_held_out_byte_once(cfg, wins):
    assert all(2 <= len(w) <= 16 for w in wins.ids)
    texts = [t for name in sample.SAMPLE_SOURCES for t in split.held_out_texts(cfg, name)]
    per_doc = pd.Series(wins.nbytes).groupby(wins.doc).sum().to_list()
    assert per_doc == [len(t.encode("utf-8")) for t in texts]
    assert int(wins.n_tokens.sum()) == sum(len(tokenizer.encode(t)) for t in texts)
    assert {"en", "de", "nl", "code"} <= set(wins.language) and "multilingual" in wins.domain
    with pytest.raises(bpb.BPBError, match="at least 2 tokens"):
        bpb.held_out(cfg, window=1)
    capped = bpb.held_out(cfg, window=16, per_source=2)
    assert pd.Series(capped.source).value_counts().max() == 2 and set(capped.source) == set(wins.source)
    for name in ("books_en", "law_en"):  # round-robin: the two windows come from two documents where there are two
        if len(split.held_out_texts(cfg, name)) >= 2:
            assert len({d for d, s in zip(capped.doc, capped.source, strict=True) if s == name}) == 2
    assert all(w in wins.ids for w in capped.ids)
    with pytest.raises(bpb.BPBError, match="at least one window"):
        bpb.held_out(cfg, window=16, per_source=0)


def test_score_matches_a_direct_computation_and_does_not_depend_on_batching(wins):
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(tiny_checkpoint()), dtype=torch.float32).eval()
    sub = bpb.Windows(wins.ids[:5], wins.nbytes[:5], wins.source[:5], wins.domain[:5], wins.language[:5],
                      wins.doc[:5], wins.window)
    one, three = bpb.score(lm, sub, batch=1), bpb.score(lm, sub, batch=3)
    np.testing.assert_allclose(one, three, rtol=1e-5)
    w = sub.ids[0]
    with torch.inference_mode():
        logp = torch.log_softmax(lm(input_ids=torch.tensor([w])).logits[0, :-1], dim=-1)
    direct = -sum(float(logp[i, w[i + 1]]) for i in range(len(w) - 1))
    assert one[0] == pytest.approx(direct, rel=1e-5)
    # an untrained model is close to uniform over the vocabulary: log2(V) bits per token
    assert one.sum() / sub.n_tokens.sum() == pytest.approx(math.log(lm.config.vocab_size), rel=0.05)


def test_unigram_floor_is_the_additive_formula_with_k_tuned_on_training_counts(wins):
    counts = Counter({wins.ids[0][1]: 3, 7: 1})
    v = bpb.unigram_score(counts, wins, vocab_size=100, k=1.0)
    w = wins.ids[0]
    assert v[0] == pytest.approx(-sum(math.log((counts.get(t, 0) + 1) / 104) for t in w[1:]))
    half = bpb.unigram_score(counts, wins, vocab_size=100, k=0.5)
    assert half[0] == pytest.approx(-sum(math.log((counts.get(t, 0) + 0.5) / 54) for t in w[1:]))
    # many tokens over a large vocabulary: leave-one-out picks a small k; a flat count picks a large one
    peaked = Counter({i: 1000 // (i + 1) for i in range(200)})
    assert bpb.unigram_k(peaked, 100_352) < 0.1
    assert bpb.unigram_k(Counter({i: 1 for i in range(50)}), 50) == max(bpb.K_GRID)
    with pytest.raises(bpb.BPBError, match="at least 2 training tokens"):
        bpb.unigram_k(Counter({3: 1}), 10)
    with pytest.raises(bpb.BPBError, match="vocab_size"):
        bpb.unigram_score(counts, wins, vocab_size=1)


def test_tables_bootstrap_and_paired_differences(wins):
    rng = np.random.default_rng(0)
    a = wins.n_tokens * 2.0 + rng.random(len(wins.ids))
    nats = {"a": a, "b": a + 1.0, "same": a.copy()}
    tab = bpb.table(nats, wins, n_boot=200, seed=1)
    row = tab[(tab["group"] == "all") & (tab["model"] == "a")].iloc[0]
    assert row["bpb"] == pytest.approx(a.sum() / math.log(2) / wins.nbytes.sum())
    assert row["loss"] == pytest.approx(a.sum() / wins.n_tokens.sum())
    assert row["bpb_lo"] <= row["bpb"] <= row["bpb_hi"]
    assert set(tab["kind"]) == {"all", "domain", "language"}
    pd.testing.assert_frame_equal(tab, bpb.table(nats, wins, n_boot=200, seed=1))  # seeded: same numbers
    pr = bpb.paired(nats, wins, [("a", "b"), ("a", "same")], n_boot=200, seed=1)
    ab = pr[(pr["group"] == "all") & (pr["to"] == "b")].iloc[0]
    assert ab["delta_bpb"] == pytest.approx(len(wins.ids) / math.log(2) / wins.nbytes.sum())
    assert ab["decided"] and ab["lo"] > 0 and ab["p"] == 0
    same = pr[(pr["group"] == "all") & (pr["to"] == "same")].iloc[0]
    assert same["delta_bpb"] == 0 and not same["decided"]
    # a clear difference on fewer than MIN_DOCS documents is not decided: windows of one document are one draw
    few = pr[(pr["to"] == "b") & (pr["documents"] < bpb.MIN_DOCS)]
    assert len(few) and not few["decided"].any() and (few["lo"] > 0).all()
    import matplotlib

    matplotlib.use("Agg")
    fig = bpb.plot_deltas(pr)
    assert len(fig.axes[0].patches) == 2 * len(set(zip(pr["kind"], pr["group"], strict=True)))  # pair × group
    assert len(bpb.plot(tab).axes[0].patches) == 3 * len(set(tab[tab["kind"].isin(["domain", "all"])]["group"]))
    with pytest.raises(bpb.BPBError, match="not scored"):
        bpb.paired(nats, wins, [("a", "zzz")])


def test_accuracy_verdicts_mark_chance_level_results_undecidable():
    tab = pd.DataFrame([
        {"task": "slm2_cloze_mc", "metric": "acc", "stage": "base", "value": 0.30, "stderr": 0.1, "n": 40},
        {"task": "slm2_cloze_mc", "metric": "acc", "stage": "dpo", "value": 0.90, "stderr": 0.03, "n": 100},
        {"task": "slm2_lastword", "metric": "acc", "stage": "base", "value": 0.0, "stderr": 0.0, "n": 50},
        {"task": "slm2_qa", "metric": "exact_match", "stage": "base", "value": 0.0, "stderr": 0.0, "n": 9},
    ])
    v = bpb.accuracy_verdicts(tab, {"slm2_cloze_mc": 0.25})
    assert list(v["verdict"]) == ["undecidable at this scale", "above chance",
                                  "undecidable at this scale (no correct answer)"]
    assert v.iloc[0]["lo"] < 0.25 < v.iloc[0]["hi"]


def test_task_logliks_score_the_gold_answers(cfg):
    import torch

    before = torch.get_num_threads()
    df = bpb.task_logliks(tiny_checkpoint(), cfg, limit=3)
    assert torch.get_num_threads() == before  # the one-thread scoring restores the caller's setting
    assert list(df.groupby("task").size()) == [3, 3]
    assert (df["nll"] > 0).all() and (df["tokens"] >= 1).all()
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(tiny_checkpoint()), dtype=torch.float32).eval()
    ctx, cont = "The Rhine flows into the", " North Sea"
    ids = tokenizer.encode(ctx + cont)
    n_ctx = len(tokenizer.encode(ctx))
    with torch.inference_mode():
        logp = torch.log_softmax(lm(input_ids=torch.tensor([ids])).logits[0], dim=-1)
    direct = -sum(float(logp[i - 1, ids[i]]) for i in range(n_ctx, len(ids)))
    assert bpb._continuation_nll(lm, ctx, cont) == (pytest.approx(direct, rel=1e-5), len(ids) - n_ctx)
    t = bpb.task_table({"base": df, "dpo": df.assign(nll=df["nll"] + 0.5)}, n_boot=100)
    d = t[t["stage"] == "dpo"]
    assert np.allclose(d["delta"], 0.5) and d["decided"].all()
