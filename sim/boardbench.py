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

from host_tools import mpybuild

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
        self.info = _first_line(self.proc)
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


def _first_line(proc: subprocess.Popen) -> dict:
    """The JSON first line a `pumpsim board` prints (its port, keys, harness channel)."""
    line = proc.stdout.readline() if proc.stdout is not None else ""
    if not line:
        raise RuntimeError("pumpsim board ended before its first line")
    return json.loads(line)


def _rp2_missing() -> str | None:
    """Why there is no emulated Pico on this machine (its inputs), or None."""
    from sim import rp2board

    try:
        rp2board.check_inputs(rp2board.uf2_path(), rp2board.bootrom_path())
    except SystemExit as e:
        return str(e).splitlines()[0]
    return None


class _Pico:
    """A new emulated Pico (`pumpsim board --runtime rp2 --speed max`) for a with."""

    def __init__(self, dev: bool = False):
        self.dev = dev

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="pump-bench-rp2-")
        self.proc = subprocess.Popen([str(BIN / "pumpsim"), "board", "--runtime", "rp2",
                                      "--speed", "max", *(["--dev"] if self.dev else []),
                                      "--flash", str(Path(self.tmp.name) / "flash")],
                                     stdout=subprocess.PIPE, text=True)
        self.info = _first_line(self.proc)
        return self

    def inject(self, action: str, *params: str) -> dict:
        from sim.board import inject

        out = inject(self.info["control"], action, list(params), timeout_s=600)
        if not out.get("ok"):
            raise RuntimeError(f"pumpsim inject {action} {' '.join(params)}: {out}")
        return out

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.tmp.cleanup()


def pico_figures():
    """The on-device figures from a factory-fresh emulated Pico, or the reason there are none
    (the emulator's inputs are not on this machine)."""
    missing = _rp2_missing()
    if missing:
        return missing
    with _Pico(dev=True) as pico:
        return on_pico(pico.info["port"], pico.info["clinician_key"])


# A pump at 60 mL/day (a stroke every 0.36 s): it strokes within a moment of any boot.
FAST = {"conc_ng_ml": 1000000, "steps": [[0, 60000000]], "max_daily_ng": 80000000,
        "low_res_nl": 2000000}
CHIP_HZ = 125_000_000       # the RP2040's clock at MicroPython's default
SERIAL_LINES = 20


def _version_bump(dest: Path, version: str = "9.9.9") -> Path:
    """`make build BOARD=pico` into dest with firmware/version.mpy saying `version`: the update
    a release that changes one module is."""
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "build", "BOARD=pico",
                          f"BUILD={dest}"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"make build failed: {out.stdout}{out.stderr}")
    src = dest / "src" / "firmware"
    src.mkdir(parents=True)
    (src / "version.py").write_text(f'VERSION = "{version}"\n')
    # compiled as make build compiles it (host_tools/mpybuild.py)
    mpybuild.build(dest / "src", ["firmware/version.py"], dest)
    return dest


def update_figures() -> dict | str:
    """On a new production Pico (the emulated one, at full speed): the chip cycles of an idle
    hour, of `make flash` of a version bump (sent, copied, checked, switched, confirmed) and
    its wall time here; and the chip time from a power-on to the first stroke."""
    from host_tools.link import Link, load_key

    missing = _rp2_missing()
    if missing:
        return missing
    fig: dict = {}
    with _Pico() as pico, tempfile.TemporaryDirectory(prefix="pump-bench-bump-") as tmp:
        port, key = pico.info["port"], pico.info["clinician_key"]
        pico.inject("advance", "2 min")   # past the minute the firmware watches BOOTSEL
        c0 = pico.inject("truth")["cycles"]
        pico.inject("advance", "1h")
        fig["IDLE_HOUR_CYCLES"] = pico.inject("truth")["cycles"] - c0
        with Link.open(port, key=load_key(key), timeout_s=30.0) as lk:
            # the serial line's cost: long unsigned pings, as long as an update's chunks
            line = json.dumps({"id": 1, "cmd": "ping", "pad": "x" * 900}).encode() + b"\n"
            lk.call("ping", signed=False)
            c0 = pico.inject("truth")["cycles"]
            for _ in range(SERIAL_LINES):
                lk.exchange(line, 1)
            fig["SERIAL_CYCLES_PER_BYTE"] = ((pico.inject("truth")["cycles"] - c0)
                                             // (SERIAL_LINES * len(line)))
            lk.call("program", {"params": FAST})
            lk.call("refill", {"volume_nl": 20_000_000})
        pico.inject("advance", "10s")
        pico.inject("power_loss", "for=1s")
        for _ in range(120):
            truth = pico.inject("truth")
            if truth["boot_to_stroke_ms"] is not None:
                fig["BOOT_TO_STROKE_MS"] = truth["boot_to_stroke_ms"]
                break
            pico.inject("advance", "1s")
        with Link.open(port, key=load_key(key), timeout_s=30.0) as lk:
            st = lk.call("info", signed=False)["self_test"]
            if not st["passed"]:
                raise RuntimeError(f"the self-test failed on the emulated Pico: {st}")
            fig["SELF_TEST_MS"] = st["ms"]
        bundle = _version_bump(Path(tmp) / "bundle")
        c0 = pico.inject("truth")["cycles"]
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "host_tools.flash", "--port", port, "--key",
                              key, "--bundle", str(bundle)], capture_output=True, text=True,
                             timeout=900, cwd=ROOT)
        fig["UPDATE_WALL_S"] = time.perf_counter() - t0
        if out.returncode != 0 or "confirmed" not in out.stdout:
            raise RuntimeError(f"make flash failed on the emulated Pico:\n{out.stdout}"
                               f"{out.stderr}")
        fig["UPDATE_CYCLES"] = pico.inject("truth")["cycles"] - c0
        fig["UPDATE_SENT"] = next((x.split("; ")[1] for x in out.stdout.splitlines()
                                   if " bytes sent" in x), "all")
    return fig


