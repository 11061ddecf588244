"""The maintainer tool that made the shipped sample corpus: its manifest, cutting and budgeting, a builder."""

from __future__ import annotations

import json
import shutil

from stablelm2.data import sample, sample_build

from .test_data_quality import DE, EN, NL


def test_the_committed_manifest_is_what_the_tool_writes_for_the_shipped_files(tmp_path):
    d = tmp_path / "sample"
    shutil.copytree(sample.SAMPLE_DIR, d)
    committed = (d / "MANIFEST.json").read_bytes()
    written = sample_build.write_manifest(d)
    assert (d / "MANIFEST.json").read_bytes() == committed
    assert set(written["files"]) == {m["file"] for m in sample.SAMPLE_SOURCES.values()}


def test_cut_prefers_a_paragraph_boundary_and_take_keeps_to_the_budget():
    para = "a" * 50
    text = "\n\n".join([para] * 10)  # 10 paragraphs of 50 chars, 518 chars
    assert sample_build._cut(text, 1000) == text
    assert sample_build._cut(text, 200) == "\n\n".join([para] * 3)  # 154 chars, cut at the last break below 200
    assert sample_build._cut("b" * 500, 200) == "b" * 200  # no break: hard cut at the limit
    docs = [{"text": "x" * 150}] + [{"text": "y" * 300} for _ in range(5)]
    taken = sample_build._take(docs, budget=700)
    assert [len(d["text"]) for d in taken] == [300, 300, 300]  # the short one skipped, stops once 700 is reached


def test_python_code_builder_records_origin_and_licence(tmp_path):
    docs = sample_build.python_code()
    assert len(docs) >= 20
    assert all(d["licence"] == "PSF-2.0" and d["origin"].startswith("CPython ") for d in docs)
    assert all(0 < len(d["text"]) <= 12_000 for d in docs)
    sample_build.write_jsonl(tmp_path / "code.jsonl", docs[:2])
    lines = (tmp_path / "code.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == docs[:2] and not (tmp_path / "code.tmp").exists()


def test_clean_drops_other_languages_and_duplicates_and_keeps_licences():
    meta = {"origin": "o", "licence": "l"}
    files = {name: [] for name in sample.SAMPLE_SOURCES}
    files["books_en"] = [{"text": EN * 3, **meta}]
    files["multilingual_nl"] = [
        {"text": (NL + "\n\n") * 3 + EN, **meta},   # one English paragraph: removed, record marked edited
        {"text": EN * 3, **meta},                   # an English document in the Dutch file: dropped
        {"text": (NL + "\n\n") * 3 + EN, **meta},   # the same document again: dropped as a duplicate
    ]
    files["multilingual_de"] = [{"text": (DE + " ") * 3, **meta}]
    cleaned, stats = sample_build.clean(files)
    nl = cleaned["multilingual_nl"]
    assert len(nl) == 1 and nl[0]["text"] == ((NL + "\n\n") * 3).strip()
    assert nl[0]["origin"] == "o" and nl[0]["licence"] == "l" and "1 of 4 paragraphs" in nl[0]["edited"]
    st = stats["multilingual_nl"]
    assert (st["docs_before"], st["docs_after"], st["dropped_other_language"], st["dropped_duplicate_exact"]) \
        == (3, 1, 1, 1)
    assert st["purity_before"] < 0.95 and st["purity_after"] == 1.0
    assert cleaned["books_en"] == files["books_en"] and cleaned["multilingual_de"] == files["multilingual_de"]
