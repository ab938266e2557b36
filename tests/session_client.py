"""The session protocol written out by hand for the tests that talk to a live board (pyserial
and hmac, not host_tools.link), so the firmware's rules are checked independently of pumpctl's
client library: hello, then requests with the pump id, the session id and the next counter;
every reply to a signed request must carry the pump's tag over "reply " + the request's tag +
the reply's JSON."""

import hashlib
import hmac
import json
import os
import time


def sign(key: bytes, req: dict) -> bytes:
    body = json.dumps(req, separators=(",", ":")).encode()
    return body + b" " + hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def split(line: bytes):
    body, _, tag = line.rpartition(b" ")
    if body.endswith(b"}") and len(tag) == 64:
        return body, tag.decode()
    return line, None


def reply_ok(key: bytes, request: bytes, reply_line: bytes) -> bool:
    """True when reply_line carries the pump's valid tag for request."""
    body, tag = split(reply_line)
    req_tag = split(request)[1]
    if tag is None or req_tag is None:
        return False
    want = hmac.new(key, b"reply " + bytes.fromhex(req_tag) + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, tag)


def read_reply(port, rid, timeout_s=8.0):
    """(reply dict, raw line) with this id from a pyserial port."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        line = port.readline()
        if not line:
            continue
        line = line.rstrip(b"\r\n")
        try:
            reply = json.loads(split(line)[0])
        except ValueError:
            continue
        if isinstance(reply, dict) and reply.get("id") == rid and "ok" in reply:
            return reply, line
    raise AssertionError(f"no reply to request {rid}")


class Session:
    def __init__(self, port, key: bytes, role: str, pump_id: str, timeout_s: float = 8.0):
        self.port = port
        self.timeout_s = timeout_s   # per reply: an emulated Pico on a busy machine needs more
        self.key = key
        self.role = role
        self.pump = pump_id
        self.sn = None
        self.ctr = 0
        self.id = int.from_bytes(os.urandom(3), "big")
        self.last_line = None     # the last signed request line sent (for replays in tests)
        self.last_reply = None    # and the raw reply it got
        self.hello_lines = ()     # the two lines of the last hello

    def next_id(self):
        self.id += 1
        return self.id

    def send(self, line: bytes, rid: int):
        self.port.write(line + b"\n")
        return read_reply(self.port, rid, self.timeout_s)

    def hello_line(self, pn=None):
        """A signed hello: without pn the first step (the pump answers a challenge), with the
        challenge the second (the pump opens the session)."""
        rid = self.next_id()
        args = {"hn": os.urandom(16).hex()}
        if pn is not None:
            args["pn"] = pn
        return sign(self.key, {"id": rid, "cmd": "hello", "role": self.role, "pump": self.pump,
                               "args": args}), rid

    def hello(self):
        """Both steps of hello; self.hello_lines keeps the two lines sent (for replays)."""
        line, rid = self.hello_line()
        reply, raw = self.send(line, rid)
        assert reply["ok"] and reply_ok(self.key, line, raw), reply
        first = line
        line, rid = self.hello_line(reply["pn"])
        reply, raw = self.send(line, rid)
        assert reply["ok"] and reply_ok(self.key, line, raw), reply
        self.hello_lines = (first, line)
        self.sn, self.ctr = reply["sn"], reply["ctr"]
        return reply

    def line(self, cmd, args=None, ctr=None):
        self.ctr = self.ctr + 1 if ctr is None else ctr
        rid = self.next_id()
        req = {"id": rid, "cmd": cmd, "role": self.role, "pump": self.pump, "sn": self.sn,
               "ctr": self.ctr}
        if args:
            req["args"] = args
        return sign(self.key, req), rid

    def ask(self, cmd, args=None):
        """A verified reply (ok or not) in the current session; a session that ended (idle,
        reboot) is opened again once."""
        for again in (False, True):
            if self.sn is None or again:
                self.hello()
            line, rid = self.line(cmd, args)
            reply, raw = self.send(line, rid)
            assert reply_ok(self.key, line, raw), (line, raw)
            self.last_line, self.last_reply = line, raw
            if reply.get("error") != "E_SESSION":
                return reply
        return reply
