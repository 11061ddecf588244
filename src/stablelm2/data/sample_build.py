"""Maintainer tool: rebuild the package-derived files of the shipped sample corpus, clean it, and its manifest.

The sample corpus (``stablelm2/data/sample/``) is committed; nothing here runs in the notebooks
(``tests/test_data_sample_build.py`` checks the manifest it writes and its offline parts; chapter 01
measures the result with :mod:`.quality`). This script documents — and re-runs — how the files that
come from installed packages were made. It needs the Debian packages ``manpages-{de,es,fr,it,nl,pt-br}``,
``debian-handbook`` and the Python packages of this project's venv (scipy, sympy, py3langid)::

    apt-get install manpages-de manpages-es manpages-fr manpages-it manpages-nl manpages-pt-br debian-handbook
    python -m stablelm2.data.sample_build            # rewrites sample/*.jsonl + MANIFEST.json
    python -m stablelm2.data.sample_build --clean    # only cleans the committed files (no Debian packages)

Every build ends with :func:`clean`: language identification (py3langid, see :mod:`.quality` for why)
of every multilingual document and paragraph — documents not in the file's language are dropped,
paragraphs in another language removed (the record says so in ``edited``) — and de-duplication
across and within files (exact, or by the opening 300 characters). Each kept record keeps its
``origin`` and ``licence``; the manifest's ``cleaning`` block holds the per-file counts and the
language purity before and after. The build refuses to write a multilingual file below 95 % purity.

The files written by hand for this project (``wiki_en``, ``math_problems_en``, ``instruct_en``) are
only cleaned; :func:`write_manifest` hashes every file, whatever its origin.
"""

from __future__ import annotations

import gzip
import html.parser
import inspect
import json
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from ..files import atomic_write_json, atomic_write_jsonl, sha256_bytes
from . import quality

SAMPLE_DIR = Path(__file__).with_name("sample")
BUDGET_CHARS = 160_000
"""Characters per package-derived source file (keeps the whole corpus at a few MB)."""
DOC_MAX_CHARS = 6_000
"""Longer documents are cut at a paragraph boundary below this length."""

HANDBOOK = Path("/usr/share/doc/debian-handbook/html")
HANDBOOK_LANG = {"en": "en-US", "de": "de-DE", "es": "es-ES", "fr": "fr-FR", "it": "it-IT", "nl": "nl-NL",
                 "pt": "pt-BR"}
MAN_LANG = {"de": "de", "es": "es", "fr": "fr", "it": "it", "nl": "nl", "pt": "pt_BR"}
HANDBOOK_LICENCE = "GPL-2.0-or-later OR CC-BY-SA-3.0"
MANPAGES_LICENCE = "GPL-3.0-or-later (translation); original page under its own free licence"


# ------------------------------------------------------------------------------ helpers


