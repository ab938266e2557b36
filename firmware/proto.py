# The serial protocol's framing, authentication and sessions (docs/protocol.md, docs/security.md):
# bytes in, one reply line out per request.
#
# feed(byte) collects a line in a preallocated buffer; a complete line is parsed, checked
# (authentication, pump, session, role, counter) and handed to one do_* method: the session
# commands (hello, provision, rekey) here (the keys' two in firmware/keying.py, loaded for the
# request), every other one in firmware/handlers.py, which calls the therapy room's verbs. Any
# exception a command raises is caught and answered with E_INTERNAL: the control loop never
# stops for a bad request. Handling a request allocates (JSON); the loop without requests does
# not.
#
# Trust runs both ways (docs/security.md). A request whose tag verifies gets a signed reply,
# refusals included: the tag is HMAC(key, "reply " + request tag + reply JSON) under the same
# role's key, so the host knows the answer is the pump's, and to this very request.
#
# Lines end in LF, CR or CRLF (a terminal's Enter sends CR; CRLF counts once). A line from a
# person (the terminal form without an id: `help`, `info`, `ping`) is answered in readable
# lines; everything else gets one compact JSON object with sorted keys (firmware/wirejson.py).
import os
from hashlib import sha256

from firmware import wirejson as json

from firmware import auth, buildinfo
from firmware.compat import const, unload
from firmware.handlers import COMMANDS, ID_MAX, TERMINAL, Refusal, about
from firmware.ticks import diff
from firmware.version import VERSION

MAX_LINE = const(1024)
_CR = const(13)
_LF = const(10)
_TAB = const(9)
_CTRL_A = const(1)
_CTRL_B = const(2)
_CTRL_C = const(3)
_CTRL_D = const(4)
_CTRL_E = const(5)
_BRACE = const(123)
_RAW_IDLE_MS = const(5000)  # a raw-REPL request with no byte for this long is over
_HEX_LEN = const(64)
SESSION_IDLE_MS = const(300000)  # a session ends after 5 minutes without an accepted request
CHALLENGE_MS = const(60000)      # a hello's challenge must be answered within a minute
_CHALLENGE_LEN = const(16)
_REPLY = b"reply "

# What a REPL-seeking byte (Ctrl-C) gets, once per line: a running pump has no REPL.
HINT = b"pump running, no REPL: Ctrl-C is ignored. Type help; to flash: make flash"
# mpremote (and pyboard.py) ask for MicroPython's raw REPL with Ctrl-A and wait for its banner,
# with a blocking read on a pseudo-terminal: a pump that only said no would leave them waiting
# for ever. The pump answers in the raw REPL's own framing instead (mpremote's
# transport_serial.py), so the tool stops at once with the pump's reason: the banner after a
# line that says what this is; to the soft reset mpremote asks for (Ctrl-D, nothing sent) a
# line ending "soft reboot" and the banner again; to the raw-paste request (Ctrl-E A Ctrl-A)
# "not supported"; to any code (ended by Ctrl-D) "OK", no output, and RAW_REASON as the error
# output, which mpremote prints and exits 1 with. Nothing sent is ever run. Ctrl-B, a JSON
# request at the start of a line (pumpctl's) or _RAW_IDLE_MS without a byte ends it.
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
RAW_ENTER = (b"\r\npump running, no REPL: the raw REPL below runs nothing and refuses all code "
             b"(docs/protocol.md)\r\n" + RAW_BANNER)
RAW_NO_RESET = b"pump running: no soft reboot\r\n" + RAW_BANNER
RAW_REASON = (b"pump running, no REPL: it runs no code sent to it. Firmware goes on as a "
              b"signed update (make flash); the pump is programmed with pumpctl.\r\n")
RAW_REFUSED = b"OK\x04" + RAW_REASON + b"\x04>"
RAW_NO_PASTE = b"R\x00"


def _random(n, salt):
    """n unpredictable bytes: the port's random source, hashed with what varies anyway."""
    try:
        seed = os.urandom(32)
    except (AttributeError, NotImplementedError, OSError):
        seed = b""
    return sha256(seed + salt).digest()[:n]


def _keying(what, proto, args, now, out):
    """firmware/keying.py's `what` (provision, rekey: a pump's keys, set now and then), loaded
    for the request and let go after it."""
    from firmware import keying
    try:
        getattr(keying, what)(proto, args, now, out)
    finally:
        keying = None
        unload("firmware.keying")


