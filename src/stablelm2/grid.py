"""Grid regions: the one table every country field and grid-region code is checked against.

codecarbon's offline tracker — the energy meter of every chapter (``record.EnergyMeter``) — finds
a country's carbon intensity in its global energy-mix table by ISO-3166 alpha-3 code, and for a code
it does not know (``"US"``, ``"usa"``, ``"Germany"``) it quietly uses the *world average* instead.
This module reads that same table, so a code either resolves exactly as the meter will read it or
is refused before any work starts, naming the accepted form:

* :func:`country_code` — strict: the capitalised alpha-3 code itself (config fields such as
  ``carbon.country``, and what the meter is given);
* :func:`region_code` — lenient, for the projector's what-ifs (chapter 09): the code in any case, or
  a country name exactly as the table spells it; the result is the code.

>>> from stablelm2 import grid
>>> grid.country_code("FRA", "carbon.country")
'FRA'
>>> grid.region_code("france")
'FRA'
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any

from .config import ConfigError

ACCEPTED_FORM = "an ISO-3166 alpha-3 country code in capitals, as codecarbon's energy-mix table spells it " \
                "(e.g. 'USA', 'FRA', 'DEU', 'GBR')"
"""What a country field must hold (said in every error)."""


@lru_cache(maxsize=1)
def energy_mix() -> dict[str, dict[str, Any]]:
    """codecarbon's global energy-mix table, ``{alpha-3 code: {country_name, carbon_intensity (g/kWh), year, …}}``.

    The same table its ``OfflineEmissionsTracker`` reads (offline, shipped with codecarbon).
    """
    from codecarbon.input import DataSource

    return DataSource().get_global_energy_mix_data()


def _by_name() -> dict[str, str]:
    return {str(v["country_name"]).lower(): k for k, v in energy_mix().items()}


def _hint(value: str) -> str:
    mix = energy_mix()
    key = value.strip()
    if key.upper() in mix:
        return f"; did you mean {key.upper()!r}?"
    if key.lower() in _by_name():
        return f"; did you mean {_by_name()[key.lower()]!r} ({mix[_by_name()[key.lower()]]['country_name']})?"
    codes = difflib.get_close_matches(key.upper(), list(mix), n=3, cutoff=0.6)
    names = difflib.get_close_matches(key.lower(), list(_by_name()), n=2, cutoff=0.75)
    picks = [f"{c!r} ({mix[c]['country_name']})" for c in codes] + [
        f"{_by_name()[n]!r} ({mix[_by_name()[n]]['country_name']})" for n in names]
    return f"; did you mean {' or '.join(dict.fromkeys(picks))}?" if picks else ""


def country_code(value: Any, field: str = "country") -> str:
    """``value`` itself if it is an alpha-3 code of :func:`energy_mix`; raises :class:`ConfigError` otherwise.

    Strict on purpose: this is the form codecarbon's tracker reads, so anything else (an alpha-2
    code, lower case, a name) would be metered at the world average. The error names the field, the
    value, the accepted form and the closest codes.
    """
    if isinstance(value, str) and value in energy_mix():
        return value
    raise ConfigError(
        f"{field} = {value!r} is not a grid region codecarbon's energy-mix table knows (its meter would "
        f"silently use the world average); give {ACCEPTED_FORM}"
        + (_hint(value) if isinstance(value, str) else "")
    )


def region_code(value: Any, field: str = "intensity") -> str:
    """The alpha-3 code of ``value``: a code in any case or a country name as the table spells it.

    :class:`ConfigError` (naming the accepted forms and the closest codes) for anything else.
    """
    if isinstance(value, str):
        key = value.strip()
        if key.upper() in energy_mix():
            return key.upper()
        if key.lower() in _by_name():
            return _by_name()[key.lower()]
    raise ConfigError(
        f"{field} = {value!r} is not a grid region codecarbon's energy-mix table knows; give {ACCEPTED_FORM}, "
        "a country name as that table spells it, or a number in kg CO2eq/kWh"
        + (_hint(value) if isinstance(value, str) else "")
    )


def intensity(code: str) -> float:
    """Carbon intensity of an alpha-3 code's grid in kg CO2eq/kWh (the table holds g/kWh) — the quantity
    the paper's carbon footprint multiplies its energy by (0.385 kg/kWh, US average; FACTS.md §8).

    Raises:
        ConfigError: ``code`` is not an alpha-3 code of the table (see :func:`country_code`).
    """
    return float(energy_mix()[country_code(code)]["carbon_intensity"]) / 1000.0


def name(code: str) -> str:
    """``"FRA"`` → ``"France (FRA, 2023)"`` (for tables): name, code and the year of the table's figure.

    Raises:
        ConfigError: ``code`` is not an alpha-3 code of the table (see :func:`country_code`).
    """
    row = energy_mix()[country_code(code)]
    return f"{row['country_name']} ({code}, {row['year']})"
