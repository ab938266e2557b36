# The serial protocol (docs/protocol.md): bytes in, one JSON reply line out per request.
#
# feed(byte) collects a line in a preallocated buffer; a complete line is parsed, checked
# (authentication, role, counter) and handed to one do_* method. Everything a command does
# goes through the Pump's own methods, which check their limits again. Any exception a
# command raises is caught and answered with E_INTERNAL: the control loop never stops for a
# bad request. Handling a request allocates (JSON); the loop without requests does not.
#
# Lines end in LF, CR or CRLF (a terminal's Enter sends CR; CRLF counts once). A line from a
# person (the terminal form without an id: `help`, `info`, `ping`) is answered in readable
# lines; everything else gets one compact JSON object with sorted keys (firmware/wirejson.py).
from firmware import wirejson as json

from firmware import auth, codes
from firmware.compat import const
from firmware.rx import Rx, RxError
from firmware.version import VERSION

MAX_LINE = const(1024)
_CR = const(13)
_LF = const(10)
_TAB = const(9)
_CTRL_A = const(1)
_CTRL_C = const(3)
_HEX_LEN = const(64)
ID_MAX = const((1 << 30) - 1)
META_MAX = const(512)
LOG_MAX = const(50)

# name -> (role needed, description)
COMMANDS = {
    "help": (auth.NONE, "list the commands"),
    "ping": (auth.NONE, "check the pump answers"),
    "info": (auth.NONE, "pump id, firmware version, board, clock, counters"),
    "provision": (auth.NONE, "set the two role keys, once"),
    "status": (auth.PATIENT, "therapy, reservoir, alarms, battery, last 24 h"),
    "alarms": (auth.PATIENT, "active alarms"),
    "patient_bolus": (auth.PATIENT, "ask for the prescribed patient bolus"),
    "settings": (auth.CLINICIAN, "the stored prescription"),
    "program": (auth.CLINICIAN, "install a prescription"),
    "bolus": (auth.CLINICIAN, "clinician, priming or bridge bolus"),
    "refill": (auth.CLINICIAN, "record a refill"),
    "ack": (auth.CLINICIAN, "silence an alarm"),
    "log": (auth.CLINICIAN, "read the event log"),
    "stop": (auth.CLINICIAN, "suspend delivery"),
    "resume": (auth.CLINICIAN, "resume delivery"),
    "clock": (auth.CLINICIAN, "read or set the pump clock"),
    "maintenance": (auth.CLINICIAN, "stop safely and hand back the REPL"),
}
TERMINAL = ("help", "ping", "info")
# What a REPL-seeking byte (Ctrl-C, or mpremote's Ctrl-A) gets, once per line: a running pump
# has no REPL, and a tool waiting for one should fail at once and say why.
HINT = b"pump running, no REPL: Ctrl-C is ignored. Type help; to flash: make flash"
BOLUS_KINDS = ("clinician", "prime", "bridge")


def board_limits(hal):
    """What the host validates against: this board's own numbers (info -> limits)."""
    return {"stroke_nl": hal.STROKE_NL, "reservoir_nl": hal.RESERVOIR_NL,
            "reservoir_min_nl": hal.RESERVOIR_MIN_NL, "min_rate_nl_day": hal.MIN_RATE_NL_DAY,
            "max_strokes_per_min": hal.MAX_STROKES_PER_MIN,
            "max_rate_nl_day": hal.MAX_STROKES_PER_MIN * hal.STROKE_NL * 1440,
            "catheter_nl": hal.CATHETER_NL}


