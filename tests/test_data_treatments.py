"""CulturaX's OSCAR filter, the n-gram perplexity selection and Restruct-v1 templates."""

from __future__ import annotations

import math

import pytest

from stablelm2.data import treatments as t


def test_oscar_filter():
    assert t.keep_oscar({"source": "OSCAR-2019"}) and t.keep_oscar({"source": "OSCAR-2301"})
    assert not t.keep_oscar({"source": "mC4"})
    with pytest.raises(t.TreatmentError, match="no 'source' field"):
        t.keep_oscar({"text": "x"})


def test_ngram_lm_prefers_fluent_text():
    ref = ["the cat sat on the mat .", "the dog sat on the rug .", "a cat and a dog sat on the mat ."] * 5
    lm = t.NGramLM(order=3).fit(ref)
    fluent, scrambled = "the cat sat on the rug .", "rug the on . sat cat the"
    assert lm.perplexity(fluent) < lm.perplexity(scrambled)
    assert lm.perplexity("zebra xylophone quantum") > lm.perplexity(fluent)
    assert t.lowest_perplexity([scrambled, fluent, "mat the the the"], 1, lm) == [1]
    assert t.lowest_perplexity([fluent, scrambled], 0, lm) == []
    with pytest.raises(t.TreatmentError):
        t.NGramLM(order=2).perplexity("x")
    with pytest.raises(t.TreatmentError):
        t.lowest_perplexity([fluent], -1, lm)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ngram_probabilities_sum_to_one_exactly(order):
    texts = ["a b a b c .", "b c a !", "the cat sat on the mat .", "a a a b"]
    lm = t.NGramLM(order=order).fit(texts)
    vocab = lm.vocabulary
    assert t.UNK in vocab and "<s>" not in vocab and "</s>" in vocab
    contexts = [(), ("a",), ("b",), ("<s>",), ("zebra",), ("a", "b"), ("<s>", "<s>"), ("on", "the"),
                ("the", "zebra"), ("b", "a", "b")]
    for ctx in contexts:
        total = math.fsum(lm.prob(w, ctx) for w in vocab)
        assert abs(total - 1.0) < 1e-12, (order, ctx, total)
    # an unseen word is scored as <unk>, and the old (n+|V|)/(n+|V|+1) shortfall is gone
    assert lm.prob("zebra", ("a",)) == lm.prob(t.UNK, ("a",)) > 0
    with pytest.raises(t.TreatmentError, match="discount"):
        t.NGramLM(order=2, discount=1.5)


def test_restructure_renders_every_task_deterministically():
    recs = [
        {"task": "qa", "context": "C", "question": "Q?", "answer": "A"},
        {"task": "summarization", "document": "D", "summary": "S"},
        {"task": "sentiment", "text": "T", "label": "positive"},
        {"task": "topic", "text": "T", "options": ["a", "b"], "label": "a"},
        {"task": "nli", "premise": "P", "hypothesis": "H", "label": "neutral"},
        {"task": "translation", "source_lang": "English", "target_lang": "German", "source": "x", "target": "y"},
        {"task": "instruction", "instruction": "I", "response": "R"},
    ]
    for r in recs:
        out = t.restructure(r)
        assert out == t.restructure(dict(r)) and "{" not in out
    assert "a, b" in t.restructure(recs[3])
    for r in recs:  # a loader that fills absent columns with None renders the same text
        assert t.restructure({**r, "answer": r.get("answer"), "unused": None}) == t.restructure(r)
    with pytest.raises(t.TreatmentError, match="task 'poem'"):
        t.restructure({"task": "poem"})
    with pytest.raises(t.TreatmentError, match="lacks field"):
        t.restructure({"task": "qa", "context": "C"})
