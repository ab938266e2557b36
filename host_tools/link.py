"""The client library for the pump's serial protocol (docs/protocol.md).

Three things live here, and nothing about what the commands mean:

- finding a pump (a Pico by its USB vendor id, or a virtual board that registered itself) and
  opening its port with `serial.serial_for_url`, so `loop://`, `rfc2217://` and `spy://` URLs
  work as well as device paths;
- key files, sessions and signing: `hello` opens a session (a fresh session id and the counter
  to go on from, in a signed reply bound to this host's nonce); each request then carries the
  pump id, the session id and the next counter, and goes out as `JSON SPACE HEX`, the tag being
  HMAC-SHA256 over the exact JSON bytes on the wire;
- checking replies: the reply to a signed request must carry the pump's tag over
  "reply " + our request's tag + the reply's JSON, under the same key. A reply that does not
  verify is never believed (ReplyUnverified, exit 3): the pump may or may not have acted;
- the exchange: one request line out, the reply with the same id back; stale lines (an old
  session's replies, REPL noise) are skipped, and a reply that does not come is asked for again
  by sending the *identical* line, which the pump answers from its cache instead of acting twice;
- what the pump says is shown escaped: every string in a reply has its control characters
  (escape, bell, carriage return...) written out as `\\x1b`, so nothing from the line can drive
  the clinician's terminal.

Errors: `LinkError` when the transport fails or a reply cannot be verified (exit 3 in
pumpctl), `PumpError` when the pump answered `ok: false` (exit 1). Tests and other programs
import this module; pumpctl is one of its users.
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

import serial
from serial.tools import list_ports

try:
    import termios
    _TTY_ERRORS: tuple[type[Exception], ...] = (termios.error,)   # tcdrain on a pty whose
except ImportError:                                                 # far end has gone
    _TTY_ERRORS = ()                                                # (no termios: Windows)

# The protocol's limits are the firmware's own: the pump discards a line longer than MAX_LINE
# (E_TOO_LONG) and takes ids and counters up to ID_MAX and CTR_MAX.
from firmware.auth import CTR_MAX
from firmware.proto import ID_MAX, MAX_LINE

from host_tools.errors import InputError

PICO_USB_VID = 0x2E8A
BAUDRATE = 115200           # ignored by USB CDC and ptys, but pyserial wants one
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


class ReplyUnverified(LinkError):
    """A reply to a signed request that does not carry the pump's valid tag: an attacker on the
    line, or a pump with another key. Nothing in it is believed."""

    def __init__(self, cmd: str, why: str, changes: bool = True):
        what = ("the pump may or may not have acted; check with status"
                if changes else "nothing it says is shown")
        super().__init__(f"the reply could not be verified: {what} (`{cmd}`: {why})",
                         uncertain=changes)


class PumpError(Exception):
    """The pump answered and refused: a stable code, a sentence, and for E_REFUSED a reason."""

    def __init__(self, code: str, message: str, reason: str | None = None, reply=None):
        # Whatever the pump (or a forger on the line) put in these is shown escaped, wherever
        # the error is printed: an unsigned refusal is built from the raw reply.
        self.code = printable(str(code))
        self.message = printable(str(message))
        self.reason = None if reason is None else printable(str(reason))
        self.reply = clean(reply)
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
    if len(secret) != 32 or not isinstance(hexkey, str) or hexkey != hexkey.lower():
        raise InputError(f"{where}: key", "(hidden)", "64 lower-case hex digits (32 bytes)")
    pump_id = data.get("pump_id")
    return Key(role, secret, pump_id if isinstance(pump_id, str) else None, str(path))


# ---- encoding ----------------------------------------------------------------------------------

def encode(obj) -> bytes:
    """Compact JSON, the bytes that are both sent and signed."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def tag(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def reply_tag(secret: bytes, request_tag: str, body: bytes) -> str:
    """The tag the pump puts on its reply to a request carrying request_tag."""
    return tag(secret, b"reply " + bytes.fromhex(request_tag) + body)