def ml_text(nl):
    """A volume in nL as mL for a person, exactly, with integers only: 250 -> 0.00025 mL."""
    frac = "%06d" % (nl % 1000000)
    while frac and frac[-1] == "0":
        frac = frac[:-1]
    return "%d%s mL" % (nl // 1000000, "." + frac if frac else "")


def span_text(s):
    """Seconds as d, h, min and s for a person: 93784 -> 1 d 2 h 3 min 4 s."""
    parts = []
    for size, name in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if s >= size:
            parts.append("%d %s" % (s // size, name))
            s %= size
    return " ".join(parts) if parts else "0 s"


def clock_text(ts):
    """Pump time (s since 2024-01-01 00:00) as YYYY-MM-DD HH:MM:SS, for a person."""
    days = ts // 86400
    s = ts - days * 86400
    # days since 2024-01-01 to a civil date (proleptic Gregorian, integers only)
    z = days + 739191  # 2024-01-01 is day 739191 counted from 0000-03-01
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return "%04d-%02d-%02d %02d:%02d:%02d" % (y, m, d, s // 3600, s // 60 % 60, s % 60)


class Refusal(Exception):
    def __init__(self, code, message, reason=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


def _arg(args, key, lo, hi, default=None):
    v = args.get(key, default)
    if v is None:
        raise Refusal("E_ARGS", key + " is required")
    if type(v) is not int or v < lo or v > hi:
        raise Refusal("E_ARGS", "%s must be an integer from %d to %d, got %s"
                      % (key, lo, hi, json.dumps(v)))
    return v


class Proto:
    def __init__(self, app):
        self.app = app
        self.buf = bytearray(MAX_LINE)
        self.n = 0
        self.overlong = False
        self.after_cr = False   # a CR ended the last line: an LF right after it is the same end
        self.hinted = False     # the REPL hint went out on this line already
        self.last_tag = [None, None, None]  # type: list  # by role: the last accepted tag
        self.last_reply = [None, None, None]  # type: list  # and its reply (for a repeat)

    # ---- bytes to lines --------------------------------------------------------------------
    def feed(self, b, now):
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
                self.app.reply(self.handle(bytes(self.buf[:n]), now))
            return
        if b < 32 and b != _TAB or b == 127:
            # control bytes (Ctrl-C, Ctrl-D, ...) never reach a command
            if (b == _CTRL_C or b == _CTRL_A) and not self.hinted:
                self.hinted = True
                self.app.reply(HINT)
            return
        if self.n >= MAX_LINE:
            self.overlong = True
            return
        self.buf[self.n] = b
        self.n += 1

    # ---- one line --------------------------------------------------------------------------
    def handle(self, line, now):
        """The reply (bytes) to one request line (without its newline)."""
        rid = None
        role = auth.NONE
        accepted = False
        try:
            try:
                text = line.decode()
            except Exception:
                raise Refusal("E_PARSE", "the line is not UTF-8")
            text = text.strip()
            if text[:1] != "{":
                return self._terminal(text, now)
            body = text
            tag = None
            sp = text.rfind(" ")
            if sp > 0 and len(text) - sp - 1 == _HEX_LEN and text[sp - 1] == "}":
                tag = auth.unhex(text[sp + 1:])
                if tag is None:
                    raise Refusal("E_AUTH", "the tag must be 64 hex digits")
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
            need = COMMANDS[cmd][0]
            keys = self.app.keys
            role = auth.NONE
            if need != auth.NONE:
                if not keys.provisioned():
                    raise Refusal("E_NOT_PROVISIONED", "the pump has no keys yet: provision it")
                role = self._authenticate(req, body, tag)
                if role < need:
                    raise Refusal("E_ROLE", "the patient key may only ask for a patient bolus or"
                                  " read status and alarms")
                ctr = req["ctr"]
                if ctr == keys.ctr[role] and self.last_tag[role] is not None \
                        and auth.same(tag, self.last_tag[role]):
                    return self._repeat(role)
                if ctr <= keys.ctr[role]:
                    raise Refusal("E_REPLAY", "counter %d is not above the last accepted (%d)"
                                  % (ctr, keys.ctr[role]))
                if not keys.advance(role, ctr):
                    raise Refusal("E_INTERNAL", "could not store the counter")
                self.last_tag[role] = tag
                self.last_reply[role] = None
                accepted = True
            elif not keys.provisioned() and cmd not in ("help", "ping", "info", "provision"):
                raise Refusal("E_NOT_PROVISIONED", "the pump has no keys yet")
            args = req.get("args", {})
            if type(args) is not dict:
                raise Refusal("E_ARGS", "args must be a JSON object")
            out = {"id": rid, "ok": True, "cmd": cmd}
            getattr(self, "do_" + cmd)(args, now, out)
            reply = json.dumps(out).encode()
        except Refusal as e:
            reply = self._error(rid, e.code, e.message, e.reason)
        except Exception as e:
            reply = self._error(rid, "E_INTERNAL", "the command failed: %s" % repr(e))
        if accepted:
            # An accepted request's answer, refusal or not, is what a repeat of it gets.
            self.last_reply[role] = reply
        return reply

    def _repeat(self, role):
        reply = self.last_reply[role]
        if reply is None:
            raise Refusal("E_REPLAY", "this request was already received")
        out = json.loads(reply)
        out["repeat"] = True
        return json.dumps(out).encode()

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
        ctr = req.get("ctr")
        if type(ctr) is not int or ctr < 1 or ctr > auth.CTR_MAX:
            raise Refusal("E_AUTH", "ctr must be an integer from 1 to %d" % auth.CTR_MAX)
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
            getattr(self, "do_" + words[0])({}, now, out)
            return json.dumps(out).encode()
        if not known:
            return ("not a command here: " + text[:40] + "\r\ntype help, info or ping and "
                    "Enter; programs send JSON requests (docs/protocol.md)").encode()
        out = {}
        getattr(self, "do_" + words[0])({}, now, out)
        return getattr(self, "_text_" + words[0])(out).encode()

    def _text_ping(self, out):
        return "pong: the pump is running"

    def _text_help(self, out):
        app = self.app
        lines = ["Intrathecal pump %s, firmware %s, board %s" % (app.uid, VERSION, app.hal.NAME),
                 "Type one of these and press Enter:"]
        for name in TERMINAL:
            lines.append("  %-14s %s" % (name, COMMANDS[name][1]))
        lines.append("Everything else is for programs (pumpctl does it for you): one JSON")
        lines.append("request a line, signed with a key (docs/protocol.md):")
        for name in sorted(COMMANDS):
            role, what = COMMANDS[name]
            if name in TERMINAL:
                continue
            key = ("" if role == auth.NONE else
                   "  [%s key]" % ("patient" if role == auth.PATIENT else "clinician"))
            lines.append("  %-14s %s%s" % (name, what, key))
        return "\r\n".join(lines)

    def _text_info(self, out):
        lim = out["limits"]
        rows = (("pump id", out["pump_id"]), ("firmware", out["firmware"]),
                ("board", out["board"]), ("pump clock", clock_text(out["clock_ts"])),
                ("uptime", span_text(out["uptime_s"])),
                ("provisioned", "yes" if out["provisioned"] else "no (provision it)"),
                ("stroke", ml_text(lim["stroke_nl"])),
                ("reservoir", "%s (delivery stops below %s)"
                 % (ml_text(lim["reservoir_nl"]), ml_text(lim["reservoir_min_nl"]))),
                ("basal rates", "%s/day to %s/day" % (ml_text(lim["min_rate_nl_day"]),
                                                      ml_text(lim["max_rate_nl_day"]))),
                ("catheter", ml_text(lim["catheter_nl"])))
        return "\r\n".join(["%-12s %s" % (k, v) for k, v in rows])

    # ---- commands ----------------------------------------------------------------------------
    def do_help(self, args, now, out):  # the JSON form's; a person gets _text_help
        cmds = {}
        for name in COMMANDS:
            role, text = COMMANDS[name]
            cmds[name] = text + ("" if role == auth.NONE else
                                 " [key: %s]" % ("patient" if role == auth.PATIENT
                                                 else "clinician"))
        out["commands"] = cmds

    def do_ping(self, args, now, out):
        out["pong"] = True

    def do_info(self, args, now, out):
        app = self.app
        hal = app.hal
        keys = app.keys
        out["pump_id"] = app.uid
        out["firmware"] = VERSION
        out["board"] = hal.NAME
        out["clock_ts"] = app.clock_ts(now)
        out["uptime_s"] = app.pump.mono_s
        out["provisioned"] = keys.provisioned()
        out["ctr"] = {"clinician": keys.ctr[auth.CLINICIAN], "patient": keys.ctr[auth.PATIENT]}
        out["stroke_nl"] = hal.STROKE_NL
        out["catheter_nl"] = hal.CATHETER_NL
        out["reservoir_max_nl"] = hal.RESERVOIR_NL
        out["limits"] = board_limits(hal)

    def do_provision(self, args, now, out):
        keys = self.app.keys
        if keys.provisioned():
            raise Refusal("E_LOCKED", "the pump is already provisioned")
        c = args.get("clinician_key")
        p = args.get("patient_key")
        if type(c) is not str or type(p) is not str:
            raise Refusal("E_ARGS", "clinician_key and patient_key must be 64 hex digits each")
        ck = auth.unhex(c)
        pk = auth.unhex(p)
        if ck is None or pk is None or len(ck) != auth.KEY_LEN or len(pk) != auth.KEY_LEN:
            raise Refusal("E_ARGS", "clinician_key and patient_key must be 64 hex digits each")
        if ck == pk:
            raise Refusal("E_ARGS", "the two keys must differ")
        if not keys.provision(ck, pk):
            raise Refusal("E_INTERNAL", "could not store the keys")
        out["provisioned"] = True

    def do_status(self, args, now, out):
        app = self.app
        pump = app.pump
        pump.service(now)
        rx = pump.rx
        stroke_nl = pump.stroke_nl
        out["programmed"] = rx is not None
        out["stopped"] = pump.stopped
        out["delivering"] = rx is not None and not pump.stopped \
            and not pump.alarms & codes.CRITICAL_MASK \
            and pump.reservoir_nl - stroke_nl >= pump.reservoir_min_nl
        out["stop_left_s"] = app.stop_left_s(now)
        out["rate_nl_day"] = rx.step_rate_nl_day[pump.step] if rx else 0
        out["step"] = pump.step
        out["basal_nl_day"] = rx.basal_nl_day if rx else 0
        out["max_daily_nl"] = rx.max_daily_nl if rx else 0
        out["low_reservoir_nl"] = rx.low_res_nl if rx else 0
        out["reservoir_nl"] = pump.reservoir_nl
        out["time_to_empty_s"] = pump.time_to_empty_s()
        out["refill_ts"] = app.refill_ts(now)
        out["alarms"] = self._alarms()
        out["battery_mv"] = pump.mon.mv_avg
        out["delivered_24h_nl"] = pump.guard.total * stroke_nl
        out["bolus"] = {"patient": pump.pb_on, "clinician": pump.cb_on}
        out["strokes"] = pump.strokes
        out["clock_ts"] = app.clock_ts(now)

    def _alarms(self):
        pump = self.app.pump
        out = []
        for code in codes.ALARM_NAMES:
            bit = 1 << code
            if pump.alarms & bit:
                out.append({"code": codes.ALARM_NAMES[code], "priority": codes.priority(code),
                            "acked": bool(pump.acked & bit)})
        return out

    def do_alarms(self, args, now, out):
        self.app.pump.service(now)
        out["alarms"] = self._alarms()

    def do_settings(self, args, now, out):
        out["settings"] = self.app.load_settings()

    def do_program(self, args, now, out):
        params = args.get("params")
        if type(params) is not dict:
            raise Refusal("E_ARGS", "params must be a JSON object (docs/protocol.md)")
        meta = params.get("meta")
        if meta is not None and (type(meta) is not dict or len(json.dumps(meta)) > META_MAX):
            raise Refusal("E_ARGS", "meta must be an object of at most %d bytes" % META_MAX)
        for k in params:
            if k not in ("conc_ng_ml", "steps", "max_daily_ng", "low_res_nl", "pb", "meta"):
                raise Refusal("E_ARGS", "unknown prescription key %s" % json.dumps(k))
        app = self.app
        try:
            Rx(params, app.hal)  # the firmware's own limits, before anything is stored
        except RxError as e:
            raise Refusal("E_RX", e.key + ": " + e.message)
        if not app.save_settings(params):
            raise Refusal("E_INTERNAL", "could not store the settings")
        app.pump.program(now, params)
        out["settings"] = app.load_settings()

    def _refused(self, reason):
        name = codes.REASON_NAMES.get(reason, str(reason))
        raise Refusal("E_REFUSED", "refused: " + codes.REASON_TEXT.get(reason, name), name)

    def do_bolus(self, args, now, out):
        dose = _arg(args, "dose_nl", 1, 1 << 29)
        dur = _arg(args, "duration_s", 0, 86400, 0)
        kind = args.get("kind", "clinician")
        if kind not in BOLUS_KINDS:
            raise Refusal("E_ARGS", "kind must be clinician, prime or bridge")
        reason = self.app.pump.clinician_bolus(now, dose, dur * 1000)
        if reason:
            self._refused(reason)
        out["started"] = True
        out["kind"] = kind

    def do_patient_bolus(self, args, now, out):
        reason = self.app.pump.patient_bolus(now)
        if reason:
            self._refused(reason)
        out["started"] = True

    def do_refill(self, args, now, out):
        app = self.app
        pump = app.pump
        vol = _arg(args, "volume_nl", 0, app.hal.RESERVOIR_NL)
        conc = _arg(args, "conc_ng_ml", 0, 1000000000, 0)
        residual = _arg(args, "residual_nl", -1, app.hal.RESERVOIR_NL, -1)
        bridge = _arg(args, "bridge_nl", -1, 1 << 29, -1)
        meta = args.get("meta")
        if meta is not None and (type(meta) is not dict or len(json.dumps(meta)) > META_MAX):
            raise Refusal("E_ARGS", "meta must be an object of at most %d bytes" % META_MAX)
        pump.service(now)
        expected = pump.reservoir_nl
        old_conc = pump.rx.conc_ng_ml if pump.rx else 0
        reason = pump.refill(now, vol, conc, residual, bridge)
        if reason:
            self._refused(reason)
        if pump.rx is not None and pump.rx.conc_ng_ml != old_conc:
            if meta is not None:
                pump.params["meta"] = meta  # the host's words for the new solution
            app.save_settings(pump.params)
        out["reservoir_nl"] = pump.reservoir_nl
        out["expected_nl"] = expected
        out["discrepancy"] = residual >= 0 and bool(pump.alarms
                                                    & (1 << codes.AL_REFILL_DISCREPANCY))

    def do_ack(self, args, now, out):
        name = args.get("code")
        found = False
        for code in codes.ALARM_NAMES:
            if codes.ALARM_NAMES[code] == name:
                found = True
                if self.app.pump.ack(now, code):
                    out["acked"] = True
        if not found:
            raise Refusal("E_ARGS", "code must be an alarm code name, got %s" % json.dumps(name))
        if "acked" not in out:
            raise Refusal("E_REFUSED", "alarm %s is not active" % name, "not_active")

    def do_log(self, args, now, out):
        ev = self.app.events
        total = ev.total
        n = len(ev)
        first = total - n
        since = _arg(args, "since", 0, ID_MAX, first)
        most = _arg(args, "max", 1, LOG_MAX, LOG_MAX)
        if since < first:
            since = first
        rows = []
        i = since - first
        entries = ev.entries()
        while i < n and len(rows) < most:
            t, code, a, b = entries[i][0], entries[i][1], entries[i][2], entries[i][3]
            rows.append([first + i, t, codes.EVENT_NAMES.get(code, str(code)), a, b])
            i += 1
        out["entries"] = rows
        out["next"] = first + i
        out["total"] = total
        out["chain_ok"] = ev.verify()

    def do_stop(self, args, now, out):
        for_s = _arg(args, "for_s", 0, 7 * 86400, 0)
        self.app.stop(now, for_s)
        out["stopped"] = True

    def do_resume(self, args, now, out):
        self.app.resume(now)
        out["stopped"] = self.app.pump.stopped

    def do_clock(self, args, now, out):
        app = self.app
        if "set_ts" in args:
            app.set_clock(now, _arg(args, "set_ts", 0, ID_MAX))
        out["clock_ts"] = app.clock_ts(now)

    def do_maintenance(self, args, now, out):
        self.app.maintenance(now)
        out["maintenance"] = True
