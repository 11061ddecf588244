"""The chat format against Arcade100k: the released zephyr format byte for byte, special-token text in
messages as text on every chat path, and where the self-knowledge negative token sits."""

from __future__ import annotations

import pytest

from stablelm2 import chat_formats, facts, tokenizer
from stablelm2.alignment import chat, stages

RELEASED_ZEPHYR_TEMPLATE = (
    # The chat_template of stablelm-2-zephyr-1_6b's tokenizer_config.json (S5): HuggingFaceH4's zephyr
    # template, with that tokenizer's eos_token <|endoftext|>. Rendered here by transformers itself.
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)

SYSTEM = {"role": "system", "content": "You are Stable LM 2."}
USER = {"role": "user", "content": "What is 2 + 2?"}
REPLY = {"role": "assistant", "content": "4."}
CONVERSATIONS = [[USER], [SYSTEM, USER], [USER, REPLY], [SYSTEM, USER, REPLY], chat.PROBE, chat.PROBE[1:]]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tokenizer.save_transformers(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def tok(tok_dir):
    return tokenizer.load_transformers(tok_dir)


@pytest.fixture(scope="module")
def auto_tok(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


def test_export_renders_the_released_zephyr_format_byte_for_byte(tok, auto_tok):
    for t in (tok, auto_tok):
        assert t.apply_chat_template([USER, REPLY], tokenize=False) == \
            "<|user|>\nWhat is 2 + 2?<|endoftext|>\n<|assistant|>\n4.<|endoftext|>\n"
        assert t.apply_chat_template([SYSTEM, USER], tokenize=False, add_generation_prompt=True) == \
            "<|system|>\nYou are Stable LM 2.<|endoftext|>\n<|user|>\nWhat is 2 + 2?<|endoftext|>\n<|assistant|>\n"
        for msgs in CONVERSATIONS:
            for gen in (False, True):
                ours = t.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
                released = t.apply_chat_template(msgs, chat_template=RELEASED_ZEPHYR_TEMPLATE, tokenize=False,
                                                 add_generation_prompt=gen)
                assert ours == released == chat_formats.render_text(chat_formats.ZEPHYR, msgs,
                                                                    add_generation_prompt=gen)
    # the format is a fact with its source, and the generation prompt is the assistant marker
    assert chat_formats.pattern(chat_formats.ZEPHYR) == facts.value("chat.format.zephyr_1_6b")
    assert chat_formats.ZEPHYR.generation_prompt == facts.value("chat.format.zephyr_1_6b_generation_prompt")
    assert facts.get("chat.format.zephyr_1_6b").source == ("S5",)
    # and the ids are the tiktoken ids of that text (no special text inside these messages)
    for msgs in CONVERSATIONS:
        text = chat_formats.render_text(chat_formats.ZEPHYR, msgs, add_generation_prompt=True)
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_dict=True)["input_ids"]
        assert ids == auto_tok.apply_chat_template(msgs, add_generation_prompt=True, return_dict=True)["input_ids"]
        assert ids == tokenizer.encode(text, allow_special=True)


def test_chatml_is_kept_for_the_later_chat_model_only(tmp_path):
    assert tokenizer.CHAT_TEMPLATE == chat_formats.jinja(chat_formats.ZEPHYR)  # the paper's recipe, every preset
    t = tokenizer.load_transformers(tokenizer.save_transformers(tmp_path, chat_template=tokenizer.CHATML_TEMPLATE))
    assert t.apply_chat_template([USER, REPLY], tokenize=False) == \
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n"
    assert chat_formats.pattern(chat_formats.CHATML) == facts.value("chat.format.chatml_1_6b_chat")
    with pytest.raises(chat_formats.ChatFormatError, match="no role 'tool'"):
        chat_formats.render(chat_formats.ZEPHYR, [{"role": "tool", "content": "x"}])
    with pytest.raises(Exception, match="zephyr chat format has no role tool"):  # the Jinja template refuses it too (not skipped)
        t.apply_chat_template([{"role": "tool", "content": "x"}], chat_template=tokenizer.CHAT_TEMPLATE,
                              tokenize=False)


def test_template_round_trips_and_masks_the_replies(tok):
    check = chat.check_template(tok, model_vocab=facts.value("tokenizer.vocab_padded"))
    assert check.special_tokens == {"<|endoftext|>": 100_257}  # role markers are plain text
    assert check.turn_end_trained and check.generation_header == "<|assistant|>\n"
    out = tok.apply_chat_template(chat.PROBE, return_dict=True, return_assistant_tokens_mask=True)
    masked = tok.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m])
    assert masked == "12 × 7 = 84.<|endoftext|>Eighty-four.<|endoftext|>"


