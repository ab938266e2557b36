"""One way to show a quantity (host_tools/fmt.py): the same dose reads the same everywhere."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_tools import fmt


@pytest.mark.parametrize("ng, unit, text", [
    (500_000, "mg", "0.5 mg"), (500_000, "mcg", "500 mcg"), (2_666_666, "mg", "2.667 mg"),
    (2_666_680, "mg", "2.667 mg"), (2_400, "mcg", "2.4 mcg"), (6_000_000, "mg", "6 mg"),
    (123_456_789, "mcg", "123457 mcg"), (1, "mg", "0.000001 mg")])
def test_masses_in_the_unit_asked_four_significant_digits(ng, unit, text):
    assert fmt.mass(ng, unit) == text


def test_the_same_dose_rounded_two_ways_reads_the_same():
    # program computes the daily basal from ng, status from nL through the concentration
    basal_ng = 2_666_666
    via_nl = Fraction(106_667 * 25_000_000, 1_000_000)
    assert fmt.mass(basal_ng, "mg") == fmt.mass(via_nl, "mg") == "2.667 mg"


@pytest.mark.parametrize("s, text", [(7200, "2 h"), (600, "10 min"), (93784, "1 d 2 h 3 min 4 s"),
                                     (0, "0 s"), (45, "45 s")])
def test_durations_are_exact(s, text):
    assert fmt.span(s) == text


def test_volumes_are_always_millilitres():
    assert fmt.vol(106_667) == "0.1067 mL" and fmt.vol(20_000_000) == "20 mL"
    assert fmt.vol(250) == "0.00025 mL" and fmt.vol_rate(48_000) == "0.048 mL/day"


def test_a_dose_shows_mass_and_volume_or_volume_alone():
    assert fmt.dose(80_000, 25_000_000, "mg", "/day") == "2 mg/day (0.08 mL/day)"
    assert fmt.dose(80_000, None, "mg") == "0.08 mL"


@given(st.integers(-10**12, 10**12))
def test_numbers_never_use_an_exponent_and_keep_at_most_four_digits(n):
    text = fmt.number(Fraction(n, 1000))
    assert "e" not in text.lower()
    digits = text.lstrip("-").replace(".", "").lstrip("0")
    if abs(n) < 1_000_000:           # below 1000: four significant digits at most
        assert len(digits) <= 4
    assert abs(float(text) - n / 1000) <= max(abs(n / 1000) * 0.0006, 0.5)


def test_the_legacy_names_in_commands_use_these_rules():
    from host_tools import commands

    assert commands.mass(500_000, "mg") == "0.5 mg" and commands.span(7200) == "2 h"
    assert commands.pump_time(0) == "2024-01-01 00:00:00"
    assert (commands.mass, commands.span, commands.pump_time) == (fmt.mass, fmt.span,
                                                                   fmt.pump_time)
