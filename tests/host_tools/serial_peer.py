"""A scripted serial peer for the client library's tests.

It is a transport double, not a pump: the pty's far end, where each test decides what comes
back for each line it receives (a canned reply, nothing, stale lines first). What the pump does
with a request is tested end to end against the real firmware in tests/e2e/.
"""

import hashlib
import hmac
import json
import os
import select
import threading
import tty

SECRET = bytes(range(32))


def body_of(line: bytes) -> bytes:
    """The JSON part of a request line (a signed one ends in a space and 64 hex digits)."""
    return line if line.endswith(b"}") else line.rsplit(b" ", 1)[0]


def tag_of(line: bytes) -> bytes | None:
    return None if line.endswith(b"}") else line.rsplit(b" ", 1)[1]


class Peer:
    def __init__(self):
        self.master, slave = os.openpty()
        tty.setraw(slave)            # a raw line: no echo of what the peer sends
        self.path = os.ttyname(slave)
        self._slave = slave          # kept open so the pty survives between opens
        self.lines: list[bytes] = []  # every line received, newline stripped
        self.script = lambda peer, line: None   # returns bytes to send back, or None
        # Like a pump, the peer signs its replies to signed requests with this key, and opens
        # sessions itself (hello) unless a test answers hello in its script.
        self.key: bytes | None = SECRET
        self.ctr = 0
        self.sn = "5e55105e55105e55"
        self.own_hello = True
        self._buf = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def reply(self, line: bytes, **fields) -> bytes:
        """A reply to `line` carrying its id, as the protocol shapes one (signed when the
        request was and the peer has a key)."""
        out = {"id": json.loads(body_of(line)).get("id"), **fields}
        body = json.dumps(out).encode()
        req_tag = tag_of(line)
        if req_tag is not None and self.key is not None:
            mac = hmac.new(self.key, b"reply " + bytes.fromhex(req_tag.decode()) + body,
                           hashlib.sha256).hexdigest()
            body += b" " + mac.encode()
        return body + b"\r\n"

    def hello(self, line: bytes) -> bytes:
        req = json.loads(body_of(line))
        return self.reply(line, ok=True, cmd="hello", pump_id=req.get("pump"), sn=self.sn,
                          ctr=self.ctr, window=8, ctr_left=1 << 29)

    def requests(self) -> list[dict]:
        """The JSON requests received (tags dropped), ignoring the bare newline of a flush."""
        out = []
        for line in self.lines:
            if line.strip():
                out.append(json.loads(body_of(line)))
        return out

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.02)
            if not r:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            self._buf += chunk
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                self.lines.append(line)
                if line.strip():
                    if self.own_hello and b'"cmd":"hello"' in line:
                        self.send(self.hello(line))
                        continue
                    out = self.script(self, line)
                    if out:
                        self.send(out)

    def close(self):
        self._stop.set()
        self._thread.join(1)
        os.close(self.master)
        os.close(self._slave)
