"""The chat template against Arcade100k, and where the self-knowledge negative token sits."""

from __future__ import annotations

import pytest

from stablelm2 import facts, tokenizer
from stablelm2.alignment import chat, stages

ZEPHYR_TEMPLATE = (  # the Alignment Handbook's Zephyr format: its role tags are not Arcade100k tokens
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] }}"
    "{% else %}{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer.save_transformers(tmp_path_factory.mktemp("tok")))


def test_template_round_trips_through_the_tokenizer(tok):
    check = chat.check_template(tok, model_vocab=facts.value("tokenizer.vocab_padded"))
    assert check.special_tokens == {"<|im_start|>": 100277, "<|im_end|>": 100278}
    assert check.turn_end_trained and check.generation_header == "<|im_start|>assistant\n"
    text = tok.apply_chat_template(chat.PROBE, tokenize=False)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert ids == tokenizer.encode(text, allow_special=True)  # identical to the tiktoken encoding


def test_a_template_that_does_not_match_the_tokenizer_is_refused(tok):
    with pytest.raises(chat.ChatTemplateError, match=r"writes '<\|assistant\|>'.*splits into \d+ tokens"):
        chat.check_template(tok, ZEPHYR_TEMPLATE)
    no_markers = tokenizer.CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    with pytest.raises(chat.ChatTemplateError, match="no {% generation %} markers"):
        chat.check_template(tok, no_markers)
    with pytest.raises(chat.ChatTemplateError, match="does not fit the model's 100000"):
        chat.check_template(tok, model_vocab=100_000)


def test_negative_token_sits_where_the_assistant_token_was(tok):
    assert chat.NEGATIVE_ID == facts.value("tokenizer.special.extra0") == tok.convert_tokens_to_ids("<|extra0|>")
    chat.check_sk_template(tok)  # renders like the tokenizer's own template on ordinary conversations
    user = [{"role": "user", "content": "Who are you?"}]
    pos = tok.apply_chat_template(chat.positive_example(user, "A model."), chat_template=chat.SK_TEMPLATE,
                                  tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    neg = tok.apply_chat_template(chat.negative_example(user, "A model."), chat_template=chat.SK_TEMPLATE,
                                  tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    p = chat.conditioning_positions(pos["input_ids"], pos["assistant_masks"])
    n = chat.conditioning_positions(neg["input_ids"], neg["assistant_masks"])
    assistant = tok.convert_tokens_to_ids("assistant")
    assert p["header_token"] == assistant and p["negative_positions"] == []
    assert n["header_token"] == chat.NEGATIVE_ID and n["negative_positions"] == [n["first_trained"] - 2]
    # one token swapped for one: same length, same trained tokens, differing only at the header
    assert len(pos["input_ids"]) == len(neg["input_ids"]) and p["n_trained"] == n["n_trained"] == 4
    diff = [i for i, (a, b) in enumerate(zip(pos["input_ids"], neg["input_ids"], strict=True)) if a != b]
    assert diff == n["negative_positions"]
    assert stages.conditioning_check(tok)["holds"]
    assert chat.prompt_text(tok, user, negative=True).endswith("<|im_start|><|extra0|>\n")
