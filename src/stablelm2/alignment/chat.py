"""Chapter 06 · The chat format the three stages train on, and the self-knowledge "negative" token.

The paper's recipe uses the released format of its aligned model, ``stablelm-2-zephyr-1_6b``
(:data:`stablelm2.chat_formats.ZEPHYR`, fact ``chat.format.zephyr_1_6b``), at every preset:
``<|user|>\n{message}<|endoftext|>\n<|assistant|>\n{reply}<|endoftext|>\n`` — role markers as plain
text, every turn closed by ``<|endoftext|>``, where generation stops. It is the template of the
tokenizer export (:func:`stablelm2.tokenizer.save_transformers`); TRL computes the loss on the
assistant's tokens only, which it finds through the template's ``{% generation %}`` markers, and it
tokenizes through :class:`stablelm2.tokenizer_hf.Arcade100kTokenizerFast`, so special-token text
inside a message stays text. (ChatML, the format of the later ``stablelm-2-1_6b-chat``, is kept in
:data:`stablelm2.chat_formats.CHATML` for that model only.) :func:`check_template` refuses, before
any training, a template or tokenizer that does not render the format byte for byte, turns
special-token text in a message into control tokens, or masks the wrong tokens.

**The negative token (self-knowledge, C-RLFT-style conditioning).** The paper trains negative
continuations "with a negative token instead of the Assistant token". The assistant marker
``<|assistant|>`` (plain text) is replaced by the token ``<|extra0|>`` (id 100288), so a negative
example's header is ``<|extra0|>\n``; the rest of the format is unchanged. We take ``<|extra0|>``
because it is the only one of Arcade100k's 32 special tokens reserved with no meaning: the FIM and
code tokens occur in the StarCoder pre-training data, ``<|pause|>`` and the ``<|reg*|>`` registers
were reserved for pause/attention-sink tricks, and ``<|endoftext|>`` / ``<|im_*|>`` already structure
text and chat. Using it needs no new embedding row (the matrix has 100,352 rows), and since text in
data is text, no message can produce it.

>>> from stablelm2.alignment import chat
>>> chat.NEGATIVE_TOKEN, chat.NEGATIVE_ID, chat.TURN_END
('<|extra0|>', 100288, '<|endoftext|>')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import chat_formats, facts

FORMAT = chat_formats.DEFAULT
"""The chat format of the paper's recipe (zephyr), at every preset."""
NEGATIVE_TOKEN: str = chat_formats.NEGATIVE_ROLE
"""The token that replaces the assistant marker in the header of a negative self-knowledge example."""
NEGATIVE_ID: int = int(facts.value("tokenizer.special.extra0"))
ASSISTANT = "assistant"
TURN_END: str = FORMAT.turn_end
"""``<|endoftext|>``: ends every turn; generation stops there."""

SK_TEMPLATE = chat_formats.jinja(FORMAT, with_negative=True)
"""The tokenizer's zephyr template, plus: a turn whose role is :data:`NEGATIVE_TOKEN` is rendered
behind the negative header (``<|extra0|>\n``) and trained on like an assistant turn.
:func:`check_sk_template` verifies it renders exactly like the tokenizer's template on every
conversation without one."""

PROBE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Wie viel ist 12 × 7?"},
    {"role": "assistant", "content": "12 × 7 = 84."},
    {"role": "user", "content": "And in words, please — with a tab\tand a newline\n?"},
    {"role": "assistant", "content": "Eighty-four."},
]
"""A conversation that exercises system/user/assistant turns, digits, non-ASCII text and whitespace."""


def special_probe() -> list[dict[str, str]]:
    """A conversation whose messages contain the text of every one of Arcade100k's 32 special tokens."""
    from .. import tokenizer

    text = " ".join(tokenizer.special_tokens())
    return [{"role": "system", "content": text}, {"role": "user", "content": f"Repeat: {text}"},
            {"role": "assistant", "content": text}]


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


_NO_TEMPLATE = ("the tokenizer has no chat template; fix: save it with "
                "stablelm2.tokenizer.save_transformers(directory)")


