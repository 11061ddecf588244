"""Chat formats as data: the released zephyr format of the paper's aligned model, and ChatML.

Two formats, each recorded as a fact with its source (``facts.yaml``, ``chat.format.*``):

* :data:`ZEPHYR` — ``stablelm-2-zephyr-1_6b``, the paper's aligned model (S5: its
  ``tokenizer_config.json`` chat template; MLC-LLM's ``stablelm-2`` conversation template says the
  same): role markers are *plain text* (``<|user|>`` is not an Arcade100k special token), every turn
  is closed by ``<|endoftext|>`` (id 100257), where generation also stops::

      <|user|>\\n{message}<|endoftext|>\\n<|assistant|>\\n{reply}<|endoftext|>\\n

  The paper's recipe uses it at every preset.
* :data:`CHATML` — ``stablelm-2-1_6b-chat``, a later release the paper does not describe
  (``<|im_start|>``/``<|im_end|>``, EOS 100278); kept only for that model.

One definition per format gives the Jinja chat template saved with the transformers export
(:func:`jinja`, with ``{% generation %}`` markers around what is trained), the rendered text
(:func:`render`) and the token ids with the assistant mask (:func:`encode`). :func:`encode` applies
the one policy of this project for special-token text: **text inside a message is text** — a user
who writes ``<|im_end|>`` or ``<|endoftext|>`` gets the plain-text pieces, exactly as pre-training
encodes them (:func:`stablelm2.tokenizer.encode`); only the format's own markers insert control
tokens. (Tokenizing the rendered *string* cannot tell the two apart, which is why the transformers
export overrides ``apply_chat_template`` with :func:`encode`; see :mod:`stablelm2.tokenizer`.)

The self-knowledge stage adds a *negative* role (:data:`NEGATIVE_ROLE`, the token ``<|extra0|>``):
its header is the assistant's with the assistant marker replaced by that token, e.g.
``<|extra0|>\\n{reply}<|endoftext|>\\n`` in zephyr (``with_negative=True``).

>>> from stablelm2 import chat_formats as cf
>>> cf.render_text(cf.ZEPHYR, [{"role": "user", "content": "Hi"}], add_generation_prompt=True)
'<|user|>\\nHi<|endoftext|>\\n<|assistant|>\\n'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from . import facts


class ChatFormatError(ValueError):
    """A conversation the format cannot render (unknown role, malformed message)."""


NEGATIVE_ROLE: str = facts.get("tokenizer.special.extra0").text
"""The self-knowledge negative role, rendered as the token ``<|extra0|>`` in place of the assistant marker."""


@dataclass(frozen=True)
class ChatFormat:
    """A chat format: per-role header text, the control token that closes a turn, what follows it."""

    name: str
    fact: str
    """Fact id recording the format (with its source)."""
    headers: dict[str, str] = field(hash=False)
    """Role → the header written before the message (plain text and control tokens)."""
    turn_end: str
    """The control token closing every turn; generation stops there."""
    after_turn: str
    """Text after ``turn_end`` (a newline in both formats)."""
    assistant_marker: str
    """The part of the assistant header the self-knowledge negative token replaces."""
    trained_roles: tuple[str, ...] = ("assistant",)

    def header(self, role: str, *, with_negative: bool = False) -> str:
        """The text written before a ``role`` message (for the negative role, with ``with_negative``: the
        assistant header with :data:`NEGATIVE_ROLE` in place of the assistant marker).

        Raises:
            ChatFormatError: the format has no such role.
        """
        if role == NEGATIVE_ROLE and with_negative:
            return self.headers["assistant"].replace(self.assistant_marker, NEGATIVE_ROLE)
        if role not in self.headers:
            known = list(self.headers) + ([NEGATIVE_ROLE] if with_negative else [])
            raise ChatFormatError(f"the {self.name} chat format has no role {role!r}; roles are: {', '.join(known)}")
        return self.headers[role]

    @property
    def generation_prompt(self) -> str:
        """What ``add_generation_prompt`` appends: the assistant's header."""
        return self.headers["assistant"]

    def is_trained(self, role: str) -> bool:
        """Whether ``role``'s content and turn end are trained on (assistant, and the negative role)."""
        return role in self.trained_roles or role == NEGATIVE_ROLE


