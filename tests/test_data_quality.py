"""The shipped sample is clean: each multilingual file ≥ 95 % its own language, no document in two places."""

from __future__ import annotations

import pytest

from stablelm2.data import quality, sample

EN = ("The package manager installs the software and keeps track of the files that belong to it, so that "
      "they can be removed again later without leaving anything behind on the system.")
NL = ("De pakketbeheerder installeert de software en houdt bij welke bestanden erbij horen, zodat ze later "
      "weer verwijderd kunnen worden zonder iets op het systeem achter te laten.")
DE = ("Die Paketverwaltung installiert die Software und merkt sich, welche Dateien dazu gehören, damit sie "
      "später wieder entfernt werden können, ohne etwas auf dem System zurückzulassen.")


def test_language_identification_of_known_sentences():
    assert quality.language(EN) == "en" and quality.language(NL) == "nl" and quality.language(DE) == "de"
    assert quality.stopword_language(NL) == "nl" and quality.stopword_language(EN) == "en"
    assert quality.stopword_language("12345 ---") is None
    with pytest.raises(quality.QualityError, match="empty"):
        quality.language("  \n")


def test_purity_counts_characters_paragraph_by_paragraph():
    doc = NL + "\n\n" + EN + "\n\n" + "-v\n\n" + NL
    assert "".join(quality.paragraphs(doc)) == doc
    by = quality.char_languages(doc)
    assert sum(by.values()) == len(doc)
    assert by["en"] == len(EN) + 2  # the English paragraph and its separator; "-v" is too short: Dutch
    assert quality.document_purity(doc, "nl") == pytest.approx(1 - (len(EN) + 2) / len(doc))
    fp = quality.file_purity([NL, EN, EN], "nl")
    assert fp["purity"] == pytest.approx(len(NL) / (len(NL) + 2 * len(EN)))
    assert fp["off_language_docs"] == 2 and fp["by_language"]["en"] == 2 * len(EN)


def test_duplicates_exact_and_by_opening_across_and_within_files():
    a, b = "x " * 200, "y " * 200
    files = {"one": [a, b], "two": [" " + a.strip() + "\n", b[:650] + " tail that differs", "fresh text"],
             "three": ["y " * 10]}
    rows = quality.duplicates(files)
    assert [(r["file"], r["index"], r["kind"], r["first_file"]) for r in rows] == [
        ("two", 0, "exact", "one"), ("two", 1, "opening", "one")]


def test_shipped_multilingual_files_are_pure_and_no_document_is_shared():
    rows = {r["source"]: r for r in quality.sample_report()}
    for name, meta in sample.SAMPLE_SOURCES.items():
        r = rows[name]
        assert r["duplicates_within"] == 0 and r["duplicates_across"] == 0, name
        if meta["domain"] == "multilingual":
            assert r["purity"] >= quality.PURITY_TARGET, (name, r["purity"])
            assert r["stopword_purity"] >= quality.PURITY_TARGET, (name, r["stopword_purity"])
            assert r["off_language_docs"] == 0


def test_manifest_records_the_cleaning_before_and_after():
    cleaning = sample.manifest()["cleaning"]
    assert cleaning["tool"].startswith("stablelm2.data.sample_build.clean, py3langid ")
    nl = cleaning["files"]["multilingual_nl"]
    assert nl["purity_before"] < 0.7 <= quality.PURITY_TARGET <= nl["purity_after"]
    assert nl["docs_after"] == sample.manifest()["files"]["multilingual_nl.jsonl"]["n_docs"]
    for name in sample.SAMPLE_SOURCES:
        if name.startswith("multilingual_"):
            assert cleaning["files"][name]["purity_after"] >= quality.PURITY_TARGET
    edited = [d for d in sample.documents("multilingual_pt") if "edited" in d]
    assert edited and all(d["origin"] and d["licence"] for d in edited)
