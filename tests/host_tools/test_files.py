"""Prescription and scenario files: good ones parse to the right integers, each kind of mistake
is refused with exit status 2 and a message that names it, and nothing runs."""

import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import druglib
from host_tools.prescription import load_prescription
from host_tools.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]

GOOD_RX = (ROOT / "examples" / "prescriptions" / "morphine_flex.toml").read_text()


def tmp_rx(text):
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(text)
    f.close()
    return f.name


def test_the_interfaces_example_prescription_gives_these_integers():
    rx = load_prescription(ROOT / "examples" / "prescriptions" / "morphine_flex.toml")
    assert rx.to_firmware() == {
        "conc_ng_ml": 25_000_000,
        "steps": [[0, 2_000_000], [420, 3_000_000], [1320, 2_500_000]],
        "max_daily_ng": 6_000_000,
        "low_res_nl": 2_000_000,
        "pb": [200_000, 600, 7200, 4],
        "refill_notice_s": 604_800,
        "catheter": {"model": "Prometra 11823", "length_mm": 600, "nl_per_cm": 2600},
        "stop_reminder_s": 3600,
        "alarm_silence_s": 1800,
    }
    # The refill notice goes to the pump as written (the firmware's default applies only
    # when the prescription has none).
    other = tmp_rx(GOOD_RX.replace('refill_notice = "7 d"', 'refill_notice = "12 d 6 h"'))
    assert load_prescription(other).to_firmware()["refill_notice_s"] == 12 * 86400 + 6 * 3600
    # 2 mg/day for 7 h, 3 mg/day for 15 h, 2.5 mg/day for 2 h: 8/3 mg, rounded down in ng.
    assert rx.daily_basal_ng() == 2_666_666
    # 25 mg/mL is Infumorph 500's strength (the hard limit), above the soft 20 mg/mL: a
    # warning, not an error.
    assert any("20 mg/mL" in w for w in rx.warnings)


def test_the_drug_library_covers_the_intrathecal_drugs_with_sources():
    lib = druglib.load()
    for name in ("morphine", "hydromorphone", "ziconotide", "baclofen", "bupivacaine",
                 "clonidine", "ketamine"):
        d = lib[name]
        assert d.sources, name
        assert 0 < d.soft_daily_ng < d.hard_daily_ng, name
        assert 0 < d.soft_concentration_ng_per_ml < d.hard_concentration_ng_per_ml, name
    assert druglib.get("Prialt").name == "ziconotide"


BAD = [
    ("wrong dimension", ('rate = "2 mg/day"', 'rate = "2 mL"'), "basal.steps[0].rate"),
    ("negative", ('rate = "3 mg/day"', 'rate = "-3 mg/day"'), "basal.steps[1].rate"),
    ("unknown unit", ('"2.5 mg/day"', '"2.5 mg/blarg"'), "basal.steps[2].rate"),
    ("unknown key", ("max_per_day = 4", "max_per_day = 4\nmax_per_week = 9"),
     "patient_bolus.max_per_week"),
    ("first step not at midnight", ('start = "00:00"', 'start = "01:00"'),
     "basal.steps[0].start"),
    ("steps not ascending", ('start = "22:00"', 'start = "06:00"'), "basal.steps[2].start"),
    ("rate and steps", ("[basal]\n", '[basal]\nrate = "1 mg/day"\n'), "basal"),
    ("basal above the daily maximum", ('max_daily_dose = "6 mg"', 'max_daily_dose = "2 mg"'),
     "basal"),
    ("concentration above the hard limit", ('"25 mg/mL"', '"50 mg/mL"'), "concentration"),
    ("daily maximum above the hard limit", ('"6 mg"', '"60 mg"'), "limits.max_daily_dose"),
    ("unknown drug", ('"morphine"', '"morphone"'), "drug"),
    ("bolus longer than lockout", ('duration = "10 min"', 'duration = "3 h"'),
     "patient_bolus.duration"),
    ("max_per_day not a count", ("max_per_day = 4", "max_per_day = 4.5"),
     "patient_bolus.max_per_day"),
    ("bad time of day", ('"07:00"', '"7 am"'), "basal.steps[1].start"),
    ("not TOML", ("[limits]", "[limits"), "(file)"),
]


