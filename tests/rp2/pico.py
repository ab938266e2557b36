"""A live emulated Pico for tests/rp2 (make test-rp2): the bundle of `make build BOARD=pico` on
the released MicroPython rp2 UF2, in rp2040js, behind `pumpsim board --runtime rp2`.

Every wait here is for a condition (a reply, a count on the bench, a line on the console) with a
deadline generous enough for a loaded two-core machine: the emulator is CPU-bound and its speed
is not something a test may assume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from host_tools import mpybuild
from tests.board.test_update import source_bundle
from tests.board.vboard_fixture import LiveBoard
from tests.boards.board_data import constants
from tests.firmware.proto_bench import PARAMS  # noqa: F401  (the tests' prescription)
from tests.session_client import Session

ROOT = Path(__file__).resolve().parents[2]
REPLY_S = 60.0          # the emulator may run at a fraction of real time on a busy machine
PICO = constants("pico")
STEPS_PER_STROKE = PICO.STEPS_PER_STROKE
STROKE_NL = PICO.STROKE_NL


class Pico(LiveBoard):
    """A live emulated Pico, driven over its serial port (the session protocol, written out by
    hand in tests/session_client.py) and its harness channel."""

    REPLY_S = REPLY_S

    def __init__(self, flash: Path, speed: str = "1", dev: bool = False, blank: bool = False):
        # Its own TMPDIR (where boards register themselves) beside its flash directory: tests
        # run two at a time (pytest -n 2), and no tool may find the other worker's board.
        tmp = Path(flash).parent / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, TMPDIR=str(tmp))
        super().__init__(flash, runtime="rp2", speed=speed,
                         extra=["--dev"] if dev else ["--blank"] if blank else [], env=self.env)
        if not blank:
            self.use_keys(self.info["clinician_key"], self.info["patient_key"])

    def use_keys(self, clinician: str | Path, patient: str | Path) -> None:
        """The pump's key files (a blank Pico's come from its first install)."""
        self.use_key(clinician)
        self.keys = {"clinician_key": str(clinician), "patient_key": str(patient)}
        data = json.loads(Path(patient).read_text())
        self.patient = Session(self.port, bytes.fromhex(data["key"]), "patient",
                               self.pump_id, REPLY_S)


    def status(self):
        return self.ask({"cmd": "status"}, sign=True)

    def alarms(self):
        return {a["code"] for a in self.status()["alarms"]}

    def patient_bolus(self):
        return self.patient.ask("patient_bolus")

    def send_signed(self, cmd: str, args: dict | None = None) -> None:
        """A clinician request whose reply may never come (the power fails under it)."""
        if self.session.sn is None:
            self.session.hello()
        line, _ = self.session.line(cmd, args)
        self.send(line + b"\n")

    def wait_for(self, what, check, timeout_s=REPLY_S):
        """Poll `check()` until it is true; fail with `what` at the deadline."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            got = check()
            if got:
                return got
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def answers(self):
        """Wait until the pump answers on its line again (after a reset or a power cut); the
        next signed request opens a new session."""
        def ping():
            self.port.reset_input_buffer()
            self.port.write(b'{"id":7,"cmd":"ping"}\n')
            end = time.monotonic() + 2
            while time.monotonic() < end:
                if b'"pong"' in self.port.readline():
                    return True
            return False
        self.wait_for("the pump to answer", ping, 180)
        self.session.sn = None
        self.patient.sn = None


def flash_bundle(pico: Pico, bundle: Path, *extra: str) -> subprocess.CompletedProcess:
    """`make flash`'s tool against a running pump (host_tools/flash.py: a signed update over
    the protocol, with the development update key unless extra names another)."""
    return subprocess.run([sys.executable, "-m", "host_tools.flash", "--port", pico.info["port"],
                           "--key", pico.keys["clinician_key"], "--bundle", str(bundle), *extra],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=pico.env)


PICO_FILES = ("__init__.py", "pico.py", "rp2_common.py", "stepgen.py", "tmc2209.py")


def pico_bundle(dest: Path, version: str, app_source: str | None = None) -> Path:
    """A bundle as `make build BOARD=pico` makes it (every file compiled with mpy-cross for the
    Pico), from this tree with firmware/version.py saying `version`; app_source replaces
    firmware/app.py (a firmware that fails)."""
    src = source_bundle(dest / "src", version, app_source)
    shutil.rmtree(src / "boards")
    (src / "boards").mkdir()
    for name in PICO_FILES:
        shutil.copy(ROOT / "boards" / name, src / "boards" / name)
    out = dest / "bundle"
    # compiled by make build's compiler (host_tools/mpybuild.py) from paths relative to the
    # bundle: each .mpy then equals the one the pump runs wherever its source is unchanged
    # (and make flash lets the pump copy it instead of sending it)
    mpybuild.build(src, sorted(str(py.relative_to(src)) for py in src.rglob("*.py")), out)
    return out
