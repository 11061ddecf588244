"""Chapter 06 · The chat format the three stages train on, and the self-knowledge "negative" token.

All stages use the tokenizer's own chat template (ChatML over Arcade100k's ``<|im_start|>`` /
``<|im_end|>``, from :func:`stablelm2.tokenizer.save_transformers`); TRL computes the loss on the
assistant's tokens only, which it finds through the template's ``{% generation %}`` markers.
:func:`check_template` refuses, before any training, a template that does not fit the tokenizer:
a special-looking token the tokenizer would split into pieces, text that does not survive
encode → decode, or an assistant mask that misses the reply or its end-of-turn token.

**The negative token (self-knowledge, C-RLFT-style conditioning).** The paper trains negative
continuations "with a negative token instead of the Assistant token". In ChatML the assistant's
header is ``<|im_start|>assistant\\n``, and ``assistant`` is one token (78191), so a negative
example's header becomes ``<|im_start|><|extra0|>\\n``: one token swapped for one token, the rest of
the format unchanged. We take ``<|extra0|>`` (id 100288) because it is the only one of Arcade100k's
32 special tokens reserved with no meaning: the FIM and code tokens occur in the StarCoder
pre-training data, ``<|pause|>`` and the ``<|reg*|>`` registers were reserved for pause/attention-sink
tricks, and ``<|endoftext|>`` / ``<|im_*|>`` already structure the chat. Using it needs no new
embedding row (the matrix has 100,352 rows) and cannot collide with anything the model has seen.

>>> from stablelm2.alignment import chat
>>> chat.NEGATIVE_TOKEN, chat.NEGATIVE_ID
('<|extra0|>', 100288)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import facts

NEGATIVE_TOKEN: str = facts.get("tokenizer.special.extra0").text
"""The token that replaces ``assistant`` in the header of a negative self-knowledge example."""
NEGATIVE_ID: int = int(facts.value("tokenizer.special.extra0"))
ASSISTANT = "assistant"
TURN_END: str = facts.get("tokenizer.special.im_end").text
"""``<|im_end|>``: ends every turn; generation stops there."""

SK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' or message['role'] == '" + NEGATIVE_TOKEN + "' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The tokenizer's ChatML template, plus: a turn whose role is :data:`NEGATIVE_TOKEN` is rendered
with that token as its header and trained on like an assistant turn. :func:`check_sk_template`
verifies it renders exactly like the tokenizer's template on every conversation without one."""

PROBE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Wie viel ist 12 × 7?"},
    {"role": "assistant", "content": "12 × 7 = 84."},
    {"role": "user", "content": "And in words, please — with a tab\tand a newline\n?"},
    {"role": "assistant", "content": "Eighty-four."},
]
"""A conversation that exercises system/user/assistant turns, digits, non-ASCII text and whitespace."""


class ChatTemplateError(ValueError):
    """The chat template does not fit the tokenizer (or cannot carry the loss mask)."""


@dataclass(frozen=True)
class TemplateCheck:
    """What :func:`check_template` verified (for display)."""

    special_tokens: dict[str, int]
    n_tokens: int
    n_assistant_tokens: int
    turn_end_trained: bool
    generation_header: str


def _specials_in(template: str) -> list[str]:
    return sorted(set(re.findall(r"<\|[A-Za-z0-9_]+\|>", template)))


