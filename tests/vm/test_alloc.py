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
    # Every phase delivered (so the locked loop really ran strokes, step changes and saves),
    # and the safety kernel's refusals (an occlusion, then its critical alarm) ran locked too.
    for phase in ("basal", "bolus", "refusing"):
        line = next(x for x in lines if x.startswith("OK " + phase))
        assert int(line.split()[2]) > 500, line
    refusing = next(x for x in lines if x.startswith("OK refusing")).split()
    assert int(refusing[-2]) >= 100, refusing


def test_the_check_bites_when_the_loop_allocates(tmp_path):
    """Sanity: the same harness reports an allocation when the loop does allocate."""
    doc = '    """The virtual board\'s constants, a healthy catheter, battery and sensors."""\n'
    script = (HERE / "alloc_check.py").read_text()
    assert doc in script
    script = script.replace(doc, "    def stroke(self):\n        self.last = [1, 2]\n"
                                 "        return HealthyHal.stroke(self)\n")
    bad = tmp_path / "alloc_bad.py"
    bad.write_text(script)
    out = run_in_vm(bad)
    assert "FAIL basal allocated" in out and out.strip().endswith("FAILED"), out


def test_the_whole_control_loop_runs_with_the_heap_locked():
    """firmware/app.py's loop: service, serial poll, clock, watchdog feed and wait, for 6000
    cycles with the heap locked; the watchdog is fed every cycle and no nap is longer than half
    its timeout."""
    from boards import virtual

    out = run_in_vm(HERE / "loop_check.py")
    lines = out.strip().splitlines()
    assert lines[-1] == "DONE", out
    ok = lines[0].split()
    strokes, saves, cycles = int(ok[1]), int(ok[2]), int(ok[3])
    assert strokes > 1000 and saves > 10 and cycles == 6000, out
    assert int(ok[5]) <= virtual.WDT_TIMEOUT_MS // 2, out
    assert int(ok[7]) == cycles, out  # fed once per completed cycle


def test_the_loop_check_bites_when_the_loop_allocates(tmp_path):
    script = (HERE / "loop_check.py").read_text().replace(
        "    def read_into(self, buf):\n        return 0\n",
        "    def read_into(self, buf):\n        self.junk = [1]\n        return 0\n")
    bad = tmp_path / "loop_bad.py"
    bad.write_text(script)
    out = run_in_vm(bad)
    assert "FAIL allocated" in out and out.strip().endswith("FAILED"), out