def _cut(text: str, limit: int = DOC_MAX_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind("\n\n", 0, limit)
    return text[: cut if cut > limit // 3 else limit].strip()


def _take(docs: Iterable[dict], budget: int = BUDGET_CHARS) -> list[dict]:
    out, used = [], 0
    for d in docs:
        if len(d["text"]) < 200:
            continue
        out.append(d)
        used += len(d["text"])
        if used >= budget:
            break
    return out


class _HandbookText(html.parser.HTMLParser):
    """Paragraphs, headings, list items and code blocks of one handbook page, as plain text."""

    KEEP = {"p", "h1", "h2", "h3", "h4", "li", "pre", "dt", "dd"}
    NAV = {"previous", "next", "home", "up"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.nav = False
        self.blocks: list[str] = []
        self.buf: list[str] = []
        self.tag = ""
        self.divs: list[bool] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        cls = dict(attrs).get("class") or ""
        if tag == "li" and cls in self.NAV:
            self.nav = True
        if tag == "div":  # the handbook's paragraphs are <div class="para">
            self.divs.append(cls in ("para", "formalpara"))
        if tag in self.KEEP or (tag == "div" and self.divs[-1]):
            if not self.depth:
                self.tag = tag
            self.depth += 1

    def handle_endtag(self, tag):  # noqa: ANN001
        is_para = tag == "div" and bool(self.divs) and self.divs.pop()
        if (tag in self.KEEP or is_para) and self.depth:
            self.depth -= 1
            if not self.depth:
                text = "".join(self.buf)
                text = text if self.tag == "pre" else re.sub(r"\s+", " ", text).strip()
                if text and not self.nav:
                    self.blocks.append(("# " if self.tag in ("h1", "h2") else "") + text)
                self.buf = []
                self.nav = False

    def handle_data(self, data):  # noqa: ANN001
        if self.depth:
            self.buf.append(data)


def handbook(lang: str) -> Iterator[dict]:
    """One record per section page of *The Debian Administrator's Handbook* in ``lang`` (as text, cut).

    Records are ``{"text", "origin", "licence"}``; reads ``/usr/share/doc/debian-handbook/html``
    (``lang`` a key of :data:`HANDBOOK_LANG`).
    """
    folder = HANDBOOK / HANDBOOK_LANG[lang]
    for page in sorted(folder.glob("sect.*.html")):
        parser = _HandbookText()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        text = _cut("\n\n".join(parser.blocks))
        yield {"text": text, "origin": f"debian-handbook 11 ({HANDBOOK_LANG[lang]}/{page.name})",
               "licence": HANDBOOK_LICENCE}


def _reflow(rendered: str) -> str:
    """Join man(1)'s wrapped lines back into paragraphs; keep headings and examples."""
    paras = []
    for block in re.split(r"\n\s*\n", rendered):
        lines = [ln.rstrip() for ln in block.splitlines() if ln.strip()]
        if not lines:
            continue
        if len(lines) == 1 or not lines[0].startswith(" "):
            paras.append("\n".join(ln.strip() for ln in lines))
        else:
            paras.append(" ".join(ln.strip() for ln in lines))
    return "\n\n".join(paras[1:-1] if len(paras) > 2 else paras)  # drop the header and footer lines


def manpages(lang: str) -> Iterator[dict]:
    """One record per translated manual page of ``lang`` (``/usr/share/man/<lang>``), rendered by man(1).

    Records are ``{"text", "origin", "licence"}``; ``lang`` a key of :data:`MAN_LANG`.
    """
    folder = Path("/usr/share/man") / MAN_LANG[lang]
    env = {**os.environ, "LANG": "C.UTF-8", "MANWIDTH": "80"}
    for page in sorted(folder.glob("man[1-8]/*.gz")):
        raw = subprocess.run(["man", "--nj", "--nh", "-E", "UTF-8", "-l", str(page)], capture_output=True,
                             env=env, timeout=30).stdout
        plain = subprocess.run(["col", "-b"], input=raw, capture_output=True, env=env).stdout
        text = _cut(_reflow(plain.decode("utf-8", errors="replace")))
        yield {"text": text, "origin": f"Debian manpages-{MAN_LANG[lang].lower().replace('_', '-')} 4.18.1 "
               f"({page.parent.name}/{page.name})", "licence": MANPAGES_LICENCE}


def multilingual(lang: str) -> list[dict]:
    """Half handbook chapters, half manual pages, interleaved, of one language."""
    hb, mp = _take(handbook(lang), BUDGET_CHARS // 2), _take(manpages(lang), BUDGET_CHARS // 2)
    return [d for pair in zip(hb, mp, strict=False) for d in pair] + hb[len(mp):] + mp[len(hb):]


def python_code() -> list[dict]:
    """Records of 25 CPython standard-library modules of this interpreter (those present), ≤ 12,000 chars."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    names = ["bisect", "heapq", "textwrap", "fractions", "statistics", "shlex", "colorsys", "graphlib",
             "fnmatch", "glob", "difflib", "string", "queue", "sched", "calendar", "numbers", "keyword",
             "reprlib", "tokenize", "base64", "quopri", "uu", "contextlib", "functools", "dataclasses"]
    docs = []
    for n in names:
        path = stdlib / f"{n}.py"
        if path.is_file():
            docs.append({"text": _cut(path.read_text(encoding="utf-8"), 12_000),
                         "origin": f"CPython {sys.version.split()[0]} standard library (Lib/{n}.py)",
                         "licence": "PSF-2.0"})
    return docs


def scipy_docstrings() -> list[dict]:
    """Records of ``scipy.stats``/``scipy.special`` docstrings over 1,500 chars with Notes and References."""
    import scipy.special
    import scipy.stats

    docs = []
    for mod in (scipy.stats, scipy.special):
        for name in sorted(dir(mod)):
            obj = getattr(mod, name)
            doc = inspect.getdoc(obj) or ""
            if "References" in doc and "Notes" in doc and len(doc) > 1500:
                docs.append({"text": _cut(doc), "origin": f"SciPy {__import__('scipy').__version__} docstring "
                             f"({mod.__name__}.{name})", "licence": "BSD-3-Clause"})
    return docs


def sympy_docstrings() -> list[dict]:
    """Records of the top-level ``sympy`` docstrings over 800 characters with doctest examples."""
    import sympy

    docs = []
    for name in sorted(dir(sympy)):
        doc = inspect.getdoc(getattr(sympy, name)) or ""
        if "Examples" in doc and ">>>" in doc and 800 < len(doc):
            docs.append({"text": _cut(doc), "origin": f"SymPy {sympy.__version__} docstring (sympy.{name})",
                         "licence": "BSD-3-Clause"})
    return docs


def pypi_descriptions() -> list[dict]:
    """Project pages of the installed Python packages (their PyPI long descriptions)."""
    docs = []
    for dist in sorted(metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        raw = dist.read_text("METADATA") or ""
        msg = Parser().parsestr(raw)
        body = msg.get_payload() if isinstance(msg.get_payload(), str) else ""
        lic = msg.get("License-Expression") or msg.get("License") or ""
        if not lic or len(lic) > 60:
            lic = next((c.split("::")[-1].strip() for c in msg.get_all("Classifier") or []
                        if c.startswith("License ::")), "")
        if len(body) > 1000 and lic and "proprietary" not in lic.lower():
            docs.append({"text": _cut(body), "origin": f"PyPI project description of {msg['Name']} "  # type: ignore[arg-type]
                         f"{msg['Version']} (METADATA)", "licence": lic})
    return docs


def common_licenses() -> list[dict]:
    """Records of the sections (over 200 chars) of eight licence texts in ``/usr/share/common-licenses``."""
    docs = []
    for name in ["Apache-2.0", "GPL-3", "LGPL-2.1", "MPL-2.0", "Artistic", "GFDL-1.3", "CC0-1.0", "BSD"]:
        text = Path("/usr/share/common-licenses", name).read_text(encoding="utf-8", errors="replace")
        for i, part in enumerate(re.split(r"\n\s*\n(?=\s*\d+\.|\s*[A-Z][A-Z ]{6,}\n)", text)):
            if len(part.strip()) > 200:
                docs.append({"text": _cut(part), "origin": f"Debian base-files /usr/share/common-licenses/{name} "
                             f"(part {i})", "licence": "verbatim copying of the licence text permitted"})
    return docs


BUILDERS = {
    "web_en": pypi_descriptions,
    "academic_en": scipy_docstrings,
    "books_en": lambda: handbook("en"),
    "code": python_code,
    "math_en": sympy_docstrings,
    "law_en": common_licenses,
    **{f"multilingual_{lang}": (lambda lang=lang: multilingual(lang)) for lang in MAN_LANG},  # type: ignore[misc]
}


# ------------------------------------------------------------------------------ cleaning


def _language_clean(doc: dict, lang: str) -> tuple[dict | None, int, int]:
    """(cleaned document or None, paragraphs removed, paragraphs in all) for one multilingual document.

    A document whose own language (py3langid on the whole text) is not ``lang`` is dropped; in the
    others, every paragraph of at least :data:`quality.MIN_LETTERS` letters identified as another
    language is removed (the untranslated English sections of translated pages). The record keeps its
    ``origin`` and ``licence``; an ``edited`` field says what was removed.
    """
    text = doc["text"]
    if quality.language(text) != lang:
        return None, 0, 0
    paras = quality.paragraphs(text)
    keep = [p for p in paras if quality._letters(p) < quality.MIN_LETTERS or quality.language(p) == lang]
    removed = len(paras) - len(keep)
    if not removed:
        return doc, 0, len(paras)
    cleaned = "".join(keep).strip()
    if len(cleaned) < 200 or quality.language(cleaned) != lang:
        return None, removed, len(paras)
    return {**doc, "text": cleaned, "edited": f"{removed} of {len(paras)} paragraphs identified as not '{lang}' "
            f"removed (py3langid {metadata.version('py3langid')})"}, removed, len(paras)


def clean(files: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """The sample made clean: every multilingual file its own language, no document in two places.

    ``files`` maps a sample source (``SAMPLE_SOURCES`` order: English files before the multilingual
    ones) to its records. Multilingual files are language-cleaned (:func:`_language_clean`); then,
    across all files in that order, a document equal to an earlier one — exactly or by its first
    :data:`quality.OPENING_CHARS` normalised characters — is dropped (the first copy stays).
    Returns the cleaned files and per-file statistics before/after (documents, characters, purity).

    Raises:
        ValueError: a multilingual file stays below :data:`quality.PURITY_TARGET` purity after cleaning.
    """
    from .sample import SAMPLE_SOURCES

    out: dict[str, list[dict]] = {}
    stats: dict[str, dict] = {}
    for name, docs in files.items():
        lang = SAMPLE_SOURCES[name]["language"]
        st = {"docs_before": len(docs), "chars_before": sum(len(_doc_text(d)) for d in docs)}
        if docs and lang != quality.CODE and SAMPLE_SOURCES[name]["domain"] != "instruction":
            st["purity_before"] = round(quality.file_purity([_doc_text(d) for d in docs], lang)["purity"], 4)
        if SAMPLE_SOURCES[name]["domain"] == "multilingual":
            kept, removed, dropped = [], 0, 0
            for d in docs:
                c, r, _ = _language_clean(d, lang)
                removed += r
                dropped += c is None
                if c is not None:
                    kept.append(c)
            st.update(dropped_other_language=dropped, paragraphs_removed=removed)
            docs = kept
        out[name] = docs
        stats[name] = st
    dups = quality.duplicates({n: [_doc_text(d) for d in docs] for n, docs in out.items()})
    for name in out:
        gone = {r["index"]: r["kind"] for r in dups if r["file"] == name}
        stats[name].update(dropped_duplicate_exact=sum(k == "exact" for k in gone.values()),
                           dropped_duplicate_opening=sum(k == "opening" for k in gone.values()))
        out[name] = [d for i, d in enumerate(out[name]) if i not in gone]
        lang = SAMPLE_SOURCES[name]["language"]
        stats[name].update(docs_after=len(out[name]), chars_after=sum(len(_doc_text(d)) for d in out[name]))
        if "purity_before" in stats[name] and out[name]:
            stats[name]["purity_after"] = round(
                quality.file_purity([_doc_text(d) for d in out[name]], lang)["purity"], 4)
    bad = {n: st["purity_after"] for n, st in stats.items()
           if SAMPLE_SOURCES[n]["domain"] == "multilingual" and st.get("purity_after", 1.0) < quality.PURITY_TARGET}
    if bad:
        raise ValueError(f"multilingual file(s) below {quality.PURITY_TARGET:.0%} purity after cleaning: {bad}")
    return out, stats


def _doc_text(doc: dict) -> str:
    """The text a record's language and duplicates are judged on (task records: their field values)."""
    if "text" in doc:
        return doc["text"]
    return " ".join(str(v) for k, v in doc.items() if k not in ("origin", "licence", "task"))


# ------------------------------------------------------------------------------ writing


def write_jsonl(path: Path, docs: list[dict]) -> None:
    """Write ``docs`` as JSON lines, atomically (:func:`stablelm2.files.atomic_write_jsonl`)."""
    atomic_write_jsonl(path, docs)


def write_manifest(sample_dir: Path = SAMPLE_DIR, cleaning: dict | None = None) -> dict:
    """Hash every sample file and record its origins and licences (``MANIFEST.json``).

    ``cleaning`` (per-file statistics of :func:`clean`) is stored under ``"cleaning"``; without it the
    manifest's existing block is kept, so re-hashing unchanged files rewrites the same manifest.
    """
    from .sample import SAMPLE_SOURCES

    path = sample_dir / "MANIFEST.json"
    if cleaning is None and path.is_file():
        cleaning = json.loads(path.read_text(encoding="utf-8")).get("cleaning")
    files = {}
    for name, meta in SAMPLE_SOURCES.items():
        fpath = sample_dir / meta["file"]
        data = fpath.read_bytes()
        docs = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        files[meta["file"]] = {
            "source": name, "sha256": sha256_bytes(data), "bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, mtime=0)), "n_docs": len(docs),
            "chars": sum(len(d.get("text", "")) for d in docs),
            "origins": sorted({re.sub(r" \(.*\)$", "", d["origin"]) for d in docs}),
            "licences": sorted({d["licence"] for d in docs}),
        }
    manifest = {"description": "Sample corpus shipped with stablelm2 (see stablelm2/data/sample.py)",
                "files": files}
    if cleaning:
        manifest["cleaning"] = {"tool": f"stablelm2.data.sample_build.clean, py3langid "
                                        f"{metadata.version('py3langid')}", **cleaning} \
            if "tool" not in cleaning else cleaning
    atomic_write_json(path, manifest, indent=1, ensure_ascii=False)
    return manifest


def build(sample_dir: Path = SAMPLE_DIR) -> None:
    """Rebuild every package-derived file from its Debian/Python source, clean the whole sample, re-hash."""
    from .sample import SAMPLE_SOURCES

    sample_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in SAMPLE_SOURCES:
        path = sample_dir / SAMPLE_SOURCES[name]["file"]
        files[name] = _take(BUILDERS[name]()) if name in BUILDERS else _read(path)
    clean_and_write(files, sample_dir)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def clean_committed(sample_dir: Path = SAMPLE_DIR) -> dict[str, dict]:
    """Clean the files as they are (no Debian packages needed): language-clean, de-duplicate, re-hash."""
    from .sample import SAMPLE_SOURCES

    return clean_and_write({n: _read(sample_dir / m["file"]) for n, m in SAMPLE_SOURCES.items()}, sample_dir)


def clean_and_write(files: dict[str, list[dict]], sample_dir: Path) -> dict[str, dict]:
    """:func:`clean` ``files``, write each under ``sample_dir``, re-hash the manifest; returns the statistics.

    Raises ``ValueError`` as :func:`clean`, before anything is written.
    """
    from .sample import SAMPLE_SOURCES

    cleaned, stats = clean(files)
    for name, docs in cleaned.items():
        write_jsonl(sample_dir / SAMPLE_SOURCES[name]["file"], docs)
        st = stats[name]
        print(f"{name}: {st['docs_before']} → {st['docs_after']} docs, {st['chars_before']:,} → "
              f"{st['chars_after']:,} chars, purity {st.get('purity_before', '-')} → {st.get('purity_after', '-')}",
              flush=True)
    write_manifest(sample_dir, {"files": stats})
    return stats


if __name__ == "__main__":
    clean_committed() if "--clean" in sys.argv[1:] else build()
