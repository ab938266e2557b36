"""Quantities written with units ("25 mg/mL", "1 d 2 h", "07:00") parsed into exact integers.

pint provides the unit definitions and conversions; numbers are read as exact fractions (never
floats), so "0.048 mL" is exactly 48 000 nL. Results are whole base units (nL, ng, ng/mL,
ng/day, ms, Pa, ppm), rounded to the nearest when a value is finer than that. Every refusal is
an InputError naming the key, the value and what would be accepted.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from host_tools.errors import InputError

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_ONE = re.compile(rf"^\s*({_NUMBER})\s*([^\d\s][^\s]*(?:\s*/\s*[^\s]+)?)\s*$")
_PART = re.compile(rf"\s*({_NUMBER})\s*([A-Za-z]+)\s*")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# Spellings people write that pint knows by another name.
_ALIASES = {"µ": "u", "μ": "u", "mcg": "ug", "%": "percent", "days": "day", "hours": "hour",
            "mins": "min", "secs": "s", "sec": "s", "hr": "h", "hrs": "h"}


@lru_cache(maxsize=1)
def _registry():
    import pint

    # The definition cache makes the registry load in a few ms after the first time. Numbers
    # are exact fractions: pint supports any numeric type here (its documentation names
    # Fraction and Decimal), though its annotation says float.
    exact: type = Fraction
    try:
        return pint.UnitRegistry(non_int_type=exact, cache_folder=":auto:")
    except OSError:
        return pint.UnitRegistry(non_int_type=exact)


def _unit_text(unit: str) -> str:
    for k, v in _ALIASES.items():
        unit = unit.replace(k, v)
    return unit.replace(" ", "")


def _convert(number: Fraction, unit: str, target: str, key, value, expected) -> int:
    ureg = _registry()
    try:
        q = ureg.Quantity(number, _unit_text(unit))
        if not q.is_compatible_with(target):
            raise InputError(key, value, expected)
        mag = Fraction(q.to(target).magnitude)
    except InputError:
        raise
    except Exception:
        raise InputError(key, value, expected + f' (unknown unit "{unit}")') from None
    return round(mag)


def _single(text, key, target, expected, allow_negative=False) -> int:
    if not isinstance(text, str):
        raise InputError(key, text, expected + " written as a string with its unit")
    m = _ONE.match(text)
    if not m:
        raise InputError(key, text, expected)
    number = Fraction(m.group(1))
    if number < 0 and not allow_negative:
        raise InputError(key, text, expected + ", not negative")
    return _convert(number, m.group(2), target, key, text, expected)


def volume_nl(text, key) -> int:
    return _single(text, key, "nL", 'a volume such as "20 mL" or "250 uL"')


def mass_ng(text, key) -> int:
    return _single(text, key, "ng", 'a mass such as "0.2 mg" or "50 mcg"')


def concentration_ng_per_ml(text, key) -> int:
    return _single(text, key, "ng/mL", 'a concentration such as "25 mg/mL" or "100 mcg/mL"')


def dose_rate_ng_per_day(text, key) -> int:
    return _single(text, key, "ng/day", 'a dose rate such as "2 mg/day" or "50 mcg/h"')


def volume_rate_nl_per_day(text, key) -> int:
    return _single(text, key, "nL/day", 'a volume rate such as "0.5 mL/day" or "20 uL/h"')


def pressure_pa(text, key) -> int:
    return _single(text, key, "Pa", 'a pressure such as "0.5 kPa" or "4 mmHg"')


def length_mm(text, key) -> int:
    return _single(text, key, "mm", 'a length such as "60 cm" or "450 mm"')


def percent_ppm(text, key) -> int:
    return _single(text, key, "ppm", 'a percentage such as "3 %"')


def duration_ms(text, key, allow_negative=False) -> int:
    """ "90 s", "1 d 2 h", "1 h 30 min"; with allow_negative, "-1 h" (a leading sign applies to
    the whole combination)."""
    expected = 'a duration such as "10 min", "2 h" or "1 d 2 h"'
    if not isinstance(text, str):
        raise InputError(key, text, expected + " written as a string with its unit")
    body = text.strip()
    sign = 1
    if body.startswith("-"):
        if not allow_negative:
            raise InputError(key, text, expected + ", not negative")
        sign, body = -1, body[1:]
    pos, total = 0, 0
    while pos < len(body):
        m = _PART.match(body, pos)
        if not m or Fraction(m.group(1)) < 0:
            raise InputError(key, text, expected)
        total += _convert(Fraction(m.group(1)), m.group(2), "ms", key, text, expected)
        pos = m.end()
    if pos == 0:
        raise InputError(key, text, expected)
    return sign * total


def time_of_day_ms(text, key) -> int:
    if not isinstance(text, str) or not _CLOCK.match(text.strip()):
        raise InputError(key, text, 'a time of day "HH:MM" from "00:00" to "23:59"')
    h, m = text.strip().split(":")
    return (int(h) * 60 + int(m)) * 60_000
