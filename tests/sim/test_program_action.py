"""The `program` scenario action: a new prescription mid-run, checked on the host like a file,
delivered by the firmware from that moment on."""

import pytest

from host_tools.errors import InputError
from host_tools.scenario import parse_scenario
from sim.plan import build_plan
from sim.runner import run_plan


def _table(**event):
    return {
        "scenario": {"duration": "2 d", "start": "00:00", "reservoir": "20 mL", "seed": 1},
        "prescription": {"drug": "morphine", "concentration": "10 mg/mL",
                         "basal": {"rate": "2 mg/day"},
                         "limits": {"max_daily_dose": "6 mg", "low_reservoir": "2 mL"}},
        "event": [{"at": "1 d", "do": "program", **event}],
    }


def test_a_new_rate_runs_from_the_moment_it_is_programmed():
    scn = parse_scenario(_table(prescription={"basal": {"rate": "4 mg/day"}}))
    s, _ = run_plan(build_plan(scn), "cpython")
    # 0.2 mL on the first day, 0.4 mL on the second, within a stroke
    assert abs(s["delivered_nl"] - 600_000) <= s["stroke_nl"]
    assert s["max_abs_error_nl"] <= s["stroke_nl"]
    assert s["alarms"] == []


def test_program_keeps_the_keys_it_does_not_give():
    scn = parse_scenario(_table(prescription={"basal": {"rate": "4 mg/day"}}))
    rx = scn.events[0].args["prescription"]
    assert rx.drug == "morphine" and rx.max_daily_ng == 6_000_000


def test_a_lower_cap_programmed_mid_run_holds():
    scn = parse_scenario(_table(prescription={"basal": {"rate": "1 mg/day"},
                                              "limits": {"max_daily_dose": "1.2 mg",
                                                         "low_reservoir": "2 mL"}}))
    s, _ = run_plan(build_plan(scn), "cpython")
    # The last 24 h already hold 0.2 mL when the 0.12 mL cap comes in: the guard holds
    # delivery back until old strokes leave the window, so day 2 gives less than its basal.
    assert s["delivered_nl"] < 200_000 + 100_000
    assert "dose_limit" in [a["code"] for a in s["alarms"]]


@pytest.mark.parametrize("event, key", [
    ({}, "event[0].prescription"),
    ({"prescription": {"basal": {"rate": "40 mg/day"}}}, "event[0].prescription"),
    ({"prescription": {"colour": "red"}}, "event[0].prescription.colour"),
    ({"prescription": "4 mg/day"}, "event[0].prescription"),
])
def test_a_bad_program_is_refused_before_anything_runs(event, key):
    with pytest.raises(InputError) as e:
        parse_scenario(_table(**event))
    assert e.value.key.startswith(key)


def test_a_concentration_change_needs_a_refill():
    scn = parse_scenario(_table(prescription={"concentration": "20 mg/mL"}))
    with pytest.raises(InputError) as e:
        build_plan(scn)
    assert "refill" in e.value.expected


def test_board_and_inject_hand_their_arguments_to_sim_board(monkeypatch):
    import sys
    import types

    from sim import cli

    calls = []
    fake = types.ModuleType("sim.board")
    fake.main_board = lambda rest: calls.append(("board", rest)) or 0
    fake.main_inject = lambda rest: calls.append(("inject", rest)) or 5
    monkeypatch.setitem(sys.modules, "sim.board", fake)
    import sim
    monkeypatch.setattr(sim, "board", fake, raising=False)
    assert cli.main(["board", "--runtime", "cpython", "--speed", "max"]) == 0
    assert cli.main(["inject", "--control", "/x", "advance", "1 h"]) == 5
    assert calls == [("board", ["--runtime", "cpython", "--speed", "max"]),
                     ("inject", ["--control", "/x", "advance", "1 h"])]
    help_text = cli._parser().format_help()
    assert "boot a virtual Pico on a pseudo-terminal" in help_text
    assert "act on a running virtual board through its harness channel" in help_text
