"""The claim ledger: what each chapter checked against the paper, and how strongly.

Every claim states its **kind** — what its evidence is — beside its **status**:

=============  ==============================================================  ============================
kind           the evidence                                                    statuses it can have
=============  ==============================================================  ============================
consistency    the paper against itself, or against the raw files its numbers  ``consistent``, ``conflict``
               were typed from (never counted among the findings)
derivation     recomputed from other facts, their printed intervals carried    ``re-derived``,
               through (interval arithmetic, :class:`Interval`)                ``re-derived under a
                                                                               condition``, ``conflict``
measurement    we ran something and measured it                                ``reproduced``,
                                                                               ``reproduced at reduced
                                                                               scale``, ``inconclusive at
                                                                               this scale``, ``conflict``
fit            a free choice made to match (a horizon, a reading)              ``fitted``, ``conflict``
=============  ==============================================================  ============================

plus ``reported only`` (any kind: we quote it but cannot check it here; the reason is required).

The paper's side of a comparison is the interval its printed digits imply (``11`` → [10.5, 11.5));
a hedged fact ('almost 2x') carries a named tolerance in ``facts.yaml``. No tolerance is chosen
where a claim is recorded. A finding of our own small runs is decided by a one-sided test over at
least :data:`MIN_SEEDS` seeds (:meth:`Ledger.finding`); fewer seeds, or no significant effect, is
``inconclusive at this scale`` — never agreement.

>>> from stablelm2.ledger import Ledger
>>> led = Ledger("09_carbon")
>>> c = led.derive("carbon.emissions", "energy × grid intensity", fact="carbon.emissions_t",
...                inputs={"energy": "carbon.energy_mwh", "intensity": "carbon.intensity_kg_per_kwh"},
...                formula=lambda energy, intensity: energy * intensity)
>>> c.status, c.condition
('re-derived under a condition', 'energy (printed 30 MWh) below 29.87 MWh')

The run's ledger is stored in the chapter's ``metrics.json``; :func:`scoreboard` gathers every
chapter's claims of one preset and :func:`write_scoreboard` writes ``build/<preset>/scoreboard.json``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import facts as _facts

REPRODUCED = "reproduced"
REDUCED = "reproduced at reduced scale"
DERIVED = "re-derived"
CONDITIONAL = "re-derived under a condition"
CONSISTENT = "consistent"
FITTED = "fitted"
INCONCLUSIVE = "inconclusive at this scale"
REPORTED = "reported only"
CONFLICT = "conflict"
STATUSES = (REPRODUCED, REDUCED, DERIVED, CONDITIONAL, FITTED, INCONCLUSIVE, CONSISTENT, REPORTED, CONFLICT)

CONSISTENCY = "consistency"
DERIVATION = "derivation"
MEASUREMENT = "measurement"
FIT = "fit"
KINDS = (CONSISTENCY, DERIVATION, MEASUREMENT, FIT)
FINDING_KINDS = (DERIVATION, MEASUREMENT, FIT)  # consistency checks are never findings

MIN_SEEDS = 3  # a finding of our own runs needs at least this many seeds
ALPHA = 0.05  # level of the one-sided test of a finding
CI_LEVEL = 0.95  # confidence level of an effect's interval
POWER = 0.8  # the power at which a finding's detectable effect is stated

_ALLOWED = {
    CONSISTENCY: {CONSISTENT, CONFLICT, REPORTED},
    DERIVATION: {DERIVED, CONDITIONAL, CONFLICT, REPORTED},
    MEASUREMENT: {REPRODUCED, REDUCED, INCONCLUSIVE, CONFLICT, REPORTED},
    FIT: {FITTED, CONFLICT, REPORTED},
}


def _transcribers_arithmetic(fact: str | None) -> bool:
    """True when a fact's only source is FACTS.md's own arithmetic (``DERIVED``), not the paper."""
    return fact is not None and set(_facts.get(fact).source) == {"DERIVED"}


def _quoted(fact: str | None, paper: Any) -> tuple[Any, str, str]:
    """The paper's value, its citation and unit, for a claim that quotes rather than compares."""
    if fact is None:
        return paper, "", ""
    f = _facts.get(fact)
    return f.value, f.cite(), f.unit or ""


class LedgerError(ValueError):
    """A claim was recorded wrongly (bad kind or status, missing reason or evidence, too few values)."""


