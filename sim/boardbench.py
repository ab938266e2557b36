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
            # The drug library's start-dose guard wants a reason for this rate (as make demo).
            subprocess.run([*cmd, "program", str(PRESCRIPTION), "--yes", "--override-titration",
                            "benchmark: a patient already on this dose"], check=True,
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


# ---- on the emulated Pico (the MicroPython rp2 port in rp2040js) -------------------------------
DEVICE_LOOP = ROOT / "tests" / "rp2" / "device_loop.py"


# The update's signature check as the pump runs it (firmware/update.py rsa_verify), timed in the
# chip's own microseconds; the key, manifest and signature are written into the script.
RSA_RUNS = 3
_RSA_ON_DEVICE = """
import time, binascii
from firmware import update
m, msg, sig = [binascii.unhexlify(x) for x in ({m!r}, {msg!r}, {sig!r})]
ok = update.rsa_verify(m, msg, sig) and not update.rsa_verify(m, msg + b" ", sig)
t0 = time.ticks_us()
for _ in range({runs}):
    update.rsa_verify(m, msg, sig)
print("RSA_VERIFY_US", time.ticks_diff(time.ticks_us(), t0) // {runs})
print("RSA_OK", 1 if ok else 0)
print("DONE")
"""


def _figures(stdout: str) -> dict:
    fig = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isupper() and parts[1].isdigit():
            fig[parts[0]] = int(parts[1])
    return fig


def _run_on(port: str, script: Path, name: str) -> dict:
    out = subprocess.run([str(BIN / "mpremote"), "connect", port, "resume", "run",
                          str(script)], capture_output=True, text=True, timeout=900)
    if out.returncode != 0 or "DONE" not in out.stdout:
        raise RuntimeError(f"{name} failed on {port}:\n{out.stdout}{out.stderr}")
    return _figures(out.stdout)


def rsa_script(dest: Path, runs: int = RSA_RUNS) -> Path:
    """The on-device RSA timing script, with the development update key's modulus and a real
    signature of a manifest-sized message."""
    from host_tools import bundle

    key = bundle.load_update_key()
    msg = json.dumps({"v": 1, "version": "9.9.9", "board": "pico", "build": "production",
                      "files": [[f"firmware/m{i}.mpy", 4096, "0" * 64] for i in range(25)]},
                     separators=(",", ":")).encode()
    dest.write_text(_RSA_ON_DEVICE.format(m=bundle.modulus(key).hex(), msg=msg.hex(),
                                          sig=bundle.sign(key, msg).hex(), runs=runs))
    return dest


def on_pico(port: str, key_path: str, rsa_runs: int = RSA_RUNS) -> dict:
    """Measure the firmware on the Pico at `port` (emulated or real) from its own REPL: put it
    in maintenance, run tests/rp2/device_loop.py and the update's signature check with
    mpremote, soft-reset it back into the pump (stopped, as maintenance leaves it). Returns the
    scripts' figures (HEAP_FREE_BOOT, HEAP_FREE_RUN, CYCLE_MAX_US, STROKES, STROKES_LOCKED, RSA_VERIFY_US,
    RSA_OK); raises RuntimeError with their output if one failed."""
    from host_tools import flash
    from host_tools.link import Link, load_key

    with Link.open(port, key=load_key(key_path), timeout_s=30.0) as lk:
        lk.call("maintenance")
    if not flash._wait_repl(port, 300.0):
        raise RuntimeError(f"no REPL on {port} after maintenance")
    try:
        fig = _run_on(port, DEVICE_LOOP, "device_loop.py")
        with tempfile.TemporaryDirectory(prefix="pump-rsa-") as tmp:
            fig.update(_run_on(port, rsa_script(Path(tmp) / "rsa_on_device.py", rsa_runs),
                               "the RSA check"))
    finally:
        flash._reset(port)
    return fig


def pico_figures():
    """The on-device figures from a factory-fresh emulated Pico, or the reason there are none
    (the emulator's inputs are not on this machine)."""
    from sim import rp2board

    try:
        rp2board.check_inputs(rp2board.uf2_path(), rp2board.bootrom_path())
    except SystemExit as e:
        return str(e).splitlines()[0]
    with tempfile.TemporaryDirectory(prefix="pump-bench-rp2-") as tmp:
        proc = subprocess.Popen([str(BIN / "pumpsim"), "board", "--runtime", "rp2", "--speed",
                                 "max", "--dev", "--flash", str(Path(tmp) / "flash")],
                                stdout=subprocess.PIPE, text=True)
        try:
            info = json.loads(proc.stdout.readline())
            return on_pico(info["port"], info["clinician_key"])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


_PICO = {}


def _pico():
    if "fig" not in _PICO:
        _PICO["fig"] = pico_figures()
    return _PICO["fig"]


def _pico_or_skip():
    """(figures, None), or (None, the row saying why there is no emulated Pico)."""
    fig = _pico()
    if isinstance(fig, str):
        return None, ("skipped", f"no emulated Pico: {fig}")
    return fig, None


def pico_heap_rows():
    fig, skipped = _pico_or_skip()
    if skipped:
        return skipped
    return (f"{fig['HEAP_FREE_BOOT'] // 1024} KiB free",
            f"emulated Pico (rp2 port, v1.28.0 UF2): gc.mem_free() after boot and programming; "
            f"{fig['HEAP_FREE_RUN'] // 1024} KiB free while delivering (tests/rp2/device_loop.py)")


def pico_rsa_row():
    fig, skipped = _pico_or_skip()
    if skipped:
        return skipped
    return (f"{fig['RSA_VERIFY_US'] / 1000:.0f} ms",
            f"firmware/update.py's RSA-3072 check of a 25-file manifest's signature on the "
            f"emulated Pico, in its own clock, mean of {RSA_RUNS} (rp2040js counts about one "
            "cycle an instruction: a real RP2040 running from flash is somewhat slower)")


def pico_cycle_row():
    fig, skipped = _pico_or_skip()
    if skipped:
        return skipped
    return (f"{fig['CYCLE_MAX_US'] / 1000:.2f} ms",
            f"slowest control-loop cycle on the emulated Pico in its own clock, heap locked, "
            f"{fig['STROKES']} strokes on the bench (rp2040js counts about one cycle an "
            "instruction; a real stroke adds its 12.5 ms of PIO pulses, which the emulator "
            "runs at once)")
