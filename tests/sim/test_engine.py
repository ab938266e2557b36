"""The simulator's own accounting: the ideal, the truth, and what the firmware is held to."""

from boards import virtual
from sim.engine import DAY_MS, Engine

H = 3_600_000
MORPHINE = 25_000_000  # ng/mL


def plan(rx, events=(), days=1, tolerance_ppm=0, reservoir_nl=20_000_000, seed=1):
    return {"duration_ms": days * DAY_MS, "start_tod_ms": 0, "start_ticks": 0,
            "reservoir_nl": reservoir_nl, "seed": seed, "tolerance_ppm": tolerance_ppm,
            "rx": rx, "events": [list(e) for e in events], "trace": False}


def continuous(rate_ng_day, max_daily_ng, pb=None):
    return {"conc_ng_ml": MORPHINE, "steps": [[0, rate_ng_day]], "max_daily_ng": max_daily_ng,
            "low_res_nl": 0, "pb": pb}


def run(p):
    return Engine(p, virtual).run()


def test_constant_rate_delivers_whole_strokes_of_the_ideal():
    # 2.4 mg/day at 25 mg/mL is 96 000 nL/day: 384 strokes of 250 nL, exactly.
    s = run(plan(continuous(2_400_000, 6_000_000), days=3))
    assert s["ideal_nl"] == 3 * 96_000
    assert s["delivered_nl"] == 3 * 96_000
    assert s["max_abs_error_nl"] <= s["stroke_nl"]


def test_time_without_power_is_not_owed_and_not_delivered_later():
    p = plan(continuous(2_400_000, 6_000_000), events=[(6 * H, "power_loss", {"for_ms": 6 * H})])
    s = run(p)
    assert s["ideal_nl"] == 96_000 * 18 // 24
    # Never more than the ideal (no catch-up), and at most the lost partial strokes short of it.
    assert s["ideal_nl"] - 2 * s["stroke_nl"] < s["delivered_nl"] <= s["ideal_nl"]


def test_the_cap_holds_and_dose_limit_is_raised_when_boluses_meet_basal():
    # Basal 4 mg/day against a 6 mg cap, and 0.5 mg clinician boluses asked for every 2 hours:
    # some are refused up front (daily_max); none may push any 24 h past 6 mg = 240 000 nL.
    events = [(k * 2 * H, "clinician_bolus", {"dose_nl": 20_000, "duration_ms": 20 * 60_000})
              for k in range(1, 36)]
    s = run(plan(continuous(4_000_000, 6_000_000), events=events, days=3))
    assert s["max_rolling_24h_nl"] <= 240_000
    assert s["max_rolling_24h_nl"] > 240_000 - 20_000  # the boluses really filled the room


def test_dose_limit_alarm_when_basal_runs_into_the_room_a_bolus_took():
    # A patient bolus fits the remaining room at the moment it is asked for, then basal
    # strokes run into the cap: the guard refuses them and raises dose_limit (a warning).
    rx = continuous(5_600_000, 6_000_000, pb=[390_000, 600, 3600, 24])
    events = [(k * H + 1, "patient_bolus", {}) for k in range(20, 30)]
    s = run(plan(rx, events=events, days=2))
    codes = {a["code"]: a["priority"] for a in s["alarms"]}
    assert codes == {"dose_limit": "warning"}
    assert s["max_rolling_24h_nl"] <= 240_000


def test_mechanism_tolerance_shows_in_truth_not_in_the_controller():
    s = run(plan(continuous(2_400_000, 6_000_000), days=30, tolerance_ppm=30_000, seed=5))
    assert s["max_abs_error_commanded_nl"] <= s["stroke_nl"]
    assert s["delivered_nl"] != 30 * 96_000  # the plant really varies
    assert abs(s["delivered_nl"] - 30 * 96_000) < 30 * 96_000 * 3 // 100


def test_reboot_keeps_the_rolling_account():
    """Boluses fill the window, a reboot follows: the cap still holds after it."""
    events = [(H, "clinician_bolus", {"dose_nl": 120_000, "duration_ms": H}),
              (3 * H, "reboot", {}),
              (4 * H, "clinician_bolus", {"dose_nl": 120_000, "duration_ms": H})]
    s = run(plan(continuous(2_400_000, 6_000_000), events=events, days=2))
    assert s["max_rolling_24h_nl"] <= 240_000


def test_the_engines_inlined_tick_mask_is_the_firmwares():
    from firmware import ticks
    from sim import engine

    assert engine._TICKS_MASK == ticks.MASK
