"""The shipped sample: manifest, hashes, licences, coverage, and errors for missing/corrupt files."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from stablelm2.data import sample


def test_manifest_covers_every_file_and_hashes_match():
    files = sample.manifest()["files"]
    assert {m["file"] for m in sample.SAMPLE_SOURCES.values()} == set(files)
    total = 0
    for name, meta in sample.SAMPLE_SOURCES.items():
        path = sample.verify(name)
        entry = files[meta["file"]]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["licences"] and entry["origins"] and entry["n_docs"] >= 10
        total += entry["bytes"]
    assert total < 4_000_000  # "a few MB at most"


def test_every_document_has_origin_and_licence():
    for name in sample.SAMPLE_SOURCES:
        for d in sample.documents(name):
            assert d["origin"] and d["licence"]


def test_domains_and_languages_are_covered():
    domains = {m["domain"] for m in sample.SAMPLE_SOURCES.values()}
    langs = {m["language"] for m in sample.SAMPLE_SOURCES.values()}
    assert {"web", "academic", "books", "code", "math", "wiki", "law", "instruction", "multilingual"} <= domains
    assert {"en", "de", "es", "fr", "it", "nl", "pt"} <= langs
    de = " ".join(d["text"] for d in sample.documents("multilingual_de")[:5])
    assert any(w in de for w in (" und ", " der ", " die "))


@pytest.fixture
def sample_copy(tmp_path, monkeypatch):
    d = tmp_path / "sample"
    shutil.copytree(sample.SAMPLE_DIR, d)
    monkeypatch.setattr(sample, "SAMPLE_DIR", d)
    monkeypatch.setattr(sample, "MANIFEST", d / "MANIFEST.json")
    sample.manifest.cache_clear()
    sample._documents.cache_clear()
    yield d
    sample.manifest.cache_clear()
    sample._documents.cache_clear()


def test_corrupt_and_missing_files_are_refused(sample_copy):
    with open(sample_copy / "wiki_en.jsonl", "a") as fh:
        fh.write('{"text": "tampered"}\n')
    with pytest.raises(sample.SampleError, match=r"wiki_en.*sha256.*corrupt or edited"):
        sample.documents("wiki_en")
    (sample_copy / "code.jsonl").unlink()
    with pytest.raises(sample.SampleError, match=r"code.jsonl \(source 'code'\) is missing"):
        sample.verify("code")
    with pytest.raises(sample.SampleError, match="unknown sample source 'poetry'"):
        sample.verify("poetry")
    (sample_copy / "MANIFEST.json").unlink()
    sample.manifest.cache_clear()
    with pytest.raises(sample.SampleError, match="MANIFEST.json is missing"):
        sample.verify("law_en")
