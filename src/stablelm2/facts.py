"""The paper's numbers as data, each with its source and confidence.

``facts.yaml`` (beside this module) is the machine-readable copy of ``shared/paper/FACTS.md``.
Notebooks never type a number from the paper: they look it up here, so the provenance travels
with the value. A value the sources do not give is an explicit unknown; asking for it raises
:class:`UnknownFact` instead of inventing one.

>>> from stablelm2 import facts
>>> facts.value("carbon.pue")
1.1
>>> facts.get("carbon.pue").cite()
'1.1 (S0, high)'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

FACTS_FILE = Path(__file__).with_name("facts.yaml")
CONFIDENCE = ("high", "medium-high", "medium", "low", "derived", "unknown")


class UnknownFact(LookupError):
    """The fact exists but the sources do not give its value (or the id is not a fact)."""


@dataclass(frozen=True)
class Fact:
    id: str
    value: Any
    unit: str | None
    approx: bool
    source: tuple[str, ...]
    confidence: str
    section: str
    text: str
    note: str | None = None

    @property
    def known(self) -> bool:
        return self.value is not None

    def cite(self) -> str:
        """Value with its provenance, e.g. ``'~92000 GPU-hours (S0, high)'``."""
        if not self.known:
            return f"unknown ({', '.join(self.source) or 'no source'})"
        unit = f" {self.unit}" if self.unit else ""
        return f"{'~' if self.approx else ''}{self.value}{unit} ({', '.join(self.source)}, {self.confidence})"


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, Fact], dict[str, dict[str, Any]]]:
    data = yaml.safe_load(FACTS_FILE.read_text(encoding="utf-8"))
    sources = data["sources"]
    out: dict[str, Fact] = {}
    for row in data["facts"]:
        fid = row["id"]
        if fid in out:
            raise ValueError(f"{FACTS_FILE}: fact id {fid!r} appears twice")
        src = row.get("source") or []
        src = (src,) if isinstance(src, str) else tuple(src)
        for tag in src:
            if tag not in sources:
                raise ValueError(f"{FACTS_FILE}: fact {fid!r} cites unknown source {tag!r}")
        conf = str(row.get("confidence", "unknown"))
        if conf not in CONFIDENCE:
            raise ValueError(f"{FACTS_FILE}: fact {fid!r} has confidence {conf!r}; allowed: {CONFIDENCE}")
        out[fid] = Fact(
            id=fid,
            value=row.get("value"),
            unit=row.get("unit"),
            approx=bool(row.get("approx", False)),
            source=src,
            confidence=conf,
            section=str(row.get("section", "")),
            text=str(row.get("text", "")),
            note=row.get("note"),
        )
    return out, sources


def all_facts() -> dict[str, Fact]:
    """Every fact, keyed by id."""
    return dict(_load()[0])


def sources() -> dict[str, dict[str, Any]]:
    """The source table (S0 … S10, DERIVED, …) of FACTS.md §0."""
    return dict(_load()[1])


def get(fact_id: str) -> Fact:
    """The :class:`Fact` with this id (known or not)."""
    facts = _load()[0]
    if fact_id not in facts:
        hint = difflib.get_close_matches(fact_id, list(facts), n=3)
        raise UnknownFact(
            f"no fact with id {fact_id!r} in {FACTS_FILE.name}"
            + (f"; did you mean {', '.join(hint)}?" if hint else "")
        )
    return facts[fact_id]


def value(fact_id: str) -> Any:
    """The value of a known fact; :class:`UnknownFact` if the sources do not give it."""
    fact = get(fact_id)
    if not fact.known:
        raise UnknownFact(
            f"the paper's value of {fact_id!r} ({fact.text}) is not known from the sources "
            f"({fact.confidence}); treat it as a parameter or report it as missing"
        )
    return fact.value


def table(prefix: str = "") -> list[dict[str, Any]]:
    """Rows for display: every fact whose id starts with ``prefix``."""
    rows = []
    for f in _load()[0].values():
        if f.id.startswith(prefix):
            rows.append(
                {
                    "id": f.id,
                    "value": f.value if f.known else "unknown",
                    "unit": f.unit or "",
                    "source": ", ".join(f.source),
                    "confidence": f.confidence,
                    "what": f.text,
                }
            )
    return rows