def _fourteen_steps():
    steps = ", ".join(f'{{ start = "{h:02d}:00", rate = "1 mg/day" }}' for h in range(14))
    return GOOD_RX.split("[basal]")[0] + f"[basal]\nsteps = [{steps}]\n[limits]\n" \
        'max_daily_dose = "6 mg"\n'


def _run(tool, path):
    exe = Path(sys.executable).parent / tool
    return subprocess.run([str(exe), *(["check"] if tool == "pumpctl" else ["run"]), str(path)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("what,edit,key", BAD, ids=[b[0] for b in BAD])
def test_a_bad_prescription_exits_2_and_names_the_mistake(tmp_path, what, edit, key):
    old, new = edit
    assert old in GOOD_RX, what
    path = tmp_path / "rx.toml"
    path.write_text(GOOD_RX.replace(old, new, 1))
    proc = _run("pumpctl", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert key in proc.stderr and "expected" in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_fourteen_steps_are_refused(tmp_path):
    path = tmp_path / "rx.toml"
    path.write_text(_fourteen_steps())
    proc = _run("pumpctl", path)
    assert proc.returncode == 2 and "basal.steps" in proc.stderr and "13" in proc.stderr


SCENARIO = """
[scenario]
duration = "1 d"
reservoir = "20 mL"
[prescription]
drug = "morphine"
concentration = "25 mg/mL"
basal = { rate = "2 mg/day" }
limits = { max_daily_dose = "6 mg" }
[[event]]
at = "2 h"
do = "clinician_bolus"
dose = "0.1 mg"
"""

BAD_SCENARIOS = [
    ("unknown action", ('do = "clinician_bolus"', 'do = "dance"'), "event[0].do"),
    ("unknown event key", ('dose = "0.1 mg"', 'dose = "0.1 mg"\nvolume = "1 mL"'),
     "event[0].volume"),
    ("missing required key", ('dose = "0.1 mg"', ""), "event[0].dose"),
    ("event after the end", ('at = "2 h"', 'at = "2 d"'), "event[0].at"),
    ("unknown top-level table", ("[scenario]", "[scenery]\n[scenario]"), "scenery"),
    ("bad prescription inside", ('"2 mg/day"', '"2 mg"'), "prescription.basal.rate"),
    ("unknown expectation", ("[[event]]", "[expect]\nvibes = 1\n[[event]]"), "expect.vibes"),
    ("bad occlusion severity", ('do = "clinician_bolus"\ndose = "0.1 mg"',
                                'do = "occlusion"\nseverity = "total"'), "event[0].severity"),
    ("bad sensor", ('do = "clinician_bolus"\ndose = "0.1 mg"',
                    'do = "sensor_fault"\nsensor = "thermometer"\nmode = "stuck"'),
     "event[0].sensor"),
]


@pytest.mark.parametrize("what,edit,key", BAD_SCENARIOS, ids=[b[0] for b in BAD_SCENARIOS])
def test_a_bad_scenario_exits_2_and_names_the_mistake(tmp_path, what, edit, key):
    old, new = edit
    assert old in SCENARIO, what
    path = tmp_path / "scn.toml"
    path.write_text(SCENARIO.replace(old, new, 1))
    proc = _run("pumpsim", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert key in proc.stderr and "expected" in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_repeating_events_expand_in_order(tmp_path):
    path = tmp_path / "scn.toml"
    path.write_text(SCENARIO.replace('at = "2 h"', 'at = "2 h"\nevery = "6 h"'))
    scn = load_scenario(path)
    assert [e.at_ms // 3_600_000 for e in scn.events] == [2, 8, 14, 20]
