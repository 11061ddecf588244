"""The small multi-domain, multilingual corpus shipped with the package (read at smoke and cpu).

Stable LM 2 trained on ~2T tokens of Hub datasets; that cannot be read offline. The ``smoke`` and
``cpu`` presets read this sample instead, through the same loader (:mod:`stablelm2.data.mixture`).
Every file is real text under an open licence, recorded per document (``origin``, ``licence``)
and per file in ``sample/MANIFEST.json`` with its sha256; a missing or altered file stops the run
with an error naming the file. Where the text came from:

* ``web_en`` — project pages (PyPI long descriptions) of the Python packages installed here;
* ``academic_en`` / ``math_en`` — SciPy and SymPy docstrings (notes, references, derivations);
* ``books_en`` and half of each ``multilingual_xx`` — *The Debian Administrator's Handbook* in
  EN/DE/ES/FR/IT/NL/PT (GPL-2+ or CC-BY-SA-3.0); the other half — Debian's translated manual pages;
* ``code`` — CPython standard-library modules; ``law_en`` — the licence texts in
  ``/usr/share/common-licenses``;
* ``wiki_en``, ``math_problems_en``, ``instruct_en`` — written for this project (CC0-1.0);
  ``instruct_en`` holds raw task records that Restruct-v1-style templates turn into text.

``sample_build.py`` rebuilds the package-derived files (it needs the Debian packages; tests don't) and
cleans the whole sample: every multilingual file is its own language (py3langid, by characters; see
:mod:`.quality`) and no document appears twice, within or across files; the manifest's ``cleaning``
block records what was dropped and the purity before and after. Which documents are held out is
decided by :mod:`.split`, the project's one split rule.

>>> from stablelm2.data import sample
>>> docs = sample.documents("wiki_en")
>>> docs[0]["licence"]
'CC0-1.0'
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from ..files import sha256_file

SAMPLE_DIR = Path(__file__).with_name("sample")
MANIFEST = SAMPLE_DIR / "MANIFEST.json"

SAMPLE_SOURCES: dict[str, dict[str, Any]] = {
    "web_en": dict(file="web_en.jsonl", domain="web", language="en",
                   stands_for="RefinedWeb · C4 · OpenWebText2 · CulturaX-EN"),
    "academic_en": dict(file="academic_en.jsonl", domain="academic", language="en",
                        stands_for="ArXiv · PubMed · S2ORC"),
    "books_en": dict(file="books_en.jsonl", domain="books", language="en", stands_for="books (no Books3)"),
    "wiki_en": dict(file="wiki_en.jsonl", domain="wiki", language="en", stands_for="Wikipedia"),
    "law_en": dict(file="law_en.jsonl", domain="law", language="en", stands_for="law (Pile-of-Law)"),
    "math_en": dict(file="math_en.jsonl", domain="math", language="en", stands_for="OpenWebMath"),
    "math_problems_en": dict(file="math_problems_en.jsonl", domain="math", language="en",
                             stands_for="math word problems"),
    "code": dict(file="code.jsonl", domain="code", language="code", stands_for="StarCoder"),
    "instruct_en": dict(file="instruct_en.jsonl", domain="instruction", language="en",
                        stands_for="Restruct-v1", restruct=True),
    **{f"multilingual_{lang}": dict(file=f"multilingual_{lang}.jsonl", domain="multilingual", language=lang,
                                    stands_for=f"CulturaX-{lang.upper()} (OSCAR part)")
       for lang in ("de", "es", "fr", "it", "nl", "pt")},
}
"""Sample source → file, domain, language, and the paper sources it stands in for."""


class SampleError(ValueError):
    """A sample file is missing, altered, or not valid JSON lines; the message names the file."""


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    """``sample/MANIFEST.json``: ``{"description", "files": {file: {sha256, bytes, n_docs, …}}, "cleaning"}``.

    Raises:
        SampleError: the manifest file is missing.
    """
    if not MANIFEST.is_file():
        raise SampleError(f"{MANIFEST} is missing; fix: restore stablelm2/data/sample/ from the repository")
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def verify(name: str) -> Path:
    """The path of a sample source's file, after checking it against the manifest's sha256.

    Raises:
        SampleError: ``name`` is not a sample source; its file is missing, not in the manifest, or
            has another sha256 than the manifest records.
    """
    if name not in SAMPLE_SOURCES:
        raise SampleError(f"unknown sample source {name!r}; known: {', '.join(SAMPLE_SOURCES)}")
    fname = SAMPLE_SOURCES[name]["file"]
    path = SAMPLE_DIR / fname
    if not path.is_file():
        raise SampleError(f"sample file {path} (source {name!r}) is missing; fix: restore it from the repository")
    entry = manifest()["files"].get(fname)
    if entry is None:
        raise SampleError(f"sample file {fname} is not in {MANIFEST.name}; fix: run python -m "
                          "stablelm2.data.sample_build to re-hash the sample")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise SampleError(f"sample file {path} (source {name!r}) has sha256 {digest[:16]}…, the manifest says "
                          f"{entry['sha256'][:16]}…; the file is corrupt or edited — restore it from the repository")
    return path


@cache
def _documents(name: str) -> tuple[dict[str, Any], ...]:
    path = verify(name)
    docs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SampleError(f"{path}:{i} is not valid JSON ({exc.msg}); fix: restore the file") from exc
    return tuple(docs)


def documents(name: str) -> list[dict[str, Any]]:
    """Every record of a sample source, verified (records are dicts with ``origin`` and ``licence``)."""
    return [dict(d) for d in _documents(name)]


def table() -> list[dict[str, Any]]:
    """One row per sample file: source, domain, language, documents, size, origins, licences."""
    files = manifest()["files"]
    rows = []
    for name, meta in SAMPLE_SOURCES.items():
        e = files.get(meta["file"], {})
        rows.append({"source": name, "domain": meta["domain"], "language": meta["language"],
                     "stands for": meta["stands_for"], "docs": e.get("n_docs"), "kB": round(e.get("bytes", 0) / 1e3, 1),
                     "origins": "; ".join(e.get("origins", [])), "licences": "; ".join(e.get("licences", []))})
    return rows
