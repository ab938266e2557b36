"""pumpsim run as users and scripts call it (INTERFACES.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PUMPSIM = str(Path(sys.executable).parent / "pumpsim")
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.toml") if "year" not in p.name)
KEYS = ("runtime", "duration_s", "stroke_nl", "delivered_nl", "ideal_nl", "max_abs_error_nl",
        "max_rolling_24h_nl", "patient_boluses", "alarms", "reservoir_nl", "expect_ok")


def pumpsim(*args):
    return subprocess.run([PUMPSIM, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_json_has_the_interface_keys_and_the_error_is_within_a_stroke(path, runtime):
    proc = pumpsim("run", path, "--json", "--runtime", runtime)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in KEYS:
        assert key in out, key
    assert out["runtime"] == runtime
    assert set(out["patient_boluses"]) >= {"requested", "delivered", "denied"}
    for alarm in out["alarms"]:
        assert set(alarm) >= {"t_s", "code", "priority"}
    assert out["max_abs_error_nl"] <= out["stroke_nl"]
    assert out["expect_ok"] is True


def test_a_failed_expectation_exits_1_and_says_which(tmp_path):
    text = (ROOT / "examples" / "morphine_day.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("patient_boluses_delivered = 2", "patient_boluses_delivered = 3"))
    proc = pumpsim("run", bad)
    assert proc.returncode == 1
    assert "FAILED   patient_boluses_delivered" in proc.stdout


def test_help_explains_the_command():
    proc = pumpsim("run", "--help")
    assert proc.returncode == 0 and "--runtime" in proc.stdout and "Exit 1" in proc.stdout


def test_a_missing_file_is_bad_usage():
    proc = pumpsim("run", "nowhere.toml")
    assert proc.returncode == 2 and "nowhere.toml" in proc.stderr