# ------------------------------------------------------------------------------ intervals


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[lo, hi]`` of reals with the four arithmetic operations.

    A printed number is the half-open interval its digits imply (11 → [10.5, 11.5)): such an
    interval is made with ``hi_open=True`` and then excludes its upper end in ``in`` and
    :meth:`meets`. Arithmetic results are closed (a conservative hull).

    >>> Interval(29.5, 30.5) * Interval(0.3845, 0.3855)
    Interval(lo=11.34275, hi=11.75775, hi_open=False)
    """

    lo: float
    hi: float
    hi_open: bool = False

    def __post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise LedgerError(f"interval [{self.lo}, {self.hi}] is empty (lo > hi)")

    @classmethod
    def point(cls, x: float) -> Interval:
        """The degenerate interval ``[x, x]`` (a computed input taken as exact)."""
        return cls(float(x), float(x))

    @staticmethod
    def of(x: Any) -> Interval:
        """``x`` itself if it is an :class:`Interval`, else :meth:`point` of the number ``x``."""
        return x if isinstance(x, Interval) else Interval.point(x)

    def __add__(self, o: Any) -> Interval:
        o = Interval.of(o)
        return Interval(self.lo + o.lo, self.hi + o.hi)

    __radd__ = __add__

    def __neg__(self) -> Interval:
        return Interval(-self.hi, -self.lo)

    def __sub__(self, o: Any) -> Interval:
        return self + (-Interval.of(o))

    def __rsub__(self, o: Any) -> Interval:
        return Interval.of(o) - self

    def __mul__(self, o: Any) -> Interval:
        o = Interval.of(o)
        p = (self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi)
        return Interval(min(p), max(p))

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Interval:
        o = Interval.of(o)
        if o.lo <= 0 <= o.hi:
            raise LedgerError(f"division by an interval containing zero: [{o.lo}, {o.hi}]")
        return self * Interval(1 / o.hi, 1 / o.lo)

    def __rtruediv__(self, o: Any) -> Interval:
        return Interval.of(o) / self

    def __pow__(self, k: float) -> Interval:
        if self.lo < 0:
            raise LedgerError("powers of intervals are defined here for non-negative intervals only")
        if k < 0 and self.lo == 0:
            raise LedgerError(f"a negative power of an interval that contains zero: [{self.lo}, {self.hi}]")
        return Interval(self.lo ** k, self.hi ** k) if k >= 0 else Interval(self.hi ** k, self.lo ** k)

    def meets(self, o: Interval) -> bool:
        """Whether the two intervals share a point (an open upper end does not count as shared)."""
        below = self.lo < o.hi if o.hi_open else self.lo <= o.hi
        above = o.lo < self.hi if self.hi_open else o.lo <= self.hi
        return below and above

    def __contains__(self, x: float) -> bool:
        return self.lo <= x and (x < self.hi if self.hi_open else x <= self.hi)

    def as_list(self) -> list[float]:
        """``[lo, hi]`` rounded to 10 significant digits (how ``metrics.json`` stores an interval)."""
        return [_num(self.lo), _num(self.hi)]


def _num(x: float) -> float:
    return float(f"{x:.10g}")


def paired_power(d: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the one-sided paired t-test over ``n`` seeds at level ``alpha`` against a true standardised
    effect ``d`` (mean paired difference ÷ its standard deviation): ``P(T > t₁₋α)`` with ``T`` noncentral t,
    ``n − 1`` degrees of freedom, noncentrality ``d·√n`` (scipy.stats.nct).

    Raises:
        LedgerError: fewer than 2 seeds, or ``alpha`` outside (0, 1).
    """
    from scipy import stats as st

    if n < 2 or not 0.0 < alpha < 1.0:
        raise LedgerError(f"power needs n ≥ 2 seeds and 0 < alpha < 1 (got n = {n}, alpha = {alpha})")
    crit = float(st.t.ppf(1.0 - alpha, n - 1))
    return float(st.nct.sf(crit, n - 1, d * math.sqrt(n)))


def detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean paired difference (in the metric's units) that the one-sided paired t-test over
    ``n`` seeds detects with probability ``power`` at level ``alpha``, when paired differences spread with
    standard deviation ``sd`` (:func:`paired_power` solved for the effect with scipy's ``brentq``).

    Raises:
        LedgerError: ``sd`` not positive and finite, fewer than 2 seeds, or ``power`` not in (alpha, 1).
    """
    from scipy.optimize import brentq

    if not (math.isfinite(sd) and sd > 0) or not alpha < power < 1.0:
        raise LedgerError(f"a detectable effect needs sd > 0 and alpha < power < 1 (got sd = {sd}, power = {power})")
    hi = 1.0
    while paired_power(hi, n, alpha) < power:
        hi *= 2.0
    return float(brentq(lambda d: paired_power(d, n, alpha) - power, 0.0, hi, xtol=1e-10)) * sd


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER,
                 max_seeds: int = 10_000) -> int | None:
    """How many paired seeds the one-sided paired t-test needs to detect a true mean difference ``effect``
    (metric units, any sign: its size counts) with probability ``power`` at level ``alpha``, when paired
    differences spread with standard deviation ``sd``; ``None`` when more than ``max_seeds`` (or ``effect`` is 0).

    Raises:
        LedgerError: ``sd`` not positive and finite.
    """
    if not (math.isfinite(sd) and sd > 0):
        raise LedgerError(f"seeds_needed needs sd > 0 (got {sd})")
    d = abs(effect) / sd
    if d == 0.0:
        return None
    if paired_power(d, max_seeds, alpha) < power:
        return None
    lo, hi = 1, max_seeds  # power grows with n: bisect for the smallest n in (lo, hi] that has enough
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if paired_power(d, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return max(hi, 2)


def _g(x: Any, unit: str = "", digits: int = 4) -> str:
    from .shown import number

    return number(x, unit, sig=digits)


def _iv(iv: Interval, close: str = "]") -> str:
    """An interval with enough digits that its two ends differ: [10.5, 11.5), [1,644,515,327.5, …)."""
    width, top = iv.hi - iv.lo, max(abs(iv.lo), abs(iv.hi))
    sig = 4 if width <= 0 or top == 0 else max(4, math.floor(math.log10(top)) - math.floor(math.log10(width)) + 2)
    return f"[{_g(iv.lo, digits=sig)}, {_g(iv.hi, digits=sig)}{close}"


# ------------------------------------------------------------------------------ the claim


@dataclass
class Claim:
    id: str
    chapter: str
    what: str
    kind: str
    status: str
    paper: Any = None
    ours: Any = None
    fact: str | None = None
    source: str = ""
    unit: str = ""
    evidence: str = ""
    paper_interval: list[float] | None = None
    tolerance: dict[str, Any] | None = None
    ours_interval: list[float] | None = None
    condition: str | None = None
    stats: dict[str, Any] | None = None
    fit: dict[str, Any] | None = None
    setting: str | None = None  # a measurement of one fact under several named settings (e.g. two runtimes)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-ready dict (how ``metrics.json`` stores the claim)."""
        return asdict(self)

    @property
    def is_finding(self) -> bool:
        """Whether the claim is a finding of our own runs (a kind in :data:`FINDING_KINDS`), not a paper number."""
        return self.kind in FINDING_KINDS


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


@dataclass
class _Paper:
    value: Any
    interval: Interval | None
    tolerance: dict[str, Any] | None
    source: str
    unit: str


@dataclass
class Ledger:
    chapter: str
    claims: list[Claim] = field(default_factory=list)
    references: list[dict[str, str]] = field(default_factory=list)
    on_change: Any = None  # callable invoked after each record (the Run persists the ledger)

    # ---------------------------------------------------------------- recording
    def record(self, claim: Claim) -> Claim:
        """Add ``claim`` (replacing one with the same id: a notebook cell run twice) and tell ``on_change``.

        Raises:
            LedgerError: the kind is unknown, the status is not allowed for the kind, a reported,
                conflicting or inconclusive claim has no ``evidence``, or its fact (and setting) is
                already recorded under another id.
        """
        if claim.kind not in KINDS:
            raise LedgerError(f"claim {claim.id!r}: kind {claim.kind!r} is not one of {KINDS}")
        if claim.status not in _ALLOWED[claim.kind]:
            raise LedgerError(f"claim {claim.id!r}: a {claim.kind} cannot have status {claim.status!r}; "
                              f"allowed: {sorted(_ALLOWED[claim.kind])}")
        if claim.status in (REPORTED, CONFLICT, INCONCLUSIVE) and not claim.evidence.strip():
            raise LedgerError(
                f"claim {claim.id!r} is {claim.status!r} and needs its "
                f"{'reason' if claim.status == REPORTED else 'evidence'} in `evidence`"
            )
        others = [c for c in self.claims if c.fact and (c.fact, c.setting) == (claim.fact, claim.setting)
                  and c.id != claim.id]
        if others:
            raise LedgerError(f"claim {claim.id!r}: fact {claim.fact!r} is already recorded as claim "
                              f"{others[0].id!r}; a fact is recorded once (use refer() elsewhere, or name "
                              "the `setting` of a measurement made under several)")
        # re-recording the same id replaces it (a notebook cell run twice)
        self.claims = [c for c in self.claims if c.id != claim.id]
        claim.paper = _jsonable(claim.paper)
        claim.ours = _jsonable(claim.ours)
        self.claims.append(claim)
        if self.on_change is not None:
            self.on_change()
        return claim

    def refer(self, claim_id: str, chapter: str, what: str) -> str:
        """Point to a claim another chapter owns instead of recording it again; returns a sentence.

        The reference is kept in :attr:`references` (stored beside the claims, never counted).
        """
        self.references = [r for r in self.references if r["claim"] != claim_id]
        self.references.append({"claim": claim_id, "chapter": chapter, "what": what})
        if self.on_change is not None:
            self.on_change()
        return f"{what}: recorded once, as claim {claim_id} of chapter {chapter}."

    def _paper(self, claim_id: str, fact: str | None, paper: Any) -> _Paper:
        if fact is None:
            if paper is None:
                raise LedgerError(f"claim {claim_id!r}: give the paper's value as `fact=` (an id in facts.yaml) "
                                  "or `paper=`")
            num = isinstance(paper, (int, float)) and not isinstance(paper, bool)
            return _Paper(paper, Interval(*_facts.printed_interval(paper), hi_open=True) if num else None,
                          None, "", "")
        f = _facts.get(fact)
        if not f.known:
            raise LedgerError(
                f"claim {claim_id!r}: the paper's value ({fact}) is unknown; use report_only() "
                "or compare against another fact"
            )
        try:
            iv = f.interval()
        except ValueError as e:
            raise LedgerError(f"claim {claim_id!r}: {e}") from None
        return _Paper(f.value, None if iv is None else Interval(*iv, hi_open=not f.tolerance), f.tolerance,
                      f.cite(), f.unit or "")

    def _claim(self, claim_id: str, what: str, kind: str, status: str, p: _Paper, fact: str | None,
               **kw: Any) -> Claim:
        return Claim(id=claim_id, chapter=self.chapter, what=what, kind=kind, status=status, paper=p.value,
                     fact=fact, source=p.source, unit=kw.pop("unit", "") or p.unit,
                     paper_interval=None if p.interval is None else p.interval.as_list(),
                     tolerance=p.tolerance, **kw)

    @staticmethod
    def _paper_words(p: _Paper) -> str:
        if p.interval is None:
            return repr(p.value)
        if p.tolerance:
            return (f"the paper's {p.tolerance['hedge']!r} {_g(p.value, p.unit)} "
                    f"({_iv(p.interval)}, {p.tolerance['reason']})")
        return f"the paper's printed {_g(p.value, p.unit)} ({_iv(p.interval, ')')})"

    def _point(self, claim_id: str, what: str, kind: str, ok: str, *, fact: str | None, paper: Any, ours: Any,
               ours_interval: Sequence[float] | None, unit: str, note: str, setting: str | None = None) -> Claim:
        p = self._paper(claim_id, fact, paper)
        if p.interval is None or isinstance(ours, (bool, str, list, tuple, dict)):
            match = p.value == ours
            oi = None
            said = f"ours {ours!r} {'equals' if match else 'differs from'} the paper's {p.value!r}"
        else:
            oi = Interval(*ours_interval) if ours_interval is not None else Interval.point(float(ours))  # type: ignore[arg-type]  # (lo, hi)
            match = oi.meets(p.interval)
            ours_w = _g(ours, unit or p.unit) + (f" ({_iv(oi)})" if ours_interval else "")
            said = f"ours {ours_w} {'lies in' if match else 'lies outside'} {self._paper_words(p)}"
        evidence = said + (f"; {note}" if note else "")
        return self.record(self._claim(claim_id, what, kind, ok if match else CONFLICT, p, fact, ours=ours,
                                       unit=unit, evidence=evidence, setting=setting,
                                       ours_interval=None if oi is None else oi.as_list()))

    def check(self, claim_id: str, what: str, *, fact: str | None = None, paper: Any = None, ours: Any = None,
              inputs: Mapping[str, Any] | None = None, formula: Callable[..., Any] | None = None,
              unit: str = "", note: str = "") -> Claim:
        """A consistency check: the paper against itself or against the raw file its number came from.

        ``ours`` (recomputed from the raw files), or ``inputs`` + ``formula`` as in :meth:`derive`
        (recomputed from the paper's other printed numbers, their intervals carried through).
        ``consistent`` when it meets the fact's printed interval, else ``conflict``. Kind
        ``consistency``: never counted as a finding.

        Raises:
            LedgerError: neither ``fact`` nor ``paper`` is given, ``fact`` is not known from the sources,
                or (with ``inputs``) ``formula`` is missing or the paper's value is not a number.
            UnknownFact: ``fact`` (or a fact named in ``inputs``) is not in ``facts.yaml``.
        """
        return self._derived(claim_id, what, CONSISTENCY, fact=fact, paper=paper, inputs=inputs, formula=formula,
                             ours=ours, unit=unit, note=note)

    def measure(self, claim_id: str, what: str, *, ours: Any, fact: str | None = None, paper: Any = None,
                ours_interval: Sequence[float] | None = None, setting: str | None = None, unit: str = "",
                note: str = "") -> Claim:
        """A number measured here at the paper's scale: ``reproduced`` when ``ours`` (or its interval
        ``ours_interval``) meets the paper's interval, else ``conflict``. Kind ``measurement``.

        ``setting`` names the condition when one fact is measured under several (e.g. two runtimes);
        each (fact, setting) is recorded once. A target fact whose only source is FACTS.md's own
        arithmetic (``DERIVED``) makes the claim a ``consistency`` check, as in :meth:`derive`.

        Raises:
            LedgerError: neither ``fact`` nor ``paper`` is given, ``fact`` is not known from the sources,
                or the (fact, setting) is already recorded.
            UnknownFact: ``fact`` is not in ``facts.yaml``.
        """
        if _transcribers_arithmetic(fact):
            return self._point(claim_id, what, CONSISTENCY, CONSISTENT, fact=fact, paper=paper, ours=ours,
                               ours_interval=ours_interval, unit=unit, note=note, setting=setting)
        return self._point(claim_id, what, MEASUREMENT, REPRODUCED, fact=fact, paper=paper, ours=ours,
                           ours_interval=ours_interval, unit=unit, note=note, setting=setting)

    def derive(self, claim_id: str, what: str, *, fact: str | None = None, paper: Any = None,
               inputs: Mapping[str, Any] | None = None, formula: Callable[..., Any] | None = None,
               ours: Any = None, unit: str = "", note: str = "") -> Claim:
        """Recompute a paper number from other facts, carrying their printed intervals through.

        Either ``inputs`` (name → a fact id, or a number taken as exact, or an :class:`Interval`) and
        ``formula`` (a function of those names built from ``+ − × ÷`` and powers), or ``ours`` alone
        (a value our code computed exactly from facts, e.g. a layout solver's batch).

        The verdict (kind ``derivation``):

        * ``re-derived`` — the value from the inputs as printed lies in the paper's interval;
        * ``re-derived under a condition`` — it does not, but the intervals meet: the condition says
          which input must lie where (e.g. 'energy below 29.87 MWh');
        * ``conflict`` — the intervals do not meet.

        A target fact whose only source is FACTS.md's own arithmetic (``DERIVED``) makes the claim a
        ``consistency`` check: our arithmetic against the transcriber's, not against the paper.

        Raises:
            LedgerError: neither ``fact`` nor ``paper`` is given, ``fact`` is not known from the sources,
                or (with ``inputs``) ``formula`` is missing or the paper's value is not a number.
            UnknownFact: ``fact`` (or a fact named in ``inputs``) is not in ``facts.yaml``.
        """
        kind = CONSISTENCY if _transcribers_arithmetic(fact) else DERIVATION
        return self._derived(claim_id, what, kind, fact=fact, paper=paper, inputs=inputs, formula=formula,
                             ours=ours, unit=unit, note=note)

    def _derived(self, claim_id: str, what: str, kind: str, *, fact: str | None, paper: Any,
                 inputs: Mapping[str, Any] | None, formula: Callable[..., Any] | None, ours: Any,
                 unit: str, note: str) -> Claim:
        p = self._paper(claim_id, fact, paper)
        ok = CONSISTENT if kind == CONSISTENCY else DERIVED
        if (inputs is None) != (formula is None) or (inputs is None) == (ours is None):
            raise LedgerError(f"claim {claim_id!r}: give either `inputs=` with `formula=`, or `ours=`")
        if inputs is None or formula is None:  # (both or neither: checked above)
            return self._point(claim_id, what, kind, ok, fact=fact, paper=paper, ours=ours, ours_interval=None,
                               unit=unit, note=note)
        if p.interval is None:
            raise LedgerError(f"claim {claim_id!r}: the paper's value {p.value!r} is not a number; use check()")
        nominal, ivs, words, units = {}, {}, {}, {}
        for name, src in inputs.items():
            if isinstance(src, str):
                fi = _facts.get(src)
                try:
                    lo_hi = fi.interval()
                except (ValueError, _facts.UnknownFact) as e:
                    raise LedgerError(f"claim {claim_id!r}: input {name!r}: {e}") from None
                if lo_hi is None:
                    raise LedgerError(f"claim {claim_id!r}: input {name!r}: fact {src!r} is not a number "
                                      f"({fi.value!r}); give a numeric fact or a value")
                nominal[name], ivs[name] = float(fi.value), Interval(*lo_hi)
                words[name] = f"{'~' if fi.approx else 'printed '}{_g(fi.value, fi.unit or '')}"
                units[name] = fi.unit or ""
            elif isinstance(src, Interval):
                nominal[name], ivs[name], words[name] = (src.lo + src.hi) / 2, src, f"[{_g(src.lo)}, {_g(src.hi)}]"
            else:
                nominal[name], ivs[name], words[name] = float(src), Interval.point(float(src)), _g(src)
        value = float(formula(**nominal))
        rng = Interval.of(formula(**ivs))
        condition = None
        if value in p.interval:
            status = ok
            said = f"{_g(value, unit or p.unit)} (inputs as printed; range {_iv(rng)}) lies in"
        elif rng.meets(p.interval):
            status = CONDITIONAL if kind == DERIVATION else CONSISTENT
            condition = _condition(formula, nominal, ivs, words, units, p.interval, value) or (
                f"the inputs lie toward the ends of their printed intervals (range {_iv(rng)})")
            said = f"{_g(value, unit or p.unit)} (inputs as printed) lies outside, but the range {_iv(rng)} meets"
        else:
            status = CONFLICT
            said = f"{_g(value, unit or p.unit)} (range {_iv(rng)}) does not meet"
        evidence = f"{said} {self._paper_words(p)}"
        if condition:
            evidence += f": consistent only if {condition}"
        evidence += f"; inputs: {', '.join(f'{k} = {w}' for k, w in words.items())}" + (f"; {note}" if note else "")
        return self.record(self._claim(claim_id, what, kind, status, p, fact, ours=_num(value), unit=unit,
                                       evidence=evidence, ours_interval=rng.as_list(), condition=condition))

    def finding(self, claim_id: str, what: str, *, a: Sequence[float], b: Sequence[float], expect: str,
                names: tuple[str, str] = ("a", "b"), seeds: Sequence[int] | None = None,
                metric: str = "value", fact: str | None = None, paper: Any = None, paired: bool = True,
                alpha: float = ALPHA, note: str = "", cannot_decide: str = "") -> Claim:
        """A finding of our own runs, decided by a one-sided test over seeds (kind ``measurement``).

        ``a``, ``b``: the metric per seed for the two arms (same seeds, same order when ``paired``).
        ``expect``: the paper's direction, ``"a < b"`` or ``"a > b"``. The effect is the mean of
        ``b − a`` (or ``a − b``) oriented so that positive agrees with the paper, with its
        :data:`CI_LEVEL` confidence interval; the test is scipy's one-sided paired (or Welch) t-test.

        * ``reproduced at reduced scale`` — at least :data:`MIN_SEEDS` seeds and p < ``alpha``;
        * ``conflict`` — the opposite direction is significant at ``alpha``;
        * ``inconclusive at this scale`` — fewer seeds, a tie, no spread across seeds (a metric the seed
          does not move is not tested), or no significant difference;
        * ``cannot_decide``: a reason, computed by the caller from its runs, why this comparison cannot stand for
          the paper's finding at this scale (e.g. the baseline whose loss is the target never left the unigram
          plateau). When given, the status is ``inconclusive at this scale`` whatever the test says; the effect,
          CI and p-value are still computed and shown beside the reason.

        Raises:
            LedgerError: ``expect`` is neither direction, an arm is empty or the paired arms differ in
                length, or the paper's value is given badly (see :meth:`check`).
        """
        from scipy import stats as st

        if expect not in ("a < b", "a > b"):
            raise LedgerError(f"claim {claim_id!r}: expect must be 'a < b' or 'a > b', not {expect!r}")
        a, b = [float(x) for x in a], [float(x) for x in b]
        if not a or not b or (paired and len(a) != len(b)):
            raise LedgerError(f"claim {claim_id!r}: need one value per seed in both arms "
                              f"(got {len(a)} and {len(b)}{', paired' if paired else ''})")
        seeds = list(seeds) if seeds is not None else list(range(len(a)))
        pv = None if fact is None and paper is None else self._paper(claim_id, fact, paper)
        pv = pv or _Paper(None, None, None, "", "")
        hi, lo = (b, a) if expect == "a < b" else (a, b)  # the paper expects mean(hi) > mean(lo)
        diffs = [x - y for x, y in zip(hi, lo, strict=True)] if paired else []
        effect = (sum(diffs) / len(diffs)) if paired else (sum(hi) / len(hi) - sum(lo) / len(lo))
        n = min(len(a), len(b))
        test = ("one-sided paired t-test (scipy.stats.ttest_rel)" if paired
                else "one-sided Welch t-test (scipy.stats.ttest_ind, equal_var=False)")
        stats: dict[str, Any] = {"n_seeds": n, "seeds": seeds, names[0]: a, names[1]: b, "metric": metric,
                                 "expect": f"{names[0]} {expect[2]} {names[1]}",
                                 "effect": _num(effect), "ci": None, "ci_level": CI_LEVEL, "test": test,
                                 "alpha": alpha, "p_value": None}
        tie = all(x == y for x, y in zip(hi, lo, strict=True)) if paired else (effect == 0)
        pretty = stats["expect"]
        if n < MIN_SEEDS:
            status = INCONCLUSIVE
            said = (f"{n} seed{'s' if n != 1 else ''}: a test needs at least {MIN_SEEDS}, so this scale cannot "
                    f"decide whether {pretty} ({metric} {names[0]} {_fmt_list(a)}, {names[1]} {_fmt_list(b)}"
                    f"{', a tie' if tie else ''})")
        elif tie:
            status = INCONCLUSIVE
            said = f"every seed ties ({metric} {_fmt_list(a)}): a tie is not agreement that {pretty}"
        elif (paired and len(set(diffs)) == 1) or (not paired and len(set(hi)) == 1 and len(set(lo)) == 1):
            status = INCONCLUSIVE
            said = (f"{n} seeds give the same {'difference' if paired else 'values'} every time ({metric} "
                    f"{names[0]} {_fmt_list(a)}, {names[1]} {_fmt_list(b)}): with no spread across seeds the "
                    f"metric does not depend on the seed, so a t-test cannot decide whether {pretty}")
        else:
            run: Callable[[str], Any] = (lambda alt: st.ttest_rel(hi, lo, alternative=alt)) if paired else (
                lambda alt: st.ttest_ind(hi, lo, equal_var=False, alternative=alt))
            p_yes, p_no = float(run("greater").pvalue), float(run("less").pvalue)
            ci = run("two-sided").confidence_interval(CI_LEVEL)
            stats.update(p_value=_num(p_yes), p_value_opposite=_num(p_no), ci=[_num(ci.low), _num(ci.high)])
            if paired:  # what this design can resolve, from the spread of the paired differences it saw
                sd = statistics.stdev(diffs)
                need = seeds_needed(effect, sd, alpha)
                stats.update(sd_paired=_num(sd), power=POWER, detectable_effect=_num(detectable_effect(sd, n, alpha)),
                             seeds_needed=need)
            if p_yes < alpha:
                status = REDUCED
            elif p_no < alpha:
                status = CONFLICT
            else:
                status = INCONCLUSIVE
            verdict = {REDUCED: f"{pretty} at level {alpha}", CONFLICT: f"the opposite of '{pretty}' at level {alpha}",
                       INCONCLUSIVE: f"no significant difference at level {alpha}: this scale cannot decide "
                                     f"whether {pretty}"}[status]
            said = (f"{n} seeds, effect {_g(effect)} ({CI_LEVEL:.0%} CI [{_g(ci.low)}, {_g(ci.high)}]; positive "
                    f"agrees with the paper), {test} p = {p_yes:.3g}: {verdict}")
            if paired and status == INCONCLUSIVE:
                need = stats["seeds_needed"]
                said += (f" (with this spread, SD {_g(stats['sd_paired'])} of the paired differences, {n} seeds detect "
                         f"an effect of {_g(stats['detectable_effect'])} {POWER:.0%} of the time; an effect as large "
                         "as the one seen would need "
                         + (f"{need} seeds)" if need is not None else "more than 10,000 seeds)"))
        if cannot_decide:
            stats["cannot_decide"] = cannot_decide
            if status != INCONCLUSIVE:
                said += f"; not counted ({'agreement' if status == REDUCED else 'a conflict'}): {cannot_decide}"
                status = INCONCLUSIVE
            else:
                said += f"; {cannot_decide}"
        return self.record(Claim(id=claim_id, chapter=self.chapter, what=what, kind=MEASUREMENT, status=status,
                                 paper=pv.value, ours=_num(effect), fact=fact, source=pv.source, unit=pv.unit,
                                 evidence=said + (f"; {note}" if note else ""), stats=stats,
                                 ours_interval=stats["ci"]))

    def fit(self, claim_id: str, what: str, *, candidates: Mapping[str, float], fact: str | None = None,
            paper: Any = None, unit: str = "", note: str = "") -> Claim:
        """A value chosen to match the paper: record how many readings were tried and how close they came.

        ``candidates``: reading → the value it gives. The best is the one closest to the paper's value
        among those inside its interval (else among all);
        ``fitted`` when it lies in the paper's interval, else ``conflict`` (no tried reading reproduces
        it). Kind ``fit``, with the number tried, the best and runner-up readings and residuals.

        Raises:
            LedgerError: the paper's value is not a number, or ``candidates`` is empty.
        """
        p = self._paper(claim_id, fact, paper)
        if p.interval is None or not candidates:
            raise LedgerError(f"claim {claim_id!r}: a fit needs a numeric paper value and at least one candidate")
        target, interval = float(p.value), p.interval
        ranked = sorted(candidates.items(),
                        key=lambda kv: (float(kv[1]) not in interval, abs(float(kv[1]) - target)))
        (best, bv), runner = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        inside = [k for k, v in ranked if float(v) in p.interval]
        info = {"n_candidates": len(ranked), "chosen": best, "best": _num(float(bv)),
                "best_residual": _num(float(bv) - target),
                "runner_up": None if runner is None else runner[0],
                "runner_up_value": None if runner is None else _num(float(runner[1])),
                "runner_up_residual": None if runner is None else _num(float(runner[1]) - target),
                "n_in_interval": len(inside)}
        status = FITTED if inside else CONFLICT
        said = (f"best of {len(ranked)} readings tried: {best} gives {_g(float(bv), unit or p.unit)} "
                f"(residual {float(bv) - target:+.4g})"
                + (f"; runner-up {runner[0]} gives {_g(float(runner[1]))} (residual {float(runner[1]) - target:+.4g})"
                   if runner else "")
                + f"; {len(inside)} of {len(ranked)} lie in {self._paper_words(p)}"
                + ("" if inside else ": no tried reading reproduces it"))
        return self.record(self._claim(claim_id, what, FIT, status, p, fact, ours=_num(float(bv)), unit=unit,
                                       evidence=said + (f"; {note}" if note else ""), fit=info))

    def report_only(self, claim_id: str, what: str, *, why: str, fact: str | None = None,
                    paper: Any = None, kind: str = MEASUREMENT) -> Claim:
        """Quote a paper number we cannot check here, with the reason; ``kind`` is the check it would need."""
        pv, source, unit = _quoted(fact, paper)
        return self.record(Claim(id=claim_id, chapter=self.chapter, what=what, kind=kind, status=REPORTED,
                                 paper=pv, fact=fact, source=source, unit=unit, evidence=why))

    def conflict(self, claim_id: str, what: str, *, evidence: str, kind: str, ours: Any = None,
                 fact: str | None = None, paper: Any = None) -> Claim:
        """Record a disagreement whose test is not a comparison of numbers (e.g. two configs' flags).

        The caller decides that the sources disagree from the values it shows; the evidence must state them.
        """
        pv, source, unit = _quoted(fact, paper)
        return self.record(Claim(id=claim_id, chapter=self.chapter, what=what, kind=kind, status=CONFLICT,
                                 paper=pv, ours=ours, fact=fact, source=source, unit=unit, evidence=evidence))

    # ---------------------------------------------------------------- reading
    def to_list(self) -> list[dict[str, Any]]:
        """Every claim as :meth:`Claim.to_dict`, in the order recorded."""
        return [c.to_dict() for c in self.claims]

    def table(self) -> list[dict[str, Any]]:
        """One row a claim for display: id, kind, what, paper, ours, unit, status, evidence."""
        return [{k: d[k] for k in ("id", "kind", "what", "paper", "ours", "unit", "status", "evidence")}
                for d in self.to_list()]


def _fmt_list(xs: Sequence[float]) -> str:
    return "[" + ", ".join(_g(x) for x in xs) + "]"


def _condition(formula: Callable[..., Any], nominal: dict[str, float], ivs: dict[str, Interval],
               words: dict[str, str], units: dict[str, str], target: Interval, value: float) -> str | None:
    """Which single input, moved within its printed interval (the others as printed), brings the result
    into ``target``, and where it must lie: e.g. 'energy (printed 30 MWh) below 29.87 MWh'. Bisection on
    the (monotone) formula; ``None`` when no single input can."""
    want_below = value > target.hi
    bound = target.hi if want_below else target.lo
    parts = []
    for name, iv in ivs.items():
        if iv.lo == iv.hi:
            continue

        def g(x: float, name: str = name) -> float:
            return float(formula(**{**nominal, name: x}))

        def good(x: float) -> bool:
            return g(x) <= bound if want_below else g(x) >= bound

        ends = [e for e in (iv.lo, iv.hi) if good(e)]
        if not ends:
            continue
        end, start = ends[0], nominal[name]
        for _ in range(100):
            mid = (end + start) / 2
            end, start = (mid, start) if good(mid) else (end, mid)
        side = "below" if end < nominal[name] else "above"
        parts.append(f"{name} ({words[name]}) {side} {_g(float(f'{end:.4g}'), units.get(name, ''))}")
    return " or ".join(parts) or None


def outcomes_markdown(claims: Sequence[Claim]) -> str:
    """A chapter's outcomes as markdown bullets, each written from its claim (status, kind, evidence).

    For a notebook's closing cell: the sentences change when the numbers do, since the evidence is
    computed where each claim is recorded.
    """
    counts = Counter(c.status for c in claims)
    head = (f"{len(claims)} claim{'s' if len(claims) != 1 else ''}: "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: STATUSES.index(kv[0]))))
    lines = [f"- **{c.what}** — *{c.status}* ({c.kind}): {c.evidence}" for c in claims]
    return "\n".join([head + ("." if claims else ""), "", *lines])


