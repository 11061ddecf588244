"""How clean the shipped sample is: language purity by characters, and documents shared across files.

The paper's multilingual data is CulturaX's OSCAR part, one language per subset; a stand-in file
whose "Dutch" documents are half English would make the App. A language ablation (chapter 05) and
every per-language number (chapters 05, 07, 08) say nothing. This module measures, and
:mod:`.sample_build` uses it to clean the sample:

* **Language identification** with `py3langid <https://pypi.org/project/py3langid/>`_, a maintained
  fork of Lui & Baldwin's langid.py (naive Bayes over byte n-grams). Chosen because its model is
  inside its 4.6 MB wheel (nothing is fetched at run time, unlike detectors that download a fastText
  model), it needs only numpy, is deterministic, and reads the whole sample in seconds.
  It chooses among all its 140 labels, so text in a language outside the project's seven is not
  forced into one of them.
* **Purity by characters.** Each paragraph (text between blank lines) with at least
  :data:`MIN_LETTERS` letters gets its own language; shorter ones (headings, option names, code) take
  their document's. A file's purity is the share of its characters in the file's own language.
* **Shared documents.** Two documents are the same when their whitespace-normalised texts are equal
  (``exact``) or when their first :data:`OPENING_CHARS` normalised characters are (``opening``).

>>> from stablelm2.data import quality
>>> quality.language("Dit is een zin in het Nederlands, geschreven om de taal te herkennen.")
'nl'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

MIN_LETTERS = 40
"""A paragraph with fewer letters than this takes its document's language (too short to identify)."""
OPENING_CHARS = 300
"""Two documents whose first 300 normalised characters agree count as the same document."""
PURITY_TARGET = 0.95
"""Every multilingual file must be at least this share its own language, by characters (issue 15)."""
CODE = "code"
"""The language tag of source-code files (no natural-language purity)."""


class QualityError(ValueError):
    """Language identification is unavailable, or a document has no text."""


@lru_cache(maxsize=1)
def _identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as exc:  # pragma: no cover - the package is pinned in requirements.txt
        raise QualityError("language identification needs py3langid; fix: pip install -r requirements.txt") from exc
    return LanguageIdentifier.from_model_file(MODEL_FILE)


def language(text: str) -> str:
    """ISO 639-1 code of the text's language (py3langid's choice among all its languages).

    Raises:
        QualityError: ``text`` is empty or whitespace, or py3langid is not installed.
    """
    if not text.strip():
        raise QualityError("cannot identify the language of an empty text")
    return str(_identifier().classify(text)[0])


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def paragraphs(text: str) -> list[str]:
    """The text's paragraphs (split at blank lines), separators kept with the paragraph before."""
    parts = re.split(r"(\n\s*\n)", text)
    return ["".join(parts[i:i + 2]) for i in range(0, len(parts), 2) if parts[i] or parts[i + 1:i + 2]]


def char_languages(text: str) -> dict[str, int]:
    """Characters per language in one document: paragraph by paragraph, short ones take the document's."""
    doc_lang = language(text)
    out: dict[str, int] = {}
    for p in paragraphs(text):
        lang = language(p) if _letters(p) >= MIN_LETTERS else doc_lang
        out[lang] = out.get(lang, 0) + len(p)
    return out


def document_purity(text: str, lang: str) -> float:
    """Share of the document's characters in ``lang`` (0…1)."""
    by = char_languages(text)
    return by.get(lang, 0) / max(1, sum(by.values()))


def file_purity(texts: Iterable[str], lang: str) -> dict[str, Any]:
    """Purity of a file by characters, with the characters per language and the documents off-language.

    Returns ``{"purity", "chars", "by_language": {lang: chars}, "off_language_docs"}`` where a
    document is off-language when less than half of its characters are in ``lang``.
    """
    total: dict[str, int] = {}
    off = 0
    for t in texts:
        by = char_languages(t)
        for k, v in by.items():
            total[k] = total.get(k, 0) + v
        off += by.get(lang, 0) * 2 < sum(by.values())
    chars = sum(total.values())
    return {"purity": total.get(lang, 0) / max(1, chars), "chars": chars,
            "by_language": dict(sorted(total.items(), key=lambda kv: -kv[1])), "off_language_docs": off}


