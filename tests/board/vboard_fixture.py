"""Start and drive a live virtual Pico (`pumpsim board`) from tests, through its serial port."""

import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import serial

from sim.board import inject
from tests.firmware.proto_bench import PARAMS
from tests.session_client import Session, read_reply

# `pumpsim board` (sim/cli.py picks the virtual board or, for --runtime rp2, the emulated Pico)
BOARD = [sys.executable, "-c",
         "import sys; from sim.cli import main; sys.exit(main(['board', *sys.argv[1:]]))"]
INJECT = [sys.executable, "-c",
          "import sys; from sim.board import main_inject; sys.exit(main_inject(sys.argv[1:]))"]


class LiveBoard:
    REPLY_S = 8.0   # how long a reply may take (s)

    def __init__(self, flash, runtime="micropython", speed="1", extra=(), env=None):
        self.proc = subprocess.Popen([*BOARD, "--runtime", runtime, "--flash", str(flash),
                                      "--speed", speed, *extra], stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.info = json.loads(self.proc.stdout.readline())
        self.port = serial.serial_for_url(self.info["port"], timeout=5)
        self.port.reset_input_buffer()
        self.next_id = 100
        if Path(self.info["clinician_key"]).exists():   # a blank Pico has none yet
            self.use_key(self.info["clinician_key"])

    def use_key(self, path):
        """Sign with this clinician key file from now on."""
        key_file = json.loads(Path(path).read_text())
        self.key = bytes.fromhex(key_file["key"])
        self.pump_id = key_file["pump_id"]
        self.session = Session(self.port, self.key, "clinician", self.pump_id, self.REPLY_S)

    def send(self, data: bytes):
        self.port.write(data)

    def read_reply(self, rid):
        return read_reply(self.port, rid, self.REPLY_S)[0]

    def ask(self, req: dict, sign=False):
        """A request; signed ones go through the session (and their replies are verified)."""
        if sign:
            return self.session.ask(req["cmd"], req.get("args"))
        self.next_id += 1
        req = dict(req, id=self.next_id)
        self.port.write(json.dumps(req, separators=(",", ":")).encode() + b"\n")
        return self.read_reply(self.next_id)

    def inject(self, action: str, *params: str) -> dict:
        """`pumpsim inject` done in this process (the same request over the same harness
        channel, without a Python start-up per call: the tests make hundreds; the command
        itself is tests/board/test_inject.py's)."""
        out = inject(self.info["control"], action, list(params), timeout_s=600)
        assert out.get("ok"), out
        return out

    def program(self, params=PARAMS, volume_nl=20_000_000):
        assert self.ask({"cmd": "program", "args": {"params": params}}, sign=True)["ok"]
        assert self.ask({"cmd": "refill", "args": {"volume_nl": volume_nl}}, sign=True)["ok"]

    def close(self):
        self.port.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@contextlib.contextmanager
def programmed_board(flash):
    """A live board with the tests' prescription and a full reservoir, for a module's tests;
    it must close cleanly."""
    board = LiveBoard(flash)
    try:
        board.program()
        yield board
    finally:
        assert board.close() == 0
