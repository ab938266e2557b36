# The protocol's commands (docs/protocol.md), one do_* method each: check the arguments, call
# the therapy room's verb (firmware/therapy.py), which checks its limits again, and fill the
# reply from what it answered and the status snapshot (firmware/status.py). The framing,
# authentication and sessions around them are firmware/proto.py's; it calls do_<cmd>(args,
# now, out) once the request is accepted, with `role` set to the signing role. A refusal is
# raised as Refusal and becomes the reply's error.
from firmware import wirejson as json

from firmware import auth, buildinfo, codes, status
from firmware.compat import const, unload
from firmware.reservoir import DRUG_MAX, MAX_STABLE_S, valid_name
from firmware.rx import Rx, RxError
from firmware.therapy import PRIME_CONFIRM_S

ID_MAX = const((1 << 30) - 1)
META_MAX = const(512)
_LOG_MAX = const(50)
BOLUS_KINDS = ("clinician", "prime", "bridge")
_RX_KEYS = ("conc_ng_ml", "steps", "max_daily_ng", "low_res_nl", "pb", "meta", "catheter",
            "refill_notice_s", "stop_reminder_s", "alarm_silence_s")

# name -> the role it needs (what each does, for help: firmware/about.py)
COMMANDS = {
    "help": auth.NONE, "ping": auth.NONE, "info": auth.NONE, "provision": auth.NONE,
    "hello": auth.PATIENT, "status": auth.PATIENT, "alarms": auth.PATIENT,
    "patient_bolus": auth.PATIENT, "settings": auth.CLINICIAN, "program": auth.CLINICIAN,
    "bolus": auth.CLINICIAN, "catheter": auth.CLINICIAN, "refill": auth.CLINICIAN,
    "ack": auth.CLINICIAN, "log": auth.CLINICIAN, "history": auth.CLINICIAN,
    "stop": auth.CLINICIAN, "resume": auth.CLINICIAN, "clock": auth.CLINICIAN,
    "rekey": auth.CLINICIAN, "update_begin": auth.CLINICIAN, "update_chunk": auth.CLINICIAN,
    "update_commit": auth.CLINICIAN, "update_confirm": auth.CLINICIAN,
    "maintenance": auth.CLINICIAN,
}
TERMINAL = ("help", "ping", "info")


def about(what, *args):
    """firmware/about.py's `what` (the replies that describe the pump: help, info), loaded for
    the request and let go after it."""
    from firmware import about
    try:
        return getattr(about, what)(*args)
    finally:
        about = None
        unload("firmware.about")


def _update():
    """firmware/update.py, loaded when an update comes (app.get_updater() keeps it then)."""
    from firmware import update
    return update


