"""Battery life in days (docs/alarms.md, "Battery life in days"): the estimate `status` gives,
held to the simulated cell's real discharge. The simulator's cell (sim/engine.py's Plant) loses
a fixed charge a day at rest and a fixed charge a stroke, and its rest voltage is a straight
line of its charge: the days it really has left to ERI and to EOS follow from its state, and the
estimate, from the voltage the pump reads and the strokes it counted, must land on them within
its own band."""

import pytest

from firmware import lifetime
from host_tools.scenario import parse_scenario
from sim.engine import (BAT_DAY_DRAIN, BAT_EMPTY_MV, BAT_FULL, BAT_FULL_MV, BAT_STROKE_DRAIN,
                        DAY_MS, Engine, plan_board)
from sim.plan import build_plan


def scenario(level, rate, days=3):
    return parse_scenario({
        "scenario": {"duration": f"{days} d", "start": "08:00", "reservoir": "20 mL",
                     "seed": 1},
        "prescription": {"drug": "morphine", "concentration": "10 mg/mL",
                         "basal": {"rate": rate},
                         "limits": {"max_daily_dose": "8 mg", "low_reservoir": "2 mL"}},
        "event": [{"at": "0 s", "do": "battery", "level": level}],
    })


def truth_days(engine, strokes_per_day, at_mv):
    p = engine.plant
    charge = p.charge - (engine.t - p.charge_t) * BAT_DAY_DRAIN // DAY_MS
    at = (at_mv - BAT_EMPTY_MV) * BAT_FULL // (BAT_FULL_MV - BAT_EMPTY_MV)
    return (charge - at) / (BAT_DAY_DRAIN + strokes_per_day * BAT_STROKE_DRAIN)


@pytest.mark.parametrize("level,rate", [("60 %", "2 mg/day"), ("40 %", "6 mg/day"),
                                        ("90 %", "0.5 mg/day")])
def test_the_days_to_eri_and_eos_are_the_simulated_cells_within_the_band(level, rate):
    engine = Engine(build_plan(scenario(level, rate)), plan_board(build_plan(scenario(level, rate))))
    engine.run()
    th = engine.th
    out = lifetime.status(th)
    life = out["battery_life"]
    assert life["counted_h"] >= 24            # from what the pump really did, not a projection
    per_day = life["strokes_per_day"]
    assert per_day == pytest.approx(th.pump.rx.basal_nl_day // th.pump.stroke_nl, rel=0.02)
    hal = th.hal if hasattr(th, "hal") else th.checks.hal
    for key, at in (("eri", hal.B_ERI_MV), ("eos", hal.B_EOS_MV)):
        want = truth_days(engine, per_day, at)
        low, est, high = life[f"{key}_days"]
        assert low <= want <= high + 1, (key, life, want)
        assert est == pytest.approx(want, rel=0.03, abs=2), (key, life, want)
        assert out[f"battery_{key}_days"] == est


def test_before_an_hour_is_counted_the_day_is_projected_from_the_prescription():
    plan = build_plan(parse_scenario({
        "scenario": {"duration": "30 min", "start": "08:00", "reservoir": "20 mL", "seed": 1},
        "prescription": {"drug": "morphine", "concentration": "10 mg/mL",
                         "basal": {"rate": "2 mg/day"},
                         "limits": {"max_daily_dose": "8 mg", "low_reservoir": "2 mL"}},
    }))
    engine = Engine(plan, plan_board(plan))
    engine.run()
    life = lifetime.status(engine.th)["battery_life"]
    assert life["counted_h"] == 0
    assert life["strokes_per_day"] == 800          # 0.2 mL a day in 250 nL strokes
    assert life["eri_days"][1] > 0


def test_the_charge_curve_is_monotonic_and_ends_at_its_points():
    curve = (3200, 3050, 2990, 2960, 2930, 2890, 2820, 2720, 2600, 2450, 2200)
    assert lifetime.ppm(curve, 3300) == 1_000_000
    assert lifetime.ppm(curve, 2100) == 0
    for i, mv in enumerate(curve):
        assert lifetime.ppm(curve, mv) == (10 - i) * 100_000
    last = 1_000_001
    for mv in range(3250, 2150, -3):
        now = lifetime.ppm(curve, mv)
        assert now <= last
        last = now
