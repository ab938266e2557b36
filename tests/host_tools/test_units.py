"""Text quantities become exact integers; bad ones name the key and the value."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_tools import units
from host_tools.errors import InputError


@pytest.mark.parametrize("fn,text,expected", [
    (units.volume_nl, "0.048 mL", 48_000),
    (units.volume_nl, "20 mL", 20_000_000),
    (units.volume_nl, "250 uL", 250_000),
    (units.volume_nl, "250 µL", 250_000),
    (units.volume_nl, "250 μL", 250_000),
    (units.mass_ng, "0.2 mg", 200_000),
    (units.mass_ng, "50 mcg", 50_000),
    (units.mass_ng, "50 ug", 50_000),
    (units.mass_ng, "50 µg", 50_000),
    (units.concentration_ng_per_ml, "25 mg/mL", 25_000_000),
    (units.concentration_ng_per_ml, "2000 mcg/mL", 2_000_000),
    (units.dose_rate_ng_per_day, "2.5 mg/day", 2_500_000),
    (units.dose_rate_ng_per_day, "50 mcg/h", 1_200_000),
    (units.dose_rate_ng_per_day, "0.1 mg/h", 2_400_000),
    (units.duration_ms, "1 d 2 h", 93_600_000),
    (units.duration_ms, "1 h 30 min", 5_400_000),
    (units.duration_ms, "90 s", 90_000),
    (units.time_of_day_ms, "07:00", 25_200_000),
    (units.time_of_day_ms, "23:59", 86_340_000),
    (units.percent_ppm, "3 %", 30_000),
    (units.pressure_pa, "0.5 kPa", 500),
])
def test_quantities_parse_exactly(fn, text, expected):
    assert fn(text, "k") == expected


def test_negative_durations_only_where_allowed():
    assert units.duration_ms("-1 h", "shift", allow_negative=True) == -3_600_000
    with pytest.raises(InputError):
        units.duration_ms("-1 h", "at")


@pytest.mark.parametrize("fn,text", [
    (units.volume_nl, "3 mg"),          # wrong dimension
    (units.volume_nl, "-1 mL"),         # negative
    (units.volume_nl, "3 furlongs"),    # unknown unit
    (units.volume_nl, "mL"),            # no number
    (units.volume_nl, 3),               # not a string
    (units.dose_rate_ng_per_day, "3 mg"),
    (units.dose_rate_ng_per_day, "3 mL/kg"),
    (units.concentration_ng_per_ml, "25 mg"),
    (units.duration_ms, "2 parsecs"),
    (units.duration_ms, "1 d two h"),
    (units.time_of_day_ms, "24:00"),
    (units.time_of_day_ms, "7:5"),
    (units.time_of_day_ms, "07:60"),
])
def test_bad_quantities_name_the_key_and_the_value(fn, text):
    with pytest.raises(InputError) as err:
        fn(text, "basal.rate")
    message = str(err.value)
    assert "basal.rate" in message and str(text) in message and "expected" in message


@given(st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False))
def test_any_decimal_millilitres_give_the_exact_nanolitres(value: Decimal):
    assert units.volume_nl(f"{value} mL", "v") == int(value * 1_000_000)
