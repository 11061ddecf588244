"""Self-knowledge: the facts it teaches, how answers are scored, how examples are conditioned."""

from __future__ import annotations

import pytest

from stablelm2 import facts
from stablelm2.alignment import chat
from stablelm2.alignment import self_knowledge as sk


def test_identity_card_is_built_from_the_facts():
    card = sk.identity_card()
    assert sk.MODEL_NAME == "Stable LM 2 1.6B" and sk.CREATOR in card
    assert f"{facts.value('data.total_tokens') / 1e12:.0f} trillion" in card
    assert sk.facts_in(card) | {"other_identity": False} == {"name": True, "creator": True, "limits": True,
                                                             "carries": True, "other_identity": False}
    assert not set(sk.IDENTITY_QUESTIONS) & {q for q, _ in sk.FEW_SHOT}  # the measure is held out


def test_answers_are_scored_for_each_fact():
    assert sk.facts_in("I am ChatGPT, trained by OpenAI.") == {
        "name": False, "creator": False, "limits": False, "carries": False, "other_identity": True}
    assert sk.facts_in("I'm Stable LM 2 and I cannot browse the web.")["carries"]


def test_examples_condition_positives_and_negatives_and_count_empty_replies():
    data = {"prompts": ["Hi", "Tell me a joke", "Help"], "positives": ["I am Stable LM 2.", "", "Sure."],
            "negatives": ["Hello.", "Why did…", "Okay."]}
    rows, stats = sk.examples(data)
    assert stats == {"pairs": 2, "dropped_empty_reply": 1}
    assert [r["messages"][-1]["role"] for r in rows] == ["assistant", chat.NEGATIVE_TOKEN] * 2
    with pytest.raises(ValueError, match="nothing to train"):
        sk.examples({"prompts": ["Hi"], "positives": [""], "negatives": ["x"]})
