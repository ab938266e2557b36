"""The steady-state delivery loop allocates nothing, proved on the MicroPython VM."""

import os
import subprocess
from pathlib import Path

import pytest

from sim.runner import ROOT, micropython_exe

HERE = Path(__file__).resolve().parent


def run_in_vm(script: Path, *args: str) -> str:
    env = dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen")
    proc = subprocess.run([micropython_exe(), str(script), *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("start_ticks", [0, (1 << 30) - 5000])
def test_delivery_cycles_run_with_the_heap_locked(start_ticks):
    out = run_in_vm(HERE / "alloc_check.py", str(start_ticks))
    lines = out.strip().splitlines()
    assert lines[-1] == "DONE", out
    # Both phases delivered (so the locked loop really ran strokes, step changes and saves).
    for phase in ("basal", "bolus"):
        line = next(x for x in lines if x.startswith("OK " + phase))
        assert int(line.split()[2]) > 500, line


def test_the_check_bites_when_the_loop_allocates(tmp_path):
    """Sanity: the same harness reports an allocation when the loop does allocate."""
    script = (HERE / "alloc_check.py").read_text().replace(
        "        self.strokes += 1\n", "        self.strokes += 1\n        self.last = [1, 2]\n")
    bad = tmp_path / "alloc_bad.py"
    bad.write_text(script)
    out = run_in_vm(bad)
    assert "FAIL basal allocated" in out and out.strip().endswith("FAILED"), out
