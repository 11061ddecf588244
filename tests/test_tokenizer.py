"""Arcade100k: exact ids, digit splitting, the transformers export, bad input, and notebook 02."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from stablelm2 import facts, record, runner, tokenizer, tokenizer_study

CORPUS = [
    "Hello world! The year 2024 had 366 days.",
    "Grüße aus München — ça va? ¿Qué tal, señor? Città, coração, één.",
    "def f(x):\n    return x ** 2  # square\n\n\n\tindented\r\n",
    "    four leading spaces, trailing   ",
    "3.14159 + 2.71828 = 5.85987; 1,048,576 bytes; 0x7fff",
    "日本語とEnglishのmix 🤖🎉 emoji",
    "<|endoftext|><|im_start|>user\nhi<|im_end|><|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
    "<filename>src/app.py<gh_stars>10\n<jupyter_code>print(1)<jupyter_output>1",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "\n\n\n \n",
    "Dit is een zin in het Nederlands, met getallen als 12345678.",
]


def test_vocabulary_and_special_ids():
    enc = tokenizer.arcade100k()
    assert enc.n_vocab == 100_289 == facts.value("tokenizer.n_vocab")
    specials = tokenizer.special_tokens()
    assert len(specials) == 32
    assert specials["<|endoftext|>"] == tokenizer.EOT_ID == 100_257
    assert specials["<|im_start|>"] == 100_277 and specials["<|im_end|>"] == 100_278
    assert specials["<|extra0|>"] == 100_288 and specials["<|reg0|>"] == 100_280
    assert sorted(specials.values()) == list(range(100_257, 100_289))
    assert enc.encode("<|pause|>", allowed_special="all") == [100_279]
    # the five ids cl100k also uses are the same there
    cl = tokenizer.cl100k_base()
    for tok in ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"):
        assert cl._special_tokens[tok] == specials[tok]


def test_merges_are_cl100k():
    arc, cl = tokenizer.arcade100k(), tokenizer.cl100k_base()
    text = "The quick brown fox jumps over the lazy dog, naïvely."
    assert arc.encode_ordinary(text) == cl.encode_ordinary(text)  # no digits: identical to cl100k


def test_padding_to_multiple_of_64():
    assert tokenizer.padded_vocab_size(100_289) == 100_352 == facts.value("tokenizer.vocab_padded")
    assert tokenizer.padded_vocab_size(128) == 128
    with pytest.raises(tokenizer.TokenizerError):
        tokenizer.padded_vocab_size(10, 0)


def test_digits_are_split_one_by_one():
    enc = tokenizer.arcade100k()
    pieces = [enc.decode([t]) for t in enc.encode_ordinary("in 2024: 1234567")]
    assert pieces == ["in", " ", "2", "0", "2", "4", ":", " ", "1", "2", "3", "4", "5", "6", "7"]
    cl = tokenizer.cl100k_base()
    assert [cl.decode([t]) for t in cl.encode_ordinary("1234567")] == ["123", "456", "7"]


def test_special_text_is_ordinary_unless_allowed():
    text = "x <|endoftext|> y"
    assert tokenizer.EOT_ID not in tokenizer.encode(text)
    assert tokenizer.EOT_ID in tokenizer.encode(text, allow_special=True)
    with pytest.raises(ValueError):
        tokenizer.arcade100k().encode(text)  # tiktoken refuses disallowed special text
    assert tokenizer.decode(tokenizer.encode(text)) == text


@pytest.mark.parametrize("special", sorted(tokenizer.special_tokens()))
def test_special_token_text_in_pretraining_data_is_text(special):
    """Pre-training's encoders (the packer's, and tokenizer.encode used by the held-out windows) keep every
    special token's text as plain text; only the document separator they append is a control token."""
    from stablelm2.data import packing

    text = f"A web page that quotes {special} twice:{special}"
    ids = tokenizer.encode(text)
    assert max(ids) < tokenizer.EOT_ID and tokenizer.decode(ids) == text
    assert packing._tokens(text) == (*ids, tokenizer.EOT_ID)
    assert tokenizer.arcade100k().encode_ordinary(text) == ids == tokenizer.arcade100k_raw().encode_ordinary(text)
    assert tokenizer.encode(text, allow_special=True).count(tokenizer.special_tokens()[special]) == 2


def test_wrong_ranks_hash_is_refused(tmp_path):
    bad = tmp_path / "cl100k_base.tiktoken"
    shutil.copy(tokenizer.ranks_file(), bad)
    with open(bad, "ab") as fh:
        fh.write(b"AAAA 100256\n")
    with pytest.raises(tokenizer.TokenizerError, match="sha256"):
        tokenizer.load_ranks(bad)
    with pytest.raises(tokenizer.TokenizerError, match="does not exist"):
        tokenizer.load_ranks(tmp_path / "missing.tiktoken")
    assert hashlib.sha256(tokenizer.ranks_file().read_bytes()).hexdigest() == tokenizer.RANKS_SHA256


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    d = tokenizer.save_transformers(tmp_path_factory.mktemp("arcade100k"))
    return AutoTokenizer.from_pretrained(d)


