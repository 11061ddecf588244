"""The paper's sources as data and Table 1: unknowns, the reader-filled file and its validation."""

from __future__ import annotations

import dataclasses

import pytest

from stablelm2 import config, facts
from stablelm2.data import sources
from stablelm2.data.sources import SourceError


def test_every_paper_source_is_well_formed():
    specs = sources.PAPER_SOURCES
    for s in specs.values():
        sources.check_spec(s)
        assert s.hub_id and s.licence
    langs = {s.language for s in specs.values() if s.name.startswith("culturax_")}
    assert langs == {"en"} | {x.lower() for x in facts.value("data.languages_non_english")}
    assert all(s.treatment == "oscar_only" and s.hub_id == "uonlp/CulturaX" for s in specs.values()
               if s.name.startswith("culturax_"))
    assert specs["fanfics"].hub_id == facts.value("data.fanfics_hf_id") and specs["fanfics"].treatment == "lowest_perplexity"
    assert specs["restruct_v1"].treatment == "restruct"
    groups = {s.group for s in specs.values()}
    assert set(facts.value("data.tab1_source_groups")) <= groups


def test_bad_spec_is_named():
    s = sources.PAPER_SOURCES["c4"]
    with pytest.raises(SourceError, match="unknown domain 'poetry'"):
        sources.check_spec(dataclasses.replace(s, domain="poetry"))
    with pytest.raises(SourceError, match="neither a hub_id nor data_files"):
        sources.check_spec(dataclasses.replace(s, hub_id=None))
    with pytest.raises(SourceError, match="unknown treatment"):
        sources.check_spec(dataclasses.replace(s, treatment="dedupe"))


def test_table1_is_unknown_by_default():
    rows = sources.table1(config.load("smoke"))
    assert len(rows) == len(sources.PAPER_SOURCES)
    assert all(r["sampling_weight"] is None and r["tokens"] is None for r in rows)
    assert sources.effective_tokens(rows) is None


def _write(tmp_path, rows, header="source,sampling_weight,tokens,epochs"):
    p = tmp_path / "table1.csv"
    p.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return p


def _filled():
    names = list(sources.PAPER_SOURCES)
    w = 1 / len(names)
    per = 2e12 / len(names)
    return [(n, w, per / 2, 2) for n in names]


def test_reader_filled_table1_is_validated(tmp_path):
    p = _write(tmp_path, _filled())
    rows = sources.read_table1(p)
    assert sum(r["sampling_weight"] for r in rows) == pytest.approx(1)
    eff = sources.effective_tokens(rows, "domain")
    assert sum(eff.values()) == pytest.approx(2e12)
    cfg = config.load("smoke", **{"data.table1_path": str(p)})
    assert sources.table1(cfg)[0]["status"].startswith("reader-filled")


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r[:-1] + [("wikipedia_xx", 0.01, 1, 1)], r"table1.csv:\d+: unknown source 'wikipedia_xx'"),
    (lambda r: [(r[0][0], 0.5, *r[0][2:])] + r[1:], "sampling weights sum to"),
    (lambda r: [(n, w, t / 1e9, e) for n, w, t, e in r], "tokens × epochs add up to"),
    (lambda r: [(r[0][0], "lots", 1, 1)] + r[1:], r"\(arxiv\): sampling_weight = 'lots' is not a number"),
    (lambda r: r + [r[0]], "appears twice"),
])
def test_bad_table1_rows_are_named(tmp_path, mutate, match):
    with pytest.raises(SourceError, match=match):
        sources.read_table1(_write(tmp_path, mutate(_filled())))


def test_table1_missing_column_and_file(tmp_path):
    with pytest.raises(SourceError, match="missing column"):
        sources.read_table1(_write(tmp_path, _filled(), header="source,weight,tokens,epochs"))
    with pytest.raises(SourceError, match="does not exist"):
        sources.read_table1(tmp_path / "nope.csv")



@pytest.mark.parametrize("content, match", [
    (b"source,sampling_weight,tokens,epochs\n", r"empty.csv has a header but no rows; add one row per source"),
    (b"", r"empty.csv is empty; write the header source,sampling_weight,tokens,epochs"),
    (b"source,sampling_weight,tokens,epochs\n\xff\xfe,1,2,3\n", r"empty.csv is not UTF-8 text .* UTF-8 CSV"),
])
def test_an_empty_or_undecodable_table1_is_a_source_error_naming_the_file(tmp_path, content, match):
    p = tmp_path / "empty.csv"
    p.write_bytes(content)
    with pytest.raises(SourceError, match=match):
        sources.read_table1(p)

def test_specs_follow_the_config():
    assert set(sources.specs(config.load("smoke"))) == set(sources.sample_specs())
    assert set(sources.specs(config.load("paper"))) == set(sources.PAPER_SOURCES)
