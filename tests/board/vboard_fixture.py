"""Start and drive a live virtual Pico (`pumpsim board`) from tests, through its serial port."""

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time

import serial

from tests.firmware.proto_bench import PARAMS

BOARD = [sys.executable, "-c",
         "import sys; from sim.board import main_board; sys.exit(main_board(sys.argv[1:]))"]
INJECT = [sys.executable, "-c",
          "import sys; from sim.board import main_inject; sys.exit(main_inject(sys.argv[1:]))"]


class LiveBoard:
    REPLY_S = 8.0   # how long a reply may take (s)

    def __init__(self, flash, runtime="micropython", speed="1"):
        self.proc = subprocess.Popen([*BOARD, "--runtime", runtime, "--flash", str(flash),
                                      "--speed", speed], stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.port = serial.serial_for_url(self.info["port"], timeout=5)
        self.port.reset_input_buffer()
        key_file = json.loads(open(self.info["clinician_key"]).read())
        self.key = bytes.fromhex(key_file["key"])
        self.next_id = 100
        self.ctr = self.ask({"cmd": "info"})["ctr"]["clinician"]

    def send(self, data: bytes):
        self.port.write(data)

    def read_reply(self, rid):
        end = time.monotonic() + self.REPLY_S
        while time.monotonic() < end:
            line = self.port.readline()
            if not line:
                continue
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if reply.get("id") == rid:
                return reply
        raise AssertionError(f"no reply to request {rid}")

    def ask(self, req: dict, sign=False):
        self.next_id += 1
        req = dict(req, id=self.next_id)
        if sign:
            self.ctr += 1
            req.update(role="clinician", ctr=self.ctr)
        body = json.dumps(req, separators=(",", ":"))
        line = body
        if sign:
            line += " " + hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        self.port.write(line.encode() + b"\n")
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