def test_transformers_export_encodes_identically(hf_tokenizer):
    from stablelm2.data import sample

    enc = tokenizer.arcade100k()
    texts = CORPUS + [d["text"][:3000] for name in ("code", "multilingual_de", "multilingual_pt", "math_problems_en",
                                                    "law_en", "web_en") for d in sample.documents(name)[:3]]
    for t in texts:
        assert hf_tokenizer(t, add_special_tokens=False)["input_ids"] == enc.encode(t, allowed_special="all"), t[:80]
        ids = enc.encode_ordinary(t)
        assert hf_tokenizer.decode(ids) == t


def test_transformers_export_config(hf_tokenizer):
    assert hf_tokenizer.eos_token_id == hf_tokenizer.pad_token_id == hf_tokenizer.bos_token_id == tokenizer.EOT_ID
    assert hf_tokenizer.convert_tokens_to_ids("<|im_end|>") == 100_278
    assert hf_tokenizer("hi")["input_ids"] == tokenizer.encode("hi")  # no BOS added
    text = hf_tokenizer.apply_chat_template([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
                                            tokenize=False, add_generation_prompt=False)
    assert text == "<|user|>\n2+2?<|endoftext|>\n<|assistant|>\n4<|endoftext|>\n"  # the released zephyr format
    prompt = hf_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                              add_generation_prompt=True)
    assert prompt == "<|user|>\nhi<|endoftext|>\n<|assistant|>\n"
    out = hf_tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                                           return_assistant_tokens_mask=True, return_dict=True)
    assert sum(out["assistant_masks"]) > 0


# Seven languages (EN and the paper's six), each with words whose accents have a composed (NFC) and a
# decomposed (NFD: base letter + combining mark) spelling.
ACCENTED = {
    "en": "naïve café résumé, coöperate",
    "de": "Grüße aus München, schön übel Äpfel",
    "es": "¿Qué tal, señor? El año pasó rápido, niño",
    "fr": "Ça va, élève? Où est la forêt, garçon",
    "it": "Città, perché così, però più caffè",
    "nl": "Één ruïne, geëerd, cafeïne, coördinatie",
    "pt": "Coração, ação, não, avô, pão e mãe",
}


def test_nfc_normalisation_as_the_released_tokenizer():
    import unicodedata

    enc, raw = tokenizer.arcade100k(), tokenizer.arcade100k_raw()
    for lang, text in ACCENTED.items():
        nfc, nfd = unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text)
        assert nfc != nfd, lang
        want = raw.encode_ordinary(nfc)              # the released tokenizer: NFC, then tiktoken
        assert enc.encode_ordinary(nfd) == enc.encode_ordinary(nfc) == want, lang
        assert enc.encode(nfd) == tokenizer.encode(nfd) == want, lang
        assert enc.encode_ordinary_batch([nfd, nfc]) == enc.encode_batch([nfd, nfc]) == [want, want], lang
        assert raw.encode_ordinary(nfd) != want, lang  # raw tiktoken differs on non-NFC text (documented)
        assert len(raw.encode_ordinary(nfd)) > len(want), lang
        assert tokenizer.decode(want) == nfc
    assert enc.encode_ordinary("cafe\u0301") == enc.encode_ordinary("caf\u00e9") != raw.encode_ordinary("cafe\u0301")


def test_nfc_normalisation_in_the_transformers_export(hf_tokenizer):
    import unicodedata

    enc = tokenizer.arcade100k()
    for lang, text in ACCENTED.items():
        for form in ("NFC", "NFD"):
            t = unicodedata.normalize(form, f"{text} <|endoftext|>")
            assert hf_tokenizer(t, add_special_tokens=False)["input_ids"] == \
                enc.encode(t, allowed_special="all"), (lang, form)


@pytest.mark.notebook
def test_notebook_runs_at_smoke(build_dir, offline_kernels):
    rec = runner.execute("02_tokenizer", "smoke", root=build_dir)
    assert rec["status"] == "finished", rec["error"]
    m = record.read("smoke", "02_tokenizer", root=build_dir)
    assert set(m["metrics"]) == tokenizer_study.TokenizerMetrics.__optional_keys__  # the library's schema
    assert m["metrics"]["n_vocab"] == 100_289 and m["metrics"]["vocab_padded"] == 100_352
    assert m["metrics"]["max_digits_per_token_arcade"] == 1 and m["metrics"]["max_digits_per_token_cl100k"] == 3
    assert m["metrics"]["hf_agreement_identical"] == m["metrics"]["hf_agreement_texts"] > 50
    assert m["metrics"]["special_text_is_ordinary"] is True
    claims = {c["id"]: c["status"] for c in m["claims"]}
    assert claims["tok.n_vocab"] == "reproduced" and claims["tok.vocab_padded"] == "re-derived"
    assert claims["tok.cl100k_shared_ids"] == "re-derived" and claims["tok.vocab_file_mb"] == "reproduced"
    assert claims["tok.digit_split"] == "reproduced"  # the tokenizer itself, measured: no seeds involved
    assert claims["tok.vs_neox"] == "reported only"
    assert "conflict" not in claims.values()
    assert {f["name"] for f in m["figures"]} == {"fig_tok_digits", "fig_tok_compression"}
