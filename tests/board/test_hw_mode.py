"""`make test-hw`: the end-to-end tests run against a pump on a given port (a flashed Pico in
the lab; here a virtual board standing in for one), without the simulator's harness."""

import os
import subprocess
import sys

from sim.runner import ROOT
from tests.board.vboard_fixture import LiveBoard


def test_e2e_suite_runs_against_a_pump_on_a_port(tmp_path):
    board = LiveBoard(tmp_path / "flash")
    try:
        env = dict(os.environ, HYPOTHESIS_PROFILE="ci")
        env.pop("PUMPCTL_KEY", None)
        board.port.close()  # pumpctl refuses a port another program holds open
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/e2e",
             "--port", board.info["port"], "--key", board.info["clinician_key"],
             "--patient-key", board.info["patient_key"]],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        tail = out.stdout.strip().splitlines()[-1]
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
        assert " passed" in tail and " deselected" in tail and "skipped" not in tail, tail
        # and it really talked to that pump: the programs landed there
        board.port.open()
        assert board.ask({"cmd": "info"}, sign=True)["ctr"]["clinician"] > 5
        assert board.ask({"cmd": "settings"}, sign=True)["settings"] is not None
    finally:
        assert board.close() == 0
