"""The same firmware on CPython and inside the MicroPython VM behaves identically."""

import pytest

from host_tools.scenario import load_scenario
from sim.plan import build_plan
from sim.runner import ROOT, run_plan

EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
SHORT = [p for p in EXAMPLES if "year" not in p.name]


def test_flexible_week_with_boluses_gives_identical_traces():
    scn = load_scenario(ROOT / "examples" / "flex_week.toml")
    plan = build_plan(scn, trace=True)
    cpy, cpy_trace = run_plan(plan, "cpython")
    mpy, mpy_trace = run_plan(plan, "micropython")
    assert cpy_trace == mpy_trace
    assert cpy == mpy
    # The trace is not trivially empty: strokes, boluses, a reboot and a power loss are in it.
    assert cpy["strokes"] > 5000
    assert len(cpy_trace) > cpy["strokes"]


@pytest.mark.parametrize("path", SHORT, ids=lambda p: p.name)
def test_every_short_example_delivers_the_same_on_both_runtimes(path):
    plan = build_plan(load_scenario(path))
    cpy, _ = run_plan(plan, "cpython")
    mpy, _ = run_plan(plan, "micropython")
    assert cpy["delivered_nl"] == mpy["delivered_nl"]
    assert cpy["trace_hash"] == mpy["trace_hash"]


@pytest.mark.parametrize("start_ticks", [(1 << 30) - 1, (1 << 30) - 3_600_000])
def test_a_run_across_the_tick_wrap_matches_one_that_starts_at_zero(start_ticks):
    """ticks_ms wraps at 2**30 ms; a week started just before the wrap must deliver the same."""
    scn = load_scenario(ROOT / "examples" / "flex_week.toml")
    ref, ref_trace = run_plan(build_plan(scn, start_ticks=0, trace=True), "cpython")
    for runtime in ("cpython", "micropython"):
        got, trace = run_plan(build_plan(scn, start_ticks=start_ticks, trace=True), runtime)
        assert trace == ref_trace, runtime
        assert got == ref, runtime
