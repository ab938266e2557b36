"""The simulator reports what the buzzer played (`tone_trace`: [t_s, pattern]); the same run on
CPython and in the MicroPython VM plays the same tones at the same times."""

from host_tools.scenario import parse_scenario
from sim.plan import build_plan
from sim.runner import run_plan

TABLE = {
    "scenario": {"duration": "8 h", "start": "08:00", "reservoir": "20 mL", "seed": 3},
    "prescription": {"drug": "morphine", "concentration": "10 mg/mL",
                     "basal": {"rate": "2 mg/day"},
                     "limits": {"max_daily_dose": "4 mg", "low_reservoir": "2 mL"}},
    "event": [{"at": "1 h", "do": "motor_stall"},          # critical, latched
              {"at": "2 h", "do": "ack", "alarm": "motor_stall"},   # silent for an hour ...
              {"at": "2 h 40 min", "do": "clear_motor_stall"},     # ... and put right before
              {"at": "2 h 40 min", "do": "resume"},                # it sounds again
              {"at": "3 h", "do": "battery", "level": "25 %"},   # battery_eri: a warning
              {"at": "6 h", "do": "ack", "alarm": "battery_eri"}],   # silent for a day
}


def test_tone_trace_is_the_same_on_both_runtimes_and_follows_the_rules():
    plan = build_plan(parse_scenario(TABLE))
    cpy, _ = run_plan(plan, "cpython")
    mpy, _ = run_plan(plan, "micropython")
    assert cpy["tone_trace"] == mpy["tone_trace"]
    trace = cpy["tone_trace"]
    stall = next(a["t_s"] for a in cpy["alarms"] if a["code"] == "motor_stall")
    eri = next(a["t_s"] for a in cpy["alarms"] if a["code"] == "battery_eri")
    crit = [t for t, p in trace if p == 1]
    warn = [t for t, p in trace if p == 2]
    # critical from the stall every 10 minutes until the acknowledgement at 2 h, then silence
    # (the stall is put right within the hour an acknowledgement silences a critical alarm)
    assert crit[0] == stall and crit == list(range(stall, 7200, 600))
    # the warning from battery_eri's start, hourly, until its acknowledgement at 6 h
    assert warn[0] == eri and warn == list(range(eri, 6 * 3600, 3600)) and len(warn) >= 2
    assert not [t for t, p in trace if 7200 <= t < eri or t > 6 * 3600]
    assert cpy["tones"] == {"critical": len(crit), "warning": len(warn)}