ZEPHYR = ChatFormat(
    name="zephyr", fact="chat.format.zephyr_1_6b",
    headers={"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"},
    turn_end="<|endoftext|>", after_turn="\n", assistant_marker="<|assistant|>")
"""The released format of ``stablelm-2-zephyr-1_6b`` (the paper's DPO model): the paper's recipe."""

CHATML = ChatFormat(
    name="chatml", fact="chat.format.chatml_1_6b_chat",
    headers={r: f"<|im_start|>{r}\n" for r in ("system", "user", "assistant")},
    turn_end="<|im_end|>", after_turn="\n", assistant_marker="assistant")
"""ChatML of the later ``stablelm-2-1_6b-chat`` (not described in the paper)."""

FORMATS = {f.name: f for f in (ZEPHYR, CHATML)}
DEFAULT = ZEPHYR
"""The format of the paper's recipe, at every preset."""


def get(name: str) -> ChatFormat:
    """The format called ``name`` (``"zephyr"`` or ``"chatml"``).

    Raises:
        ChatFormatError: no format has that name.
    """
    if name not in FORMATS:
        raise ChatFormatError(f"unknown chat format {name!r}; formats are: {', '.join(FORMATS)}")
    return FORMATS[name]


# ------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class Piece:
    text: str
    control: bool
    """A control token the format inserts (one special id)."""
    trained: bool
    """Inside the trained span (assistant content and its turn end)."""


def _specials() -> dict[str, int]:
    from .tokenizer import special_tokens

    return special_tokens()


def _template_pieces(text: str, *, trained: bool = False) -> list[Piece]:
    """Format-written text split at the special tokens it contains (those become control pieces)."""
    specials = _specials()
    pat = "(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
    return [Piece(part, part in specials, trained) for part in re.split(pat, text) if part]


