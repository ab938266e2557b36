"""Guards a unit slip cannot pass: a concentration within the drug library's band, and a basal
whose daily volume an implanted pump could plausibly move.

A slip of units (mcg written for mg) scales a figure by a thousand, a misplaced decimal point by
ten or a hundred. Where a figure is out of its band, the guard tries those factors and names
the ones that bring it back ("did you mean 25 mg/mL?"); it never corrects anything itself: the
clinician writes the file again. The two guards catch a thousand-fold concentration slip each on
its own: the concentration falls under the drug's hard lower limit (drugs.toml keeps every one
above a thousandth of the hard upper limit), and the volume a day rises a thousandfold, from at
least the slowest rate a pump runs (0.048 mL/day) to far above the hard volume limit.

Each function raises InputError (nothing is sent) or returns the warnings to show.
"""

from __future__ import annotations

from fractions import Fraction

from host_tools import druglib, fmt
from host_tools.druglib import Drug
from host_tools.errors import InputError

# (factor, what the slip is), in the order they are suggested
SLIPS = ((1000, "mcg and mg differ a thousandfold"), (10, "a misplaced decimal point"),
         (100, "a misplaced decimal point"))
RESERVOIR_NL = 20_000_000   # the smaller implant reservoir, for "it lasts N days"


def _candidates(value: int, low: int, high: int, up: bool) -> list[tuple[Fraction, str]]:
    """value scaled by the slip factors (up: multiplied, else divided) that land it in
    [low, high]: the unit slip alone when it does (a thousandfold miss is that far more
    likely than a decimal point moved three places), else the decimal slips that do."""
    out = []
    for factor, why in SLIPS:
        v = Fraction(value) * factor if up else Fraction(value, factor)
        if low <= v <= high:
            out.append((v, why))
            if factor == 1000:
                break
    return out


def _did_you_mean(found: list[tuple[Fraction, str]], show) -> str:
    if not found:
        return ""
    texts = " or ".join(show(v) for v, _ in found)
    whys = "; ".join(dict.fromkeys(why for _, why in found))
    return f": did you mean {texts}? ({whys})"


def concentration(drug: Drug, conc: int, key: str, written) -> list[str]:
    """A concentration (ng/mL) against the drug's lower and upper limits: refuses outside the
    hard ones, naming the likely slip; warns outside the soft ones."""
    low, high = drug.low_concentration, drug.concentration

    def c(ng_ml) -> str:
        return fmt.conc(ng_ml, drug.unit)

    band = (f"a {drug.name} concentration within the library's hard limits, {c(low.hard)} "
            f"({druglib.cite(low.hard_source, True)}) to {c(high.hard)} "
            f"({druglib.cite(high.hard_source)})")
    if conc < low.hard:
        hint = _did_you_mean(_candidates(conc, low.hard, high.hard, True), c)
        raise InputError(key, written, f"{band}; {c(conc)} is under the lowest{hint}")
    if conc > high.hard:
        hint = _did_you_mean(_candidates(conc, low.hard, high.hard, False), c)
        raise InputError(key, written, f"{band}; {c(conc)} is above the highest{hint}")
    if conc < low.soft:
        hint = _did_you_mean(_candidates(conc, low.soft, high.soft, True), c)
        return [f"{drug.name} at {c(conc)} is under the library's usual lowest strength, "
                f"{c(low.soft)} ({druglib.cite(low.soft_source, True)}): a dilution? If not, check "
                f"the unit{hint}"]
    return []


def basal_volume(drug: Drug, conc: int, basal_ng_day: int, key: str) -> list[str]:
    """The basal's daily volume at this concentration against what an implanted pump
    plausibly moves: refuses outside the hard band, naming the likely slip; warns above the
    soft limit."""
    nl_day = Fraction(basal_ng_day * 1_000_000, conc)
    low, high = drug.low_volume_rate, drug.volume_rate
    u = drug.unit
    shown = f"{fmt.mass_rate(basal_ng_day, u)} at {fmt.conc(conc, u)}: {fmt.vol_rate(nl_day)}"

    def rate(ng_day) -> str:
        return fmt.mass_rate(ng_day, u)

    def strength(ng_ml) -> str:
        return fmt.conc(ng_ml, u)

    if nl_day > high.hard:
        # Too much volume: the concentration written too weak (or the dose too high, which
        # the daily dose limit already refuses).
        hint = _did_you_mean(_candidates(conc, drug.low_concentration.hard,
                                         drug.concentration.hard, True), strength)
        raise InputError(key, shown, f"a basal whose volume an implanted pump can deliver, at "
                         f"most {fmt.vol_rate(high.hard)} ({druglib.cite(high.hard_source)}): "
                         f"{fmt.vol_rate(nl_day)} would empty a {fmt.vol(RESERVOIR_NL)} "
                         f"reservoir in {_days(nl_day)}; check the concentration{hint}")
    if nl_day < low.hard:
        # Too little: the dose written too small (mcg/day for mg/day).
        hint = _did_you_mean(_candidates(basal_ng_day, 1, drug.daily.hard, True), rate)
        raise InputError(key, shown, f"a basal whose volume an implanted pump can deliver, at "
                         f"least {fmt.vol_rate(low.hard)} "
                         f"({druglib.cite(low.hard_source, True)}); "
                         f"check the rate's unit{hint}")
    if nl_day > high.soft:
        return [f"the basal moves {fmt.vol_rate(nl_day)}, above the "
                f"{fmt.vol_rate(high.soft)} an implanted pump usually delivers "
                f"({druglib.cite(high.soft_source)}): a {fmt.vol(RESERVOIR_NL)} reservoir lasts "
                f"{_days(nl_day)}; check the concentration ({fmt.conc(conc, u)})"]
    return []


def _days(nl_day: Fraction) -> str:
    return f"{fmt.number(Fraction(RESERVOIR_NL) / nl_day)} days"
