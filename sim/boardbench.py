"""Benchmarks of the virtual Pico and the firmware bundle, for `make bench` (sim/bench.py).

Each function returns (figure, note) for one row of the table, or None when it cannot measure
(the note then says why in the table).
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRESCRIPTION = ROOT / "examples" / "prescriptions" / "morphine_flex.toml"


class _Board:
    """A factory-fresh virtual Pico (firmware on the MicroPython VM) for the length of a with."""

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pump-bench-")
        self.proc = subprocess.Popen([str(BIN / "pumpsim"), "board", "--flash",
                                      str(Path(self.tmp.name) / "flash")],
                                     stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        self.tmp.cleanup()


def serial_round_trip(n: int = 200):
    from host_tools.link import Link, load_key

    with _Board() as b:
        key = load_key(b.info["clinician_key"])
        with Link.open(b.info["port"], key=key) as lk:
            lk.call("ping", signed=False)
            pings = []
            for _ in range(n):
                t = time.perf_counter()
                lk.call("ping", signed=False)
                pings.append(time.perf_counter() - t)
            signed = []
            for _ in range(n // 4):
                t = time.perf_counter()
                lk.call("status", changes=False)
                signed.append(time.perf_counter() - t)
    return (f"{statistics.median(pings) * 1e3:.2f} ms",
            f"median `ping` over the pty to the VM ({n} runs); signed `status` "
            f"{statistics.median(signed) * 1e3:.2f} ms (HMAC both ends)")


def program_and_verify(repeat: int = 3):
    with _Board() as b:
        cmd = [str(BIN / "pumpctl"), "--port", b.info["port"], "--key",
               b.info["clinician_key"]]
        subprocess.run([*cmd, "refill", "--volume", "20 mL", "--yes"], check=True,
                       capture_output=True)
        best = None
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run([*cmd, "program", str(PRESCRIPTION), "--yes"], check=True,
                           capture_output=True)
            d = time.perf_counter() - t
            best = d if best is None else min(best, d)
    return (f"{best:.2f} s", "`pumpctl program --yes` as a command: validate, show, write, read "
                             "back, verify, confirm delivery (includes Python start-up)")


def bundle_size(board: str = "pico"):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["make", "-s", "-C", str(ROOT), "build", f"BOARD={board}",
                              f"BUILD={tmp}"], capture_output=True, text=True)
        if out.returncode != 0:
            return None
        files = [p for p in Path(tmp).rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
    return (f"{total} B", f"`make build BOARD={board}`: {len(files)} files (.mpy + main.py)")


def running_heap():
    """Heap and the slowest control-loop cycle of firmware/app.py on the VM
    (tests/vm/loop_check.py: a steady basal for 6000 cycles)."""
    from sim.runner import micropython_exe

    import os

    env = dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen")
    out = subprocess.run([micropython_exe(), str(ROOT / "tests" / "vm" / "loop_check.py")],
                         capture_output=True, text=True, env=env, timeout=300)
    fig = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("HEAP", "CYCLE_MAX_US"):
            fig[parts[0]] = int(parts[1])
    if "HEAP" not in fig:
        return None
    return fig


def heap_row():
    fig = running_heap()
    if fig is None:
        return None
    return (f"{fig['HEAP'] / 1024:.0f} KiB",
            "gc.mem_alloc() with the pump delivering, 64-bit unix VM (objects are about half "
            "that on the Pico's 32-bit port, which has about 190 KiB of heap)")


def cycle_row():
    fig = running_heap()
    if fig is None:
        return None
    return (f"{fig['CYCLE_MAX_US'] / 1000:.1f} ms",
            "slowest cycle of the control loop on the VM over 6000 cycles (service, serial "
            "poll, clock, watchdog feed; the flash record writes are counted, not timed, there)")
