"""Issue 13's seven regressions (tests/vm/continuity_check.py) on both runtimes: the same
script on CPython and inside the MicroPython VM, every item OK and the same figures."""

import os
import subprocess
import sys
from pathlib import Path

from sim.runner import ROOT, micropython_exe

SCRIPT = Path(__file__).resolve().parent / "continuity_check.py"
FIXTURES = ROOT / "tests" / "firmware" / "fixtures"


def _run(cmd, env):
    proc = subprocess.run([*cmd, str(SCRIPT), str(FIXTURES)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_the_seven_regressions_pass_alike_on_cpython_and_the_micropython_vm():
    vm = _run([micropython_exe()], dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen"))
    cp = _run([sys.executable], dict(os.environ, PYTHONPATH=str(ROOT)))
    lines = vm.strip().splitlines()
    assert lines[-1] == "DONE", vm
    assert [x.split()[:2] for x in lines[:-1]] == [["OK", str(n)] for n in range(1, 8)], vm
    assert vm == cp
