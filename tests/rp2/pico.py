"""A live emulated Pico for tests/rp2 (make test-rp2): the bundle of `make build BOARD=pico` on
the released MicroPython rp2 UF2, in rp2040js, behind `pumpsim board --runtime rp2`.

Every wait here is for a condition (a reply, a count on the bench, a line on the console) with a
deadline generous enough for a loaded two-core machine: the emulator is CPU-bound and its speed
is not something a test may assume.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

from tests.board.vboard_fixture import LiveBoard
from tests.boards.board_data import constants
from tests.firmware.proto_bench import PARAMS  # noqa: F401  (the tests' prescription)

ROOT = Path(__file__).resolve().parents[2]
REPLY_S = 60.0          # the emulator may run at a fraction of real time on a busy machine
PICO = constants("pico")
STEPS_PER_STROKE = PICO.STEPS_PER_STROKE
STROKE_NL = PICO.STROKE_NL


class Pico(LiveBoard):
    """A live emulated Pico, driven over its serial port and its harness channel."""

    REPLY_S = REPLY_S

    def __init__(self, flash: Path, speed: str = "1"):
        super().__init__(flash, runtime="rp2", speed=speed)
        self.patient = bytes.fromhex(json.loads(Path(self.info["patient_key"]).read_text())["key"])

    def sync(self):
        """Take the counter from the pump again (after a restart or a host tool signed)."""
        self.port.reset_input_buffer()
        self.ctr = self.ask({"cmd": "info"})["ctr"]["clinician"]

    def status(self):
        return self.ask({"cmd": "status"}, sign=True)

    def alarms(self):
        return {a["code"] for a in self.status()["alarms"]}

    def signed_line(self, req: dict, role: str = "clinician", ctr: int | None = None) -> bytes:
        """A request line signed by hand (a clinician's with the next counter by default)."""
        if ctr is None:
            self.ctr += 1
            ctr = self.ctr
        body = json.dumps({**req, "role": role, "ctr": ctr}, separators=(",", ":"))
        key = self.key if role == "clinician" else self.patient
        return f"{body} {hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}\n".encode()

    def patient_bolus(self):
        ctr = self.ask({"cmd": "info"})["ctr"]["patient"] + 1
        self.next_id += 1
        self.send(self.signed_line({"id": self.next_id, "cmd": "patient_bolus"}, "patient", ctr))
        return self.read_reply(self.next_id)

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
        """Wait until the pump answers on its line again (after a reset or a power cut)."""
        def ping():
            self.port.reset_input_buffer()
            self.port.write(b'{"id":7,"cmd":"ping"}\n')
            end = time.monotonic() + 2
            while time.monotonic() < end:
                line = self.port.readline()
                if b'"pong"' in line:
                    return True
            return False
        self.wait_for("the pump to answer", ping, 180)
        self.sync()


def flash_bundle(port: str, key: str, bundle: Path) -> subprocess.CompletedProcess:
    """`make flash`'s tool against a running pump (host_tools/flash.py: maintenance, the REPL,
    mpremote, a soft reset). The one place this tier flashes, so a new update path changes here."""
    return subprocess.run([sys.executable, "-m", "host_tools.flash", "--port", port, "--key",
                           key, "--bundle", str(bundle)], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
