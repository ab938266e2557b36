"""`pumpsim board` and `pumpsim inject`: a virtual Pico on a pseudo-terminal.

The board is two processes. This one (CPython) owns the pseudo-terminal, the flash directory,
the harness socket and the life cycle; the firmware process (sim/vboard_main.py, on the
MicroPython VM by default) runs firmware/app.py on a simulated board (sim/vboard.py) whose
serial line is the pseudo-terminal's master side. Host tools open the slave side
(`/dev/pts/N`), as they would open `/dev/ttyACM0`.

The harness socket takes one JSON request per connection and answers one JSON line; this
process forwards it to the firmware process over a pipe. After `maintenance` the firmware
process exits with status 3 and a MicroPython REPL takes the line, working in the flash
directory, until it exits; then the firmware boots again, as a Pico does after a reset.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXIT_REPL = 3
EXIT_RESET = 4
EPOCH = datetime(2024, 1, 1)


def registry_dir() -> Path:
    """Where running virtual boards announce themselves (pumpctl looks here)."""
    return Path(tempfile.gettempdir()) / f"pumpsim-{os.getuid()}"


def _speed(text: str) -> int:
    if text == "max":
        return 0
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed must be a whole number or max, got {text!r}")
    if n < 1 or n > 1_000_000:
        raise argparse.ArgumentTypeError(f"--speed must be from 1 to 1000000 or max, got {n}")
    return n


def board_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pumpsim board",
        description="Boot a virtual Pico: the pump firmware on the MicroPython VM (or CPython), "
                    "its serial line on a pseudo-terminal that pumpctl and pyserial open like "
                    "/dev/ttyACM0, and a harness channel for `pumpsim inject`. Prints one JSON "
                    "line (port, control, clinician_key, patient_key, flash) and runs until "
                    "SIGTERM or Ctrl-C.")
    p.add_argument("--runtime", choices=("micropython", "cpython", "rp2"), default="micropython",
                   help="where the firmware runs (default: micropython); rp2: the MicroPython "
                        "rp2 port in an emulated RP2040 with its pins on a simulated bench "
                        "(docs/hardware.md)")
    p.add_argument("--flash", metavar="DIR",
                   help="flash directory, kept across runs like a Pico's flash (default: a new "
                        "one, i.e. a factory-fresh pump)")
    p.add_argument("--speed", type=_speed, default=1, metavar="N|max",
                   help="virtual seconds per real second (default 1); max runs free")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated plant (default 1)")
    p.add_argument("--uf2", metavar="FILE", help="rp2: the MicroPython UF2 (default "
                   "$MICROPYTHON_UF2, else ../shared/rp2emu/RPI_PICO-v1.28.0.uf2)")
    p.add_argument("--bootrom", metavar="FILE", help="rp2: the RP2040 boot ROM, .bin or .mjs "
                   "(default $RP2040_BOOTROM, else ../shared/rp2emu/bootrom.mjs)")
    p.add_argument("--dev", action="store_true", help="rp2: a new pump gets a development build "
                   "(make build DEV=1), whose `maintenance` hands back MicroPython's REPL")
    p.add_argument("--blank", action="store_true", help="rp2: a new flash directory is an erased "
                   "Pico with only the MicroPython UF2 copied onto it: no pump firmware, no keys, "
                   "no clock; its first install is `make flash PORT=...` (README.md). An "
                   "existing flash directory boots what it holds")
    return p


class FlashInUse(Exception):
    """Another running board holds this flash directory."""


def lock_flash(flash: Path):
    """Hold the flash directory for this board's life: two boards on one flash would write the
    same records. Returns the open lock file (the lock lasts while it is open)."""
    f = open(flash / "board.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise FlashInUse(f"the flash directory {flash} is in use by the virtual board of "
                         f"{holder}: stop that board first, or give another --flash") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}")
    f.flush()
    return f


class Board:
    def __init__(self, args):
        self.args = args
        self.runtime = args.runtime
        self.flash = Path(args.flash or tempfile.mkdtemp(prefix="pumpsim-flash-")).resolve()
        (self.flash / "data").mkdir(parents=True, exist_ok=True)
        self.flash_lock = lock_flash(self.flash)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)            # no echo, no newline translation: a raw serial line
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        self.reg = registry_dir()
        self.reg.mkdir(mode=0o700, exist_ok=True)
        self.control = str(self.reg / f"{os.getpid()}.ctl")
        self.lock = threading.Lock()
        self.child: subprocess.Popen | None = None
        self.mode = "firmware"
        self.stopping = False
        self.ctl_w: io.FileIO | None = None     # the harness pipe to the firmware process
        self.ctl_r: io.FileIO | None = None     # ... and back

    # ---- the firmware process -------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen:
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        clock0 = int((datetime.now() - EPOCH).total_seconds())
        cfg = {"flash": str(self.flash), "ser_fd": self.master, "ctl_in": p2c_r,
               "ctl_out": c2p_w, "speed": self.args.speed, "clock0_ts": clock0,
               "seed": self.args.seed}
        env = dict(os.environ)
        if self.runtime == "micropython":
            from sim.runner import micropython_exe

            # What `make flash` copied to the flash comes first, as on a Pico; the rest of the
            # tree (the simulator, and the firmware until something is flashed) after it.
            env["MICROPYPATH"] = f"{self.flash}:{ROOT}:.frozen"
            cmd = [micropython_exe(), "-X", "heapsize=2M", str(ROOT / "sim" / "vboard_main.py"),
                   json.dumps(cfg)]
        else:
            env["PYTHONPATH"] = str(ROOT)
            cmd = [sys.executable, str(ROOT / "sim" / "vboard_main.py"), json.dumps(cfg)]
        child = subprocess.Popen(cmd, pass_fds=(self.master, p2c_r, c2p_w), env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 cwd=str(self.flash))
        os.close(p2c_r)
        os.close(c2p_w)
        self.ctl_w = io.FileIO(p2c_w, "wb")
        self.ctl_r = io.FileIO(c2p_r, "rb")
        self.child = child
        self.mode = "firmware"
        return child

    def _repl(self):
        """After maintenance: a MicroPython REPL on the line, working in the flash directory."""
        from sim.runner import micropython_exe

        self.mode = "repl"
        env = dict(os.environ, MICROPYPATH=f"{self.flash}:{ROOT}:.frozen")
        os.set_blocking(self.master, True)
        child = subprocess.Popen([micropython_exe()], stdin=self.master, stdout=self.master,
                                 stderr=self.master, env=env, cwd=str(self.flash))
        self.child = child
        child.wait()
        os.set_blocking(self.master, False)

    def request(self, req: dict) -> dict:
        """Send one harness request to the firmware process and wait for its answer."""
        with self.lock:
            child, ctl_w, ctl_r = self.child, self.ctl_w, self.ctl_r
            if self.mode != "firmware" or child is None or ctl_w is None or ctl_r is None \
                    or child.poll() is not None:
                return {"ok": False, "error": f"the board is not running firmware ({self.mode})"}
            try:
                ctl_w.write((json.dumps(req) + "\n").encode())
            except OSError as e:
                return {"ok": False, "error": f"the firmware process is gone: {e}"}
            line = b""
            while not line.endswith(b"\n"):
                chunk = ctl_r.read(1)
                if not chunk:
                    return {"ok": False, "error": "the firmware process ended"}
                line += chunk
            return json.loads(line)

    # ---- first boot: provisioning over the serial line --------------------------------------
    def _provisioned(self) -> bool:
        return (self.flash / "clinician.key").exists() and (self.flash / "data" / "auth.a").exists()

    def _provision(self):
        from host_tools import bundle

        keys = {"clinician": secrets.token_hex(32), "patient": secrets.token_hex(32)}
        # A virtual pump is a development pump: its update key is the repository's public
        # development key (host_tools/keys/README.md), so `make flash` can update it.
        upd = bundle.modulus(bundle.load_update_key()).hex()
        req = {"id": 1, "cmd": "provision",
               "args": {"clinician_key": keys["clinician"], "patient_key": keys["patient"],
                        "update_key": upd}}
        reply = self._ask(req)
        info = self._ask({"id": 2, "cmd": "info"})
        if not reply.get("ok"):
            raise SystemExit(f"pumpsim board: provisioning failed: {reply}")
        for role, key in keys.items():
            path = self.flash / f"{role}.key"
            path.write_text(json.dumps({"role": role, "key": key, "pump_id": info["pump_id"]}))
            path.chmod(0o600)

    def _ask(self, req: dict, timeout: float = 20.0) -> dict:
        """A request on the serial line from this side (only before anyone else connects)."""
        os.write(self.slave, (json.dumps(req) + "\n").encode())
        buf = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([self.slave], [], [], 0.2)
            if r:
                buf += os.read(self.slave, 4096)
                for line in buf.split(b"\n"):
                    line = line.strip()
                    if line.startswith(b"{"):
                        try:
                            out = json.loads(line)
                        except ValueError:
                            continue
                        if out.get("id") == req["id"]:
                            return out
            if self.child is None or self.child.poll() is not None:
                break
        raise SystemExit(f"pumpsim board: the firmware did not answer {req['cmd']!r}")

    # ---- the harness socket ------------------------------------------------------------------
    def _listen(self) -> socket.socket:
        """The harness socket, bound and listening before the first line announces it (a
        client that reads the line and connects at once must find it)."""
        try:
            os.unlink(self.control)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.control)
        os.chmod(self.control, 0o600)
        srv.listen(8)
        return srv

    def _serve(self, srv: socket.socket):
        while not self.stopping:
            conn, _ = srv.accept()
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        with conn:
            f = conn.makefile("rwb")
            line = f.readline()
            try:
                req = json.loads(line)
            except ValueError:
                out = {"ok": False, "error": "the request is not JSON"}
            else:
                out = self.request(req)
            try:
                f.write((json.dumps(out) + "\n").encode())
                f.flush()
            except OSError:
                pass

    # ---- life cycle --------------------------------------------------------------------------
    def _base_manifest(self) -> None:
        """The virtual board's base install is the repository's tree (until `make flash`
        copies a bundle into the flash directory): as a factory would, sign its manifest with
        the development update key the board is provisioned with, for the self-test."""
        from host_tools import bundle

        if not (self.flash / "firmware").is_dir():
            path = self.flash / bundle.BASE_MANIFEST
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bundle.base_record(ROOT, "virtual"))

    def run(self) -> int:
        fresh = not self._provisioned()
        self._base_manifest()
        child = self._spawn()
        if fresh:
            self._provision()

        def stop(signum, frame):
            # No locks here: a harness request may be waiting on the firmware right now. One
            # short line into the pipe is atomic; the firmware saves and exits, and if it does
            # not within 5 s it is killed.
            self.stopping = True
            child = self.child
            if child is None or child.poll() is not None:
                return
            ctl_w = self.ctl_w
            if self.mode == "firmware" and ctl_w is not None:
                try:
                    os.write(ctl_w.fileno(), b'{"do": "shutdown"}\n')
                except OSError:
                    pass
            else:
                child.terminate()
            timer = threading.Timer(5.0, lambda: child.poll() is None and child.kill())
            timer.daemon = True  # must not hold the process open once the child is gone
            timer.start()

        # Before the first line goes out: whoever reads it may stop the board at once.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        reg_file = self._announce()
        crashes = 0
        quick = 0
        try:
            while True:
                started = time.monotonic()
                code = child.wait()
                if self.stopping:
                    return 0
                if code == EXIT_REPL:
                    self._repl()
                    if self.stopping:
                        return 0
                elif code == EXIT_RESET:
                    # A reset into another firmware (an update, a rollback, a crash). A board
                    # whose every firmware crashes at once would spin: give up after many.
                    quick = quick + 1 if time.monotonic() - started < 5 else 0
                    if quick > 12:
                        print("pumpsim board: the firmware keeps crashing at boot",
                              file=sys.stderr)
                        return 1
                elif code != 0:
                    crashes += 1
                    print(f"pumpsim board: the firmware process exited with status {code}",
                          file=sys.stderr)
                    if crashes > 3:
                        return 1
                else:
                    return 0
                child = self._spawn()
        finally:
            self._unannounce(reg_file)

    def _announce(self) -> Path:
        """Register the board where pumpctl looks, open the harness channel and print the
        first line of standard output. Returns the registry file."""
        info = {"port": self.port, "control": self.control,
                "clinician_key": str(self.flash / "clinician.key"),
                "patient_key": str(self.flash / "patient.key"), "flash": str(self.flash),
                "pid": os.getpid(), "runtime": self.runtime, "speed": self.args.speed,
                "root": str(ROOT)}  # the checkout it runs from: pumpctl prefers its own
        reg_file = self.reg / f"{os.getpid()}.json"
        reg_file.write_text(json.dumps(info))
        threading.Thread(target=self._serve, args=(self._listen(),), daemon=True).start()
        print(json.dumps(info), flush=True)
        return reg_file

    def _unannounce(self, reg_file: Path) -> None:
        for path in (reg_file, Path(self.control)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def main_board(argv: list[str]) -> int:
    """`pumpsim board` on the MicroPython VM or CPython; the emulated Pico builds on this module
    and has its own (sim/rp2board.py main_board), which `pumpsim` chooses for --runtime rp2."""
    p = board_parser()
    args = p.parse_args(argv)
    if args.runtime == "rp2":
        p.error("the emulated Pico starts from `pumpsim board --runtime rp2` (sim/rp2board.py)")
    if args.blank or args.dev:
        p.error(f"--{'blank' if args.blank else 'dev'} is for the emulated Pico (--runtime rp2)")
    return run_board(Board, args)


def run_board(kind, args) -> int:
    """Build a board of class `kind` from parsed arguments and run it to the end."""
    try:
        board = kind(args)
    except FlashInUse as e:
        print(f"pumpsim board: {e}", file=sys.stderr)
        return 2
    return board.run()


# ---- pumpsim inject ------------------------------------------------------------------------

# What the harness can do to a running board (sim/vboard.py): the world around the pump and the
# patient's button. Clinician commands (boluses, programming) go through pumpctl, signed.
INJECTABLE = ("patient_bolus", "refill", "occlusion", "clear_occlusion", "motor_stall",
              "clear_motor_stall", "sensor_fault", "battery", "power_loss", "reboot",
              "set_clock", "ack", "stop", "resume", "hang", "corrupt_flash", "flash_failing",
              "driver", "die_temperature", "memory_fault")
# The physical act at the pump (a power cycle with the provisioning button held: docs/
# security.md), damage to the key record, and to a file of the running firmware while the power
# is off; none takes arguments.
HARDWARE = ("button", "corrupt_keys", "corrupt_code")

# Keys beyond a scenario's that only the emulated Pico's bench can act on (sim/rp2board.py);
# the virtual board refuses them.
RP2_KEYS = {
    "power_loss": {"at_program": ("at_program", lambda t, k: _count(t, k), False)},
    "motor_stall": {"at_step": ("at_step", lambda t, k: _count(t, k, 0), False)},
}


def _count(text: str, key: str, low: int = 1) -> int:
    from host_tools.errors import InputError

    if not text.isdigit() or int(text) < low:
        raise InputError(key, text, f"a whole number from {low}")
    return int(text)


def _inject_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pumpsim inject",
        description="Act on a running virtual board through its harness channel: a scenario "
                    "action (faults, refill of the physical reservoir, patient button, power "
                    "loss, reboot, hang...), `advance DURATION` (run virtual time forward and "
                    "return when done) or `truth` (the plant's state as JSON). Arguments are "
                    "KEY=VALUE with the units of a scenario file, e.g. `battery level=25%`. "
                    "The emulated Pico (--runtime rp2) also takes `power_loss for=D "
                    "at_program=N` (the power fails right after the Nth flash page programmed) "
                    "and `motor_stall at_step=N` (DIAG rises at that step of each stroke). "
                    "Actions: " + ", ".join(["advance", "truth", *INJECTABLE, *HARDWARE]) + ". "
                    "`button` power-cycles the board with its button held (opens provisioning "
                    "for a pump whose keys are damaged or lost); `corrupt_keys` damages both "
                    "copies of the key record and resets; `corrupt_code` changes a file of "
                    "the running firmware (firmware/march) while the power is off, for the "
                    "self-test to find at the boot after.")
    p.add_argument("--control", required=True, metavar="PATH",
                   help="the board's harness socket (`control` in pumpsim board's first line)")
    p.add_argument("action")
    p.add_argument("params", nargs="*", metavar="KEY=VALUE|DURATION")
    return p


def _inject_request(action: str, params: list[str]) -> dict:
    from host_tools import units
    from host_tools.errors import InputError
    from host_tools.scenario import ACTIONS

    if action == "truth":
        if params:
            raise InputError("truth", " ".join(params), "no arguments")
        return {"do": "truth"}
    if action in HARDWARE:
        if params:
            raise InputError(action, " ".join(params), "no arguments")
        return {"do": action}
    if action == "advance":
        text = " ".join(p.split("=", 1)[1] if p.startswith("for=") else p for p in params)
        return {"do": "advance", "args": {"ms": units.duration_ms(text, "advance")}}
    if action not in INJECTABLE:
        hint = " (a clinician's command: use pumpctl)" if action in ACTIONS else ""
        raise InputError("action", action + hint,
                         "advance, truth or one of " + ", ".join(INJECTABLE + HARDWARE))
    spec = {**ACTIONS[action], **RP2_KEYS.get(action, {})}
    args = {}
    given = {}
    for p in params:
        if "=" not in p:
            raise InputError(action, p, "KEY=VALUE")
        k, v = p.split("=", 1)
        if k not in spec:
            raise InputError(k, v, f"one of the keys of {action}: {', '.join(spec) or 'none'}")
        given[k] = v
    for name, (arg, parse, required) in spec.items():
        if name in given:
            args[arg] = parse(given[name], name)
        elif required:
            raise InputError(name, "(missing)", f"a value: {action} needs {name}=...")
    return {"do": action, "args": args}


class HarnessError(Exception):
    """The board's harness channel could not be reached, or closed without an answer."""


def inject(control: str, action: str, params: list[str], timeout_s: float | None = None) -> dict:
    """What `pumpsim inject --control CONTROL ACTION PARAMS...` does, from Python: the board's
    answer (a dict with "ok"). InputError for bad arguments, HarnessError when the board
    cannot be reached. Tests use it to skip a Python start-up per call."""
    req = _inject_request(action, params)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(control)
            f = s.makefile("rwb")
            f.write((json.dumps(req) + "\n").encode())
            f.flush()
            line = f.readline()
    except OSError as e:
        raise HarnessError(f"cannot reach the board at {control}: {e}") from None
    if not line:
        raise HarnessError("the board closed the channel without answering")
    return json.loads(line)


def main_inject(argv: list[str]) -> int:
    from host_tools.errors import InputError

    args = _inject_parser().parse_args(argv)
    try:
        out = inject(args.control, args.action, args.params)
    except InputError as e:
        print(f"pumpsim inject: {e}", file=sys.stderr)
        return 2
    except HarnessError as e:
        print(f"pumpsim inject: {e}", file=sys.stderr)
        return 3
    print(json.dumps(out))
    return 0 if out.get("ok") else 1
