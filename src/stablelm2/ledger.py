"""The claim ledger: every number we re-derive or measure, checked against the paper's.

A chapter records each check as a :class:`Claim` with one of five statuses:

* ``reproduced`` — measured here at the paper's scale and within tolerance of the paper;
* ``reproduced at reduced scale`` — the paper's finding holds in our small-scale run;
* ``re-derived`` — recomputed from other facts (arithmetic, no experiment) and it agrees;
* ``reported only`` — we quote it but cannot check it here (the reason is required);
* ``conflict`` — our number or finding disagrees (the evidence is required).

>>> from stablelm2.ledger import Ledger
>>> led = Ledger("00_overview")
>>> c = led.derive("carbon.emissions", "30 MWh × 0.385 kg/kWh", fact="carbon.emissions_t",
...                ours=30 * 0.385, rel_tol=0.06)
>>> c.status
're-derived'

The run's ledger is stored in the chapter's ``metrics.json``; :func:`scoreboard` gathers every
chapter's claims of one preset for the report.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import facts as _facts

REPRODUCED = "reproduced"
REDUCED = "reproduced at reduced scale"
DERIVED = "re-derived"
REPORTED = "reported only"
CONFLICT = "conflict"
STATUSES = (REPRODUCED, REDUCED, DERIVED, REPORTED, CONFLICT)


class LedgerError(ValueError):
    """A claim was recorded wrongly (bad status, missing reason or evidence, duplicate id)."""


@dataclass
class Claim:
    id: str
    chapter: str
    what: str
    status: str
    paper: Any = None
    ours: Any = None
    fact: str | None = None
    source: str = ""
    unit: str = ""
    evidence: str = ""
    rel_delta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


@dataclass
class Ledger:
    chapter: str
    claims: list[Claim] = field(default_factory=list)
    on_change: Any = None  # callable invoked after each record (the Run persists the ledger)

    # ---------------------------------------------------------------- recording
    def record(self, claim: Claim) -> Claim:
        if claim.status not in STATUSES:
            raise LedgerError(f"claim {claim.id!r}: status {claim.status!r} is not one of {STATUSES}")
        if claim.status in (REPORTED, CONFLICT) and not claim.evidence.strip():
            raise LedgerError(
                f"claim {claim.id!r} is {claim.status!r} and needs its "
                f"{'reason' if claim.status == REPORTED else 'evidence'} in `evidence`"
            )
        # re-recording the same id replaces it (a notebook cell run twice)
        self.claims = [c for c in self.claims if c.id != claim.id]
        claim.paper = _jsonable(claim.paper)
        claim.ours = _jsonable(claim.ours)
        self.claims.append(claim)
        if self.on_change is not None:
            self.on_change()
        return claim

    def _paper(self, fact: str | None, paper: Any) -> tuple[Any, str, str]:
        if fact is None:
            if paper is None:
                raise LedgerError("give the paper's value as `fact=` (an id in facts.yaml) or `paper=`")
            return paper, "", ""
        f = _facts.get(fact)
        return f.value, f.cite(), f.unit or ""

    def _compare(
        self,
        claim_id: str,
        what: str,
        *,
        ok_status: str,
        fact: str | None,
        paper: Any,
        ours: Any,
        rel_tol: float,
        abs_tol: float,
        unit: str,
        note: str,
    ) -> Claim:
        pval, source, funit = self._paper(fact, paper)
        if pval is None:
            raise LedgerError(
                f"claim {claim_id!r}: the paper's value ({fact}) is unknown; use report_only() "
                "or compare against another fact"
            )
        if isinstance(pval, (bool, str, list, tuple, dict)) or isinstance(ours, (bool, str, list, tuple, dict)):
            match = pval == ours
            rel = None
        else:
            diff = abs(float(ours) - float(pval))
            rel = diff / abs(float(pval)) if pval else None
            match = diff <= max(abs_tol, rel_tol * abs(float(pval)))
        evidence = note
        if not match:
            evidence = (f"ours {ours!r} vs paper {pval!r}"
                        + (f" ({rel:+.1%} off, tolerance {rel_tol:.1%})" if rel is not None else "")
                        + (f"; {note}" if note else ""))
        return self.record(
            Claim(
                id=claim_id, chapter=self.chapter, what=what, status=ok_status if match else CONFLICT,
                paper=pval, ours=ours, fact=fact, source=source, unit=unit or funit, evidence=evidence,
                rel_delta=None if rel is None else round(rel, 6),
            )
        )

    def derive(self, claim_id: str, what: str, *, ours: Any, fact: str | None = None, paper: Any = None,
               rel_tol: float = 0.01, abs_tol: float = 0.0, unit: str = "", note: str = "") -> Claim:
        """Arithmetic on other facts reproduces a paper number (``re-derived``) or not (``conflict``)."""
        return self._compare(claim_id, what, ok_status=DERIVED, fact=fact, paper=paper, ours=ours,
                             rel_tol=rel_tol, abs_tol=abs_tol, unit=unit, note=note)

    def measure(self, claim_id: str, what: str, *, ours: Any, fact: str | None = None, paper: Any = None,
                rel_tol: float = 0.01, abs_tol: float = 0.0, unit: str = "", note: str = "") -> Claim:
        """A number measured here at the paper's scale agrees (``reproduced``) or not (``conflict``)."""
        return self._compare(claim_id, what, ok_status=REPRODUCED, fact=fact, paper=paper, ours=ours,
                             rel_tol=rel_tol, abs_tol=abs_tol, unit=unit, note=note)

    def finding(self, claim_id: str, what: str, *, holds: bool, evidence: str, fact: str | None = None,
                paper: Any = None, ours: Any = None) -> Claim:
        """A qualitative finding checked at reduced scale: it holds, or it is a conflict."""
        pval, source, unit = (paper, "", "") if fact is None else self._paper(fact, paper)
        return self.record(
            Claim(id=claim_id, chapter=self.chapter, what=what, status=REDUCED if holds else CONFLICT,
                  paper=pval, ours=ours, fact=fact, source=source, unit=unit, evidence=evidence)
        )

    def report_only(self, claim_id: str, what: str, *, why: str, fact: str | None = None,
                    paper: Any = None) -> Claim:
        """Quote a paper number we cannot check here, with the reason."""
        pval, source, unit = (paper, "", "") if fact is None else self._paper(fact, paper)
        return self.record(
            Claim(id=claim_id, chapter=self.chapter, what=what, status=REPORTED, paper=pval, fact=fact,
                  source=source, unit=unit, evidence=why)
        )

    def conflict(self, claim_id: str, what: str, *, evidence: str, ours: Any = None,
                 fact: str | None = None, paper: Any = None) -> Claim:
        """Record a disagreement between sources or between the paper and us, with the evidence."""
        pval, source, unit = (paper, "", "") if fact is None else self._paper(fact, paper)
        return self.record(
            Claim(id=claim_id, chapter=self.chapter, what=what, status=CONFLICT, paper=pval, ours=ours,
                  fact=fact, source=source, unit=unit, evidence=evidence)
        )

    # ---------------------------------------------------------------- reading
    def to_list(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.claims]

    def table(self) -> list[dict[str, Any]]:
        return [{k: d[k] for k in ("id", "what", "paper", "ours", "unit", "status", "evidence")}
                for d in self.to_list()]


def scoreboard(preset_dir: Path) -> dict[str, Any]:
    """Gather the claims of every chapter under ``build/<preset>/`` into one scoreboard.

    Returns ``{"claims": [...], "counts": {status: n}, "by_chapter": {chapter: {status: n}}}``.
    """
    claims: list[dict[str, Any]] = []
    for path in sorted(Path(preset_dir).glob("*/metrics.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        claims.extend(data.get("claims", []))
    counts = {s: 0 for s in STATUSES}
    by_chapter: dict[str, dict[str, int]] = {}
    for c in claims:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
        by_chapter.setdefault(c["chapter"], {s: 0 for s in STATUSES})[c["status"]] += 1
    return {"claims": claims, "counts": counts, "by_chapter": by_chapter}