_PICO: dict = {}


def _cached(name: str, measure):
    if name not in _PICO:
        _PICO[name] = measure()
    return _PICO[name]


def _pico_row(figures: str, row) -> tuple[str, str]:
    """row(figures) from the emulated Pico's measurement `figures` (pico_figures or
    update_figures, made once per run), or the row saying why there is none."""
    fig = _cached(figures, pico_figures if figures == "loop" else update_figures)
    if isinstance(fig, str):
        return "skipped", f"no emulated Pico: {fig}"
    return row(fig)


def pico_heap_rows():
    return _pico_row("loop", lambda fig: (
        f"{fig['HEAP_FREE_BOOT'] // 1024} KiB free",
        f"emulated Pico (rp2 port, v1.28.0 UF2): gc.mem_free() after boot and programming; "
        f"{fig['HEAP_FREE_RUN'] // 1024} KiB free while delivering (tests/rp2/device_loop.py)"))


def pico_rsa_row():
    return _pico_row("loop", lambda fig: (
        f"{fig['RSA_VERIFY_US'] / 1000:.0f} ms",
        f"firmware/update.py's RSA-3072 check of a 25-file manifest's signature on the "
        f"emulated Pico, in its own clock, mean of {RSA_RUNS} (rp2040js counts about one "
        "cycle an instruction: a real RP2040 running from flash is somewhat slower)"))


def pico_cycle_row():
    return _pico_row("loop", lambda fig: (
        f"{fig['CYCLE_MAX_US'] / 1000:.2f} ms",
        f"slowest control-loop cycle on the emulated Pico in its own clock, heap locked, "
        f"{fig['STROKES']} strokes on the bench (rp2040js counts about one cycle an "
        "instruction; a real stroke adds its 12.5 ms of PIO pulses, which the emulator "
        "runs at once)"))


def pico_update_row():
    return _pico_row("update", lambda fig: (
        f"{fig['UPDATE_CYCLES'] / CHIP_HZ:.1f} s",
        f"`make flash` of a version bump onto the emulated Pico ({fig['UPDATE_SENT']}, the "
        f"rest copied on the pump; checked, switched, rebooted, confirmed): "
        f"{fig['UPDATE_CYCLES'] / 1e6:.0f} M chip cycles, the figure's time at 125 MHz: a "
        f"real Pico's estimate (flash wait states add to it). The emulator took "
        f"{fig['UPDATE_WALL_S']:.0f} s of wall time here"))


def pico_boot_row():
    return _pico_row("update", lambda fig: (
        f"{fig['BOOT_TO_STROKE_MS'] / 1000:.2f} s",
        "power-on to the first stroke on the emulated Pico, in its own clock: MicroPython's "
        "start, the loader, the firmware's imports, the boot from the records and its "
        "self-test, at 60 mL/day (a stroke every 0.36 s)"))


def pico_serial_row():
    return _pico_row("update", lambda fig: (
        f"{fig['SERIAL_CYCLES_PER_BYTE']} cycles/B",
        f"the emulated Pico's work for each byte of a request line ({SERIAL_LINES} unsigned "
        f"`ping` lines of about 950 bytes, an update chunk's size: read, framed, parsed, "
        f"answered), {fig['SERIAL_CYCLES_PER_BYTE'] * 1e6 / CHIP_HZ:.0f} us a byte at 125 MHz"))


def pico_idle_row():
    return _pico_row("update", lambda fig: (
        f"{fig['IDLE_HOUR_CYCLES'] / CHIP_HZ * 1000 / 3600:.2f} ms/s",
        f"the emulated Pico's busy time in an idle hour (no therapy: the watchdog's wake-ups "
        f"and the checks), {fig['IDLE_HOUR_CYCLES'] / 1e6:.0f} M cycles an hour"))


def pico_self_test_row():
    return _pico_row("update", lambda fig: (
        f"{fig['SELF_TEST_MS']} ms",
        "the power-on self-test on a production emulated Pico after a power cut (`info`'s "
        "self_test.ms, the chip's own clock: the code's signature and hashes, the memory march, "
        "the driver, the sensors, the buzzer; the watchdog's proof, once an install, adds its "
        "reset to the boot after an install)"))


def pico_check_row():
    return _pico_row("loop", lambda fig: (
        f"{fig['CHECK_MAX_US'] / 1000:.2f} ms; slices {fig['SLICE_MAX_US'] / 1000:.2f} ms",
        f"the slowest periodic check (every 5 min: DRV_STATUS, the die's temperature) on the "
        f"emulated Pico, in its own clock, of 24 in a row from tests/rp2/device_loop.py (mean "
        f"{fig['CHECK_MEAN_US'] / 1000:.2f} ms), and the slowest of the slices they owed, each "
        f"of which the control loop does in a wake-up of its own at least 30 ms from any "
        f"stroke: a slice of the memory march, a step of the code's hashes (a file opened "
        f"through littlefs, or a slice of it hashed)"
        f"{'' if fig.get('CHECK_CODE') else ' (without the code part: no manifest found)'} "
        f"(mean {fig['SLICE_MEAN_US'] / 1000:.2f} ms); about "
        f"{(fig['CHECK_MEAN_US'] + 1.5 * fig['SLICE_MEAN_US']) * 12 * 24 / 1e6:.1f} s of the "
        f"chip's time a day. A garbage collection, which the code's file opens make due now "
        f"and then (about 400 bytes a file), takes {fig['GC_US'] / 1000:.1f} ms"))
