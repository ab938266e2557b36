"""pumpsim accuracy: the trumpet curve of a prescription with an exact mechanism stays within
one stroke in every window (the controller's quantisation); the tolerance adds the rest."""

import json
import subprocess
import sys
from pathlib import Path

from host_tools.prescription import load_prescription
from sim.accuracy import run_sampled, stroke_bound_pct, trumpet_of
from sim.runner import ROOT

RX = ROOT / "examples" / "prescriptions" / "morphine_flex.toml"
PUMPSIM = str(Path(sys.executable).parent / "pumpsim")
DAY_MS = 86_400_000


def test_exact_mechanism_stays_within_one_stroke_in_every_window():
    rx = load_prescription(RX)
    s = run_sampled(rx, 2 * DAY_MS, 0, 1)
    res = trumpet_of(s)
    slowest = min(st.rate_ng_per_day for st in rx.steps) * 1_000_000 // rx.concentration_ng_per_ml
    bound = stroke_bound_pct([w["window_min"] for w in res["windows"]], s["stroke_nl"], slowest)
    assert [w["window_min"] for w in res["windows"]] == [2, 5, 11, 19, 31, 60, 360, 1440]
    for w in res["windows"]:
        assert w["n_windows"] > 0
        assert -bound[w["window_min"]] <= w["min_pct"] <= w["max_pct"] <= bound[w["window_min"]]
    assert abs(res["overall_pct"]) < 0.1


def test_trumpet_of_reads_the_samples_exactly():
    rx = load_prescription(RX)
    s = run_sampled(rx, 2 * 3_600_000, 0, 1)
    res = trumpet_of(s, windows_min=(2,), start_ms=0)
    cols = s["series"]["columns"]
    last = s["series"]["rows"][-1]
    assert res["delivered_nl"] == last[cols.index("delivered_nl")]
    assert res["end_s"] == 7200


def test_the_command_prints_both_runs_and_writes_the_plot(tmp_path):
    plot = tmp_path / "t.png"
    proc = subprocess.run([PUMPSIM, "accuracy", str(RX), "--duration", "1 d 2 h", "--plot",
                           str(plot), "--json"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert plot.read_bytes().startswith(b"\x89PNG")
    exact = {w["window_min"]: w for w in out["exact"]["windows"]}
    tol = {w["window_min"]: w for w in out["tolerance"]["windows"]}
    assert exact[1440]["n_windows"] > 0
    # the mechanism's tolerance changes the figures; the exact run's are the controller's own
    assert any(exact[p]["max_pct"] != tol[p]["max_pct"] for p in exact)
    text = subprocess.run([PUMPSIM, "accuracy", str(RX), "--duration", "3 h", "--plot",
                           str(plot)], capture_output=True, text=True, cwd=ROOT).stdout
    assert "31 min" in text and "1 stroke %" in text


def test_a_too_short_run_is_bad_usage(tmp_path):
    proc = subprocess.run([PUMPSIM, "accuracy", str(RX), "--duration", "30 min", "--plot",
                           str(tmp_path / "t.png")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "--duration" in proc.stderr
