"""The therapy history on the MicroPython VM, and on CPython, line for line the same
(tests/vm/history_check.py): the stated rate kept for 400 days and beyond, and a `program` cut
by the power at each of its flash writes, torn or lost whole."""

import os
import subprocess
import sys

from sim.runner import ROOT, micropython_exe

SCRIPT = ROOT / "tests" / "vm" / "history_check.py"


def run(cmd, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_the_history_keeps_400_days_and_every_program_that_took_effect_on_both_runtimes():
    vm = run([micropython_exe(), str(SCRIPT)],
             dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen"))
    cpython = run([sys.executable, str(SCRIPT)], dict(os.environ, PYTHONPATH=str(ROOT)))
    lines = vm.strip().splitlines()
    assert lines[-1] == "DONE", vm
    assert not [x for x in lines if x.startswith("FAIL")], vm
    assert vm == cpython
    assert "OK all 400 days kept, in order" in lines
    # the flash writes docs/alarms.md counts in its wear budget
    assert "OK a year at 5 a day: 1842 writes (1824 of the open page, 18 closed pages)" in lines
    assert "OK a quiet year: 24 writes" in lines
    # every flash write of `program` was cut, torn and lost whole: settings, history, state,
    # journal, log (five writes, each torn and lost)
    assert [x for x in lines if x.startswith("OK cuts")] == ["OK cuts 10"]
    assert any("settings new" in x and ", 1, 2708333)" in x for x in lines)   # recovered
    assert any("settings old" in x for x in lines)
