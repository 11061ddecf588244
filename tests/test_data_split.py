"""The one train / held-out split: decided on the raw record, the same in every chapter, never trained on."""

from __future__ import annotations

import pytest

from stablelm2 import config, tokenizer
from stablelm2.data import sample, sources, split
from stablelm2.data.mixture import DocumentStream
from stablelm2.data.sources import SourceError, StreamSpec


def _cfg(preset: str):
    return config.load(preset, **{"carbon.meter": False})


def _stream_texts(spec, cfg, which: str) -> list[str]:
    return list(DocumentStream(spec, cfg, which, cycle=False))


def test_the_rule_hashes_the_raw_document_not_the_treated_text():
    cfg = _cfg("smoke")
    spec = sources.sample_specs()["instruct_en"]
    rec = {"task": "sentiment", "text": "Great!", "label": "positive", "origin": "a", "licence": "b"}
    same = {**rec, "origin": "elsewhere", "licence": "CC0-1.0"}
    assert split.raw_document(rec, spec) == split.raw_document(same, spec)  # metadata is not the document
    assert split.raw_document(rec, spec) != split.model_text(rec, spec)     # the template is not either
    assert split.hash_fraction("abc") == split.hash_fraction("abc") and 0 <= split.hash_fraction("x") < 1
    assert split.is_held_out(rec, spec, cfg) == split.is_held_out(same, spec, cfg)
    with pytest.raises(SourceError, match="no field 'content'"):
        split.raw_document({"text": "x"}, StreamSpec("s", "g", "web", "en", data_files="x", text_field="content"))


def test_every_source_holds_out_at_least_one_document_and_trains_on_the_rest():
    cfg = _cfg("cpu")
    for name in sample.SAMPLE_SOURCES:
        held = split.held_out_records(cfg, name)
        assert 1 <= len(held) < len(sample.documents(name)), name
    with pytest.raises(SourceError, match="unknown sample source"):
        split.held_out_records(cfg, "poetry")


@pytest.mark.parametrize("content, match", [
    (b'{"text": "a"}\nnot json\n', r"local.jsonl:2 is not valid JSON"),
    (b'{"text": "a"}\n["b"]\n', r"local.jsonl:2 is a JSON list, not an object"),
    (b'{"text": "a"}\n\xff\xfe\n', r"local.jsonl is not UTF-8 text"),
    (b"\n\n", r"local.jsonl holds no records; write one JSON object per line"),
])
def test_a_bad_local_jsonl_file_is_a_source_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "local.jsonl"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=match):
        split.threshold(StreamSpec("local", "g", "web", "en", data_files=str(path)), _cfg("smoke"))


@pytest.mark.parametrize("fn", [split.held_out_records, split.held_out_texts])
def test_an_unknown_source_name_is_refused_naming_the_known_ones(fn):
    with pytest.raises(SourceError, match=r"unknown sample source 'unknown'; use one of: .*wiki_en"):
        fn(_cfg("smoke"), "unknown")


@pytest.mark.parametrize("preset", ["smoke", "cpu"])
def test_no_held_out_document_of_any_chapter_is_in_any_training_stream(preset):
    """Chapter 05 trains on DocumentStream('train'); 05's validation, 07's bits per byte and 08's perplexity
    windows all read held-out text through split.held_out_texts. None of it may appear in training."""
    from stablelm2.evaluation import bpb
    from stablelm2.quantization import measure

    cfg = _cfg(preset)
    specs = sources.sample_specs()
    train: set[str] = set()
    held: dict[str, list[str]] = {}
    for name, spec in specs.items():
        train |= set(_stream_texts(spec, cfg, "train"))
        held[name] = split.held_out_texts(cfg, name)
        assert _stream_texts(spec, cfg, "val") == held[name], name  # 05's validation = the shared held-out set
    held_all = {t for texts in held.values() for t in texts}
    assert held_all and not held_all & train
    # 08: the perplexity windows are the held-out texts, in source order, each opened by <|endoftext|>
    expected = [i for name in sample.SAMPLE_SOURCES for t in held[name] for i in [tokenizer.EOT_ID, *tokenizer.encode(t)]]
    wins = measure.heldout_windows(cfg, n_tokens=256, window=64)
    assert [i for w in wins for i in w] == expected[:256]
    # 07: bits-per-byte windows decode back to exactly the held-out texts
    bw = bpb.held_out(cfg, window=64)
    docs: dict[int, list[int]] = {}
    for w, d in zip(bw.ids, bw.doc, strict=True):
        if d in docs:
            docs[d].extend(w[1:])  # a window's first token is the previous window's last
        else:
            docs[d] = list(w)
    decoded = [tokenizer.decode(ids[1:]) for _, ids in sorted(docs.items())]
    assert decoded == [t for name in sample.SAMPLE_SOURCES for t in held[name]]
    assert not set(decoded) & train
