"""Start and drive a live virtual Pico (`pumpsim board`) from tests, through its serial port."""

import json
import signal
import subprocess
import sys

import serial

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
        key_file = json.loads(open(self.info["clinician_key"]).read())
        self.key = bytes.fromhex(key_file["key"])
        self.next_id = 100
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

    def inject(self, *args):
        out = subprocess.run([*INJECT, "--control", self.info["control"], *args],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr + out.stdout
        return json.loads(out.stdout)

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
