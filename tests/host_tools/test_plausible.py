"""Guards a unit slip cannot pass (host_tools/plausible.py, drugs.toml): a concentration
outside the drug's band and a basal whose daily volume no implanted pump moves are refused,
naming the likely slip, wherever a prescription is checked on the host (pumpctl check and
program, pumpsim run); a thousandfold slip from any strength the library allows never passes."""

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_tools import druglib, fmt, plausible
from host_tools.errors import InputError
from host_tools.prescription import parse_prescription
from host_tools.scenario import parse_scenario

DRUGS = sorted(druglib.load())
BIN = Path(sys.executable).parent

# Issue 19, item 4, as reproduced: morphine written "25 mcg/mL" for 0.5 mg/day was "valid ...
# 20 mL/day"; filled with the 25 mg/mL in the vial, a thousandfold overdose.
SLIP = """drug = "morphine"
concentration = "25 mcg/mL"
basal = { rate = "0.5 mg/day" }
[limits]
max_daily_dose = "1 mg"
low_reservoir = "2 mL"
"""


def rx(drug="morphine", conc="25 mg/mL", rate="0.5 mg/day", cap="1 mg"):
    return parse_prescription({"drug": drug, "concentration": conc, "basal": {"rate": rate},
                               "limits": {"max_daily_dose": cap}})


