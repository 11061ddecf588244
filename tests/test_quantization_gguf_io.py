"""llama.cpp formats: the converter's GGUF, the quantizer, the tokenizer inside, quality, bad files."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from stablelm2 import tokenizer
from stablelm2.quantization import converter, gguf_io, measure
from stablelm2.quantization.checkpoint import CheckpointError
from stablelm2.quantization.formats import QuantError

from .quant_fixtures import sample_ids, scratch, tiny_checkpoint, tiny_f16, tiny_gguf

QUANTS = ("Q8_0", "Q4_0", "Q4_1", "Q5_K_M")


def test_converter_writes_a_stablelm_gguf_with_arcade100k():
    info = gguf_io.inspect(tiny_f16())
    assert info.architecture == "stablelm" and info.file_type == "F16"
    assert info.tokenizer_model == "gpt2" and info.tokenizer_pre == "stablelm2"
    assert info.n_vocab == 100352
    assert info.meta["stablelm.block_count"] == 2 and info.meta["stablelm.rope.dimension_count"] == 4
    # bytes per token: all weights but the embedding table, plus one of its rows
    emb_row = 64 * 2
    assert info.bytes_per_token == info.weight_bytes - 100352 * emb_row + emb_row


@pytest.mark.parametrize("fmt", QUANTS)
def test_each_format_loads_and_generates(fmt):
    path = tiny_gguf(fmt)
    info = gguf_io.inspect(path)
    assert info.file_type == fmt and info.file_bytes < gguf_io.inspect(tiny_f16()).file_bytes
    eng = gguf_io.LlamaCppEngine(path, n_ctx=64, threads=2)
    try:
        out = measure.greedy(eng, sample_ids(8), 6)
    finally:
        eng.close()
    assert len(out) == 6 and all(0 <= t < 100352 for t in out)


def test_gguf_tokenizer_is_arcade100k():
    eng = gguf_io.LlamaCppEngine(tiny_f16(), n_ctx=64, threads=1)
    try:
        for text in ["Hello world! In 2024, 12345 tokens.", "naïve café — déjà vu\n\n\tdef f(x):\n    return x",
                     "Grüße aus Köln. ¿Qué tal? Ça va. 你好", " " * 40 + "-" * 64 + " end",
                     "literal <|endoftext|> stays text"]:
            assert eng.tokenize(text) == tokenizer.encode(text)
            assert eng.detokenize(tokenizer.encode(text)) == text
        chat = "<|im_start|>user\nHi<|im_end|>\n<|endoftext|>"
        assert eng.tokenize(chat, special=True) == tokenizer.encode(chat, allow_special=True)
    finally:
        eng.close()


def test_gguf_keeps_special_token_text_as_text_and_carries_the_zephyr_template():
    """The GGUF export, every special token: its text inside data is the plain-text ids chapter 02
    gives (llama.cpp's default, ``special=False``), the token itself only where special parsing is asked
    for; and the file carries the released zephyr chat template of the export."""
    import gguf

    reader = gguf.GGUFReader(str(tiny_f16()))
    field = reader.fields["tokenizer.chat_template"]
    assert bytes(field.parts[field.data[0]]).decode("utf-8") == tokenizer.CHAT_TEMPLATE
    eng = gguf_io.LlamaCppEngine(tiny_f16(), n_ctx=64, threads=1)
    try:
        for special, sid in tokenizer.special_tokens().items():
            text = f"data with {special} inside{special}"
            assert eng.tokenize(text) == tokenizer.encode(text), special
            assert sid not in eng.tokenize(text), special
            assert eng.tokenize(special, special=True) == [sid], special
    finally:
        eng.close()


def test_quality_against_fp32():
    ids = sample_ids(48)
    windows = [ids[:24], ids[24:]]
    ref = measure.TorchEngine(tiny_checkpoint())
    engines = {f: gguf_io.LlamaCppEngine(tiny_gguf(f), n_ctx=64, threads=2, logits_all=True) for f in ("F16", *QUANTS)}
    try:
        f16_logits = engines["F16"].logits(ids[:24])
        assert np.abs(f16_logits - ref.logits(ids[:24])).max() < 1e-2
        res = measure.compare(engines, ref, windows, n_vocab=tokenizer.arcade100k().n_vocab)
    finally:
        for e in engines.values():
            e.close()
    kl = {f: r["kl"] for f, r in res.items()}
    assert abs(res["Q8_0"]["ppl"] / res["FP32"]["ppl"] - 1) < 0.005
    assert kl["F16"] < kl["Q8_0"] < kl["Q5_K_M"] < kl["Q4_0"]
    assert kl["Q8_0"] < kl["Q4_1"]
    assert res["F16"]["top1_agree"] > 0.9  # a random model's top logits are nearly tied


def test_sizes_shrink_with_bits():
    sizes = {f: gguf_io.inspect(tiny_gguf(f)).file_bytes for f in ("F16", "Q8_0", "Q4_0")}
    assert sizes["Q4_0"] < sizes["Q8_0"] < sizes["F16"]


def test_bad_quant_requests(tmp_path):
    for fmt, msg in (("Q3_K", "unknown quantization type"), ("F16", "not a llama.cpp quantization type"),
                     ("OV_INT4", "not a llama.cpp quantization type")):
        with pytest.raises(QuantError, match=msg):
            gguf_io.quantize(tiny_f16(), tmp_path / "x.gguf", fmt)
    with pytest.raises(gguf_io.GGUFError, match="already quantized"):
        gguf_io.quantize(tiny_gguf("Q4_0"), tmp_path / "x.gguf", "Q8_0")
    assert list(tmp_path.iterdir()) == []


def _damaged(tmp_path, how: str):
    src = tiny_f16()
    bad = tmp_path / f"{how}.gguf"
    data = bytearray(src.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "header":
        data[24:32] = b"\xff" * 8  # the first key's length
    elif how == "version":
        data[4:8] = b"\x09\x00\x00\x00"
    elif how == "not_gguf":
        data = bytearray(b"PK\x03\x04 this is a zip, not a model")
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("how, message", [("truncated", "truncated"), ("header", "truncated or corrupt"),
                                           ("version", "unsupported GGUF version"), ("not_gguf", "not a GGUF file")])
def test_damaged_gguf_names_the_file_and_leaves_nothing(tmp_path, how, message):
    bad = _damaged(tmp_path, how)
    with pytest.raises(gguf_io.GGUFError, match=message) as err:
        gguf_io.inspect(bad)
    assert str(bad) in str(err.value)
    dst = tmp_path / "out" / "model-Q4_0.gguf"
    with pytest.raises(gguf_io.GGUFError):
        gguf_io.quantize(bad, dst, "Q4_0")
    assert not dst.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(gguf_io.GGUFError):
        gguf_io.LlamaCppEngine(bad)


def test_missing_gguf():
    with pytest.raises(gguf_io.GGUFError, match="does not exist"):
        gguf_io.inspect("/nonexistent/model.gguf")


def test_convert_refuses_a_non_stablelm_checkpoint_before_running(tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint(), ck)
    (ck / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        gguf_io.convert(ck, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_missing_converter_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv(converter.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(converter.ConverterError, match="stablelm2.quantization.converter install"):
        converter.script()


def test_install_rejects_a_wrong_sdist(monkeypatch, tmp_path):
    import tarfile

    fake = tmp_path / f"llama_cpp_python-{converter.llama_cpp_version()}.tar.gz"
    (tmp_path / "x.txt").write_text("not llama.cpp")
    with tarfile.open(fake, "w:gz") as tar:
        tar.add(tmp_path / "x.txt", arcname="x.txt")
    target = tmp_path / "conv"
    monkeypatch.setenv(converter.ENV_VAR, str(target))
    with pytest.raises(converter.ConverterError, match="sha256"):
        converter.install(fake)
    assert not target.exists()


def test_converter_is_installed_and_matches_the_runtime():
    import json

    src = json.loads((converter.script().parent / "SOURCE.json").read_text())
    assert src["version"] == converter.llama_cpp_version()
    assert src["sdist_sha256"] == converter.SDIST_SHA256[src["version"]]
    scratch("unused")


def test_quantize_reports_fallback_tensors_in_one_line(capfd, tmp_path):
    out = gguf_io.quantize(tiny_f16(), tmp_path / "q4.gguf", "Q4_0", threads=1)
    said = capfd.readouterr()
    # the tiny model's FFN width (176) is not a multiple of 32: llama.cpp stores those tensors in F16
    assert re.search(r"\[llama\.cpp\] Q4_0: \d+ of \d+ tensors stored in another type", said.out)
    assert "falling back" not in said.out + said.err
    assert "F16" in gguf_io.inspect(out).tensor_types
