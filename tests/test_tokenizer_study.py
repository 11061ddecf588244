"""The compression study: three tokenizers measured on held-out sample text, and digit splitting."""

from __future__ import annotations

import pytest

from stablelm2 import config, tokenizer_study


def test_digit_study_counts_tokens_per_number():
    rows = tokenizer_study.digit_study(max_digits=7, n=20)
    assert [r["arcade100k"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["cl100k_base"] for r in rows] == [1, 1, 1, 2, 2, 2, 3]
    assert tokenizer_study.max_digits_per_token("arcade100k") == 1
    assert tokenizer_study.max_digits_per_token("cl100k_base") == 3


def test_digit_alignment():
    got = tokenizer_study.digit_alignment("123 + 4567")
    assert got["arcade100k"] == ["1", "2", "3", " +", " ", "4", "5", "6", "7"]
    assert got["cl100k_base"] == ["123", " +", " ", "456", "7"]


def test_compression_rows_and_summary():
    cfg = config.load("smoke", **{"data.study_chars": 4000, "data.bpe_vocab": 600})
    rows = tokenizer_study.compression(cfg)
    tokenizers = {r["tokenizer"] for r in rows}
    assert {"arcade100k", "cl100k_base"} < tokenizers and len(tokenizers) == 3
    assert {r["language"] for r in rows} == {"en", "de", "es", "fr", "it", "nl", "pt", "code"}
    for r in rows:
        assert r["bytes_per_token"] == pytest.approx(r["bytes"] / r["tokens"])
        assert r["tokens"] > 0
    by_lang = tokenizer_study.summarise(rows, "language")
    de = {r["tokenizer"]: r for r in by_lang if r["language"] == "de"}
    # the same 100k merges compress far better than a 600-token BPE; digit splitting costs Arcade a little
    assert de["arcade100k"]["bytes_per_token"] > 1.5 * min(r["bytes_per_token"] for r in de.values())
    assert de["arcade100k"]["bytes_per_token"] <= de["cl100k_base"]["bytes_per_token"] + 1e-9


def test_train_bpe_is_deterministic_and_checked():
    texts = ["the cat sat on the mat"] * 20 + ["der Hund lief über die Wiese"] * 20
    a = tokenizer_study.train_bpe(texts, 300, seed=1)
    b = tokenizer_study.train_bpe(texts, 300, seed=1)
    assert a.encode("the cat").ids == b.encode("the cat").ids
    with pytest.raises(ValueError, match="at least 300"):
        tokenizer_study.train_bpe(texts, 100)