def test_the_morphine_unit_slip_is_refused_by_pumpctl_check_naming_the_slip(tmp_path):
    f = tmp_path / "slip.toml"
    f.write_text(SLIP)
    proc = subprocess.run([str(BIN / "pumpctl"), "check", str(f)], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    err = proc.stderr
    assert 'concentration = "25 mcg/mL"' in err
    assert "under the lowest" in err and "did you mean 25 mg/mL?" in err, err
    assert "thousandfold" in err
    # Written right, 0.5 mg/day of 25 mg/mL is 0.02 mL/day, under what a pump can move: also
    # refused, asking for the rate's unit. Diluted to 5 mg/mL it is valid, at 0.1 mL/day.
    f.write_text(SLIP.replace("25 mcg/mL", "25 mg/mL"))
    proc = subprocess.run([str(BIN / "pumpctl"), "check", str(f)], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "at least 0.048 mL/day" in proc.stderr, proc.stderr
    f.write_text(SLIP.replace("25 mcg/mL", "5 mg/mL"))
    proc = subprocess.run([str(BIN / "pumpctl"), "check", str(f)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "0.1 mL/day" in proc.stdout, proc.stderr


def test_a_concentration_a_thousand_times_too_strong_names_the_slip_too():
    with pytest.raises(InputError) as e:
        rx("ziconotide", "25 mg/mL", "1.2 mcg/day", "3 mcg")
    assert e.value.key == "concentration" and "did you mean 25 mcg/mL?" in e.value.expected


def test_a_misplaced_decimal_point_is_suggested_when_the_unit_is_not_the_slip():
    with pytest.raises(InputError) as e:
        rx(conc="0.05 mg/mL")  # x1000 is 50 mg/mL, above the highest: not a unit slip
    assert "did you mean 0.5 mg/mL or 5 mg/mL?" in e.value.expected
    assert "decimal point" in e.value.expected and "thousandfold" not in e.value.expected


def test_a_weak_dilution_warns_and_an_implausible_volume_refuses():
    weak = rx(conc="0.5 mg/mL", rate="0.2 mg/day")   # 0.4 mL/day of a weak dilution
    assert any("under the library's usual lowest strength, 1 mg/mL" in w for w in weak.warnings)
    with pytest.raises(InputError) as e:
        rx(conc="1 mg/mL", rate="15 mg/day", cap="20 mg")   # 15 mL/day
    assert e.value.key == "basal" and "at most 5 mL/day" in e.value.expected
    assert "did you mean 10 mg/mL?" in e.value.expected
    big = rx(conc="1 mg/mL", rate="2 mg/day", cap="3 mg")   # 2 mL/day: warned
    assert any("the basal moves 2 mL/day, above the 1 mL/day" in w for w in big.warnings)


def test_a_rate_a_thousand_times_too_small_is_refused_naming_the_slip():
    with pytest.raises(InputError) as e:
        rx(rate="0.5 mcg/day")   # 0.00002 mL/day at 25 mg/mL
    assert e.value.key == "basal" and "at least 0.048 mL/day" in e.value.expected
    assert "did you mean 0.5 mg/day?" in e.value.expected


def test_the_band_edges_are_inclusive():
    d = druglib.get("morphine")
    assert plausible.concentration(d, d.low_concentration.hard, "c", "x") != []  # warns only
    assert plausible.concentration(d, d.concentration.hard, "c", "x") == []
    for bad in (d.low_concentration.hard - 1, d.concentration.hard + 1):
        with pytest.raises(InputError):
            plausible.concentration(d, bad, "c", "x")
    conc = 25_000_000
    at_most = d.volume_rate.hard * conc // 1_000_000    # ng/day giving exactly 5 mL/day
    at_least = d.low_volume_rate.hard * conc // 1_000_000
    plausible.basal_volume(d, conc, at_most, "basal")
    plausible.basal_volume(d, conc, at_least, "basal")
    for bad in (at_most + 1, at_least - 1):
        with pytest.raises(InputError):
            plausible.basal_volume(d, conc, bad, "basal")


@given(drug=st.sampled_from(DRUGS), data=st.data())
def test_no_allowed_strength_passes_when_written_a_thousand_times_weaker(drug, data):
    """The concentration written in mcg where the vial says mg (or the reverse, for the mcg
    drugs) is refused, naming the strength meant."""
    d = druglib.get(drug)
    meant = data.draw(st.integers(d.low_concentration.hard, d.concentration.hard)) // 1000 * 1000
    if meant < d.low_concentration.hard:
        meant += 1000
    with pytest.raises(InputError) as e:
        plausible.concentration(d, meant // 1000, "concentration", "x")
    assert f"did you mean {fmt.conc(meant, d.unit)}?" in e.value.expected


@given(drug=st.sampled_from(DRUGS), data=st.data())
def test_no_deliverable_basal_passes_at_a_concentration_a_thousand_times_too_weak(drug, data):
    """Whatever the prescription, if the true one runs at least at the slowest pump rate, the
    same dose at a thousandth of the concentration cannot pass both guards: the volume alone
    rises past the hard limit."""
    d = druglib.get(drug)
    conc = data.draw(st.integers(d.low_concentration.hard, d.concentration.hard))
    low_ng = -(-d.low_volume_rate.hard * conc // 1_000_000)        # the slowest rate, ng/day
    basal = data.draw(st.integers(low_ng, max(low_ng, d.daily.hard)))
    with pytest.raises(InputError):
        plausible.basal_volume(d, max(conc // 1000, 1), basal, "basal")


@given(drug=st.sampled_from(DRUGS), data=st.data())
def test_what_passes_is_inside_every_band(drug, data):
    d = druglib.get(drug)
    conc = data.draw(st.integers(1, d.concentration.hard * 2))
    basal = data.draw(st.integers(1, d.daily.hard))
    try:
        plausible.concentration(d, conc, "concentration", "x")
        plausible.basal_volume(d, conc, basal, "basal")
    except InputError:
        return
    nl_day = basal * 1_000_000 / conc
    assert d.low_concentration.hard <= conc <= d.concentration.hard
    assert d.low_volume_rate.hard <= nl_day <= d.volume_rate.hard


SCENARIO = """
[scenario]
duration = "2 d"
reservoir = "20 mL"
[prescription]
drug = "morphine"
concentration = "10 mg/mL"
basal = { rate = "2 mg/day" }
limits = { max_daily_dose = "6 mg" }
[[event]]
at = "1 d"
do = "refill"
volume = "20 mL"
concentration = "20 mg/mL"
"""


def test_a_scenario_is_checked_as_a_file_is_refills_included(tmp_path):
    import tomllib

    parse_scenario(tomllib.loads(SCENARIO))
    with pytest.raises(InputError) as e:
        parse_scenario(tomllib.loads(SCENARIO.replace('"20 mg/mL"', '"20 mcg/mL"')))
    assert "refill.concentration" in e.value.key and "did you mean 20 mg/mL?" in e.value.expected
    f = tmp_path / "slip.toml"
    f.write_text(SCENARIO.replace('"10 mg/mL"', '"10 mcg/mL"'))
    proc = subprocess.run([str(BIN / "pumpsim"), "run", str(f)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "prescription.concentration" in proc.stderr and "did you mean 10 mg/mL?" in proc.stderr