def write_key(path, key: Key) -> None:
    """Write a key file (mode 600) atomically: a temporary file renamed over the old one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"role": key.role, "key": key.secret.hex(),
                               "pump_id": key.pump_id}))
    tmp.chmod(0o600)
    os.replace(tmp, path)


# ---- what the pump says, made safe to print ----------------------------------------------------

_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x2028, 0x2029, 0x200E,
                                                                    0x200F, 0x061C}


def printable(text: str) -> str:
    """text with every control character (C0, DEL, C1, bidirectional overrides, line
    separators) written out as a Python escape: a terminal shows it, never obeys it."""
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o < 0xA0 or o in _BIDI:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def clean(value):
    """A reply with every string (keys too) passed through printable()."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    return value


def clean_dict(value: dict) -> dict:
    """A reply object passed through clean(): still a dict, every string made printable."""
    return {clean(k): clean(v) for k, v in value.items()}


def split_reply(line: bytes) -> tuple[bytes, str | None]:
    """(JSON bytes, tag or None) of a reply line."""
    body, sep, tail = line.rpartition(b" ")
    if sep and body.endswith(b"}") and len(tail) == 64:
        return body, tail.decode("ascii", "replace")
    return line, None


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
        self._session: dict | None = None   # {"sn", "ctr", "ctr_left"} after hello
        self._info: dict | None = None
        self._public: dict | None = None
        self._pump_id: str | None = None
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
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError, *_TTY_ERRORS) as e:
            raise LinkError(f"cannot write to the pump: {e}") from None

    def _read_line(self, deadline: float) -> bytes | None:
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

    def _wait_reply(self, req_id: int, deadline: float):
        """(reply, raw line) carrying req_id, or None at the deadline; other lines skipped."""
        while True:
            line = self._read_line(deadline)
            if line is None:
                return None
            body, _ = split_reply(line)
            try:
                reply = json.loads(body)
            except ValueError:
                continue  # not ours: REPL output, an echo, half a line from before the flush
            # Every reply carries "ok"; a line without it is our own request echoed back (a
            # terminal with echo on, a loop:// port), not an answer.
            if isinstance(reply, dict) and reply.get("id") == req_id and "ok" in reply:
                return reply, line

    def exchange_raw(self, line: bytes, req_id: int, changes: bool = True):
        """Send a line and return (reply, raw reply line); on a timeout send the identical line
        again. changes: the request may change the pump, so a missing reply leaves the outcome
        uncertain (LinkError.uncertain)."""
        if len(line) > MAX_LINE + 1:
            raise InputError("request", f"{len(line)} bytes",
                             f"a request of at most {MAX_LINE} bytes (shorten the meta strings)")
        for attempt in range(self.attempts):
            self.last_attempts = attempt + 1
            if attempt:
                self.resent += 1
            self._write(line)
            got = self._wait_reply(req_id, time.monotonic() + self.timeout_s)
            if got is not None:
                return got
        what = ("the pump may or may not have carried it out: check `pumpctl status` and "
                "`pumpctl log` before trying again" if changes else "is the pump running?")
        raise LinkError(f"no reply from the pump after {self.attempts} attempts of "
                        f"{self.timeout_s:g} s; {what}", uncertain=changes)

    def exchange(self, line: bytes, req_id: int, changes: bool = True) -> dict:
        return clean_dict(self.exchange_raw(line, req_id, changes)[0])

    # -- requests ----------------------------------------------------------------------------
    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < ID_MAX else 1
        return rid

    def call(self, cmd: str, args: dict | None = None, signed: bool = True,
             changes: bool = True) -> dict:
        """Send one command; return the reply when ok, raise PumpError when refused.

        signed: in a session with this link's key (only `info`, `ping`, `help` and `provision`
        go without). A signed refusal saying the session ended (another host opened one, the
        pump restarted or waited too long) is answered by opening a new session and sending
        once more: a verified refusal changed nothing."""
        if not signed:
            req = {"id": self._new_id(), "cmd": cmd}
            if args:
                req["args"] = args
            return self._result(cmd, self.exchange(request_line(req), req["id"], changes))
        key = self._need_key(cmd)
        for fresh in (False, True):
            if self._session is None or fresh:
                self.hello()
            reply = self._signed_call(key, cmd, args, changes)
            code = reply.get("error")
            if code in ("E_REPLAY", "E_SESSION") and self.last_attempts > 1:
                # We sent it again because a reply was lost, and the pump no longer holds our
                # first request as its last one. Whether the first one acted is unknown, so it
                # must not be sent again in a new session.
                raise LinkError(f"`{cmd}`: the reply was lost and the pump could not say "
                                "whether it acted; check `pumpctl status` and `pumpctl log` "
                                "before trying again", uncertain=changes)
            if code in ("E_REPLAY", "E_SESSION") and not fresh:
                continue
            return self._result(cmd, reply)
        raise AssertionError("unreachable")

    def _result(self, cmd: str, reply: dict) -> dict:
        if reply.get("ok") is True:
            return reply
        code = reply.get("error") or "E_UNKNOWN"
        raise PumpError(code, reply.get("message") or "(no message)", reply.get("reason"), reply)

    def _signed_call(self, key: Key, cmd: str, args: dict | None, changes: bool,
                     session: bool = True) -> dict:
        """One signed request and its verified reply (ok or refused)."""
        req = {"id": self._new_id(), "cmd": cmd, "role": key.role, "pump": self.pump_id()}
        if session:
            sess = self._session
            assert sess is not None, "call() opens the session (hello) first"
            n = sess["ctr"] + 1
            if n > CTR_MAX:
                raise PumpError("E_REKEY", f"the {key.role} counter is exhausted: re-key the "
                                "pump (pumpctl rekey)")
            sess["ctr"] = n
            req["sn"] = sess["sn"]
            req["ctr"] = n
        if args:
            req["args"] = args
        body = encode(req)
        mine = tag(key.secret, body)
        reply, raw = self.exchange_raw(body + b" " + mine.encode("ascii") + b"\n", req["id"],
                                       changes)
        rbody, theirs = split_reply(raw)
        if theirs is None:
            claim = reply.get("error") if reply.get("ok") is not True else "success"
            if cmd == "hello" and reply.get("ok") is not True:
                # Opening a session changes nothing, so a refusal of it is shown as it is,
                # marked as unverified (a pump refusing the key cannot sign with it).
                raise PumpError(str(claim), f"{reply.get('message')} (an unsigned refusal)",
                                reply.get("reason"), reply)
            raise ReplyUnverified(cmd, f"it is not signed; it claims {printable(str(claim))}",
                                  changes)
        if not hmac.compare_digest(theirs, reply_tag(key.secret, mine, rbody)):
            raise ReplyUnverified(cmd, "its tag is wrong", changes)
        return clean_dict(reply)

    def hello(self) -> dict:
        """Open a session: a fresh session id and the counter, in a reply signed for our
        nonce (so an old session's reply cannot be passed off as this one's). Two steps: the
        pump first answers a challenge (`pn`) and opens the session only for a hello signed
        over it, so that a recorded hello replayed later is refused (docs/protocol.md). A pump
        whose firmware predates challenges opens the session at the first step."""
        key = self._need_key("hello")
        self._session = None
        reply: dict = {}
        for last in (False, True):
            nonce = self._rng.getrandbits(128).to_bytes(16, "big").hex()
            reply = self._signed_call(key, "hello", {"hn": nonce}, changes=False, session=False)
            reply = self._result("hello", reply)
            pn = reply.get("pn")
            if not isinstance(pn, str) or "sn" in reply:
                break
            reply = self._signed_call(key, "hello", {"hn": nonce, "pn": pn}, changes=False,
                                      session=False)
            if reply.get("error") == "E_REPLAY" and not last:
                # Our challenge was replaced (another hello, or a line replayed in between) or
                # the answer to it was lost and sent again: ask for a new one, once.
                continue
            reply = self._result("hello", reply)
            break
        if reply.get("pump_id") not in (None, self.pump_id()):
            raise ReplyUnverified("hello", "it names another pump", False)
        ctr, sn = reply.get("ctr"), reply.get("sn")
        if not isinstance(ctr, int) or not isinstance(sn, str):
            raise PumpError("E_PROTOCOL", "hello did not give a session and a counter", None,
                            reply)
        self._session = {"sn": sn, "ctr": ctr, "ctr_left": reply.get("ctr_left")}
        return reply

    def _need_key(self, cmd: str) -> Key:
        if self.key is None:
            raise InputError("--key", "(none)", f"a key file for `{cmd}`: --key FILE or "
                             "PUMPCTL_KEY (a virtual board's keys are found by themselves)")
        return self.key

    def pump_id(self) -> str:
        """The pump the requests are for: the key file's pump, checked against what the pump
        says it is (a key made for another pump would only earn E_AUTH)."""
        if self._pump_id is None:
            info = self.public_info()
            theirs = info.get("pump_id")
            key = self.key
            mine = key.pump_id if key else None
            if key and mine and theirs and mine != theirs:
                raise InputError(f"--key {key.path}", mine,
                                 f"a key for the pump on this port, {theirs}")
            if not (mine or theirs):
                raise PumpError("E_PROTOCOL", "the pump did not say its id", None, info)
            self._pump_id = str(mine or theirs)
        return self._pump_id

    def public_info(self, refresh: bool = False) -> dict:
        """`info` without a key: pump id, firmware, board, build, key state (unverified)."""
        if self._public is None or refresh:
            self._public = self.call("info", signed=False, changes=False)
        return self._public

    def info(self, refresh: bool = False) -> dict:
        """`info`: in a session when this link has a key (signed: the clock, counters and the
        board's limits too), else the public part. The one place the host reads the pump's
        limits from."""
        if self.key is None:
            return self.public_info(refresh)
        if self._info is None or refresh:
            try:
                self._info = self.call("info", changes=False)
            except PumpError as e:
                if e.code not in ("E_KEYS", "E_NOT_PROVISIONED"):
                    raise
                return self.public_info(refresh)   # no session possible: what anyone sees
        return self._info


