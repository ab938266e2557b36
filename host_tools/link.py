"""The client library for the pump's serial protocol (docs/protocol.md).

Three things live here, and nothing about what the commands mean:

- finding a pump (a Pico by its USB vendor id, or a virtual board that registered itself) and
  opening its port with `serial.serial_for_url`, so `loop://`, `rfc2217://` and `spy://` URLs
  work as well as device paths;
- key files and request signing: `JSON SPACE HEX`, the tag being HMAC-SHA256 over the exact
  JSON bytes that go on the wire;
- the exchange: one request line out, the reply with the same id back; stale lines (an old
  session's replies, REPL noise) are skipped, and a reply that does not come is asked for again
  by sending the *identical* line, which the pump answers from its cache instead of acting twice.

Errors: `LinkError` when the transport fails (no port, no reply: exit 3 in pumpctl),
`PumpError` when the pump answered `ok: false` (exit 1). Tests and other programs import this
module; pumpctl is one of its users.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import InputError

PICO_USB_VID = 0x2E8A
BAUDRATE = 115200           # ignored by USB CDC and ptys, but pyserial wants one
MAX_LINE = 1024             # the pump discards longer lines (E_TOO_LONG)
ID_MAX = (1 << 30) - 1
CTR_MAX = (1 << 30) - 1
ROLES = ("clinician", "patient")
_POLL_S = 0.05              # how long one read waits; the overall deadline is separate


class LinkError(Exception):
    """The transport failed: the port cannot be opened, or the pump does not answer.

    uncertain: a request that changes something went out and no reply came back, so nobody
    knows whether the pump acted. The caller must ask the pump (status, log) before repeating.
    """

    def __init__(self, message: str, uncertain: bool = False):
        super().__init__(message)
        self.uncertain = uncertain


class PumpError(Exception):
    """The pump answered and refused: a stable code, a sentence, and for E_REFUSED a reason."""

    def __init__(self, code: str, message: str, reason: str | None = None, reply=None):
        self.code = code
        self.message = message
        self.reason = reason
        self.reply = reply
        super().__init__(str(self))

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.code}{why}: {self.message}"


# ---- keys --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    role: str
    secret: bytes
    pump_id: str | None = None
    path: str | None = None

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Key(role={self.role!r}, pump_id={self.pump_id!r}, path={self.path!r})"


def load_key(path) -> Key:
    """Read a key file: {"role": "clinician"|"patient", "key": "<64 hex>", "pump_id": "..."}."""
    where = f"--key {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(where, str(path), f"a readable key file ({e.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise InputError(where, str(path), 'a JSON key file {"role": ..., "key": ...}') from None
    if not isinstance(data, dict):
        raise InputError(where, str(path), 'a JSON object {"role": ..., "key": ...}')
    role = data.get("role")
    if role not in ROLES:
        raise InputError(f"{where}: role", role, '"clinician" or "patient"')
    hexkey = data.get("key")
    try:
        secret = bytes.fromhex(hexkey) if isinstance(hexkey, str) else b""
    except ValueError:
        secret = b""
    if len(secret) != 32 or hexkey != hexkey.lower():
        raise InputError(f"{where}: key", "(hidden)", "64 lower-case hex digits (32 bytes)")
    pump_id = data.get("pump_id")
    return Key(role, secret, pump_id if isinstance(pump_id, str) else None, str(path))


# ---- encoding ----------------------------------------------------------------------------------

def encode(obj) -> bytes:
    """Compact JSON, the bytes that are both sent and signed."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def tag(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def request_line(obj, key: Key | None = None) -> bytes:
    """One request line with its newline; signed with `key` when given."""
    body = encode(obj)
    if key is not None:
        body += b" " + tag(key.secret, body).encode("ascii")
    return body + b"\n"


# ---- finding pumps -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Found:
    """A pump pumpctl can see: its port URL and, for a virtual board, its harness record."""
    port: str
    kind: str                    # "pico" or "virtual"
    description: str
    board: dict | None = None    # the virtual board's first-line JSON