def check_template(tok: Any, template: str | None = None, *, model_vocab: int | None = None) -> TemplateCheck:
    """Check that ``template`` (default: the tokenizer's) fits ``tok``; raise :class:`ChatTemplateError`.

    1. every ``<|…|>`` token the template writes is one token of the tokenizer;
    2. the rendered probe conversation survives encode → decode unchanged;
    3. the assistant mask covers exactly the assistant replies, each with its ``<|im_end|>``;
    4. (with ``model_vocab``) every id fits the model's embedding matrix.
    """
    template = template if template is not None else tok.chat_template
    if not template:
        raise ChatTemplateError("the tokenizer has no chat template; fix: save it with "
                                "stablelm2.tokenizer.save_transformers(directory)")
    if not re.search(r"\{%-?\s*generation\s*-?%\}", template):
        raise ChatTemplateError("the chat template has no {% generation %} markers, so TRL cannot find the "
                                "assistant's tokens for the loss; fix: use stablelm2.tokenizer.CHAT_TEMPLATE")
    specials = {}
    for s in _specials_in(template) + [TURN_END]:
        ids = tok.encode(s, add_special_tokens=False)
        if len(ids) != 1:
            raise ChatTemplateError(
                f"the chat template writes {s!r}, which this tokenizer splits into {len(ids)} tokens {ids}; "
                "the template belongs to another tokenizer — fix: use the template shipped with Arcade100k "
                "(stablelm2.tokenizer.CHAT_TEMPLATE)")
        specials[s] = ids[0]
    text = tok.apply_chat_template(PROBE, chat_template=template, tokenize=False)
    out = tok.apply_chat_template(PROBE, chat_template=template, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if tok.decode(ids, skip_special_tokens=False) != text:
        raise ChatTemplateError("the rendered conversation does not survive encode → decode with this tokenizer; "
                                "fix: use a template whose text this tokenizer reproduces exactly")
    if model_vocab is not None and max(ids) >= model_vocab:
        raise ChatTemplateError(f"token id {max(ids)} does not fit the model's {model_vocab} embedding rows")
    masked = tok.decode([t for t, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)
    want = "".join(m["content"] + TURN_END for m in PROBE if m["role"] == ASSISTANT)
    if masked != want:
        raise ChatTemplateError(f"the assistant mask covers {masked!r}, expected the replies {want!r}; "
                                "fix: wrap exactly the assistant content and its <|im_end|> in {% generation %}")
    header = generation_header(tok, template)
    return TemplateCheck(special_tokens=specials, n_tokens=len(ids), n_assistant_tokens=sum(mask),
                         turn_end_trained=masked.endswith(TURN_END), generation_header=header)


def generation_header(tok: Any, template: str | None = None) -> str:
    """The text the template appends for ``add_generation_prompt`` (``<|im_start|>assistant\\n``)."""
    msgs = PROBE[:2]
    base = tok.apply_chat_template(msgs, chat_template=template, tokenize=False)
    full = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True)
    header = full[len(base):]
    if not full.startswith(base) or header.count(ASSISTANT) != 1:
        raise ChatTemplateError(f"the generation prompt {header!r} is not one header naming the assistant")
    return header


def check_sk_template(tok: Any) -> TemplateCheck:
    """Check :data:`SK_TEMPLATE` against the tokenizer: it must fit, and render exactly like the
    tokenizer's own template on conversations without a negative turn."""
    own = tok.chat_template
    for msgs in (PROBE, PROBE[1:], PROBE[1:3]):
        for gen in (False, True):
            a = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            b = tok.apply_chat_template(msgs, chat_template=SK_TEMPLATE, tokenize=False, add_generation_prompt=gen)
            if a != b:
                raise ChatTemplateError(
                    "the self-knowledge template renders differently from the tokenizer's own template "
                    f"({a!r} vs {b!r}); it assumes ChatML — fix: save the tokenizer with "
                    "stablelm2.tokenizer.save_transformers, or adapt SK_TEMPLATE")
    if own is None:
        raise ChatTemplateError("the tokenizer has no chat template")
    check = check_template(tok, SK_TEMPLATE)
    neg = [{"role": "user", "content": "Hi"}, {"role": NEGATIVE_TOKEN, "content": "Hello."}]
    out = tok.apply_chat_template(neg, chat_template=SK_TEMPLATE, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    if NEGATIVE_ID not in out["input_ids"]:
        raise ChatTemplateError(f"{NEGATIVE_TOKEN} is not a single token of this tokenizer")
    return check


def negative_example(prompt: list[dict[str, str]], reply: str) -> list[dict[str, str]]:
    """A conversation whose last turn is a negative continuation (trained behind the negative token)."""
    return [*prompt, {"role": NEGATIVE_TOKEN, "content": reply}]


def positive_example(prompt: list[dict[str, str]], reply: str) -> list[dict[str, str]]:
    """A conversation whose last turn is a positive continuation (behind the assistant token, as in SFT)."""
    return [*prompt, {"role": ASSISTANT, "content": reply}]


def prompt_text(tok: Any, messages: list[dict[str, str]], *, negative: bool = False) -> str:
    """The text a model continues: the conversation plus the assistant's (or the negative) header."""
    header = generation_header(tok, SK_TEMPLATE)
    text = tok.apply_chat_template(messages, chat_template=SK_TEMPLATE, tokenize=False)
    return text + (header.replace(ASSISTANT, NEGATIVE_TOKEN) if negative else header)


def conditioning_positions(ids: list[int], mask: list[int]) -> dict[str, Any]:
    """Where the conditioning sits in one tokenised example: the header token before the first trained
    token, and which ids are trained (for tests and the notebook)."""
    first = mask.index(1) if 1 in mask else None
    return {"first_trained": first, "header_token": ids[first - 2] if first and first >= 2 else None,
            "negative_positions": [i for i, t in enumerate(ids) if t == NEGATIVE_ID],
            "n_trained": sum(mask)}