# ------------------------------------------------------------------------------ the scoreboard


def scoreboard(preset_dir: Path) -> dict[str, Any]:
    """Gather the claims of every chapter under ``build/<preset>/`` into one scoreboard.

    Returns ``{"claims", "findings", "consistency", "counts", "counts_by_kind", "by_chapter",
    "duplicate_facts", "references"}``: ``findings`` are the claims of kind derivation, measurement
    or fit; ``consistency`` the paper-against-itself checks (never counted as findings);
    ``counts_by_kind`` ``{kind: {status: n}}``; ``duplicate_facts`` ``{fact: [claim ids]}`` for any
    fact recorded by more than one claim (should be empty).
    """
    claims: list[dict[str, Any]] = []
    references: list[dict[str, str]] = []
    for path in sorted(Path(preset_dir).glob("*/metrics.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        claims.extend(data.get("claims", []))
        references.extend(data.get("references", []))
    counts = {s: 0 for s in STATUSES}
    by_kind = {k: {s: 0 for s in STATUSES} for k in KINDS}
    by_chapter: dict[str, dict[str, int]] = {}
    for c in claims:
        c.setdefault("kind", MEASUREMENT)
        counts[c["status"]] = counts.get(c["status"], 0) + 1
        by_kind.setdefault(c["kind"], {s: 0 for s in STATUSES})[c["status"]] += 1
        by_chapter.setdefault(c["chapter"], {s: 0 for s in STATUSES})[c["status"]] += 1
    fact_claims: dict[str, list[str]] = {}
    for c in claims:
        if c.get("fact"):
            key = c["fact"] + (f" ({c['setting']})" if c.get("setting") else "")
            fact_claims.setdefault(key, []).append(c["id"])
    return {
        "claims": claims,
        "findings": [c for c in claims if c["kind"] in FINDING_KINDS],
        "consistency": [c for c in claims if c["kind"] == CONSISTENCY],
        "counts": counts,
        "counts_by_kind": by_kind,
        "by_chapter": by_chapter,
        "duplicate_facts": {f: ids for f, ids in fact_claims.items() if len(ids) > 1},
        "references": references,
    }


def scoreboard_records(board: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat record per claim for ``scoreboard.json`` (fields listed in :func:`write_scoreboard`)."""
    out = []
    for c in board["claims"]:
        stats = c.get("stats") or {}
        out.append({
            "id": c["id"], "chapter": c["chapter"], "fact": c.get("fact"), "kind": c["kind"],
            "status": c["status"], "what": c.get("what", ""), "setting": c.get("setting"),
            "paper": {"value": c.get("paper"), "unit": c.get("unit", ""), "interval": c.get("paper_interval"),
                      "tolerance": c.get("tolerance"), "source": c.get("source", "")},
            "ours": {"value": c.get("ours"), "interval": c.get("ours_interval"),
                     "interval_is": "confidence interval" if stats else ("range" if c.get("ours_interval") else None)},
            "condition": c.get("condition"),
            "n_seeds": stats.get("n_seeds"), "test": stats.get("test"), "p_value": stats.get("p_value"),
            "fit": c.get("fit"),
            "evidence": {"text": c.get("evidence", ""), "page": f"{c['chapter']}.html",
                         "metrics": f"{c['chapter']}/metrics.json#claims[id={c['id']}]"},
        })
    return out


def write_scoreboard(preset_dir: Path) -> Path:
    """Write ``<preset_dir>/scoreboard.json`` atomically; returns its path.

    ``{"preset", "counts", "counts_by_kind", "duplicate_facts", "claims": [record]}``; each record has
    ``id, chapter, fact, kind, status, what, paper{value, unit, interval, tolerance, source},
    ours{value, interval, interval_is}, condition, n_seeds, test, p_value, fit, evidence{text, page, metrics}``.
    """
    from .files import atomic_write_json

    preset_dir = Path(preset_dir)
    board = scoreboard(preset_dir)
    data = {"preset": preset_dir.name, "counts": board["counts"], "counts_by_kind": board["counts_by_kind"],
            "n_findings": len(board["findings"]), "n_consistency": len(board["consistency"]),
            "duplicate_facts": board["duplicate_facts"], "claims": scoreboard_records(board)}
    dest = preset_dir / "scoreboard.json"
    atomic_write_json(dest, data)
    return dest