def test_a_template_or_tokenizer_that_breaks_the_format_is_refused(tok, auto_tok):
    no_markers = tokenizer.CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    with pytest.raises(chat.ChatTemplateError, match="no {% generation %} markers"):
        chat.check_template(tok, no_markers)
    with pytest.raises(chat.ChatTemplateError, match="none of the known formats"):
        chat.check_template(tok, tokenizer.CHAT_TEMPLATE.replace("<|user|>", "<|usr|>"))
    with pytest.raises(chat.ChatTemplateError, match="does not fit the model's 100000"):
        chat.check_template(tok, model_vocab=100_000)
    # a plain transformers tokenizer turns special-token text inside messages into control tokens
    with pytest.raises(chat.ChatTemplateError, match="inside messages into control tokens"):
        chat.check_template(auto_tok)



@pytest.mark.parametrize("template", [None, ""])
@pytest.mark.parametrize("check", [chat.check_sk_template, chat.generation_header, chat.check_template])
def test_a_tokenizer_without_a_chat_template_is_refused_before_anything_is_rendered(tok_dir, template, check):
    bare = tokenizer.load_transformers(tok_dir)
    bare.chat_template = template
    with pytest.raises(chat.ChatTemplateError, match="has no chat template; fix: save it with"):
        check(bare)


@pytest.mark.parametrize("special", sorted(tokenizer.special_tokens()))
def test_special_token_text_in_messages_is_text_on_every_chat_path(tok, special):
    """SFT (TRL: conversation, mask), DPO (TRL: prompt with generation prompt, then prompt + reply),
    self-knowledge (negative template; generation prompts) and ChatML: the message's special-token text
    gets exactly the ids pre-training gives it; only the format's own markers are control tokens."""
    text = f"see {special} and{special}"
    plain = tokenizer.encode(text)
    assert all(t < tokenizer.EOT_ID for t in plain)
    msgs = [{"role": "system", "content": text}, {"role": "user", "content": text},
            {"role": "assistant", "content": text}]
    sft = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = list(sft["input_ids"])
    assert [t for t in ids if t >= tokenizer.EOT_ID] == [tokenizer.EOT_ID] * 3  # one turn end per turn
    masked = [t for t, m in zip(ids, sft["assistant_masks"], strict=True) if m]
    assert masked == plain + [tokenizer.EOT_ID]
    # DPO: TRL tokenizes the prompt (with the generation prompt) and prompt + chosen the same way
    prompt = tok.apply_chat_template(msgs[:2], tools=None, tokenize=True, return_dict=True,
                                     add_generation_prompt=True)["input_ids"]
    full = tok.apply_chat_template(msgs, tools=None, tokenize=True, return_dict=True)["input_ids"]
    assert full[:len(prompt)] == prompt and full[len(prompt):] == plain + [tokenizer.EOT_ID] + tokenizer.encode("\n")
    # self-knowledge: positive and negative prompts, and a negative example trained through TRL's path
    for negative in (False, True):
        p = chat.prompt_ids(tok, msgs[1:2], negative=negative)
        assert [t for t in p if t >= tokenizer.EOT_ID] == [tokenizer.EOT_ID] + ([chat.NEGATIVE_ID] if negative else [])
    neg = tok.apply_chat_template(chat.negative_example(msgs[1:2], text), chat_template=chat.SK_TEMPLATE,
                                  tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert [t for t in neg["input_ids"] if t >= tokenizer.EOT_ID] == [tokenizer.EOT_ID, chat.NEGATIVE_ID,
                                                                       tokenizer.EOT_ID]
    # the ChatML format (later chat model) keeps the same policy
    ids, _ = chat_formats.encode(chat_formats.CHATML, msgs)
    assert [t for t in ids if t >= tokenizer.EOT_ID] == [100_277, 100_278] * 3
    # any option our encoder does not cover falls back to transformers' own sanitising
    padded = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, padding="max_length",
                                     max_length=len(ids) + 64)
    assert [t for t, a in zip(padded["input_ids"], padded["attention_mask"], strict=True)
            if a and t >= tokenizer.EOT_ID] == [tokenizer.EOT_ID] * 3


