"""Chapter 01 · the pre-training sources as data, Table 1 (explicit unknowns or a reader-filled
file, validated), and the token arithmetic behind Fig. 1.

Stable LM 2 mixes ~2T tokens from open datasets on the Hugging Face Hub (§2.2, Table 1). Each
source is a :class:`StreamSpec`: where to read it (Hub id, subset, split, text field), what it is
(Table 1 group, domain, language, licence) and the paper's treatment (CulturaX: OSCAR part only;
FanFics: lowest n-gram perplexity; Restruct-v1: task templates). ``verified`` says whether the
Hub id/subset was confirmed by the sources at hand; the others are best-knowledge and named so.

Table 1's numbers (sampling weight, tokens, epochs per source) are stripped from the text we have:
:func:`table1` returns them as explicit unknowns, unless ``cfg.data.table1_path`` points at a CSV a
reader filled in from the paper (columns ``source,sampling_weight,tokens,epochs``), which
:func:`read_table1` validates row by row (known source, weights summing to one, tokens × epochs
against the ~2T-token mix).

>>> from stablelm2.data import sources
>>> sources.PAPER_SOURCES["culturax_de"].treatment
'oscar_only'
>>> sources.table1(None)[0]["sampling_weight"] is None
True
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import facts


class SourceError(ValueError):
    """An unknown source or domain, or a bad Table 1 file; the message names the row and the fix."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    """Source id, e.g. ``refinedweb`` or ``culturax_de`` (sample sources: ``web_en`` …)."""
    group: str
    """Table 1 row it belongs to (S8's grouping), e.g. ``CulturaX DE``."""
    domain: str
    """web, academic, books, code, math, wiki, law, instruction, multilingual, fiction."""
    language: str
    """en, de, es, fr, it, nl, pt or code."""
    hub_id: str | None = None
    """Hugging Face dataset id (paper preset); None for a local file."""
    config: str | None = None
    """Hub subset / config name."""
    data_files: str | None = None
    """Local JSON-lines file (smoke/cpu) or a Hub data-file pattern."""
    split: str = "train"
    """Split to stream."""
    text_field: str = "text"
    """Record field holding the document (unused with the restruct treatment)."""
    treatment: str | None = None
    """None, 'oscar_only', 'lowest_perplexity' or 'restruct'."""
    licence: str = ""
    """Licence of the data as its card gives it."""
    verified: bool = False
    """True when the Hub id/subset comes from the paper or card (FACTS.md); False = best knowledge."""
    note: str = ""
    """Anything a reader should know (stand-ins, exclusions)."""

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (``dataclasses.asdict``), e.g. for a table row or JSON."""
        return asdict(self)


TREATMENTS = (None, "oscar_only", "lowest_perplexity", "restruct")
DOMAINS = ("web", "academic", "books", "code", "math", "wiki", "law", "instruction", "multilingual", "fiction")
LANGUAGES = ("en", "de", "es", "fr", "it", "nl", "pt", "code")


def _culturax(lang: str) -> StreamSpec:
    return StreamSpec(
        f"culturax_{lang}", f"CulturaX {lang.upper()}", "web" if lang == "en" else "multilingual", lang,
        hub_id="uonlp/CulturaX", config=lang, treatment="oscar_only",
        licence="ODC-By-1.0 (mC4 part) / CC0-1.0 (OSCAR part)", verified=True,
        note="mC4 part dropped for HTML boilerplate; only OSCAR kept (S0, S3)")


_SPECS = [
    StreamSpec("arxiv", "ArXiv", "academic", "en", hub_id="togethercomputer/RedPajama-Data-1T", config="arxiv",
               licence="arXiv terms (RedPajama)", verified=False, note="RedPajama is in the card (S3); subset by best knowledge"),
    StreamSpec("pubmed", "PubMed", "academic", "en", hub_id="CarperAI/pilev2-dev", data_files="data/PubMed/*",
               licence="per-article open licences (Pile)", verified=False, note="pilev2-dev is in the card; path unverified"),
    StreamSpec("s2orc", "S2ORC", "academic", "en", hub_id="CarperAI/pilev2-dev", data_files="data/S2ORC/*",
               licence="ODC-By-1.0", verified=False, note="path unverified"),
    StreamSpec("books", "books", "books", "en", hub_id="togethercomputer/RedPajama-Data-1T", config="book",
               licence="public domain (PG-19)", verified=False,
               note="Books3 removed from RedPajama and the Pile (S3); how is not stated"),
    *[_culturax(lang) for lang in ("en", "de", "es", "fr", "it", "nl", "pt")],
    StreamSpec("c4", "C4", "web", "en", hub_id="allenai/c4", config="en", licence="ODC-By-1.0", verified=False),
    StreamSpec("openwebtext2", "OpenWebText2", "web", "en", hub_id="CarperAI/pilev2-dev",
               data_files="data/OpenWebText2/*", licence="MIT (Pile)", verified=False, note="path unverified"),
    StreamSpec("refinedweb", "RefinedWeb", "web", "en", hub_id="tiiuae/falcon-refinedweb", text_field="content",
               licence="ODC-By-1.0", verified=True),
    StreamSpec("stackexchange", "StackExchange", "academic", "en", hub_id="togethercomputer/RedPajama-Data-1T",
               config="stackexchange", licence="CC-BY-SA-4.0", verified=False),
    StreamSpec("law", "law", "law", "en", hub_id="CarperAI/pilev2-dev", data_files="data/FreeLaw/*",
               licence="public domain / CC-BY (Pile-of-Law)", verified=False, note="path unverified"),
    StreamSpec("openwebmath", "math", "math", "en", hub_id="open-web-math/open-web-math", licence="ODC-By-1.0",
               verified=False, note="OpenWebMath is named in S0; Hub id by best knowledge"),
    StreamSpec("wiki", "Wiki", "wiki", "en", hub_id="wikimedia/wikipedia", config="20231101.en",
               licence="CC-BY-SA-3.0", verified=False, note="dump date and languages not stated"),
    StreamSpec("starcoder", "StarCoder", "code", "code", hub_id="bigcode/starcoderdata", text_field="content",
               licence="permissive licences (The Stack terms)", verified=True),
    StreamSpec("fanfics", "FanFics", "fiction", "en", hub_id=facts.value("data.fanfics_hf_id"),
               treatment="lowest_perplexity", licence="as on the Hub card", verified=True,
               note=f"{facts.value('data.fanfics_n_docs'):,} docs by {facts.value('data.fanfics_selection')} (S0)"),
    StreamSpec("restruct_v1", "Restruct-v1", "instruction", "en",
               hub_id="DataProvenanceInitiative/Commercially-Verified-Licenses", treatment="restruct",
               licence="commercially verified licences (DPI)", verified=False,
               note="Restruct-v1 itself is not on the Hub (S0); rebuilt from task records with templates"),
]
PAPER_SOURCES: dict[str, StreamSpec] = {s.name: s for s in _SPECS}
"""The paper's pre-training sources (Table 1 rows of S8, plus FanFics named in S0)."""


def sample_specs() -> dict[str, StreamSpec]:
    """The shipped sample's sources as local specs (smoke/cpu read these through the same loader)."""
    from .sample import SAMPLE_DIR, SAMPLE_SOURCES

    out = {}
    for name, meta in SAMPLE_SOURCES.items():
        out[name] = StreamSpec(
            name, meta["stands_for"], meta["domain"], meta["language"], data_files=str(SAMPLE_DIR / meta["file"]),
            treatment="restruct" if meta.get("restruct") else None, licence="see sample/MANIFEST.json",
            verified=True, note=f"local stand-in for {meta['stands_for']}")
    return out


def specs(cfg: Any) -> dict[str, StreamSpec]:
    """The sources a config reads: the Hub sources at ``data.source='hub'``, else the shipped sample."""
    return dict(PAPER_SOURCES) if cfg.data.source == "hub" else sample_specs()


def check_spec(spec: StreamSpec) -> None:
    """Refuse a spec the loader cannot read, before any data is opened.

    Raises:
        SourceError: a domain, language or treatment outside :data:`DOMAINS`, :data:`LANGUAGES`,
            :data:`TREATMENTS`, or neither ``hub_id`` nor ``data_files``.
    """
    if spec.domain not in DOMAINS:
        raise SourceError(f"source {spec.name!r}: unknown domain {spec.domain!r}; domains are: {', '.join(DOMAINS)}")
    if spec.language not in LANGUAGES:
        raise SourceError(f"source {spec.name!r}: unknown language {spec.language!r}; use one of {', '.join(LANGUAGES)}")
    if spec.treatment not in TREATMENTS:
        raise SourceError(f"source {spec.name!r}: unknown treatment {spec.treatment!r}; use one of {TREATMENTS}")
    if spec.hub_id is None and spec.data_files is None:
        raise SourceError(f"source {spec.name!r} has neither a hub_id nor data_files; give one of them")


def sources_table() -> list[dict[str, Any]]:
    """One row per paper source: Hub id, subset, field, domain, language, treatment, licence."""
    return [{"source": s.name, "Table 1 row": s.group, "domain": s.domain, "lang": s.language,
             "hub id": s.hub_id, "subset": s.config or s.data_files or "", "field": s.text_field,
             "treatment": s.treatment or "", "licence": s.licence, "verified": s.verified, "note": s.note}
            for s in PAPER_SOURCES.values()]


# ------------------------------------------------------------------------------ Table 1

TABLE1_COLUMNS = ("source", "sampling_weight", "tokens", "epochs")


def table1(cfg: Any) -> list[dict[str, Any]]:
    """The active Table 1: a reader-filled file when ``cfg.data.table1_path`` is set, else unknowns."""
    path = getattr(getattr(cfg, "data", None), "table1_path", "") if cfg is not None else ""
    if path:
        return read_table1(path)
    return [{"source": s.name, "group": s.group, "domain": s.domain, "language": s.language,
             "sampling_weight": None, "tokens": None, "epochs": None, "status": "unknown (stripped from the text)"}
            for s in PAPER_SOURCES.values()]


def read_table1(path: str | Path, *, total_tokens: float | None = None, rel_tol: float = 0.10,
                weight_tol: float = 1e-3) -> list[dict[str, Any]]:
    """Read and validate a reader-filled Table 1 CSV (§2.2, Table 1); every error names the row and the fix.

    Columns :data:`TABLE1_COLUMNS`; ``tokens`` in tokens (not billions). Returns one row per source with
    its group, domain and language. Sampling weights must sum to 1 within ``weight_tol``, and
    Σ tokens × epochs must be within ``rel_tol`` of ``total_tokens`` (None: fact ``data.total_tokens``).

    Raises:
        SourceError: a missing, empty or non-UTF-8 file, a missing column, a header without rows, an
            unknown or repeated source, a value that is not a non-negative number, weights not
            summing to 1, or tokens × epochs off the total.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"Table 1 file {path} does not exist; fix data.table1_path or leave it empty")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise SourceError(f"{path} is empty; write the header {','.join(TABLE1_COLUMNS)} and one row "
                                  "per source, or leave data.table1_path empty")
            missing = [c for c in TABLE1_COLUMNS if c not in reader.fieldnames]
            if missing:
                raise SourceError(f"{path}: missing column(s) {', '.join(missing)}; the header must be "
                                  f"{','.join(TABLE1_COLUMNS)}")
            raw = list(reader)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as a UTF-8 "
                          "CSV") from None
    if not raw:
        raise SourceError(f"{path} has a header but no rows; add one row per source "
                          f"({','.join(TABLE1_COLUMNS)}), or leave data.table1_path empty")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, r in enumerate(raw, 2):
        name = (r["source"] or "").strip()
        if name not in PAPER_SOURCES:
            raise SourceError(f"{path}:{i}: unknown source {name!r}; known sources: {', '.join(PAPER_SOURCES)}")
        if name in seen:
            raise SourceError(f"{path}:{i}: source {name!r} appears twice")
        seen.add(name)
        vals = {}
        for col in TABLE1_COLUMNS[1:]:
            try:
                vals[col] = float(str(r[col]).replace("_", "").replace(",", ""))
            except ValueError:
                raise SourceError(f"{path}:{i} ({name}): {col} = {r[col]!r} is not a number") from None
            if not math.isfinite(vals[col]) or vals[col] < 0:
                raise SourceError(f"{path}:{i} ({name}): {col} = {r[col]!r} must be a non-negative number")
        s = PAPER_SOURCES[name]
        rows.append({"source": name, "group": s.group, "domain": s.domain, "language": s.language,
                     "sampling_weight": vals["sampling_weight"], "tokens": vals["tokens"], "epochs": vals["epochs"],
                     "status": f"reader-filled ({path.name})"})
    total_w = sum(r["sampling_weight"] for r in rows)
    if abs(total_w - 1.0) > weight_tol:
        raise SourceError(f"{path}: sampling weights sum to {total_w:.6f}, not 1; rescale the column "
                          f"(largest row: {max(rows, key=lambda r: r['sampling_weight'])['source']})")
    target = total_tokens if total_tokens is not None else facts.value("data.total_tokens")
    effective = sum(r["tokens"] * r["epochs"] for r in rows)
    if abs(effective - target) > rel_tol * target:
        raise SourceError(f"{path}: tokens × epochs add up to {effective:.4g}, not within {rel_tol:.0%} of the "
                          f"~{target:.4g}-token mix; check the tokens/epochs columns (units: tokens, not billions)")
    return rows


def effective_tokens(rows: list[dict[str, Any]], by: str = "domain") -> dict[str, float] | None:
    """Effective tokens (tokens × epochs) summed per ``by`` (domain, language, group, source);
    None when the table is unknown."""
    if any(r["tokens"] is None or r["epochs"] is None for r in rows):
        return None
    out: dict[str, float] = {}
    for r in rows:
        out[r[by]] = out.get(r[by], 0.0) + r["tokens"] * r["epochs"]
    return out
