"""pumpsim on the board a scenario names, never dropping a refusal, and figures a clinician reads
in drug mass: per concentration, and against the limits as they changed."""

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from host_tools.scenario import parse_scenario
from sim import mass
from sim.cli import run_scenario
from sim.plan import build_plan
from sim.runner import run_plan

ROOT = Path(__file__).resolve().parents[2]
PUMPSIM = str(Path(sys.executable).parent / "pumpsim")

BASE = """
[scenario]
duration = "{duration}"
reservoir = "{reservoir}"
{board}

[prescription]
drug = "morphine"
concentration = "10 mg/mL"
basal = {{ rate = "2 mg/day" }}
limits = {{ max_daily_dose = "4 mg", low_reservoir = "2 mL" }}
{extra}
"""


def scenario(tmp_path, duration="1 d", reservoir="20 mL", board="", extra="", name="s.toml"):
    p = tmp_path / name
    p.write_text(BASE.format(duration=duration, reservoir=reservoir, board=board, extra=extra))
    return p


def pumpsim(*args):
    return subprocess.run([PUMPSIM, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_a_40_ml_reservoir_is_refused_on_the_virtual_board_naming_key_and_limit(tmp_path):
    proc = pumpsim("run", scenario(tmp_path, reservoir="40 mL"))
    assert proc.returncode == 2
    assert "scenario.reservoir" in proc.stderr and "20 mL" in proc.stderr
    assert "virtual-pico" in proc.stderr


def test_the_implant_board_holds_40_ml_and_strokes_200_nl(tmp_path):
    proc = pumpsim("run", scenario(tmp_path, reservoir="40 mL", board='board = "implant"'),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["stroke_nl"] == 200 and out["board"] == "implant"
    assert out["reservoir_nl"] > 39_000_000 and out["refused"] == []
    assert [a["code"] for a in out["alarms"]] == []


@pytest.mark.parametrize("board, stroke", [("virtual", 250), ("pico", 250), ("implant", 200)])
def test_each_board_runs_with_its_own_numbers_on_both_runtimes(tmp_path, board, stroke):
    scn = parse_scenario({"scenario": {"duration": "6 h", "reservoir": "10 mL", "board": board},
                          "prescription": {"drug": "morphine", "concentration": "10 mg/mL",
                                           "basal": {"rate": "2 mg/day"},
                                           "limits": {"max_daily_dose": "4 mg"}}})
    plan = build_plan(scn, trace=True)
    a, ta = run_plan(plan, "cpython")
    b, tb = run_plan(plan, "micropython")
    assert a["stroke_nl"] == stroke and ta == tb and a["trace_hash"] == b["trace_hash"]


def test_a_rate_below_the_boards_slowest_is_refused_with_the_limit(tmp_path):
    # One step under the board's slowest rate, in a day whose volume is plausible (0.11 mL):
    # the drug library lets it through, the board's own limit refuses it.
    p = scenario(tmp_path)
    p.write_text(p.read_text().replace('{ rate = "2 mg/day" }', '{ steps = [{ start = "00:00", '
                                       'rate = "0.2 mg/day" }, { start = "12:00", rate = '
                                       '"2 mg/day" }] }'))
    proc = pumpsim("run", p)
    assert proc.returncode == 2 and "48000" in proc.stderr and "prescription" in proc.stderr


def test_an_unknown_board_is_refused(tmp_path):
    proc = pumpsim("run", scenario(tmp_path, board='board = "arduino"'))
    assert proc.returncode == 2 and "scenario.board" in proc.stderr and '"implant"' in proc.stderr


def test_a_refusal_from_the_firmware_fails_the_run_and_is_shown(tmp_path):
    # a clinician bolus bigger than the room under the cap: the firmware refuses it
    extra = '[[event]]\nat = "1 h"\ndo = "clinician_bolus"\ndose = "3.95 mg"\n'
    p = scenario(tmp_path, extra=extra)
    code, _, result, text = run_scenario(p)
    assert code == 1
    assert result["refused"] == [{"t_s": 3600, "action": "clinician_bolus",
                                  "reason": "daily_max"}]
    assert "Refused    clinician_bolus at 1 h: daily_max" in text
    # expected refusals pass
    q = scenario(tmp_path, extra=extra + '[expect]\nrefused = ["clinician_bolus"]\n',
                 name="q.toml")
    assert run_scenario(q)[0] == 0


def test_a_refill_the_firmware_refuses_is_not_dropped(tmp_path):
    # a concentration the pump cannot run (the basal would be below its slowest rate)
    extra = '[[event]]\nat = "1 h"\ndo = "refill"\nvolume = "20 mL"\nconcentration = "25 mg/mL"\n'
    p = scenario(tmp_path, extra=extra)
    p.write_text(p.read_text().replace('"2 mg/day"', '"1 mg/day"'))
    proc = pumpsim("run", p)
    assert proc.returncode == 2 and "concentration" in proc.stderr   # refused before running
    # one the host cannot see coming: an ack of an alarm that is not active
    q = scenario(tmp_path, extra='[[event]]\nat = "1 h"\ndo = "ack"\nalarm = "occlusion"\n',
                 name="q.toml")
    code, _, result, _ = run_scenario(q)
    assert code == 1 and result["refused"][0]["reason"] == "not_active"


def test_mass_after_a_concentration_change_is_integrated_per_concentration():
    code, scn, result, text = run_scenario(ROOT / "examples" / "scenarios"
                                           / "refill_concentration.toml")
    assert code == 0
    segs = mass.segments(result)
    assert [s["conc_ng_ml"] for s in segs] == [10_000_000, 20_000_000]
    total = mass.delivered_ng(result)
    # 2 mg/day for 3 days, whatever the concentration: about 6 mg (not 4 mg at 10 mg/mL)
    assert abs(total - 6_000_000) <= 2 * 250 * 20    # within two strokes at 20 mg/mL
    assert total == sum(Fraction(s["delivered_nl"] * s["conc_ng_ml"], 10**6) for s in segs)
    assert "(5.99" in text or "(6 mg)" in text
    assert "0.2 mL at 10 mg/mL (2 mg)" in text


def test_limits_are_shown_as_they_changed_over_time():
    code, scn, result, text = run_scenario(ROOT / "examples" / "scenarios"
                                           / "ziconotide_titration.toml")
    assert code == 0
    caps = [p["max_daily_ng"] for p in result["limit_periods"]]
    assert caps == [3000, 4200, 5400, 6600, 7800, 9000]
    for p in result["limit_periods"]:
        assert p["max_rolling_24h_ng"] <= p["max_daily_ng"]
    lines = [x for x in text.splitlines() if "at most" in x and "in 24 h" in x]
    assert len(lines) == 6 and "from 17 d 1 h: at most 9 mcg" in lines[-1]
    assert "highest 24 h under it 8.4 mcg" in lines[-1]
    assert "Last 24 h" not in text


def test_the_summary_uses_the_drugs_unit_throughout():
    _, _, _, text = run_scenario(ROOT / "examples" / "scenarios" / "ziconotide_titration.toml")
    assert " mg" not in text.replace(" mL", "")
