"""A board in memory for driving firmware/app.py and firmware/proto.py on CPython.

Its storage is a dict of files (firmware.store.MemDev), so a "reboot" is a new App on the same
storage. The serial line is a byte buffer: `ask()` feeds a request line byte by byte, as the
main loop does, and returns the decoded reply lines.
"""

import hashlib
import hmac
import json

from firmware.app import App
from firmware.store import MemDev
from tests.vm.healthy import HealthyHal

CLIN = bytes(range(32))
PAT = bytes(range(100, 132))
PARAMS = {"conc_ng_ml": 25000000, "steps": [[0, 2000000], [420, 3000000]],
          "max_daily_ng": 6000000, "low_res_nl": 2000000, "pb": [200000, 600, 7200, 4],
          "meta": {"drug": "morphine", "units": "mg"}}


class MemHal(HealthyHal):
    def __init__(self, dev=None, cause=0):
        HealthyHal.__init__(self)
        self.dev = dev if dev is not None else MemDev()
        self.t = 5000
        self.ts0 = 91_500_000
        self.out = bytearray()
        self.cause = cause

    def ticks_ms(self):
        return self.t & ((1 << 30) - 1)

    def clock_ts(self):
        return self.ts0 + self.t // 1000

    def set_clock_ts(self, ts):
        self.ts0 = ts - self.t // 1000

    def reset_cause(self):
        return self.cause

    def led(self, on):
        pass

    def start_watchdog(self, ms):
        pass

    def feed(self):
        pass

    def wait(self, ms):
        self.t += ms

    def read_byte(self):
        return -1

    def write(self, data):
        self.out += data

    def uid(self):
        return "mem0001"

    def storage(self):
        return self.dev

    def reset(self):
        raise RuntimeError("reset")


def boot(dev=None, cause=0):
    hal = MemHal(dev, cause)
    app = App(hal)
    app.boot()
    return app


def feed_raw(app, data: bytes) -> str:
    """Feed raw bytes; returns what the pump wrote back, as text."""
    hal = app.hal
    start = len(hal.out)
    for b in data:
        app.proto.feed(b, hal.ticks_ms())
    return bytes(hal.out[start:]).decode()


def feed(app, data: bytes):
    """Feed raw bytes; returns the reply lines they produced (decoded JSON)."""
    return [json.loads(line) for line in feed_raw(app, data).split("\r\n") if line]


def ask(app, line: str):
    replies = feed(app, line.encode() + b"\n")
    assert len(replies) == 1, replies
    return replies[0]


class Signer:
    def __init__(self, key=CLIN, role="clinician", ctr=0):
        self.key = key
        self.role = role
        self.ctr = ctr
        self.id = 0

    def line(self, cmd, args=None, ctr=None):
        self.ctr = self.ctr + 1 if ctr is None else ctr
        self.id += 1
        req = {"id": self.id, "cmd": cmd, "role": self.role, "ctr": self.ctr}
        if args is not None:
            req["args"] = args
        body = json.dumps(req, separators=(",", ":"))
        return body + " " + hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()


def provisioned():
    app = boot()
    r = ask(app, json.dumps({"id": 1, "cmd": "provision",
                             "args": {"clinician_key": CLIN.hex(), "patient_key": PAT.hex()}}))
    assert r["ok"], r
    return app


def programmed():
    app = provisioned()
    clin = Signer()
    assert ask(app, clin.line("program", {"params": PARAMS}))["ok"]
    assert ask(app, clin.line("refill", {"volume_nl": 20_000_000}))["ok"]
    return app, clin


def run_for(app, ms):
    """Run the pump's deadlines for ms of board time, as the main loop would."""
    hal = app.hal
    end = hal.t + ms
    while hal.t < end:
        step = app.pump.next_in_ms(hal.ticks_ms())
        hal.t = min(end, hal.t + max(step, 1))
        app.pump.service(hal.ticks_ms())