class Refusal(Exception):
    def __init__(self, code, message, reason=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


def arg(args, key, lo, hi, default=None):
    v = args.get(key, default)
    if v is None:
        raise Refusal("E_ARGS", key + " is required")
    if type(v) is not int or v < lo or v > hi:
        raise Refusal("E_ARGS", "%s must be an integer from %d to %d, got %s"
                      % (key, lo, hi, json.dumps(v)))
    return v


def refused(reason):
    name = codes.REASON_NAMES.get(reason, str(reason))
    text = name
    try:
        from firmware import codetext   # the sentence: loaded for this reply, let go after it
        text = codetext.REASON_TEXT.get(reason, name)
    except MemoryError:
        pass    # no room for the sentence: the reply is still the refusal, with its reason
    finally:
        codetext = None
        unload("firmware.codetext")
    raise Refusal("E_REFUSED", "refused: " + text, name)


def _meta(args):
    meta = args.get("meta")
    if meta is not None and (type(meta) is not dict or len(json.dumps(meta)) > META_MAX):
        raise Refusal("E_ARGS", "meta must be an object of at most %d bytes" % META_MAX)
    return meta


class Handlers:
    def __init__(self, app):
        self.app = app          # the shell: clock, records, keys, updates (firmware/app.py)
        self.th = app.therapy
        self.role = auth.NONE   # the role that signed the request being handled

    def _snapshot(self, now):
        return status.snapshot(self.th, now, self.app.clock_ts(now))

    # ---- who the pump is ---------------------------------------------------------------------
    def do_help(self, args, now, out):  # the JSON form's; a person gets proto's text
        about("help", COMMANDS, out)

    def do_ping(self, args, now, out):
        out["pong"] = True

    def do_info(self, args, now, out):
        about("info", self, now, out)

    # ---- therapy -------------------------------------------------------------------------------
    def do_status(self, args, now, out):
        out.update(self._snapshot(now))
        from firmware import lifetime   # the battery's estimate: loaded for the request only
        out.update(lifetime.status(self.th))
        unload("firmware.lifetime")

    def do_alarms(self, args, now, out):
        self.th.pump.service(now)
        out["alarms"] = status.alarms(self.th.sup)

    def do_settings(self, args, now, out):
        out["settings"] = self.app.load_settings()

    def do_program(self, args, now, out):
        params = args.get("params")
        if type(params) is not dict:
            raise Refusal("E_ARGS", "params must be a JSON object (docs/protocol.md)")
        _meta(params)
        for k in params:
            if k not in _RX_KEYS:
                raise Refusal("E_ARGS", "unknown prescription key %s" % json.dumps(k))
        assume = arg(args, "assume_24h_ng", 0, 10 ** 12) if "assume_24h_ng" in args else -1
        stable = arg(args, "stable_s", 0, MAX_STABLE_S, 0)
        app = self.app
        th = self.th
        try:
            rx = Rx(params, app.hal)  # the firmware's own limits, before anything is stored
            strokes = th.assumed_strokes(rx, assume)
        except RxError as e:
            if e.key == "assume_24h_ng":
                raise Refusal("E_REFUSED", "refused: " + e.message, "assumption")
            raise Refusal("E_RX", e.key + ": " + e.message)
        try:
            th.check_fill(rx)
        except RxError as e:
            raise Refusal("E_REFUSED", "refused: " + e.message, "drug_mismatch")
        # The settings carry the program's number: a boot adds its history entry if a power
        # cut came before the history had it (firmware/history.py recover()).
        number = th.hist.run("next_program", now) or 0
        if not app.save_settings(params, [number, app.clock_ts(now)]):
            raise Refusal("E_INTERNAL", "could not store the settings")
        th.program(now, params, assume, stable)
        out["settings"] = app.load_settings()
        if strokes >= 0:
            # The lost dose account now holds this much for the last 24 hours.
            out["assumed_24h_nl"] = strokes * th.stroke_nl

    def do_bolus(self, args, now, out):
        dose = arg(args, "dose_nl", 1, 1 << 29)
        dur = arg(args, "duration_s", 0, 86400, 0)
        kind = args.get("kind", "clinician")
        if kind not in BOLUS_KINDS:
            raise Refusal("E_ARGS", "kind must be clinician, prime or bridge")
        th = self.th
        out["kind"] = kind
        if kind == "prime":
            # Two steps: without `confirm` the prime is only checked and held; the second
            # request repeats the volume with the id the first one answered.
            confirm = arg(args, "confirm", 1, 99999) if "confirm" in args else 0
            if not confirm:
                reason = th.arm_prime(now, dose)
                if reason:
                    refused(reason)
                out["started"] = False
                out["confirm"] = th.prime_id
                out["dose_nl"] = dose
                out["catheter_nl"] = th.catheter_nl()
                out["expires_s"] = PRIME_CONFIRM_S
                return
            reason = th.prime(now, dose, confirm, dur * 1000)
        elif kind == "bridge":
            reason = th.bridge(now, dose, dur * 1000)
        else:
            reason = th.clinician_bolus(now, dose, dur * 1000)
        if reason:
            refused(reason)
        out["started"] = True

    def do_patient_bolus(self, args, now, out):
        reason = self.th.patient_bolus(now)
        if reason:
            refused(reason)
        out["started"] = True

    def do_refill(self, args, now, out):
        app = self.app
        th = self.th
        vol = arg(args, "volume_nl", 0, app.hal.RESERVOIR_NL)
        conc = arg(args, "conc_ng_ml", 0, 1000000000, 0)
        residual = arg(args, "residual_nl", -1, app.hal.RESERVOIR_NL, -1)
        bridge = arg(args, "bridge_nl", -1, 1 << 29, -1)
        stable = arg(args, "stable_s", 0, MAX_STABLE_S, 0)
        meta = _meta(args)
        drug = args.get("drug")
        if drug is not None and not valid_name(drug):
            raise Refusal("E_ARGS", "drug must be 1 to %d lower-case letters, digits, - or _"
                          % DRUG_MAX)
        expected = self._snapshot(now)["reservoir_nl"]
        params = th.params
        reason = th.refill(now, vol, conc, residual, bridge, stable, meta, drug)
        if reason:
            refused(reason)
        if th.params is not params:  # a new concentration: the settings record follows
            app.save_settings(th.params)
        st = self._snapshot(now)
        out["reservoir_nl"] = st["reservoir_nl"]
        out["expected_nl"] = expected
        out["discrepancy"] = residual >= 0 and "refill_discrepancy" in [
            a["code"] for a in st["alarms"]]
        for k in ("fills", "fill_ts", "refill_ts"):
            out[k] = st[k]
        out["expiry_ts"] = st["expiry_ts"]

    def do_ack(self, args, now, out):
        name = args.get("code")
        found = False
        for code in codes.ALARM_NAMES:
            if codes.ALARM_NAMES[code] == name:
                found = True
                if self.th.ack(now, code):
                    out["acked"] = True
        if not found:
            raise Refusal("E_ARGS", "code must be an alarm code name, got %s" % json.dumps(name))
        if "acked" not in out:
            raise Refusal("E_REFUSED", "alarm %s is not active" % name, "not_active")

    def do_stop(self, args, now, out):
        for_s = arg(args, "for_s", 0, 7 * 86400, 0)
        self.th.stop(now, for_s * 1000)
        out["stopped"] = True

    def do_resume(self, args, now, out):
        reason = self.th.resume(now)
        if reason:
            refused(reason)
        out["stopped"] = self._snapshot(now)["stopped"]

    def do_catheter(self, args, now, out):
        """Two steps, as a prime: without `confirm` it answers the id to confirm with; with it,
        the catheter is recorded new or revised: empty, so a prime may fill it."""
        if args.get("revised") is not True:
            raise Refusal("E_ARGS", "revised must be true (a new or revised catheter)")
        th = self.th
        confirm = arg(args, "confirm", 1, 99999) if "confirm" in args else 0
        if not confirm:
            th.arm_catheter(now)
            out["confirm"] = th.cath_id
            out["expires_s"] = PRIME_CONFIRM_S
            out["catheter_nl"] = th.catheter_nl()
            out["revised"] = False
            return
        reason = th.revise_catheter(now, confirm)
        if reason:
            refused(reason)
        out["revised"] = True
        out["catheter"] = "empty"

    # ---- records, clock, firmware ---------------------------------------------------------------
    def do_log(self, args, now, out):
        ev = self.app.events
        total = ev.total
        n = len(ev)
        first = total - n
        since = arg(args, "since", 0, ID_MAX, first)
        most = arg(args, "max", 1, _LOG_MAX, _LOG_MAX)
        if since < first:
            since = first
        rows = []
        i = since - first
        entries = ev.entries()
        from firmware import codetext   # the events' names: loaded for this reply only
        names = codetext.EVENT_NAMES
        try:
            while i < n and len(rows) < most:
                t, code, a, b = entries[i][0], entries[i][1], entries[i][2], entries[i][3]
                rows.append([first + i, t, names.get(code, str(code)), a, b])
                i += 1
        finally:
            codetext = names = None
            unload("firmware.codetext")
        out["entries"] = rows
        out["next"] = first + i
        out["total"] = total
        out["chain_ok"] = ev.verify()

    def do_history(self, args, now, out):
        """The therapy history (firmware/histpages.py reply: its args and keys)."""
        r = self.th.hist.run("reply", now, args)
        if r is None or "error" in r:
            raise Refusal("E_ARGS" if r else "E_INTERNAL",
                          r["error"] if r else "the history could not be read now")
        out.update(r)

    def do_clock(self, args, now, out):
        app = self.app
        if "set_ts" in args:
            app.set_clock(now, arg(args, "set_ts", 0, ID_MAX))
        out["clock_ts"] = app.clock_ts(now)
        out["clock_lost"] = "clock_lost" in [a["code"] for a in status.alarms(self.th.sup)]

    def do_maintenance(self, args, now, out):
        if buildinfo.KIND != "development":
            refused(codes.R_PRODUCTION)
        self.app.maintenance(now)
        out["maintenance"] = True

    def _updater(self):
        up = self.app.get_updater()
        if up is None:
            raise Refusal("E_UPDATE", "this board's storage cannot take updates")
        return up

    def do_update_begin(self, args, now, out):
        update = _update()
        # (the limits imported by name: make build writes them in, host_tools/mpybuild.py)
        from firmware.update import CHUNK_MAX, COPY_MAX, KEY_MAX, MANIFEST_MAX
        mlen = arg(args, "manifest_len", 1, MANIFEST_MAX)
        slen = arg(args, "sig_len", 1, KEY_MAX)
        try:
            out["slot"] = self._updater().begin(mlen, slen)
        except update.UpdateError as e:
            raise Refusal("E_UPDATE", str(e))
        out["have"] = 0
        out["chunk_max"] = CHUNK_MAX
        out["copy_max"] = COPY_MAX
        if args.get("files") is True:
            out["running"] = self._updater().running_files()

    def do_update_chunk(self, args, now, out):
        update = _update()
        from firmware.update import CHUNK_MAX, COPY_MAX
        off = arg(args, "off", 0, ID_MAX)
        up = self._updater()
        if "copy" in args:
            if "data" in args:
                raise Refusal("E_ARGS", "a chunk has data or copy, not both")
            n = arg(args, "copy", 1, COPY_MAX)
            try:
                out["have"] = up.copy(off, n)
            except update.UpdateError as e:
                raise Refusal("E_UPDATE", str(e))
            out["total"] = up.total()
            return
        data = args.get("data")
        raw = update.b64(data) if type(data) is str else None
        if raw is None or not raw or len(raw) > CHUNK_MAX:
            raise Refusal("E_ARGS", "data must be 1 to %d bytes in base64" % CHUNK_MAX)
        try:
            out["have"] = up.chunk(off, raw)
        except update.UpdateError as e:
            raise Refusal("E_UPDATE", str(e))
        out["total"] = up.total() if up.manifest is not None else 0

    def do_update_commit(self, args, now, out):
        update = _update()
        try:
            slot, version = self._updater().commit()
        except update.UpdateError as e:
            raise Refusal("E_UPDATE", str(e))
        self.app.events_add(codes.EV_UPDATE, now, 1, 1 if slot == "a" else 2)
        out["slot"] = slot
        out["version"] = version
        out["resetting"] = True
        self.app.reset_after = True   # the app resets once this reply is on the line

    def do_update_confirm(self, args, now, out):
        out["confirmed"] = self.app.confirm_update(now)