def _own_template(tok: Any) -> str:
    """The tokenizer's own chat template; :class:`ChatTemplateError` when it has none (empty or None)."""
    own = getattr(tok, "chat_template", None)
    if not own:
        raise ChatTemplateError(_NO_TEMPLATE)
    return own


def format_of(template: str | None) -> tuple[chat_formats.ChatFormat, bool]:
    """``(format, with_negative)``: the :mod:`stablelm2.chat_formats` format that ``template`` is.

    Raises:
        ChatTemplateError: ``template`` is empty or None, has no ``{% generation %}`` markers, or is none of
            the known formats' templates.
    """
    if not template:
        raise ChatTemplateError(_NO_TEMPLATE)
    if not re.search(r"\{%-?\s*generation\s*-?%\}", template):
        raise ChatTemplateError("the chat template has no {% generation %} markers, so TRL cannot find the "
                                "assistant's tokens for the loss; fix: use stablelm2.tokenizer.CHAT_TEMPLATE")
    known = chat_formats.identify(template)
    if known is None:
        raise ChatTemplateError("the chat template is none of the known formats (zephyr, the paper's; ChatML); "
                                "fix: use stablelm2.tokenizer.CHAT_TEMPLATE (the released zephyr format)")
    return known


def check_template(tok: Any, template: str | None = None, *, model_vocab: int | None = None) -> TemplateCheck:
    """Check that ``template`` (default: the tokenizer's) fits ``tok``; raise :class:`ChatTemplateError`.

    1. the template is one of :mod:`stablelm2.chat_formats`' formats, and each control token it
       writes is one token of the tokenizer;
    2. the tokenizer renders the probe conversation byte for byte as the format defines it, and the
       rendered text survives encode → decode;
    3. the assistant mask covers exactly the assistant replies, each with its turn end;
    4. special-token text inside messages stays text: the ids are those of
       :func:`stablelm2.chat_formats.encode` (only the format's markers are control tokens);
    5. (with ``model_vocab``) every id fits the model's embedding matrix.
    """
    template = template if template is not None else tok.chat_template
    fmt, neg = format_of(template)
    specials = {}
    for s in sorted({p.text for p in chat_formats.render(fmt, PROBE, add_generation_prompt=True) if p.control}):
        ids = tok.encode(s, add_special_tokens=False)
        if len(ids) != 1:
            raise ChatTemplateError(
                f"the chat template writes {s!r}, which this tokenizer splits into {len(ids)} tokens {ids}; "
                "the template belongs to another tokenizer — fix: use the template shipped with Arcade100k "
                "(stablelm2.tokenizer.CHAT_TEMPLATE)")
        specials[s] = ids[0]
    text = tok.apply_chat_template(PROBE, chat_template=template, tokenize=False)
    want_text = chat_formats.render_text(fmt, PROBE)
    if text != want_text:
        raise ChatTemplateError(f"the template renders {text!r}, the {fmt.name} format is {want_text!r}")
    out = tok.apply_chat_template(PROBE, chat_template=template, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if tok.decode(ids, skip_special_tokens=False) != text:
        raise ChatTemplateError("the rendered conversation does not survive encode → decode with this tokenizer; "
                                "fix: use a template whose text this tokenizer reproduces exactly")
    if model_vocab is not None and max(ids) >= model_vocab:
        raise ChatTemplateError(f"token id {max(ids)} does not fit the model's {model_vocab} embedding rows")
    masked = tok.decode([t for t, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)
    want = "".join(m["content"] + fmt.turn_end for m in PROBE if m["role"] == ASSISTANT)
    if masked != want:
        raise ChatTemplateError(f"the assistant mask covers {masked!r}, expected the replies {want!r}; "
                                "fix: wrap exactly the assistant content and its turn end in {% generation %}")
    probe = special_probe()
    got = list(tok.apply_chat_template(probe, chat_template=template, tokenize=True, return_dict=True)["input_ids"])
    if got != chat_formats.encode(fmt, probe, with_negative=neg)[0]:
        raise ChatTemplateError(
            "this tokenizer turns special-token text inside messages into control tokens (a message containing "
            "'<|endoftext|>' gets id 100257); text in data must stay text, only the format's markers are control "
            "tokens — fix: load the tokenizer with stablelm2.tokenizer.load_transformers(directory)")
    header = generation_header(tok, template)
    return TemplateCheck(special_tokens=specials, n_tokens=len(ids), n_assistant_tokens=sum(mask),
                         turn_end_trained=masked.endswith(fmt.turn_end), generation_header=header)


def generation_header(tok: Any, template: str | None = None) -> str:
    """The text the template appends for ``add_generation_prompt`` (zephyr: ``<|assistant|>\\n``).

    Raises:
        ChatTemplateError: ``template`` is None and the tokenizer has no chat template (checked first), or the
            generation prompt does not extend the rendered conversation, or does not name the assistant
            exactly once.
    """
    if template is None:
        _own_template(tok)
    msgs = PROBE[:2]
    base = tok.apply_chat_template(msgs, chat_template=template, tokenize=False)
    full = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True)
    header = full[len(base):]
    if not full.startswith(base) or header.count(ASSISTANT) != 1:
        raise ChatTemplateError(f"the generation prompt {header!r} is not one header naming the assistant")
    return header


def check_sk_template(tok: Any) -> TemplateCheck:
    """Check :data:`SK_TEMPLATE` against the tokenizer: it must fit, and render exactly like the
    tokenizer's own template on conversations without a negative turn (Sec. 3.3's negative token).

    Returns :func:`check_template`'s result for :data:`SK_TEMPLATE`.

    Raises:
        ChatTemplateError: the tokenizer has no chat template (checked before anything is rendered), the
            two templates render differently, :func:`check_template` fails, or :data:`NEGATIVE_TOKEN` is
            not one token of the tokenizer.
    """
    _own_template(tok)
    for msgs in (PROBE, PROBE[1:], PROBE[1:3]):
        for gen in (False, True):
            a = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            b = tok.apply_chat_template(msgs, chat_template=SK_TEMPLATE, tokenize=False, add_generation_prompt=gen)
            if a != b:
                raise ChatTemplateError(
                    "the self-knowledge template renders differently from the tokenizer's own template "
                    f"({a!r} vs {b!r}); it assumes the {FORMAT.name} format — fix: save the tokenizer with "
                    "stablelm2.tokenizer.save_transformers, or adapt SK_TEMPLATE")
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


def _tok_format(tok: Any) -> chat_formats.ChatFormat:
    return format_of(tok.chat_template)[0]


def prompt_text(tok: Any, messages: list[dict[str, str]], *, negative: bool = False) -> str:
    """The text a model continues: the conversation plus the assistant's (or the negative) header."""
    return chat_formats.render_text(_tok_format(tok), messages, add_generation_prompt=True, with_negative=True,
                                    generation_role=NEGATIVE_TOKEN if negative else ASSISTANT)


def prompt_ids(tok: Any, messages: list[dict[str, str]], *, negative: bool = False) -> list[int]:
    """The ids a model continues (:func:`prompt_text` tokenized; special-token text in messages is text)."""
    return chat_formats.encode(_tok_format(tok), messages, add_generation_prompt=True, with_negative=True,
                               generation_role=NEGATIVE_TOKEN if negative else ASSISTANT)[0]


def conditioning_positions(ids: list[int], mask: list[int], role_ids: tuple[int, ...] = ()) -> dict[str, Any]:
    """Where the conditioning sits in one tokenised example (for tests and the notebook): the header
    between the previous turn end and the first trained token, the token in it that names the role
    (the negative token, else the first of ``role_ids`` found — e.g. the ``assistant`` token of the
    ``<|assistant|>`` marker), where the negative token occurs, and how many ids are trained."""
    first = mask.index(1) if 1 in mask else None
    turn_end = int(facts.value("tokenizer.special.endoftext"))
    start = 0
    if first is not None:
        start = max((i + 1 for i in range(first) if ids[i] == turn_end), default=0)
    header = ids[start:first] if first is not None else []
    named = [t for t in header if t == NEGATIVE_ID] or [t for t in header if t in role_ids]
    return {"first_trained": first, "header": header, "header_token": named[0] if named else None,
            "negative_positions": [i for i, t in enumerate(ids) if t == NEGATIVE_ID],
            "n_trained": sum(mask)}
