"""Every scenario in examples/scenarios/ (one per alarm code, refills, faults) passes its own
[expect] table on both runtimes, and both runtimes agree exactly."""

import pytest

from host_tools.scenario import ALARM_CODES, load_scenario
from sim.expect import check
from sim.plan import build_plan
from sim.runner import ROOT, run_plan

SCENARIOS = sorted((ROOT / "examples" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_meets_its_expectations_on_both_runtimes(path):
    scn = load_scenario(path)
    assert "alarms" in scn.expect, "every library scenario states the alarms it expects"
    plan = build_plan(scn, trace=True)
    cpy, cpy_trace = run_plan(plan, "cpython")
    failed = [c for c in check(scn.expect, cpy) if not c["ok"]]
    assert not failed, failed
    mpy, mpy_trace = run_plan(plan, "micropython")
    assert mpy_trace == cpy_trace
    assert mpy == cpy


# Alarms the firmware's shell raises about itself, outside the therapy a scenario runs (the
# simulator's engine has no key records): each is tested where it happens instead.
SHELL_ALARMS = {
    "key_damaged": ("tests/firmware/test_trust.py",
                    "test_damaged_keys_fail_closed_while_therapy_goes_on"),
}


def test_every_alarm_code_has_a_scenario_that_raises_it():
    raised = set()
    for path in SCENARIOS:
        raised.update(load_scenario(path).expect.get("alarms", []))
    assert raised == set(ALARM_CODES) - set(SHELL_ALARMS)
    for code, (where, test) in SHELL_ALARMS.items():
        assert code in ALARM_CODES and f"def {test}(" in (ROOT / where).read_text(), code


def _run(path, **edit):
    scn = load_scenario(path)
    return run_plan(build_plan(scn), "cpython")[0]


def test_occlusion_is_caught_within_four_strokes_and_releases_at_most_four():
    s = _run(ROOT / "examples" / "scenarios" / "occlusion.toml")
    (occ,) = s["occlusions"]
    assert 1 <= occ["strokes_to_alarm"] <= 4
    assert 0 <= occ["released_nl"] <= 4 * s["stroke_nl"]
    # delivery came back by itself once the catheter was open again
    names = [a["code"] for a in s["alarms"]]
    assert names == ["occlusion"]


def test_no_stroke_while_a_critical_alarm_is_active():
    """Between the motor stall and the clinician's resume (3 h), nothing moves."""
    plan = build_plan(load_scenario(ROOT / "examples" / "scenarios" / "motor_stall.toml"),
                      trace=True)
    _, trace = run_plan(plan, "cpython")
    strokes = [t for t, code, _, _ in trace if code == 0]
    assert not [t for t in strokes if 2 * 3_600_000 <= t < 5 * 3_600_000 + 60_000]
    assert [t for t in strokes if t > 5 * 3_600_000 + 60_000]  # and it came back after
