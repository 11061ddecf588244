"""Numbers shown as they mean: the one formatting helper every page uses.

A paper's number is shown with the digits it was printed with (``1e-08`` stays ``1e-08``, never
``0.0``); a number we computed is shown to a fixed count of significant digits (``61.32``, not
``61.323333``), never padded and never rounded to zero; both carry their unit.

>>> from stablelm2 import shown
>>> shown.number(61.323333), shown.number(1e-8), shown.number(8_388_608, "tokens")
('61.32', '1e-08', '8,388,608 tokens')
>>> shown.fact("train.adam_eps")
'1e-08'
"""

from __future__ import annotations

import math
from typing import Any

SIG = 4  # significant digits of a computed number on a page


def _float(x: float, sig: int) -> str:
    if x == 0 or not math.isfinite(x):
        return str(x) if not math.isfinite(x) else "0"
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    magnitude = math.floor(math.log10(abs(x)))
    if 1e-3 <= abs(x) < 1e6 or (1e6 <= abs(x) < 1e15 and sig > magnitude + 1):
        digits = max(sig - 1 - magnitude, 0)
        s = f"{x:,.{digits}f}"
        s = s.rstrip("0").rstrip(".") if "." in s else s
        return s if float(s.replace(",", "")) != 0 else f"{x:.{sig - 1}e}"
    mant, exp = f"{x:.{sig - 1}e}".split("e")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{mant}e{exp}"


def number(x: Any, unit: str = "", sig: int = SIG) -> str:
    """A computed value as text: ints with thousands separators, floats to ``sig`` significant digits.

    ``None`` → ``'—'``; booleans, strings and containers as ``str``. A non-zero number never shows as zero.
    """
    if x is None:
        return "—"
    if hasattr(x, "item") and callable(x.item) and not isinstance(x, (list, dict, str)):
        try:
            x = x.item()
        except (ValueError, TypeError):
            pass
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        s = str(x)
    elif isinstance(x, int):
        s = f"{x:,}"
    else:
        s = _float(float(x), sig)
    return f"{s} {unit}".strip() if unit else s


def printed(value: Any, text: str | None = None, approx: bool = False, unit: str = "") -> str:
    """A paper's value with the digits it was printed with: ``text`` when given (``'92k'``), else the
    shortest text that reads back as the stored value (Python's ``repr``); ``~`` when hedged."""
    if value is None:
        return "unknown"
    if text is not None:
        s = text
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        s = str(value)
    elif isinstance(value, int) or float(value).is_integer():
        s = f"{int(value):,}"
    else:
        s = repr(float(value))
    s = ("~" if approx else "") + s
    return f"{s} {unit}".strip() if unit else s


def fact(fact_id: str, with_unit: bool = False) -> str:
    """A fact of ``facts.yaml`` as printed (see :func:`printed`), with its unit when ``with_unit``.

    Raises:
        UnknownFact: no fact has this id.
    """
    from . import facts

    f = facts.get(fact_id)
    return printed(f.value, f.printed, f.approx, (f.unit or "") if with_unit else "")


def frame(rows: Any, units: dict[str, str] | None = None, sig: int = SIG) -> Any:
    """A table (a DataFrame or a list of row dicts) with every number written by :func:`number`.

    ``units``: column → unit appended to that column's cells. Returns a new DataFrame of strings
    (its index kept).
    """
    import pandas as pd

    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    units = units or {}
    for col in df.columns:
        df[col] = [number(v, units.get(col, ""), sig) if not isinstance(v, str) else v for v in df[col]]
    return df