def derived_keys(key: Key, nonce: bytes, pump_id: str) -> tuple[Key, Key]:
    """The keys `rekey` makes on both sides from the clinician key and the nonce."""
    def derive(label: bytes) -> bytes:
        return hmac.new(key.secret, label + nonce, hashlib.sha256).digest()
    return (Key("clinician", derive(b"rekey/clinician/"), pump_id, key.path),
            Key("patient", derive(b"rekey/patient/"), pump_id, None))


def rekey_files(lk: Link, clinician_path, patient_path) -> None:
    """Re-key the pump and replace both key files. The new keys are written beside the old
    ones (`.next`) before the request goes out; if the reply is lost, a session with the new
    clinician key tells whether the pump took them, and the files follow what it holds."""
    key = lk._need_key("rekey")
    nonce = lk._rng.getrandbits(256).to_bytes(32, "big")
    new_c, new_p = derived_keys(key, nonce, lk.pump_id())
    nxt_c = Path(str(clinician_path) + ".next")
    nxt_p = Path(str(patient_path) + ".next")
    write_key(nxt_c, new_c)
    write_key(nxt_p, new_p)
    try:
        lk.call("rekey", {"nonce": nonce.hex()})
    except LinkError as e:
        if not e.uncertain:
            raise
        lk.key, old = new_c, lk.key
        try:
            lk.hello()
        except (LinkError, PumpError):
            lk.key = old
            raise LinkError(f"{e}; the pump still takes the old key: the new keys were not "
                            f"installed ({nxt_c} is left for reference)") from None
    os.replace(nxt_c, clinician_path)
    os.replace(nxt_p, patient_path)
    lk.key = Key("clinician", new_c.secret, new_c.pump_id, str(clinician_path))
    lk._session = None


def provision(lk: Link, update_modulus: bytes | None = None) -> tuple[Key, Key]:
    """Give a pump that has no keys (or had the button held at boot) two new random keys and,
    once in its life, the update key. Returns the keys; the caller stores them."""
    info = lk.public_info(refresh=True)
    pump_id = info.get("pump_id")
    c, p = os.urandom(32), os.urandom(32)
    args = {"clinician_key": c.hex(), "patient_key": p.hex()}
    if update_modulus is not None:
        args["update_key"] = update_modulus.hex()
    lk.call("provision", args, signed=False)
    return Key("clinician", c, pump_id), Key("patient", p, pump_id)
