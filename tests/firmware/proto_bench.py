"""A board in memory for driving firmware/app.py and firmware/proto.py on CPython.

Its storage is a dict of files (firmware.store.MemDev), so a "reboot" is a new App on the same
storage. The serial line is a byte buffer: `ask()` feeds a request line byte by byte, as the
main loop does, and returns the decoded reply lines.
"""

import hashlib
import hmac
import json

from firmware.app import App
from tests.testboard import MemBoard

CLIN = bytes(range(32))
PAT = bytes(range(100, 132))
PARAMS = {"conc_ng_ml": 25000000, "steps": [[0, 2000000], [420, 3000000]],
          "max_daily_ng": 6000000, "low_res_nl": 2000000, "pb": [200000, 600, 7200, 4],
          "catheter": {"model": "Prometra 11823", "length_mm": 600, "nl_per_cm": 2600},
          "meta": {"drug": "morphine", "units": "mg"}}
CATHETER_NL = 156_000   # 60 cm at 2.6 uL/cm


class MemHal(MemBoard):
    """The board the protocol tests drive (tests/vm/healthy.py MemBoard)."""


def boot(dev=None, cause=0):
    hal = MemHal(dev, cause)
    app = App(hal)
    app.boot()
    return app


def split_tag(line: str):
    """(JSON text, tag hex or None) of a reply line."""
    body, _, tag = line.rpartition(" ")
    if body.endswith("}") and len(tag) == 64:
        return body, tag
    return line, None


def feed_raw(app, data: bytes) -> str:
    """Feed raw bytes; returns what the pump wrote back, as text."""
    hal = app.hal
    start = len(hal.out)
    for b in data:
        app.proto.feed(b, hal.ticks_ms())
    return bytes(hal.out[start:]).decode()


def feed(app, data: bytes):
    """Feed raw bytes; returns the reply lines they produced (decoded JSON, the tag of a signed
    reply in "_tag"). The raw lines are kept in app.hal.lines."""
    out = []
    for line in feed_raw(app, data).split("\r\n"):
        if line:
            app.hal.lines = getattr(app.hal, "lines", []) + [line]
            body, tag = split_tag(line)
            reply = json.loads(body)
            if tag is not None:
                reply["_tag"] = tag
            out.append(reply)
    return out


def ask(app, line: str):
    replies = feed(app, line.encode() + b"\n")
    assert len(replies) == 1, replies
    return replies[0]


def reply_tag(key: bytes, request_line: str, reply_line: str):
    """The tag the pump must put on the reply to request_line (None for an unsigned request)."""
    req_tag = split_tag(request_line)[1]
    body, _ = split_tag(reply_line)
    return hmac.new(key, b"reply " + bytes.fromhex(req_tag) + body.encode(),
                    hashlib.sha256).hexdigest()


class Signer:
    """A host of the session protocol, written out by hand (not host_tools.link): hello opens a
    session, then line() signs requests for it with the next counter."""

    def __init__(self, app=None, key=CLIN, role="clinician", pump="mem0001"):
        self.key = key
        self.role = role
        self.pump = pump
        self.sn = None
        self.ctr = 0
        self.id = 0
        if app is not None:
            self.hello(app)

    def sign(self, req: dict) -> str:
        body = json.dumps(req, separators=(",", ":"))
        return body + " " + hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()

    def hello_line(self, hn="00112233445566778899aabbccddeeff", pn=None):
        """A hello: without pn its first step (the pump answers a challenge), with the
        challenge its second (the pump opens the session)."""
        self.id += 1
        args = {"hn": hn}
        if pn is not None:
            args["pn"] = pn
        return self.sign({"id": self.id, "cmd": "hello", "role": self.role, "pump": self.pump,
                          "args": args})

    def challenge(self, app):
        """The first step of hello: the challenge the pump answered (the line: first_hello)."""
        line = self.hello_line()
        r = ask(app, line)
        assert r["ok"] and "sn" not in r, r
        assert r["_tag"] == reply_tag(self.key, line, app.hal.lines[-1])
        self.first_hello = line
        return r["pn"]

    def hello(self, app):
        return self.hello_with(app, self.challenge(app))

    def hello_with(self, app, pn):
        """The second step of hello, answering challenge pn (the line: last_hello)."""
        line = self.hello_line(pn=pn)
        r = ask(app, line)
        assert r["ok"], r
        assert r["_tag"] == reply_tag(self.key, line, app.hal.lines[-1])
        self.sn, self.ctr = r["sn"], r["ctr"]
        self.last_hello = line
        return r

    def line(self, cmd, args=None, ctr=None, sn=None, pump=None):
        self.ctr = self.ctr + 1 if ctr is None else ctr
        self.id += 1
        req = {"id": self.id, "cmd": cmd, "role": self.role, "pump": pump or self.pump,
               "sn": sn or self.sn, "ctr": self.ctr}
        if args is not None:
            req["args"] = args
        return self.sign(req)


def provisioned():
    app = boot()
    r = ask(app, json.dumps({"id": 1, "cmd": "provision",
                             "args": {"clinician_key": CLIN.hex(), "patient_key": PAT.hex()}}))
    assert r["ok"], r
    return app


def programmed():
    app = provisioned()
    clin = Signer(app)
    assert ask(app, clin.line("program", {"params": PARAMS}))["ok"]
    assert ask(app, clin.line("refill", {"volume_nl": 20_000_000}))["ok"]
    return app, clin


def run_for(app, ms):
    """Run the pump's deadlines for ms of board time, as the main loop would."""
    hal = app.hal
    end = hal.t + ms
    while hal.t < end:
        step = app.therapy.pump.next_in_ms(hal.ticks_ms())
        hal.t = min(end, hal.t + max(step, 1))
        app.therapy.pump.service(hal.ticks_ms())