STOPWORDS = {
    "en": "the of and to in is that it for with as are this be by not or on from".split(),
    "de": "der die und das ist nicht mit den von zu ein eine auf für im sich auch".split(),
    "es": "el la de que los las y en un una es por con para se del al".split(),
    "fr": "le la les de des et est une un que pour dans pas qui sur avec du".split(),
    "it": "il di che la le è e per un una con non sono del della gli si".split(),
    "nl": "de het een van en is dat niet op te met voor zijn er ook worden".split(),
    "pt": "o a os as de que e do da em um uma para com não por se".split(),
}
"""Frequent function words per language: a second, model-free opinion on a document's language."""
_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)


def stopword_language(text: str) -> str | None:
    """The language whose function words the text uses most (None when it has none of them).

    Independent of py3langid (the issue's audit counted stop words); used as a cross-check of the
    cleaning, not to clean.
    """
    toks = [w.lower() for w in _WORDS.findall(text)]
    counts = {lang: sum(1 for w in toks if w in set(ws)) for lang, ws in STOPWORDS.items()}
    best = max(counts, key=lambda k: (counts[k], k))
    return best if counts[best] else None


def stopword_purity(texts: Iterable[str], lang: str) -> float:
    """Share of characters in documents whose :func:`stopword_language` is ``lang``."""
    texts = list(texts)
    own = sum(len(t) for t in texts if stopword_language(t) == lang)
    return own / max(1, sum(len(t) for t in texts))


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces, stripped (the form duplicates are compared in)."""
    return re.sub(r"\s+", " ", text).strip()


def _keys(text: str) -> tuple[str, str]:
    norm = normalise(text)
    return (hashlib.sha256(norm.encode("utf-8")).hexdigest(),
            hashlib.sha256(norm[:OPENING_CHARS].encode("utf-8")).hexdigest())


def duplicates(files: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every document that repeats an earlier one (files in the given order, documents in file order).

    Returns rows ``{"file", "index", "kind" ("exact" | "opening"), "first_file", "first_index"}``; a
    document equal to an earlier one is reported as ``exact`` even when its opening also matches.
    """
    seen_exact: dict[str, tuple[str, int]] = {}
    seen_open: dict[str, tuple[str, int]] = {}
    rows = []
    for name, texts in files.items():
        for i, t in enumerate(texts):
            ex, op = _keys(t)
            first = seen_exact.get(ex) or seen_open.get(op)
            if first is not None:
                rows.append({"file": name, "index": i, "kind": "exact" if ex in seen_exact else "opening",
                             "first_file": first[0], "first_index": first[1]})
                continue
            seen_exact[ex], seen_open[op] = (name, i), (name, i)
    return rows


def sample_report() -> list[dict[str, Any]]:
    """Per shipped sample file: language, documents, purity by characters, top other language, duplicates.

    ``duplicates_within`` counts documents repeating an earlier one of the same file,
    ``duplicates_across`` those repeating a document of another file (exactly or by opening).
    """
    from .sample import SAMPLE_SOURCES, documents
    from .sources import sample_specs

    specs = sample_specs()
    texts = {}
    for name in SAMPLE_SOURCES:
        spec = specs[name]
        texts[name] = [d[spec.text_field] for d in documents(name)] if spec.treatment != "restruct" else \
            [" ".join(str(v) for k, v in d.items() if k not in ("origin", "licence", "task")) for d in documents(name)]
    dups = duplicates(texts)
    rows = []
    for name, meta in SAMPLE_SOURCES.items():
        lang = meta["language"]
        row: dict[str, Any] = {"source": name, "language": lang, "docs": len(texts[name])}
        if lang == CODE:
            row.update(purity=None, stopword_purity=None, other_language="", off_language_docs=None)
        else:
            fp = file_purity(texts[name], lang)
            others = [(k, v) for k, v in fp["by_language"].items() if k != lang]
            row.update(purity=fp["purity"], stopword_purity=stopword_purity(texts[name], lang),
                       off_language_docs=fp["off_language_docs"],
                       other_language=f"{others[0][0]} {others[0][1] / fp['chars']:.1%}" if others else "")
        row["duplicates_within"] = sum(1 for d in dups if d["file"] == name and d["first_file"] == name)
        row["duplicates_across"] = sum(1 for d in dups if d["file"] == name and d["first_file"] != name)
        rows.append(row)
    return rows
