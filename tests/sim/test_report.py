"""pumpsim run --report: every plot, an HTML page, and a JUnit file a parser reads back; the
engine's sampled series change nothing about the run and are the same on both runtimes."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from host_tools.scenario import load_scenario
from sim.plan import build_plan
from sim.report import PLOTS, sample_ms_for
from sim.runner import ROOT, run_plan

PUMPSIM = str(Path(sys.executable).parent / "pumpsim")
OCCLUSION = ROOT / "examples" / "scenarios" / "occlusion.toml"
PNG = b"\x89PNG\r\n\x1a\n"


def pumpsim(*args):
    return subprocess.run([PUMPSIM, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def _junit_counts(path):
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    return int(suite.get("tests")), int(suite.get("failures")), len(cases), failed


def test_report_writes_every_plot_a_page_and_a_junit_file(tmp_path):
    out = tmp_path / "rep"
    proc = pumpsim("run", OCCLUSION, "--report", out)
    assert proc.returncode == 0, proc.stderr
    for name in PLOTS:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    page = (out / "index.html").read_text()
    for name in PLOTS:
        assert f'src="{name}.png"' in page
    assert "occlusion" in page and "every check passed" in page
    tests, failures, cases, failed = _junit_counts(out / "junit.xml")
    assert (tests, failures, cases, failed) == (2, 0, 2, [])


def test_junit_counts_a_failed_check(tmp_path):
    text = OCCLUSION.read_text().replace('delivered_min = "0.16 mL"',
                                         'delivered_min = "0.5 mL"\nreservoir_min = "1 mL"')
    scn = tmp_path / "bad.toml"
    scn.write_text(text)
    proc = pumpsim("run", scn, "--report", tmp_path / "rep")
    assert proc.returncode == 1
    tests, failures, cases, failed = _junit_counts(tmp_path / "rep" / "junit.xml")
    assert (tests, failures, cases) == (3, 1, 3)
    assert failed == ["delivered_min_nl"]
    assert "FAIL" in (tmp_path / "rep" / "index.html").read_text()


@pytest.mark.parametrize("name", ["flex_week.toml", "scenarios/occlusion.toml",
                                  "scenarios/ziconotide_titration.toml"])
def test_sampling_changes_nothing_in_the_run(name):
    plan = build_plan(load_scenario(ROOT / "examples" / name), trace=True)
    plain, plain_trace = run_plan(plan, "cpython")
    sampled_plan = dict(plan, sample_ms=sample_ms_for(plan["duration_ms"]))
    if name.startswith("scenarios/"):
        sampled_plan["sample_ms"] = 60_000  # a whole number of samples in the run
    sampled, sampled_trace = run_plan(sampled_plan, "cpython")
    series = sampled.pop("series")
    assert sampled == plain
    assert sampled_trace == plain_trace
    rows = series["rows"]
    cols = series["columns"]
    step = series["sample_ms"]
    assert [r[0] for r in rows] == list(range(0, plan["duration_ms"] + 1, step))
    if plan["duration_ms"] % step == 0:  # the last sample is the end of the run
        last = dict(zip(cols, rows[-1]))
        assert last["delivered_nl"] == plain["delivered_nl"]
        # the summary rounds the ideal to the nearest nL
        assert abs(last["ideal_nl"] + last["ideal_frac"] / 86_400_000 - plain["ideal_nl"]) <= 0.5
    assert all(b[1] >= a[1] for a, b in zip(rows, rows[1:]))  # delivered never decreases


def test_sampled_series_are_identical_on_both_runtimes():
    plan = build_plan(load_scenario(OCCLUSION))
    plan["sample_ms"] = 60_000
    cpy, _ = run_plan(plan, "cpython")
    mpy, _ = run_plan(plan, "micropython")
    assert cpy == mpy
    pressure = [r[cpy["series"]["columns"].index("pressure_pa")] for r in cpy["series"]["rows"]]
    assert max(pressure) > 25_000  # the occlusion shows above its threshold


def test_make_sim_driver_writes_an_index(tmp_path):
    from sim import report

    code = report.main([str(tmp_path), str(OCCLUSION),
                        str(ROOT / "examples" / "scenarios" / "bolus_patient.toml"),
                        "--workers", "1"])
    assert code == 0
    index = (tmp_path / "index.html").read_text()
    assert 'href="occlusion/index.html"' in index and 'href="bolus_patient/index.html"' in index
    assert (tmp_path / "bolus_patient" / "rate.png").exists()