def test_negative_token_replaces_the_assistant_marker(tok):
    assert chat.NEGATIVE_ID == facts.value("tokenizer.special.extra0") == tok.convert_tokens_to_ids("<|extra0|>")
    chat.check_sk_template(tok)  # renders like the tokenizer's own template on ordinary conversations
    user = [{"role": "user", "content": "Who are you?"}]
    pos = tok.apply_chat_template(chat.positive_example(user, "A model."), chat_template=chat.SK_TEMPLATE,
                                  tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    neg = tok.apply_chat_template(chat.negative_example(user, "A model."), chat_template=chat.SK_TEMPLATE,
                                  tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert tok.decode(pos["input_ids"]) == "<|user|>\nWho are you?<|endoftext|>\n<|assistant|>\nA model.<|endoftext|>\n"
    assert tok.decode(neg["input_ids"]) == "<|user|>\nWho are you?<|endoftext|>\n<|extra0|>\nA model.<|endoftext|>\n"
    assistant = tok.convert_tokens_to_ids(chat.ASSISTANT)
    p = chat.conditioning_positions(pos["input_ids"], pos["assistant_masks"], (assistant,))
    n = chat.conditioning_positions(neg["input_ids"], neg["assistant_masks"], (assistant,))
    assert p["negative_positions"] == [] and n["header_token"] == chat.NEGATIVE_ID
    assert n["negative_positions"] == [n["first_trained"] - 2]
    assert p["header_token"] == assistant and tok.decode(p["header"]) == "\n<|assistant|>\n"
    assert n["header"] == [198, chat.NEGATIVE_ID, 198]
    # the same trained tokens behind either header
    assert p["n_trained"] == n["n_trained"] == 4
    assert pos["input_ids"][p["first_trained"]:] == neg["input_ids"][n["first_trained"]:]
    assert stages.conditioning_check(tok)["holds"]
    assert chat.prompt_text(tok, user, negative=True).endswith("<|endoftext|>\n<|extra0|>\n")
    assert chat.prompt_text(tok, user).endswith("<|endoftext|>\n<|assistant|>\n")


def test_trl_prepares_sft_self_knowledge_and_dpo_data_with_special_text_as_text(tmp_path):
    """TRL's own dataset preparation (SFTTrainer with assistant_only_loss, DPOTrainer), as chapter 06
    builds the trainers: for every special token's text in the data, the tokenized rows are exactly
    chat_formats.encode's — the format's turn ends are the only control tokens."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from stablelm2.alignment import common

    from .alignment_helpers import tiny_model_dir

    d = tiny_model_dir(tmp_path / "m")
    tok, model = common.load_tokenizer(d, chat_template=True), common.load_model(d)
    specials = sorted(tokenizer.special_tokens())
    convs = [[{"role": "user", "content": f"Say {s}"}, {"role": "assistant", "content": f"{s} said."}]
             for s in specials]
    common_args = {"output_dir": str(tmp_path / "o"), "use_cpu": True, "report_to": "none", "max_length": 64,
                   "per_device_train_batch_size": 2}
    sft = SFTTrainer(model=model, args=SFTConfig(**common_args, packing=False, assistant_only_loss=True),
                     train_dataset=Dataset.from_list([{"messages": c} for c in convs]), processing_class=tok)
    for row, conv in zip(sft.train_dataset, convs, strict=True):
        ids, mask = chat_formats.encode(chat_formats.ZEPHYR, conv)
        assert row["input_ids"] == ids
        assert row["labels"] == [t if m else -100 for t, m in zip(ids, mask, strict=True)]
    tok.chat_template = chat.SK_TEMPLATE  # self-knowledge: negatives behind <|extra0|>, through the same path
    neg = [chat.negative_example(c[:1], c[1]["content"]) for c in convs]
    sk = SFTTrainer(model=model, args=SFTConfig(**common_args, packing=False, assistant_only_loss=True),
                    train_dataset=Dataset.from_list([{"messages": c} for c in neg]), processing_class=tok)
    for row, conv in zip(sk.train_dataset, neg, strict=True):
        assert row["input_ids"] == chat_formats.encode(chat_formats.ZEPHYR, conv, with_negative=True)[0]
        assert [t for t in row["input_ids"] if t >= tokenizer.EOT_ID] == [tokenizer.EOT_ID, chat.NEGATIVE_ID,
                                                                          tokenizer.EOT_ID]
    tok.chat_template = tokenizer.CHAT_TEMPLATE
    pairs = [{"prompt": c[:1], "chosen": c[1:], "rejected": [{"role": "assistant", "content": "No."}]} for c in convs]
    dpo_t = DPOTrainer(model=model, ref_model=common.load_model(d), args=DPOConfig(**common_args),
                       train_dataset=Dataset.from_list(pairs), processing_class=tok)
    for row, pair in zip(dpo_t.train_dataset, pairs, strict=True):
        want = chat_formats.encode(chat_formats.ZEPHYR, pair["prompt"] + pair["chosen"])[0]
        assert row["prompt_ids"] + row["chosen_ids"] == want
        assert row["prompt_ids"] == chat_formats.encode(chat_formats.ZEPHYR, pair["prompt"],
                                                        add_generation_prompt=True)[0]
