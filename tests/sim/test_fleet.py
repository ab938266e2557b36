"""pumpsim fleet: pumps differ by seed only, so the figures do not depend on how many workers
(or which engine) ran them; the [fleet] table is checked like the rest of a scenario."""

import pytest

from host_tools.errors import InputError
from host_tools.scenario import load_scenario, parse_scenario
from host_tools.prescription import read_toml
from sim import fleet
from sim.runner import ROOT

STANDARD = str(ROOT / "examples" / "fleet" / "standard.toml")
DAY_MS = 86_400_000


def test_twenty_pumps_for_thirty_days_give_the_same_figures_on_one_and_two_workers():
    one = fleet.run_local(STANDARD, 20, 1, 30 * DAY_MS, progress=False)
    two = fleet.run_local(STANDARD, 20, 2, 30 * DAY_MS, progress=False)
    assert one == two
    f = fleet.figures(one)
    assert f == fleet.figures(two)
    assert f["pumps"] == 20 and f["cap_violations"] == 0
    # the pumps really differ: mechanism, patients, faults
    assert len({r["drawn"]["tolerance_ppm"] for r in one}) > 10
    assert len({r["delivered_nl"] for r in one}) > 10
    assert f["patient_boluses"]["requested"] > 0


def test_dask_local_engine_gives_the_same_pumps_as_the_local_pool():
    local = fleet.run_local(STANDARD, 3, 1, 3 * DAY_MS, progress=False)
    dask = fleet.run_dask(STANDARD, 3, 2, 3 * DAY_MS, progress=False)
    assert dask == local


def test_a_pump_is_the_same_whatever_ran_before_it():
    scn = load_scenario(STANDARD)
    a, drawn_a = fleet.pump_plan(scn, 7, 30 * DAY_MS)
    fleet.pump_plan(scn, 3, 30 * DAY_MS)
    b, drawn_b = fleet.pump_plan(scn, 7, 30 * DAY_MS)
    assert a == b and drawn_a == drawn_b
    c, _ = fleet.pump_plan(scn, 8, 30 * DAY_MS)
    assert c["seed"] != a["seed"]
    assert all(e[0] <= 30 * DAY_MS for e in a["events"])
    assert [e[0] for e in a["events"]] == sorted(e[0] for e in a["events"])


def test_random_faults_follow_their_rates():
    table = read_toml(STANDARD)
    table["fleet"] = {"occlusions_per_year": 365, "occlusion_lasts": "1 h"}
    scn = parse_scenario(table)
    plan, drawn = fleet.pump_plan(scn, 0, 20 * DAY_MS)
    occ = [e for e in plan["events"] if e[1] == "occlusion"]
    clear = [e for e in plan["events"] if e[1] == "clear_occlusion"]
    assert 5 <= len(occ) <= 40 and drawn["occlusions"] == len(occ)
    assert all(c[0] - o[0] == 3_600_000 for o, c in zip(occ, clear))


def test_a_cap_violation_is_counted():
    ok = {"years": 1.0, "dose_error_pct": 0.0, "max_abs_error_nl": 250, "alarms": 0,
          "alarm_codes": [], "occlusion_alarm_s": [], "occlusions_missed": 0,
          "cap_violation": False, "strokes": 1,
          "patient_boluses": {"requested": 0, "delivered": 0, "denied": 0}}
    assert fleet.figures([ok, ok])["cap_violations"] == 0
    assert fleet.figures([ok, dict(ok, cap_violation=True)])["cap_violations"] == 1


@pytest.mark.parametrize("fleet_table, key", [
    ({"stroke_tolerance": ["3 %", "1 %"]}, "fleet.stroke_tolerance"),
    ({"occlusions_per_year": -1}, "fleet.occlusions_per_year"),
    ({"meteors_per_year": 1}, "fleet.meteors_per_year"),
    ({"stroke_tolerance": ["1 %", "30 %"]}, "fleet.stroke_tolerance"),
])
def test_a_bad_fleet_table_is_refused_and_named(fleet_table, key):
    table = read_toml(STANDARD)
    table["fleet"] = fleet_table
    with pytest.raises(InputError) as e:
        parse_scenario(table)
    assert e.value.key.startswith(key)


def test_fleet_command_prints_the_distribution(capsys):
    from sim.cli import main

    code = main(["fleet", STANDARD, "--pumps", "2", "--workers", "1", "--duration", "2 d",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "dose error (%)" in out and "alarms per pump-year" in out
    assert "0 pumps broke their daily cap" in out


def test_a_fleet_on_a_dask_cluster_gives_the_figures_of_the_process_pool():
    """A real scheduler and two worker processes (distributed.LocalCluster), reached by its
    address as a remote cluster is: the same pumps, the same figures."""
    from distributed import LocalCluster

    local = fleet.run_local(STANDARD, 4, 2, 5 * DAY_MS, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=50) as cluster:
        remote = fleet.run_dask(STANDARD, 4, 2, 5 * DAY_MS, progress=False,
                                scheduler_address=cluster.scheduler_address)
    assert remote == local
    assert fleet.figures(remote) == fleet.figures(local)
