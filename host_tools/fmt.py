"""How every quantity is shown to a person: one set of rules for pumpctl, pumpsim and reports.

A clinician compares figures across screens, so the same dose must always read the same:

- masses in the prescription's unit (the drug library's `unit`: mg for morphine, mcg for
  ziconotide, clonidine, baclofen, fentanyl, sufentanil), never switched by size, so "0.5 mg"
  is never "500 mcg" on the next screen;
- volumes always in mL;
- four significant digits, never more, trailing zeros dropped, never an exponent: values that
  differ only by how they were rounded on the way (2.66667 and 2.66668 mg) read the same
  (2.667 mg). Whole numbers of a thousand or more keep every digit;
- durations exactly, in d, h, min and s ("2 h", "1 d 2 h 30 min"), so a lockout of two hours
  is never "120 min" elsewhere;
- pump time as "YYYY-MM-DD HH:MM:SS" in the pump's own clock.

Machine-readable output never goes through here: it keeps integer nL, ng and s.

Unit factors come from pint (the registry host_tools.units parses with), so a unit shown is a
unit the parser accepts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import lru_cache

from host_tools.units import _registry

EPOCH = datetime(2024, 1, 1)   # the pump clock counts seconds from here, in local time
DAY_S = 86_400
MASS_UNITS = ("mg", "mcg")
DIGITS = 4


@lru_cache(maxsize=8)
def _ng_per(unit: str) -> Fraction:
    if unit not in MASS_UNITS:
        raise ValueError(f"mass unit {unit!r}: expected one of {', '.join(MASS_UNITS)}")
    q = _registry().Quantity(1, "ug" if unit == "mcg" else unit)
    return Fraction(q.to("ng").magnitude)


def number(value) -> str:
    """Four significant digits (all digits of a whole number from 1000 up), no exponent,
    no trailing zeros."""
    v = Fraction(value)
    if v == 0:
        return "0"
    d = Decimal(v.numerator) / Decimal(v.denominator)
    if abs(d) >= 1000:
        return f"{d.quantize(Decimal(1), rounding=ROUND_HALF_EVEN):f}"
    exp = d.adjusted() - (DIGITS - 1)
    q = d.quantize(Decimal(1).scaleb(exp), rounding=ROUND_HALF_EVEN)
    text = f"{q:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def unit_or_default(unit: str | None, ng: int | None = None) -> str:
    """A mass unit to show in: the one given, else mg for a milligram or more, else mcg
    (for figures that belong to no prescription)."""
    if unit in MASS_UNITS:
        return unit
    return "mg" if ng is not None and abs(ng) >= 1_000_000 else "mcg"


def mass(ng, unit: str | None = None) -> str:
    u = unit_or_default(unit, ng)
    return f"{number(Fraction(ng) / _ng_per(u))} {u}"


def vol(nl) -> str:
    return f"{number(Fraction(nl) / 1_000_000)} mL"


def conc(ng_per_ml, unit: str | None = None) -> str:
    return f"{mass(ng_per_ml, unit)}/mL"


def mass_rate(ng_day, unit: str | None = None) -> str:
    return f"{mass(ng_day, unit)}/day"


def vol_rate(nl_day) -> str:
    return f"{vol(nl_day)}/day"


def nl_to_ng(nl: int, conc_ng_ml: int) -> Fraction:
    """The drug mass in a volume, exactly (shown through mass(), which rounds)."""
    return Fraction(nl * conc_ng_ml, 1_000_000)


def ng_to_nl(ng: int, conc_ng_ml: int) -> int:
    """The volume holding a mass, to the nearest nL (the firmware's own conversion)."""
    return (ng * 1_000_000 + conc_ng_ml // 2) // conc_ng_ml


def dose(nl, conc_ng_ml: int | None, unit: str | None, per: str = "") -> str:
    """A volume as the drug mass it holds, with the volume beside it: "2 mg (0.08 mL)"; just
    the volume when the concentration is not known (the patient key cannot read it)."""
    if not conc_ng_ml:
        return f"{vol(nl)}{per}"
    return f"{mass(nl_to_ng(nl, conc_ng_ml), unit)}{per} ({vol(nl)}{per})"


def span(s) -> str:
    """A duration in whole seconds, exactly: "2 h", "1 d 2 h 30 min", "45 s"."""
    s = int(s)
    if s <= 0:
        return "0 s"
    parts = []
    for size, name in ((DAY_S, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if s >= size:
            parts.append(f"{s // size} {name}")
            s %= size
    return " ".join(parts)


def span_ms(ms) -> str:
    """A duration in ms: whole seconds as span() does, a remainder under a second as ms."""
    ms = int(ms)
    if ms and abs(ms) < 1000:
        return f"{ms} ms"
    return span(ms // 1000)


def about(s) -> str:
    """A long duration for reading at a glance: its two largest parts ("3 d 4 h")."""
    return " ".join(span(s).split(" ")[:4])


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def pump_time(ts) -> str:
    return (EPOCH + timedelta(seconds=int(ts))).strftime("%Y-%m-%d %H:%M:%S")


def host_now_ts() -> int:
    return int((datetime.now() - EPOCH).total_seconds())