def registry_dir() -> Path:
    """Where `pumpsim board` registers itself: <tmp>/pumpsim-<uid>/<pid>.json."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"pumpsim-{uid}"


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def virtual_boards(directory: Path | None = None) -> list[Found]:
    found = []
    d = directory or registry_dir()
    for f in sorted(d.glob("*.json")) if d.is_dir() else ():
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("port"), str):
            continue
        if not _alive(rec.get("pid")):
            continue  # a board that died without cleaning up after itself
        found.append(Found(rec["port"], "virtual", f"virtual board, pid {rec.get('pid')}", rec))
    return found


def picos() -> list[Found]:
    from serial.tools import list_ports

    out = []
    for p in list_ports.comports():
        if p.vid == PICO_USB_VID:
            serial_no = f" serial {p.serial_number}" if p.serial_number else ""
            out.append(Found(p.device, "pico", f"{p.description or 'Pico'}{serial_no}"))
    return out


def find_pumps() -> list[Found]:
    return picos() + virtual_boards()


def board_for_port(port: str) -> Found | None:
    """The registered virtual board behind a port, if there is one (for its key files)."""
    for b in virtual_boards():
        if b.port == port:
            return b
    return None


# ---- the link ----------------------------------------------------------------------------------

def open_port(url: str, timeout_s: float = _POLL_S):
    """Open a serial port or URL; LinkError if it cannot be opened."""
    import serial

    try:
        # exclusive: a terminal program (picocom, tio) on the same port would read our replies
        # and we its; refuse to share rather than act on half a conversation.
        return serial.serial_for_url(url, baudrate=BAUDRATE, timeout=timeout_s,
                                     write_timeout=2.0, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as e:
        if "exclusively lock" in str(e):
            raise LinkError(f"port in use by another program: {url} is held open by another "
                            "program (a terminal such as picocom or tio, or another pumpctl); "
                            "close it and try again") from None
        raise LinkError(f"cannot open {url}: {e}") from None


class Link:
    """A conversation with one pump over one open port.

    port: anything with pyserial's read/write/in_waiting/reset_input_buffer (a `Serial`, a
    `loop://` port, ...). timeout_s: how long to wait for each reply before sending the same
    line again; attempts: how many times a line is sent in all.
    """

    def __init__(self, port, key: Key | None = None, timeout_s: float = 3.0,
                 attempts: int = 3, rng: random.Random | None = None):
        self.port = port
        self.key = key
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self._rng = rng or random.SystemRandom()
        self._next_id = self._rng.randrange(1, ID_MAX // 2)
        self._buf = bytearray()
        self._ctr: dict[str, int] = {}
        self._info: dict | None = None
        self.resent = 0          # lines sent again because a reply was late (for tests, logs)
        self.last_attempts = 0   # how many times the last line went out
        self.flush()

    @classmethod
    def open(cls, url: str, key: Key | None = None, **kw) -> "Link":
        return cls(open_port(url), key, **kw)

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- wire --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Drop whatever is waiting (an old session's replies), and end any half line the pump
        may hold from before: a bare newline is ignored by the pump."""
        try:
            self.port.reset_input_buffer()
            self._buf.clear()
            self._write(b"\n")
        except LinkError:
            raise
        except Exception as e:
            raise LinkError(f"the port failed: {e}") from None

    def _write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"cannot write to the pump: {e}") from None

    def _read_line(self, deadline: float) -> bytes | None:
        import serial

        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                return line.rstrip(b"\r")
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"cannot read from the pump: {e}") from None
            if chunk:
                self._buf += chunk

    def _wait_reply(self, req_id: int, deadline: float) -> dict | None:
        """The reply carrying req_id, or None at the deadline; other lines are skipped."""
        while True:
            line = self._read_line(deadline)
            if line is None:
                return None
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # not ours: REPL output, an echo, half a line from before the flush
            # Every reply carries "ok"; a line without it is our own request echoed back (a
            # terminal with echo on, a loop:// port), not an answer.
            if isinstance(reply, dict) and reply.get("id") == req_id and "ok" in reply:
                return reply

    def exchange(self, line: bytes, req_id: int, changes: bool = True) -> dict:
        """Send a line and return its reply; on a timeout send the identical line again.

        changes: the request may change the pump, so a missing reply leaves the outcome
        uncertain (LinkError.uncertain)."""
        if len(line) > MAX_LINE + 1:
            raise InputError("request", f"{len(line)} bytes",
                             f"a request of at most {MAX_LINE} bytes (shorten the meta strings)")
        for attempt in range(self.attempts):
            self.last_attempts = attempt + 1
            if attempt:
                self.resent += 1
            self._write(line)
            reply = self._wait_reply(req_id, time.monotonic() + self.timeout_s)
            if reply is not None:
                return reply
        what = ("the pump may or may not have carried it out: check `pumpctl status` and "
                "`pumpctl log` before trying again" if changes else "is the pump running?")
        raise LinkError(f"no reply from the pump after {self.attempts} attempts of "
                        f"{self.timeout_s:g} s; {what}", uncertain=changes)

    # -- requests ----------------------------------------------------------------------------
    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < ID_MAX else 1
        return rid

    def call(self, cmd: str, args: dict | None = None, signed: bool = True,
             changes: bool = True) -> dict:
        """Send one command; return the reply when ok, raise PumpError when refused.

        signed: tag it with this link's key (the read-only `info`, `ping` and `help` need no
        tag). A refusal for a stale counter (another host used the key since we read it) is
        retried once with a fresh counter: a refused request changed nothing."""
        for fresh in (False, True):
            req = {"id": self._new_id(), "cmd": cmd}
            if args:
                req["args"] = args
            key = None
            if signed:
                key = self._need_key(cmd)
                if fresh:
                    self._ctr.pop(key.role, None)
                req["role"] = key.role
                req["ctr"] = self._next_ctr(key.role)
            reply = self.exchange(request_line(req, key), req["id"], changes)
            if reply.get("ok") is True:
                return reply
            code = reply.get("error") or "E_UNKNOWN"
            if code == "E_REPLAY" and signed and self.last_attempts > 1:
                # We sent it again because a reply was lost, and the pump no longer holds our
                # first request as its last one: another request came in between. Whether the
                # first one acted is unknown, so it must not be sent with a new counter.
                raise LinkError(f"`{cmd}`: the reply was lost and the pump could not say "
                                "whether it acted; check `pumpctl status` and `pumpctl log` "
                                "before trying again", uncertain=changes)
            if code == "E_REPLAY" and signed and not fresh:
                continue
            raise PumpError(code, reply.get("message") or "(no message)", reply.get("reason"),
                            reply)
        raise AssertionError("unreachable")

    def _need_key(self, cmd: str) -> Key:
        if self.key is None:
            raise InputError("--key", "(none)", f"a key file for `{cmd}`: --key FILE or "
                             "PUMPCTL_KEY (a virtual board's keys are found by themselves)")
        return self.key

    def _next_ctr(self, role: str) -> int:
        if role not in self._ctr:
            info = self.info(refresh=True)
            ctr = info.get("ctr")
            last = ctr.get(role) if isinstance(ctr, dict) else None
            if not isinstance(last, int):
                raise PumpError("E_PROTOCOL", f"info did not report the {role} counter", None,
                                info)
            self._check_pump(info)
            self._ctr[role] = last
        n = self._ctr[role] + 1
        if n > CTR_MAX:
            raise PumpError("E_REPLAY", f"the {role} counter is exhausted; the pump must be "
                            "provisioned again")
        self._ctr[role] = n
        return n

    def _check_pump(self, info: dict) -> None:
        """A key made for another pump would only earn E_AUTH; say what is wrong instead."""
        mine, theirs = self.key.pump_id if self.key else None, info.get("pump_id")
        if mine and theirs and mine != theirs:
            raise InputError(f"--key {self.key.path}", mine,
                             f"a key for the pump on this port, {theirs}")

    def info(self, refresh: bool = False) -> dict:
        if self._info is None or refresh:
            self._info = self.call("info", signed=False, changes=False)
        return self._info
