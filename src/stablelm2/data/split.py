"""The one train / held-out split of the whole project, decided on the raw document before any treatment.

Every chapter that trains or scores held-out text asks this module, never its own hash: chapter 05's
training stream and per-domain validation (:class:`.mixture.DocumentStream`), chapter 07's bits per
byte (:mod:`stablelm2.evaluation.bpb`), chapter 08's perplexity windows
(:func:`stablelm2.quantization.measure.heldout_windows`).

**The rule.** A record is held out when ``h(record) < t(source)``, where

* ``h`` is the first 8 bytes of the sha256 of the record's *raw* document, read as a fraction of
  2**64: the text field for plain sources, and for sources whose text a treatment builds (Restruct-v1
  task records) the record's canonical JSON (sorted keys) without its ``origin``/``licence`` metadata
  and without empty (None) fields.
  The treatment (templates, filters) never moves a document across the split.
* ``t`` is ``cfg.data.val_fraction``; for a local file it is raised, when needed, just above the
  file's lowest ``h``, so every shipped source holds out at least one document (a source of 20
  records at 5 % would otherwise often hold out none). It depends only on the file's content.

>>> from stablelm2 import config
>>> from stablelm2.data import split, sources
>>> cfg = config.load("smoke")
>>> spec = sources.sample_specs()["wiki_en"]
>>> rec = {"text": "a held-out document?"}
>>> split.is_held_out(rec, spec, cfg) == split.is_held_out(dict(rec), spec, cfg)
True
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .sources import SourceError, StreamSpec

META_FIELDS = ("origin", "licence")
"""Record fields that describe a document rather than being it (ignored by the split)."""


def raw_document(record: dict[str, Any], spec: StreamSpec) -> str:
    """The raw document a record holds, before any treatment (what the split hashes).

    Raises :class:`SourceError` when a plain source's record lacks its text field.
    """
    if spec.treatment == "restruct":
        # fields that are None are absent (a JSON-lines loader fills every column of the file's schema)
        return json.dumps({k: v for k, v in record.items() if k not in META_FIELDS and v is not None},
                          sort_keys=True, ensure_ascii=False)
    if spec.text_field not in record:
        raise SourceError(f"source {spec.name!r}: records have no field {spec.text_field!r} "
                          f"(fields: {', '.join(record)}); fix the source's text_field")
    return str(record[spec.text_field])


def hash_fraction(document: str) -> float:
    """``sha256(document)[:8]`` as a fraction in [0, 1)."""
    return int.from_bytes(hashlib.sha256(document.encode("utf-8")).digest()[:8], "big") / 2**64


@lru_cache(maxsize=64)
def _local_lowest(path: str, mtime_ns: int, text_field: str, restruct: bool) -> tuple[float, float, int]:
    """(lowest, highest, count) of the raw-document hashes of a local JSON-lines file."""
    spec = StreamSpec("local", "", "web", "en", data_files=path, text_field=text_field,
                      treatment="restruct" if restruct else None)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 "
                          "JSON lines") from None
    hs = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}:{i} is not valid JSON ({exc.msg}); write one JSON object per line") from None
        if not isinstance(record, dict):
            raise SourceError(f"{path}:{i} is a JSON {type(record).__name__}, not an object; write one "
                              f"{{\"{text_field}\": ...}} object per line")
        hs.append(hash_fraction(raw_document(record, spec)))
    if not hs:
        raise SourceError(f"{path} holds no records; write one JSON object per line (field {text_field!r})")
    return min(hs), max(hs), len(hs)


def threshold(spec: StreamSpec, cfg: Any) -> float:
    """The held-out threshold of a source: ``data.val_fraction``, raised for a local file to hold out ≥ 1 document.

    Raises :class:`SourceError` when a local file is not UTF-8 JSON lines of objects with the text
    field, has fewer than 2 records, or would be held out whole.
    """
    t = float(cfg.data.val_fraction)
    if spec.hub_id is not None or not spec.data_files or not Path(spec.data_files).is_file():
        return t
    path = Path(spec.data_files)
    lo, hi, n = _local_lowest(str(path.resolve()), path.stat().st_mtime_ns, spec.text_field,
                              spec.treatment == "restruct")
    if n < 2:
        raise SourceError(f"source {spec.name!r} has {n} document(s); it needs at least 2 "
                          "(one to train on, one to hold out)")
    t = max(t, lo + 1e-12)
    if hi < t:
        raise SourceError(f"every document of {spec.name!r} falls in the held-out split; lower data.val_fraction")
    return t


def is_held_out(record: dict[str, Any], spec: StreamSpec, cfg: Any) -> bool:
    """True when the record is held out (never trained on) under the project's one split rule."""
    return hash_fraction(raw_document(record, spec)) < threshold(spec, cfg)


def held_out_records(cfg: Any, name: str) -> list[dict[str, Any]]:
    """The held-out raw records of one shipped sample source, in file order (verified against the manifest).

    Raises:
        SourceError: ``name`` is not a sample source, or as :func:`threshold`.
        SampleError: the source's file is missing or altered (:func:`.sample.verify`).
    """
    from . import sample

    spec = _sample_spec(name)
    return [d for d in sample.documents(name) if is_held_out(d, spec, cfg)]


def _sample_spec(name: str) -> StreamSpec:
    """The spec of a shipped sample source; :class:`SourceError` naming the known ones otherwise."""
    from .sample import SAMPLE_SOURCES
    from .sources import sample_specs

    if name not in SAMPLE_SOURCES:
        raise SourceError(f"unknown sample source {name!r}; use one of: {', '.join(SAMPLE_SOURCES)}")
    return sample_specs()[name]


def model_text(record: dict[str, Any], spec: StreamSpec) -> str:
    """The text a model reads for a record: the Restruct-v1 template applied to task records, else the text field."""
    from . import treatments

    return treatments.restructure(record) if spec.treatment == "restruct" else raw_document(record, spec)


def held_out_texts(cfg: Any, name: str) -> list[str]:
    """The held-out documents of one shipped sample source as the text a model reads (treatment applied).

    Raises:
        SourceError: ``name`` is not a sample source (checked first; the message names the known ones),
            or as :func:`held_out_records`.
        SampleError: as :func:`held_out_records`.
        TreatmentError: a task record no Restruct-v1 template fits (:func:`.treatments.restructure`).
    """
    spec = _sample_spec(name)
    return [model_text(r, spec) for r in held_out_records(cfg, name)]
