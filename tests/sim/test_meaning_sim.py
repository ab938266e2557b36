"""What a dose means over months (issue 19), on both runtimes: the regressions of the reported
cases, run as the scenarios in examples/scenarios/ that show them."""

import pytest

from host_tools.scenario import load_scenario
from sim.plan import build_plan
from sim.runner import run_plan

RUNTIMES = ("cpython", "micropython")


def run(name, runtime):
    out, _ = run_plan(build_plan(load_scenario(f"examples/scenarios/{name}.toml")), runtime)
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_concentration_rise_neither_trips_the_cap_nor_withholds_the_basal(runtime):
    """Item 1: morphine 10 -> 25 mg/mL at a refill, 2.5 mg/day under a 3 mg cap: no dose_limit,
    and the three days after it deliver their 7.5 mg (0.3 mL at 25 mg/mL)."""
    out = run("concentration_rise", runtime)
    assert out["alarms"] == []
    assert out["delivered_nl"] >= 250_000 + 300_000 - 2 * 250


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_thirty_restarts_a_day_cost_the_account_almost_nothing(runtime):
    """Item 8: 30 power cuts in a day. The pump's own last 24 h and its reservoir account end
    within 5 strokes of what the mechanism delivered (they used to gain a 40-stroke reserve a
    restart), and the basal flows."""
    out = run("restart_loop", runtime)
    assert out["alarms"] == []
    truth_24h = out["delivered_nl"]                 # the run is one day
    assert 0 <= out["account_24h_nl"] - truth_24h <= 5 * 250
    assert 0 <= out["plant_reservoir_nl"] - out["reservoir_nl"] <= 5 * 250


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_pico_raises_clock_lost_after_a_power_cut(runtime):
    """Item 9: a board without a kept clock (board = "pico") after 3 hours without power."""
    out = run("clock_lost_pico", runtime)
    assert [a["code"] for a in out["alarms"]] == ["clock_lost"]
