"""The simulator's figures are the recorded ones (tests/sim/golden.py): a faster simulator must
deliver, judge and hash every run exactly as before. CPython only here; the runtimes' agreement
is tested in test_runtimes.py and test_scenarios.py, and `python tests/sim/golden.py check`
compares both runtimes with the record."""

import pytest

from tests.sim import golden

WANT = golden.load()


@pytest.mark.parametrize("path", golden.scenarios())
def test_every_scenario_gives_its_recorded_figures(path):
    assert path in WANT["runs"], f"{path} is new: record it (python tests/sim/golden.py record)"
    got = golden.run_figures(path, "cpython")
    assert golden.differences(WANT["runs"][path]["cpython"], got) == []


@pytest.mark.parametrize("path", golden.scenarios())
def test_every_sampled_series_is_the_recorded_one(path):
    got = golden.sampled_figures(path, "cpython")
    assert golden.differences(WANT["sampled"][path]["cpython"], got) == []


@pytest.mark.parametrize("index", [0, 2])
def test_fleet_pumps_with_occlusions_and_stalls_give_their_recorded_figures(index):
    from sim.fleet import run_pump

    got = run_pump(str(golden.ROOT / golden.FLEET), index)
    assert golden.differences(WANT["fleet"][index], got) == []


def test_the_comparison_sees_a_changed_figure():
    want = WANT["runs"]["examples/morphine_day.toml"]["cpython"]
    got = dict(want, delivered_nl=want["delivered_nl"] + 1)
    assert golden.differences(want, got) == [
        f"/delivered_nl: {want['delivered_nl']} -> {want['delivered_nl'] + 1}"]