def _check(messages: list[dict[str, Any]]) -> None:
    if not isinstance(messages, list):
        raise ChatFormatError("a conversation is a list of {'role': ..., 'content': ...} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ChatFormatError(f"message {i} is {m!r}; every message needs a string 'role' and a string 'content'")


def render(fmt: ChatFormat, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False,
           with_negative: bool = False, generation_role: str = "assistant") -> list[Piece]:
    """The conversation as pieces: headers and turn ends (template), contents (data, NFC-normalised).

    ``generation_role`` is whose header ``add_generation_prompt`` appends (the negative role's, to
    sample a self-knowledge negative)."""
    from .tokenizer import nfc

    _check(messages)
    out: list[Piece] = []
    for m in messages:
        out += _template_pieces(fmt.header(m["role"], with_negative=with_negative))  # raises on an unknown role
        trained = fmt.is_trained(m["role"])
        if m["content"]:
            out.append(Piece(nfc(m["content"]), False, trained))
        out.append(Piece(fmt.turn_end, True, trained))
        out.append(Piece(fmt.after_turn, False, False))
    if add_generation_prompt:
        out += _template_pieces(fmt.header(generation_role, with_negative=with_negative))
    return out


def render_text(fmt: ChatFormat, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False,
                with_negative: bool = False, generation_role: str = "assistant") -> str:
    """The rendered conversation as one string (what the Jinja template of :func:`jinja` writes)."""
    return "".join(p.text for p in render(fmt, messages, add_generation_prompt=add_generation_prompt,
                                          with_negative=with_negative, generation_role=generation_role))


def encode(fmt: ChatFormat, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False,
           with_negative: bool = False, generation_role: str = "assistant") -> tuple[list[int], list[int]]:
    """``(input_ids, assistant_mask)`` of a conversation, special-token text in messages kept as text.

    Text between two control tokens (headers, contents, newlines) is encoded in one piece with
    :func:`stablelm2.tokenizer.encode` — so tokens merge across a header/content boundary exactly as
    when the whole string is tokenized — and each control token the format inserts is its one id.
    The mask is 1 on every token that overlaps an assistant (or negative) message, and on its turn
    end — what ``assistant_only_loss`` trains (transformers' rule for ``{% generation %}`` spans).
    """
    from .tokenizer import arcade100k

    enc = arcade100k()
    specials = _specials()
    ids: list[int] = []
    mask: list[int] = []
    buf: list[Piece] = []

    def flush() -> None:
        if not buf:
            return
        text = "".join(p.text for p in buf)
        flags = [p.trained for p in buf for _ in p.text]
        toks = enc.encode_ordinary(text)
        decoded, starts = enc.decode_with_offsets(toks)
        if decoded != text:  # pragma: no cover - the pieces are NFC already
            raise ChatFormatError(f"text {text[:40]!r}… does not survive encode → decode")
        ids.extend(toks)
        ends = [*starts[1:], len(text)]
        mask.extend(int(any(flags[s:max(e, s + 1)])) for s, e in zip(starts, ends, strict=True))
        buf.clear()

    for p in render(fmt, messages, add_generation_prompt=add_generation_prompt, with_negative=with_negative,
                    generation_role=generation_role):
        if p.control:
            flush()
            ids.append(specials[p.text])
            mask.append(int(p.trained))
        else:
            buf.append(p)
    flush()
    return ids, mask


# ------------------------------------------------------------------------------ Jinja


def _lit(s: str) -> str:
    """A Jinja string literal for ``s``."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


@cache
def jinja(fmt: ChatFormat, *, with_negative: bool = False) -> str:
    """The transformers chat template of ``fmt`` (assistant content and turn end in ``{% generation %}``).

    It renders exactly :func:`render_text`; an unknown role raises (``raise_exception``) instead of
    being skipped silently. With ``with_negative`` the self-knowledge negative role is accepted too.
    """
    roles = [*fmt.headers] + ([NEGATIVE_ROLE] if with_negative else [])
    branches = []
    for i, role in enumerate(roles):
        head = _lit(fmt.header(role, with_negative=with_negative))
        body = "{{ message['content'] + " + _lit(fmt.turn_end) + " }}"
        if fmt.is_trained(role):
            body = "{% generation %}" + body + "{% endgeneration %}"
        branches.append(("{% if " if i == 0 else "{% elif ") + f"message['role'] == {_lit(role)} %}}"
                        + "{{ " + head + " }}" + body)
    unknown = ("{% else %}{{ raise_exception('the " + fmt.name + " chat format has no role ' + message['role']) }}"
               "{% endif %}")
    return ("{% for message in messages %}" + "".join(branches) + unknown + "{{ " + _lit(fmt.after_turn) + " }}"
            "{% endfor %}{% if add_generation_prompt %}{{ " + _lit(fmt.generation_prompt) + " }}{% endif %}")


def identify(template: str | None) -> tuple[ChatFormat, bool] | None:
    """``(format, with_negative)`` when ``template`` is one of :func:`jinja`'s templates, else None."""
    if not template:
        return None
    for fmt in FORMATS.values():
        for neg in (False, True):
            if template == jinja(fmt, with_negative=neg):
                return fmt, neg
    return None


def pattern(fmt: ChatFormat, *, system: bool = True) -> str:
    """The format written with placeholders, as recorded in its fact: ``{system}``, ``{message}``, ``{reply}``."""
    msgs = ([{"role": "system", "content": "{system}"}] if system else []) + [
        {"role": "user", "content": "{message}"}, {"role": "assistant", "content": "{reply}"}]
    return render_text(fmt, msgs)
