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
from decimal import Decimal, InvalidOperation
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
    printed: str | None = None
    tolerance: dict[str, Any] | None = None

    @property
    def hedged(self) -> bool:
        """The source hedges the number ('around', 'almost', '~'): it needs a named tolerance."""
        return self.approx

    def interval(self) -> tuple[float, float] | None:
        """The interval the printed value means, as ``(lo, hi)`` (half-open ``[lo, hi)``).

        A printed number means the interval its last digit implies (``11`` → ``(10.5, 11.5)``,
        ``54.5%`` → ``(0.5445, 0.5455)``). The digits are those of ``printed`` in ``facts.yaml`` when
        given (``'92k'``, ``'4.19T'``, ``'54.5%'``), else of the value as stored. A hedged fact
        (``approx: true``) uses its named ``tolerance`` (``{hedge, interval: [lo, hi], reason}``).
        Returns ``None`` for a value that is not a number (compared by equality).

        Raises :class:`UnknownFact` for an unknown value and :class:`ValueError` for a hedged fact
        without a named tolerance (add one to ``facts.yaml`` with its reason).
        """
        if not self.known:
            raise UnknownFact(f"fact {self.id!r} has no known value, so no interval")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            return None
        if self.tolerance is not None:
            lo, hi = self.tolerance["interval"]
            return float(lo), float(hi)
        if self.approx:
            raise ValueError(
                f"fact {self.id!r} is hedged ({self.text!r}) and has no named tolerance; add "
                "`tolerance: {hedge: ..., interval: [lo, hi], reason: ...}` to it in facts.yaml"
            )
        return printed_interval(self.printed if self.printed is not None else self.value)

    @property
    def known(self) -> bool:
        """The sources give the value (``False``: FACTS.md marks it UNCONFIRMED or missing)."""
        return self.value is not None

    def cite(self) -> str:
        """Value with its provenance, e.g. ``'~92000 GPU-hours (S0, high)'``."""
        if not self.known:
            return f"unknown ({', '.join(self.source) or 'no source'})"
        unit = f" {self.unit}" if self.unit else ""
        return f"{'~' if self.approx else ''}{self.value}{unit} ({', '.join(self.source)}, {self.confidence})"


_SUFFIX = {"k": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "%": 1e-2}


def printed_interval(printed: Any) -> tuple[float, float]:
    """The half-open interval ``[lo, hi)`` a printed number means: ± half a unit of its last digit.

    ``printed`` is a number or its printed text with an optional scale suffix (k, M, B, G, T, %)::

        >>> printed_interval(11)
        (10.5, 11.5)
        >>> printed_interval("54.5%")
        (0.5445, 0.5455)
        >>> printed_interval("92k")
        (91500.0, 92500.0)

    Raises :class:`ValueError` when the text is not a number.
    """
    text = str(printed).strip().lstrip("~").replace(",", "")
    if isinstance(printed, float):
        text = repr(printed)
    scale = 1.0
    if text and text[-1] in _SUFFIX:
        scale, text = _SUFFIX[text[-1]], text[:-1].strip()
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{printed!r} is not a printed number (digits with an optional k/M/B/G/T/% suffix)") from None
    exp = d.as_tuple().exponent
    if not isinstance(exp, int):  # 'n' / 'N' / 'F': NaN or infinity
        raise ValueError(f"{printed!r} is not a finite printed number")
    half = Decimal(5).scaleb(exp - 1)
    lo, hi = (d - half) * Decimal(repr(scale)), (d + half) * Decimal(repr(scale))
    return float(lo), float(hi)


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
            printed=None if row.get("printed") is None else str(row["printed"]),
            tolerance=_tolerance(fid, row.get("tolerance")),
        )
    return out, sources


def _tolerance(fid: str, tol: Any) -> dict[str, Any] | None:
    if tol is None:
        return None
    if not isinstance(tol, dict) or not {"hedge", "interval", "reason"} <= set(tol):
        raise ValueError(f"{FACTS_FILE}: fact {fid!r}: a tolerance needs `hedge` (the word printed), "
                         "`interval: [lo, hi]` and `reason`")
    lo, hi = tol["interval"]
    if not float(lo) < float(hi):
        raise ValueError(f"{FACTS_FILE}: fact {fid!r}: tolerance interval [{lo}, {hi}] is empty")
    return {"hedge": str(tol["hedge"]), "interval": [float(lo), float(hi)], "reason": str(tol["reason"])}


def all_facts() -> dict[str, Fact]:
    """Every fact, keyed by id."""
    return dict(_load()[0])


def sources() -> dict[str, dict[str, Any]]:
    """The source table (S0 … S10, DERIVED, …) of FACTS.md §0."""
    return dict(_load()[1])


def get(fact_id: str) -> Fact:
    """The :class:`Fact` with this id (known or not), e.g. ``get("train.adam_eps")``.

    Raises:
        UnknownFact: no fact has this id in ``facts.yaml`` (names the closest ids).
    """
    facts = _load()[0]
    if fact_id not in facts:
        hint = difflib.get_close_matches(fact_id, list(facts), n=3)
        raise UnknownFact(
            f"no fact with id {fact_id!r} in {FACTS_FILE.name}"
            + (f"; did you mean {', '.join(hint)}?" if hint else "")
        )
    return facts[fact_id]


def value(fact_id: str) -> Any:
    """The value of a known fact, in the fact's ``unit`` (``get(fact_id).unit``).

    Raises:
        UnknownFact: no fact has this id, or the sources do not give its value (treat it as a parameter).
    """
    fact = get(fact_id)
    if not fact.known:
        raise UnknownFact(
            f"the paper's value of {fact_id!r} ({fact.text}) is not known from the sources "
            f"({fact.confidence}); treat it as a parameter or report it as missing"
        )
    return fact.value


def table(prefix: str = "") -> list[dict[str, Any]]:
    """Rows for display: every fact whose id starts with ``prefix``, its value as printed (text)."""
    from . import shown

    rows = []
    for f in _load()[0].values():
        if f.id.startswith(prefix):
            rows.append(
                {
                    "id": f.id,
                    "value": shown.printed(f.value, f.printed, f.approx),
                    "unit": f.unit or "",
                    "source": ", ".join(f.source),
                    "confidence": f.confidence,
                    "what": f.text,
                }
            )
    return rows