class Proto:
    def __init__(self, app, handlers):
        self.app = app          # the shell: keys, uid, reply(), provisioning (firmware/app.py)
        self.handlers = handlers  # firmware/handlers.py: every command but the session ones
        self.buf = bytearray(MAX_LINE)
        self.n = 0
        self.overlong = False
        self.after_cr = False   # a CR ended the last line: an LF right after it is the same end
        self.hinted = False     # the REPL hint went out on this line already
        self.raw = False        # answering mpremote's raw REPL request (RAW_ENTER)
        self.raw_n = 0          # code bytes since its prompt
        self.raw_bol = True     # ... and whether the next one starts a line
        self.raw_paste = 0      # bytes of the raw-paste request (Ctrl-E A Ctrl-A) seen
        self.raw_ms = 0         # ticks of its last byte
        self.lines = 0          # request lines handled (the loop services the pump after one)
        self.last_tag = [None, None, None]  # type: list  # by role: the last accepted tag
        self.last_reply = [None, None, None]  # type: list  # and its reply (for a repeat)
        self.sn = [None, None, None]  # type: list  # by role: the current session's id
        self.sn_ms = [0, 0, 0]        # ticks of the session's last accepted request
        self.sessions = 0             # sessions opened since boot (salt for the next id)
        self.challenge = [None, None, None]  # type: list  # by role: the open hello challenge
        self.ch_ms = [0, 0, 0]        # ticks at which it was given
        self.role = auth.NONE         # role of the request being handled

    # ---- bytes to lines --------------------------------------------------------------------
    def feed(self, b, now):
        if self.raw:
            if diff(now, self.raw_ms) <= _RAW_IDLE_MS and self._raw(b, now):
                return
            self._raw_end()     # over: this byte starts the pump's protocol again
        after_cr = self.after_cr
        self.after_cr = b == _CR
        if b == _LF or b == _CR:
            if b == _LF and after_cr:
                return  # CRLF: the CR ended the line
            self.hinted = False
            if self.overlong:
                self.overlong = False
                self.n = 0
                self.app.reply(b'{"error":"E_TOO_LONG","id":null,"message":'
                               b'"line longer than 1024 bytes","ok":false}')
                return
            n = self.n
            self.n = 0
            if n:
                self.lines += 1
                out = self.handle(bytes(self.buf[:n]), now)
                if out[0] != _BRACE:
                    # A person's terminal form: from a new line, or a terminal that echoes
                    # what it sends (tio, picocom --echo) writes the reply over the command.
                    self.app.hal.write(b"\r\n")
                self.app.reply(out)
            return
        if b < 32 and b != _TAB or b == 127:
            # control bytes (Ctrl-C, Ctrl-D, ...) never reach a command
            if b == _CTRL_A:
                self._raw_start(now)
            elif b == _CTRL_C and not self.hinted:
                self.hinted = True
                self.app.reply(HINT)
            return
        if self.n >= MAX_LINE:
            self.overlong = True
            return
        self.buf[self.n] = b
        self.n += 1

    def feed_from(self, data, n, now):
        """feed() each of data[0:n] (what the board read in one go), with a line's run of
        ordinary bytes checked and copied into the line buffer by C (find, min, max, a slice
        assignment) instead of byte by byte: the same outcome for a fraction of the work.
        Stops after a line that ends the loop (maintenance). Allocates a view per run: only
        when bytes came, never in the loop without them."""
        buf = self.buf
        app = self.app
        view = None
        i = 0
        while i < n:
            b = data[i]
            if self.raw or self.overlong or b < 32 and b != _TAB or b == 127 \
                    or self.n >= MAX_LINE:
                self.feed(b, now)
                i += 1
                if app.quit:
                    return
                continue
            m = self.n
            lf = data.find(b"\n", i, n)
            cr = data.find(b"\r", i, n if lf < 0 else lf)
            end = cr if cr >= 0 else lf if lf >= 0 else n
            if m + end - i <= MAX_LINE:
                if view is None:
                    view = memoryview(data)
                run = view[i:end]
                if min(run) >= 32 and max(run) < 127:    # printable ASCII: no control byte
                    buf[m:m + end - i] = run
                    self.n = m + end - i
                    self.after_cr = False
                    i = end
                    continue
            while True:     # a TAB, UTF-8 or a control byte inside, or the line fills up
                buf[m] = b
                m += 1
                i += 1
                if i >= n or m >= MAX_LINE:
                    break
                b = data[i]
                if b < 32 and b != _TAB or b == 127:
                    break
            self.n = m
            self.after_cr = False

    def _raw_start(self, now):
        self.n = 0              # a half line before it is dropped, as a REPL drops it
        self.overlong = False
        self.raw = True
        self.raw_n = 0
        self.raw_bol = True
        self.raw_paste = 0
        self.raw_ms = now
        self.app.hal.write(RAW_ENTER)

    def _raw_end(self):
        # the prompt's line ends here: the next reply starts a line of its own
        self.raw = False
        self.app.hal.write(b"\r\n")

    def _raw(self, b, now):
        """One byte of a raw-REPL request (RAW_ENTER). False when it ends the request and is
        the pump protocol's."""
        hal = self.app.hal
        self.raw_ms = now
        if b == _BRACE and self.raw_bol:
            return False                        # a JSON request: pumpctl, not mpremote
        if self.raw_paste or b == _CTRL_E and self.raw_n == 0:
            self.raw_paste += 1
            if self.raw_paste == 3:             # Ctrl-E A Ctrl-A: raw paste, not supported
                self.raw_paste = 0
                hal.write(RAW_NO_PASTE)
            return True
        if b == _CTRL_B:
            self._raw_end()                     # back to the pump's protocol
        elif b == _CTRL_A:
            self._raw_start(now)                # asked again: the banner again
        elif b == _CTRL_C:
            self.raw_n = 0                      # the raw REPL's Ctrl-C drops what was sent
            self.raw_bol = True
        elif b == _CTRL_D:
            hal.write(RAW_REFUSED if self.raw_n else RAW_NO_RESET)
            self.raw_n = 0
            self.raw_bol = True
        else:
            self.raw_n += 1
            self.raw_bol = b == _LF or b == _CR
        return True

    # ---- one line --------------------------------------------------------------------------
    def handle(self, line, now):
        """The reply line (bytes, signed when the request's tag verified) to one request line
        (without its newline)."""
        rid = None
        role = auth.NONE
        key = None          # the key that signs the reply (captured before a re-key)
        tag = None
        accepted = False
        self.role = auth.NONE
        try:
            try:
                text = line.decode()
            except Exception:
                raise Refusal("E_PARSE", "the line is not UTF-8")
            text = text.strip()
            if text[:1] != "{":
                return self._terminal(text, now)
            body = text
            sp = text.rfind(" ")
            if sp > 0 and len(text) - sp - 1 == _HEX_LEN and text[sp - 1] == "}":
                tag = auth.unhex(text[sp + 1:])
                if tag is None:
                    raise Refusal("E_AUTH", "the tag must be 64 lower-case hex digits")
                body = text[:sp]
            try:
                req = json.loads(body)
            except Exception:
                raise Refusal("E_PARSE", "the request is not valid JSON")
            if type(req) is not dict:
                raise Refusal("E_PARSE", "the request must be a JSON object")
            rid = req.get("id")
            if rid is not None and (type(rid) is not int or rid < 0 or rid > ID_MAX):
                rid = None
                raise Refusal("E_ARGS", "id must be an integer from 0 to %d" % ID_MAX)
            cmd = req.get("cmd")
            if type(cmd) is not str:
                raise Refusal("E_PARSE", "cmd must be a string")
            if cmd not in COMMANDS:
                raise Refusal("E_UNKNOWN_CMD", "unknown command %s; try help" % json.dumps(cmd))
            need = COMMANDS[cmd]
            keys = self.app.keys
            if need != auth.NONE or tag is not None:
                if keys.damaged:
                    raise Refusal("E_KEYS", "the key record is damaged: therapy goes on as "
                                  "programmed and nothing that changes it is accepted until the "
                                  "pump is provisioned again after the button at the pump")
                if not keys.provisioned():
                    raise Refusal("E_NOT_PROVISIONED", "the pump has no keys yet: provision it")
                role = self._authenticate(req, body, tag)
                key = keys.key[role]   # from here on every reply is signed
                self.role = role
                if role < need:
                    raise Refusal("E_ROLE", "the patient key may only ask for a patient bolus "
                                  "or read status and alarms")
                if req.get("pump") != self.app.uid:
                    raise Refusal("E_AUTH", "this request is for pump %s, not this pump (%s)"
                                  % (json.dumps(req.get("pump")), self.app.uid))
                if cmd != "hello":
                    if self._session(req, role, now, tag):
                        return self._repeat(role, key, tag)
                    accepted = True
            elif not keys.usable() and cmd not in ("help", "ping", "info", "provision"):
                raise Refusal("E_NOT_PROVISIONED", "the pump has no keys yet")
            args = req.get("args", {})
            if type(args) is not dict:
                raise Refusal("E_ARGS", "args must be a JSON object")
            out = {"id": rid, "ok": True, "cmd": cmd}
            self._do(cmd, role)(args, now, out)
            reply = json.dumps(out).encode()
        except Refusal as e:
            reply = self._error(rid, e.code, e.message, e.reason)
        except Exception as e:
            reply = self._error(rid, "E_INTERNAL", "the command failed: %s" % repr(e))
        if accepted:
            # An accepted request's answer, refusal or not, is what a repeat of it gets.
            self.last_reply[role] = reply
        return self._signed(reply, key, tag)

    def _do(self, cmd, role):
        """The method that handles `cmd` for `role`: a session command's here, else the
        handlers' (told the role, for what a keyed `info` adds)."""
        if cmd in ("hello", "provision", "rekey"):
            return getattr(self, "do_" + cmd)
        self.handlers.role = role
        return getattr(self.handlers, "do_" + cmd)

    def _signed(self, reply, key, tag):
        if key is None:
            return reply
        mac = auth.hmac_sha256(key, _REPLY + tag + reply)
        return reply + b" " + auth.tohex(mac).encode()

    def _session(self, req, role, now, tag):
        """Check the request's session and counter; True when it is a repeat of the last
        accepted request (answered from the cache), False when it is accepted anew (the counter
        is stored before the command acts). Raises Refusal otherwise."""
        keys = self.app.keys
        sn = self.sn[role]
        if sn is None or req.get("sn") != sn:
            raise Refusal("E_SESSION", "not the pump's current session for this key: open a "
                          "new one (hello)")
        idle = diff(now, self.sn_ms[role])
        if idle < 0 or idle > SESSION_IDLE_MS:
            self.sn[role] = None
            raise Refusal("E_SESSION", "the session ended after %d minutes without a request: "
                          "open a new one (hello)" % (SESSION_IDLE_MS // 60000))
        ctr = req.get("ctr")
        if type(ctr) is not int or ctr < 1 or ctr > auth.CTR_MAX:
            raise Refusal("E_AUTH", "ctr must be an integer from 1 to %d" % auth.CTR_MAX)
        if ctr == keys.last[role] and self.last_tag[role] is not None \
                and auth.same(tag, self.last_tag[role]):
            return True
        if not keys.in_window(role, ctr):
            raise Refusal("E_REPLAY", "counter %d is not from %d to %d" % (
                ctr, keys.last[role] + 1, keys.last[role] + auth.WINDOW))
        if ctr > auth.CTR_LIMIT and req.get("cmd") != "rekey":
            raise Refusal("E_REKEY", "the %s counter is near its end: re-key the pump "
                          "(pumpctl rekey) before anything else" % auth.ROLE_NAMES[role])
        if not keys.advance(role, ctr):
            raise Refusal("E_INTERNAL", "could not store the counter")
        self.sn_ms[role] = now
        self.last_tag[role] = tag
        self.last_reply[role] = None
        return False

    def end_sessions(self):
        for r in (auth.PATIENT, auth.CLINICIAN):
            self.sn[r] = None
            self.challenge[r] = None
            self.last_tag[r] = None
            self.last_reply[r] = None

    def expire(self, now):
        """End sessions idle for longer than allowed (the loop calls this hourly, so no tick
        difference it takes can wrap). Allocates nothing."""
        self._expire(auth.PATIENT, now)
        self._expire(auth.CLINICIAN, now)

    def _expire(self, role, now):
        if self.sn[role] is not None:
            idle = diff(now, self.sn_ms[role])
            if idle < 0 or idle > SESSION_IDLE_MS:
                self.sn[role] = None

    def _repeat(self, role, key, tag):
        reply = self.last_reply[role]
        if reply is None:
            raise Refusal("E_REPLAY", "this request was already received")
        out = json.loads(reply)
        out["repeat"] = True
        return self._signed(json.dumps(out).encode(), key, tag)

    def _error(self, rid, code, message, reason=None):
        out = {"id": rid, "ok": False, "error": code, "message": message}
        if reason is not None:
            out["reason"] = reason
        return json.dumps(out).encode()

    def _authenticate(self, req, body, tag):
        if tag is None:
            raise Refusal("E_AUTH", "this command needs an authentication tag")
        role = auth.ROLES.get(req.get("role"))
        if role is None:
            raise Refusal("E_AUTH", "role must be \"clinician\" or \"patient\"")
        if not self.app.keys.check(role, body.encode(), tag):
            raise Refusal("E_AUTH", "the authentication tag is wrong for this request and role")
        return role

    def _terminal(self, text, now):
        """The terminal form. With an id (`7 info`) it is a program's: one JSON reply. Without,
        a person typed it: readable lines."""
        words = text.split()
        rid = None
        if len(words) == 2 and words[0].isdigit() and len(words[0]) < 10:
            rid = int(words[0])
            words = words[1:]
        known = len(words) == 1 and words[0] in TERMINAL
        if rid is not None or text[:1] == "[":  # a program (or its garbage): JSON
            if not known:
                raise Refusal("E_PARSE", "type help, info or ping, or send a JSON request "
                              "(docs/protocol.md)")
            out = {"id": rid, "ok": True, "cmd": words[0]}
            self._do(words[0], auth.NONE)({}, now, out)
            return json.dumps(out).encode()
        if not known:
            return ("not a command here: " + text[:40] + "\r\ntype help, info or ping and "
                    "Enter; programs send JSON requests (docs/protocol.md)").encode()
        out = {}
        self._do(words[0], auth.NONE)({}, now, out)
        if words[0] == "ping":
            return b"pong: the pump is running"
        if words[0] == "help":
            return about("text_help", self.app, COMMANDS, TERMINAL).encode()
        return about("text_info", out).encode()

    # ---- commands ----------------------------------------------------------------------------
    # ---- the session commands (every other is firmware/handlers.py's) ------------------
    def do_hello(self, args, now, out):
        """A new session for the signing role, in two steps, so that no recorded hello can
        end the role's current session (docs/security.md):

          hello {hn}        the pump answers a fresh challenge `pn`, and changes nothing else;
          hello {hn, pn}    signed over the challenge the pump holds (given within
                            CHALLENGE_MS): a fresh session id and the counter to go on from.

        The new session replaces the role's previous one, whose requests are refused from then
        on. A second step naming a challenge the pump does not hold (a replayed or stale hello)
        is refused and touches nothing; a newer first step replaces the challenge."""
        hn = args.get("hn")
        if type(hn) is not str or not 16 <= len(hn) <= 64 or auth.unhex(hn) is None:
            raise Refusal("E_ARGS", "hn must be 16 to 64 lower-case hex digits (the host's nonce)")
        role = self.role
        keys = self.app.keys
        self.sessions += 1
        salt = "%s %d %d %d %s" % (self.app.uid, keys.reserved[role], self.sessions, now, hn)
        pn = args.get("pn")
        if pn is None:
            ch = _random(_CHALLENGE_LEN, ("challenge " + salt).encode())
            self.challenge[role] = ch
            self.ch_ms[role] = now
            out["pn"] = auth.tohex(ch)
            out["pn_s"] = CHALLENGE_MS // 1000
            return
        ch = self.challenge[role]
        got = auth.unhex(pn) if type(pn) is str else None
        age = diff(now, self.ch_ms[role])
        if ch is None or got is None or not auth.same(got, ch) or age < 0 or age > CHALLENGE_MS:
            raise Refusal("E_REPLAY", "this hello answers no challenge the pump holds (a replayed "
                          "or stale hello, or one more than %d s late): ask for a new one, "
                          "hello without pn" % (CHALLENGE_MS // 1000))
        self.challenge[role] = None
        sn = auth.tohex(_random(8, salt.encode()))
        self.sn[role] = sn
        self.sn_ms[role] = now
        self.last_tag[role] = None
        self.last_reply[role] = None
        last = keys.last[role]
        out["pump_id"] = self.app.uid
        out["role"] = auth.ROLE_NAMES[role]
        out["sn"] = sn
        out["ctr"] = last
        out["window"] = auth.WINDOW
        out["ctr_left"] = auth.CTR_LIMIT - last if last < auth.CTR_LIMIT else 0
        out["idle_s"] = SESSION_IDLE_MS // 1000
        out["firmware"] = VERSION
        out["build"] = buildinfo.KIND

    def do_provision(self, args, now, out):
        _keying("provision", self, args, now, out)

    def do_rekey(self, args, now, out):
        _keying("rekey", self, args, now, out)
