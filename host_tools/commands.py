"""pumpctl's commands: one do_* function each, between the command line and the client library.

Each do_* takes a Context (the open link, output streams, what the person may be asked) and the
parsed arguments, talks to the pump only through host_tools.link, and returns an exit status.
Errors travel as exceptions and pumpctl.main turns them into exit codes: InputError and
UsageError 2 (nothing was sent that changes anything), PumpError 1, LinkError 3.

Host-side checks here only help: every value is checked again by the pump.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from host_tools import boardlimits, druglib, fmt, link, titration, units
from host_tools.errors import InputError
from host_tools.link import Key, Link, LinkError, PumpError

EPOCH = fmt.EPOCH   # the pump clock counts seconds from here, in local time
DAY_S = 86_400
META_MAX = 512
ROOT = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """The command cannot go ahead as given (exit 2); nothing that changes the pump was sent."""


# ---- the context every command gets ------------------------------------------------------------

class Context:
    """Options, streams and the (lazily opened) link to the pump."""

    def __init__(self, opts, stdout=None, stderr=None, stdin=None):
        self.opts = opts
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.stdin = stdin or sys.stdin
        self.json = bool(getattr(opts, "json", False))
        self._link: Link | None = None
        self.found: link.Found | None = None

    # -- output --------------------------------------------------------------------------------
    def show(self, text: str = "") -> None:
        """Text for the person: on stdout, or on stderr when stdout carries JSON."""
        print(text, file=self.err if self.json else self.out)

    def warn(self, text: str) -> None:
        print(f"pumpctl: {text}", file=self.err)

    def result(self, obj: dict, lines=()) -> None:
        if self.json:
            print(json.dumps(obj), file=self.out)
        else:
            for line in lines:
                print(line, file=self.out)

    # -- asking --------------------------------------------------------------------------------
    @property
    def interactive(self) -> bool:
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def ask(self, prompt: str) -> str:
        print(prompt, end="", file=self.err, flush=True)
        line = self.stdin.readline()
        if not line:
            raise UsageError("no answer (end of input): nothing was changed")
        return line.strip()

    def need_confirmation(self, yes: int, twice: bool, what: str, confirm=None) -> None:
        """Before anything is sent: make sure the person can be asked, or has already said yes."""
        if confirm is not None or yes >= (2 if twice else 1) or self.interactive:
            return
        how = ("--yes --yes or --confirm VOLUME" if twice else "--yes")
        raise UsageError(f"{what} needs confirmation and standard input is not a terminal: "
                         f"give {how} to confirm without a prompt")

    def confirm(self, question: str, yes: int) -> None:
        if yes >= 1:
            return
        if self.ask(f"{question} [y/N] ").lower() not in ("y", "yes"):
            raise UsageError("not confirmed: nothing was changed")

    def confirm_volume(self, what: str, volume_nl: int, yes: int, confirm) -> None:
        """Two steps for a bolus that empties into the patient: yes, then the volume typed
        again (or --yes --yes, or --confirm VOLUME given beforehand)."""
        if confirm is not None:
            v = units.volume_nl(confirm, "--confirm")
            if v != volume_nl:
                raise InputError("--confirm", confirm, f"the {what} volume shown, {vol(volume_nl)}")
            return
        if yes >= 2:
            return
        self.confirm(f"Give the {what} of {vol(volume_nl)}?", yes)
        typed = self.ask(f"Type the {what} volume again to confirm ({vol(volume_nl)}): ")
        if units.volume_nl(typed, "typed volume") != volume_nl:
            raise UsageError(f"the typed volume {typed!r} is not {vol(volume_nl)}: nothing was "
                             "given")

    # -- the pump ------------------------------------------------------------------------------
    def link(self, role: str = "clinician") -> Link:
        """Open the link on first use: find the port, pick the key."""
        if self._link is None:
            port = self._port()
            key = self._key(role)
            timeout = getattr(self.opts, "timeout", None) or 3.0
            refuse_if_shared(port, self.found)
            self._link = Link.open(port, key, timeout_s=timeout)
        return self._link

    def _port(self) -> str:
        given = getattr(self.opts, "port", None) or os.environ.get("PUMPCTL_PORT")
        if given:
            self.found = link.board_for_port(given)
            return given
        pumps = link.find_pumps()
        if not pumps:
            raise LinkError("no pump found: connect a Pico by USB, start `pumpsim board`, or "
                            "give --port")
        ours = [p for p in pumps if is_ours(p)]
        if len(pumps) > 1 and len(ours) == 1:
            # Other checkouts' boards are someone else's: take the one this tree started.
            self.warn(f"{len(pumps)} pumps found; using {ours[0].port}, the virtual board "
                      f"started from this checkout (flash {ours[0].board.get('flash')})")
            pumps = ours
        if len(pumps) > 1:
            listed = "; ".join(f"{p.port} ({p.description}"
                               + (f", flash {p.board.get('flash')}" if p.board else "") + ")"
                               for p in pumps)
            raise UsageError(f"{len(pumps)} pumps found, choose one with --port: {listed}")
        self.found = pumps[0]
        return self.found.port

    def _key(self, role: str) -> Key | None:
        path = getattr(self.opts, "key", None) or os.environ.get("PUMPCTL_KEY")
        if path:
            return link.load_key(path)
        board = self.found.board if self.found else None
        if board:
            order = ("patient_key", "clinician_key") if role == "patient" else ("clinician_key",)
            for name in order:
                if board.get(name) and os.path.exists(board[name]):
                    return link.load_key(board[name])
        return None

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


# ---- a port someone else has open -----------------------------------------------------------

def port_holders(path: str) -> list[tuple[int, str]]:
    """Other processes that have this device open, (pid, program name), from /proc (Linux;
    elsewhere, or for a URL, none are seen). Terminal programs that take no lock (screen, tio)
    are found this way; those that lock (picocom) also fail pyserial's exclusive open."""
    proc = Path("/proc")
    try:
        target = os.stat(path)
    except OSError:
        return []
    if not proc.is_dir():
        return []
    out = []
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            for fd in (d / "fd").iterdir():
                st = os.stat(fd)
                if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                    out.append((int(d.name), (d / "comm").read_text().strip()))
                    break
        except OSError:
            continue  # gone, or not ours to look at
    return out


def refuse_if_shared(port: str, found) -> None:
    """Another program on the port would read the pump's replies (and we its): say so at once
    instead of timing out, or worse, acting on half a conversation."""
    board_pid = (found.board or {}).get("pid") if found else None
    others = [(pid, name) for pid, name in port_holders(port) if pid != board_pid]
    if others:
        who = ", ".join(f"{name} (pid {pid})" for pid, name in others)
        raise LinkError(f"port in use by another program: {port} is open in {who}; close it "
                        "and try again")


# ---- showing quantities (host_tools/fmt.py has the rules; these names stay for callers) ------

def unit_of(text) -> str:
    """The mass unit a clinician wrote in "25 mg/mL" or "50 mcg/day": mg or mcg."""
    t = str(text or "").lower()
    return "mcg" if any(u in t for u in ("mcg", "ug", "µg", "μg")) else "mg"


def settings_unit(settings: dict | None) -> str | None:
    """The mass unit of the pump's prescription: its drug's (drugs.toml), else what the host
    that programmed it stored, else None (shown by size)."""
    meta = (settings or {}).get("meta") or {}
    try:
        return druglib.get(meta.get("drug")).unit
    except InputError:
        u = meta.get("units")
        return u if u in fmt.MASS_UNITS else None


mass = fmt.mass
vol = fmt.vol
span = fmt.span
pump_time = fmt.pump_time
host_now_ts = fmt.host_now_ts
ng_to_nl = fmt.ng_to_nl
hhmm = fmt.hhmm


def nl_to_ng(nl: int, conc_ng_ml: int) -> int:
    return nl * conc_ng_ml // 1_000_000


def daily_basal_ng(steps) -> int:
    """The daily total of a [[start_min, rate_ng_day], ...] schedule (rounded down)."""
    total = 0
    for i, (start, rate) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else 1440
        total += rate * (end - start)
    return total // 1440


def _body(reply: dict) -> dict:
    return {k: v for k, v in reply.items() if k not in ("id", "ok", "cmd", "repeat")}


def limits(ctx: Context) -> boardlimits.BoardLimits:
    """The board limits of the pump this command talks to (boardlimits.pump_limits)."""
    return boardlimits.pump_limits(ctx.link())


def catheter_text(cat: dict | None) -> str:
    """The settings' catheter in words: model, implanted length, volume per cm."""
    if not cat:
        return "none set"
    return (f"{cat.get('model')}, {cat.get('length_mm', 0) / 10:g} cm at "
            f"{vol(cat.get('nl_per_cm', 0))}/cm")


def _catheter_nl(ctx: Context, settings: dict | None = None) -> tuple[int, str]:
    """The patient's catheter volume and a note naming it, from the pump's settings (the
    firmware bounds a prime and confirms a bridge with the same number). None set: refused."""
    from firmware.rx import catheter_nl

    if settings is None:
        settings = ctx.link().call("settings", changes=False).get("settings") or {}
    cat = settings.get("catheter")
    if not cat:
        raise UsageError("the pump's settings hold no catheter, and priming and bridging are "
                         "bounded by it: add a [catheter] table (model, length after trimming, "
                         "volume_per_cm) to the prescription and `pumpctl program` it")
    return catheter_nl(settings), f" ({catheter_text(cat)})"


# ---- ports, info -------------------------------------------------------------------------------

def _named(p):
    """(kind, description) as `ports` shows them: a board `pumpsim board --runtime rp2` started
    is an emulated Pico (the rp2 port in an emulated RP2040), not a virtual board."""
    if p.board and p.board.get("runtime") == "rp2":
        return "emulated", (f"emulated Pico (MicroPython rp2 port in rp2040js), pid "
                            f"{p.board.get('pid')}")
    return p.kind, p.description


def do_ports(ctx: Context, args) -> int:
    pumps = link.find_pumps()
    rows = [{"port": p.port, "kind": _named(p)[0], "description": _named(p)[1],
             **({"control": p.board.get("control"), "flash": p.board.get("flash"),
                 "runtime": p.board.get("runtime"), "this_checkout": is_ours(p)}
                if p.board else {})} for p in pumps]
    lines = []
    for p in pumps:
        kind, description = _named(p)
        lines.append(f"{p.port:20} {kind:8} {description}")
        if p.board:
            mine = "  (started from this checkout)" if is_ours(p) else ""
            lines.append(f"{'':20} {'':8} flash {p.board.get('flash')}{mine}")
    ctx.result({"ports": rows}, lines or ["no pumps found"])
    return 0


def is_ours(found) -> bool:
    """A virtual board started from this checkout (its registry record names the tree)."""
    return bool(found.board) and found.board.get("root") == str(ROOT)


def do_info(ctx: Context, args) -> int:
    info = _body(ctx.link().info())
    ctr = info.get("ctr") or {}
    upd = info.get("update") or {}
    lines = [f"pump id      {info.get('pump_id')}",
             f"firmware     {info.get('firmware')} ({info.get('build', '?')} build"
             + (f", slot {upd['slot']}{', on trial' if upd.get('trial') else ''}" if upd else "")
             + ")",
             f"board        {limits(ctx).describe()}",
             f"keys         {info.get('keys', 'ok' if info.get('provisioned') else 'none')}"]
    if "clock_ts" in info:   # only a keyed caller (a session) sees the rest
        lines += [f"pump clock   {pump_time(info.get('clock_ts', 0))}",
                  f"uptime       {span(info.get('uptime_s', 0))}",
                  f"counters     clinician {ctr.get('clinician')}, patient {ctr.get('patient')}"]
    if upd.get("last_crash"):
        lines.append(f"last crash   {upd['last_crash']}")
    ctx.result(info, lines)
    return 0


# ---- status, alarms ----------------------------------------------------------------------------

def _settings_or_none(ctx: Context) -> dict | None:
    """The stored prescription, when this key may read it (the patient key may not)."""
    lk = ctx.link()
    if lk.key is None or lk.key.role != "clinician":
        return None
    return lk.call("settings", changes=False).get("settings")


def _alarm_text(alarms) -> str:
    if not alarms:
        return "none"
    return ", ".join(f"{a['code']} ({a['priority']}{', acknowledged' if a.get('acked') else ''})"
                     for a in alarms)


def _status_view(st: dict, settings: dict | None) -> dict:
    """What `status` shows, as data: the same for the text and for --json."""
    meta = (settings or {}).get("meta") or {}
    conc = (settings or {}).get("conc_ng_ml")
    u = settings_unit(settings)
    if not st.get("programmed"):
        therapy = "not programmed"
    elif st.get("stopped"):
        left = st.get("stop_left_s", 0)
        therapy = "STOPPED" + (f", resumes by itself in {span(left)}" if left else
                               ", until `pumpctl resume`")
    elif st.get("delivering"):
        therapy = "delivering"
    else:
        therapy = "NOT delivering: a critical alarm is active"
    view = {"therapy": therapy, "drug": meta.get("drug") if settings else None,
            "concentration_ng_per_ml": conc, "mass_unit": u if conc else None}
    for key in ("rate_nl_day", "basal_nl_day", "delivered_24h_nl", "max_daily_nl"):
        nl = st.get(key, 0)
        view[key] = nl
        ng_key = key.replace("_nl", "_ng")
        view[ng_key] = nl_to_ng(nl, conc) if conc else None
    view["text"] = {
        "rate": fmt.dose(st.get("rate_nl_day", 0), conc, u, "/day"),
        "basal_a_day": fmt.dose(st.get("basal_nl_day", 0), conc, u),
        "delivered_24h": fmt.dose(st.get("delivered_24h_nl", 0), conc, u),
        "max_daily": fmt.dose(st.get("max_daily_nl", 0), conc, u),
        "reservoir": vol(st.get("reservoir_nl", 0)),
        "concentration": fmt.conc(conc, u) if conc else None}
    return view


def do_status(ctx: Context, args) -> int:
    lk = ctx.link()
    st = _body(lk.call("status", changes=False))
    settings = _settings_or_none(ctx)
    view = _status_view(st, settings)
    text = view["text"]
    lines = [f"therapy      {view['therapy']}"]
    if settings:
        lines.append(f"drug         {view['drug'] or '?'} at {text['concentration']}")
    if st.get("programmed"):
        step = st.get("step", 0)
        start = ""
        if settings and step < len(settings.get("steps", [])):
            start = f", step {step + 1} from {hhmm(settings['steps'][step][0])}"
        lines += [f"basal now    {text['rate']}{start}",
                  f"basal a day  {text['basal_a_day']}",
                  f"last 24 h    {text['delivered_24h']} of at most {text['max_daily']}"]
    refill = st.get("refill_ts", -1)
    res = f"reservoir    {text['reservoir']}"
    if refill is not None and refill >= 0:
        res += f", reaches its low level {pump_time(refill)[:16]}"
    lines.append(res)
    lines += _status_plan_lines(st, settings)
    b = st.get("bolus") or {}
    running = [k for k in ("patient", "clinician") if b.get(k)]
    lines += [f"boluses      {', '.join(running) + ' running' if running else 'none running'}",
              f"battery      {st.get('battery_mv')} mV",
              f"alarms       {_alarm_text(st.get('alarms'))}",
              f"pump clock   {pump_time(st.get('clock_ts', 0))}"]
    ctx.result({**st, **view}, lines)
    offer_clock(ctx, st.get("alarms"))
    return 0


def _status_plan_lines(st: dict, settings: dict | None) -> list[str]:
    """Refill and expiry dates, the catheter, strokes not given: status lines (issue 13)."""
    out = []
    notice = st.get("refill_notice_s", 0)
    refill = st.get("refill_ts", -1)
    if notice and refill is not None and refill >= 0:
        out.append(f"refill due   {pump_time(max(refill - notice, st.get('clock_ts', 0)))[:16]} "
                   f"({span(notice)} before the low level; at "
                   f"{vol(st.get('projected_nl_day', 0))}/day, the basal and the last 7 days' "
                   "boluses)")
    exp = st.get("expiry_ts", -1)
    if exp is not None and exp >= 0:
        out.append(f"drug expires {pump_time(exp)[:16]} (filled {pump_time(st['fill_ts'])[:16]})")
    elif st.get("fills"):
        out.append("drug expires unknown (no stability was given with the last fill)")
    if settings is not None:
        cat = settings.get("catheter")
        out.append(f"catheter     {catheter_text(cat)}"
                   + (f": {vol(st.get('catheter_nl', 0))}" if cat else ""))
    missed, refused = st.get("strokes_missed", 0), st.get("strokes_refused", 0)
    uncertain = st.get("strokes_uncertain", 0)
    if missed or refused or uncertain or st.get("refusing"):
        why = f" (now: {st['refusing']})" if st.get("refusing") else ""
        out.append(f"strokes      {st.get('strokes', 0)} given since boot, {missed} dropped "
                   f"late, {refused} refused{why}, {uncertain} uncertain")
    if st.get("dose_account") == "lost":
        out.append("dose account LOST (memory_error): `pumpctl program` states what the last "
                   "24 h are assumed to hold")
    return out


def do_alarms(ctx: Context, args) -> int:
    al = _body(ctx.link().call("alarms", changes=False))
    alarms = al.get("alarms") or []
    lines = [f"{a['code']:20} {a['priority']:9} {'acknowledged' if a.get('acked') else ''}"
             for a in alarms] or ["no active alarms"]
    ctx.result(al, lines)
    offer_clock(ctx, alarms)
    return 0


def offer_clock(ctx: Context, alarms, yes: int = 0) -> bool:
    """When the pump reports clock_lost (a board without a kept clock, after a power cut or a
    reset), offer to set its clock to this computer's: one confirmation, or --yes. The patient
    key, a script without --yes or a "no" only get a hint. Returns whether the clock was set."""
    if "clock_lost" not in [a.get("code") for a in alarms or ()]:
        return False
    hint = ("the pump's clock is not set (clock_lost): its basal schedule runs on from the time "
            "it last saved; `pumpctl clock --set now` sets it (with --yes in a script)")
    lk = ctx.link()
    if lk.key is None or lk.key.role != "clinician" or (yes < 1 and not ctx.interactive):
        ctx.warn(hint)
        return False
    now = host_now_ts()
    if yes < 1 and ctx.ask(f"The pump lost its clock. Set it to this computer's time, "
                           f"{pump_time(now)}? [y/N] ").lower() not in ("y", "yes"):
        ctx.warn(hint)
        return False
    ts = lk.call("clock", {"set_ts": host_now_ts()}).get("clock_ts", 0)
    ctx.show(f"pump clock set to {pump_time(ts)}; the basal schedule follows it from now on")
    return True


def alarm_codes() -> list[str]:
    from firmware import codes

    return sorted(set(codes.ALARM_NAMES.values()))


def do_ack(ctx: Context, args) -> int:
    if args.code not in alarm_codes():
        raise InputError("CODE", args.code, "an alarm code: " + ", ".join(alarm_codes()))
    reply = _body(ctx.link().call("ack", {"code": args.code}))
    ctx.result(reply, [f"{args.code} acknowledged"])
    return 0


# ---- program -----------------------------------------------------------------------------------

def _strings(raw: dict, rx) -> dict:
    """What the clinician wrote, as short strings for the pump to keep with the settings."""
    basal = raw.get("basal") or {}
    if "rate" in basal:
        text = str(basal["rate"])
    else:
        steps = basal.get("steps") or []
        text = ", ".join(f"{s.get('start')} {s.get('rate')}" for s in steps)
    meta = {"drug": rx.drug, "units": rx.unit,
            "concentration": str(raw.get("concentration", ""))}
    limits = raw.get("limits") or {}
    if "max_daily_dose" in limits:
        meta["max_daily_dose"] = str(limits["max_daily_dose"])
    if "low_reservoir" in limits:
        meta["low_reservoir"] = str(limits["low_reservoir"])
    pb = raw.get("patient_bolus")
    if pb:
        meta["patient_bolus"] = (f"{pb.get('dose')} over {pb.get('duration')}, lockout "
                                 f"{pb.get('lockout')}, at most {pb.get('max_per_day')} a day")
    meta["basal"] = text
    if rx.source:
        meta["source"] = rx.source
    return meta


def meta_size(meta: dict) -> int:
    # Measured as the firmware measures it: compact JSON (firmware/wirejson.py).
    return len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False))


def build_params(raw: dict, rx, override: str | None) -> dict:
    params = rx.to_firmware()
    if params.get("pb") is None:
        params.pop("pb", None)
    meta = _strings(raw, rx)
    if override:
        meta["titration_override"] = override
    for optional in ("basal", "patient_bolus", "low_reservoir", "max_daily_dose", "source"):
        if meta_size(meta) <= META_MAX:
            break
        meta.pop(optional, None)
    if meta_size(meta) > META_MAX:
        raise InputError("--override-titration", override,
                         f"a shorter reason (the pump keeps at most {META_MAX} bytes of notes)")
    params["meta"] = meta
    return params


def describe(params: dict | None) -> dict[str, str]:
    """A prescription's rows for the side-by-side view, in its drug's mass unit."""
    if not params:
        return {}
    meta = params.get("meta") or {}
    conc = params["conc_ng_ml"]
    u = settings_unit(params)
    rows = {"drug": meta.get("drug", "(not recorded)"), "concentration": fmt.conc(conc, u)}
    for start, rate in params["steps"]:
        rows[f"basal from {hhmm(start)}"] = (f"{fmt.mass_rate(rate, u)} "
                                             f"({fmt.vol_rate(ng_to_nl(rate, conc))})")
    daily = daily_basal_ng(params["steps"])
    rows["basal a day"] = f"{mass(daily, u)} ({vol(ng_to_nl(daily, conc))})"
    pb = params.get("pb")
    rows["patient bolus"] = (f"{mass(pb[0], u)} ({vol(ng_to_nl(pb[0], conc))}) over "
                             f"{span(pb[1])}, lockout {span(pb[2])}, at most {pb[3]} a day"
                             if pb else "none")
    rows["max daily dose"] = f"{mass(params['max_daily_ng'], u)} ({vol(ng_to_nl(params['max_daily_ng'], conc))})"
    rows["low reservoir"] = vol(params["low_res_nl"])
    notice = params.get("refill_notice_s")
    rows["refill notice"] = span(notice) if notice is not None else "7 d (default)"
    cat = params.get("catheter")
    if cat:
        from firmware.rx import catheter_nl

        rows["catheter"] = f"{catheter_text(cat)}: {vol(catheter_nl(params))}"
    else:
        rows["catheter"] = "none set"
    return rows


def side_by_side(old: dict | None, new: dict) -> list[str]:
    a, b = describe(old), describe(new)
    labels = list(dict.fromkeys(
        ["drug", "concentration"]
        + sorted({k for k in list(a) + list(b) if k.startswith("basal from")})
        + ["basal a day", "patient bolus", "max daily dose", "low reservoir", "refill notice",
           "catheter"]))
    w = max([len(a.get(k, "")) for k in labels] + [20])
    lines = [f"  {'':16} {'now on the pump':{w}}   new", f"  {'':16} {'-' * w}   {'-' * 15}"]
    for k in labels:
        old_t, new_t = a.get(k, "-" if a else "(nothing)"), b.get(k, "-")
        mark = "*" if old_t != new_t else " "
        lines.append(f"{mark} {k:16} {old_t:{w}}   {new_t}")
    return lines


def _old_change(settings: dict | None, new_drug: str) -> titration.Change | None:
    if not settings:
        return None
    name = (settings.get("meta") or {}).get("drug")
    try:
        drug = druglib.get(name).name if name else new_drug
    except InputError:
        drug = str(name)
    return titration.Change(0, drug, daily_basal_ng(settings["steps"]))


def check_on_board(params: dict, lim: boardlimits.BoardLimits, where: str) -> None:
    """The firmware's own prescription check, on the numbers of the pump's board."""
    from firmware.rx import Rx, RxError

    try:
        Rx(params, lim)
    except RxError as e:
        raise InputError(f"{where}: {e.key}", e.message, "a prescription the pump's board "
                         f"accepts: {lim.describe()}") from None


def do_program(ctx: Context, args) -> int:
    from host_tools.prescription import load_prescription, read_toml

    try:
        rx = load_prescription(args.file)
        raw = read_toml(args.file)
    except OSError as e:
        raise InputError("FILE.toml", str(args.file), f"a readable file ({e.strerror})") from None
    override = args.override_titration
    if override is not None and not override.strip():
        raise InputError("--override-titration", override, "a reason in words")
    params = build_params(raw, rx, override)
    ctx.need_confirmation(args.yes, False, "program")

    lk = ctx.link()
    check_on_board(params, limits(ctx), str(args.file))
    old = lk.call("settings", changes=False).get("settings")
    if "catheter" not in params and old and old.get("catheter"):
        params["catheter"] = old["catheter"]  # the implanted catheter does not change with a dose
    info = lk.info(refresh=True)
    now_ts, pump_id = info.get("clock_ts", 0), str(info.get("pump_id"))
    new_ng = rx.daily_basal_ng()
    old_change = _old_change(old, rx.drug)
    history = titration.load_history(pump_id)
    rule = druglib.get(rx.drug).titration_for(rx.titration_profile)
    broken = titration.check(rule, rx.drug, old_change, new_ng, now_ts, history,
                             rx.screening_ng)

    ctx.show(f"Pump {pump_id}: {args.file}")
    for line in side_by_side(old, params):
        ctx.show(line)
    for w in rx.warnings:
        ctx.show(f"  warning: {w}")
    if broken and not override:
        for b in broken:
            ctx.warn(f"titration: {b}")
        raise UsageError("the change breaks the titration guard (drugs.toml); nothing was "
                         "written. To go ahead anyway, give --override-titration \"REASON\"")
    for b in broken:
        ctx.show(f"  titration guard overridden: {b}")
    if override:
        ctx.show(f"  override reason (stored in the pump): {override}")
    assume = _assumption(ctx, args, params, lk.call("status", changes=False))

    ctx.confirm(f"Write these settings to pump {pump_id}?", args.yes)
    req = {"params": params}
    if assume is not None:
        req["assume_24h_ng"] = assume
    reply = lk.call("program", req)
    written = reply.get("settings")
    read = lk.call("settings", changes=False).get("settings")
    for what, got in (("the program reply", written), ("`settings`", read)):
        if got != params:
            raise PumpError("E_VERIFY", f"{what} does not match what was sent: the pump holds "
                            f"{json.dumps(got)}; check it before relying on it")
    change = titration.Change(now_ts, rx.drug, new_ng,
                              titration.is_increase(old_change, rx.drug, new_ng), override)
    try:
        titration.record(pump_id, change)
    except OSError as e:
        ctx.warn(f"could not record the change for the titration guard: {e}")
    st = lk.call("status", changes=False)
    delivering = bool(st.get("delivering"))
    ctx.result({"programmed": True, "verified": True, "pump_id": pump_id, "params": params,
                "delivering": delivering, "stopped": st.get("stopped"),
                "alarms": st.get("alarms"), "titration": broken, "override": override,
                "assumed_24h_nl": reply.get("assumed_24h_nl")},
               ["written and read back: the pump holds exactly these settings",
                f"the pump is {'delivering' if delivering else 'NOT delivering'}"
                f" at {fmt.dose(st.get('rate_nl_day', 0), params['conc_ng_ml'], rx.unit, '/day')}"
                " now"])
    if not delivering:
        if st.get("stopped"):
            why = "delivery is stopped: `pumpctl resume` starts it"
        elif st.get("alarms"):
            why = f"alarms: {_alarm_text(st.get('alarms'))}"
        else:
            why = (f"the reservoir holds {vol(st.get('reservoir_nl', 0))}: record a refill with "
                   "`pumpctl refill --volume V`")
        ctx.warn(f"the new settings are stored but the pump is not delivering ({why})")
        return 0 if st.get("stopped") else 1
    return 0


def _assumption(ctx: Context, args, params: dict, st: dict) -> int | None:
    """After memory_error the pump has no dose account: say what it will assume for the last
    24 h (ng of the new drug), so the basal starts at once. None when the account is intact."""
    given = getattr(args, "assume_24h", None)
    if st.get("dose_account") != "lost":
        if given:
            raise UsageError("--assume-24h applies only after memory_error: this pump's dose "
                             "account is intact, and it keeps counting it")
        return None
    meta = params.get("meta") or {}
    u = meta.get("units")
    conc = params["conc_ng_ml"]
    basal = daily_basal_ng(params["steps"])
    if given:
        ng = units.mass_ng(given, "--assume-24h")
        if not 0 <= ng <= params["max_daily_ng"]:
            raise InputError("--assume-24h", given, f"a dose from 0 to the maximum daily dose, "
                             f"{mass(params['max_daily_ng'], u)}")
        why = "as given with --assume-24h"
    else:
        ng, why = basal, "the new prescription's basal of a day"
    room = max(params["max_daily_ng"] - ng, 0)
    ctx.show("The pump lost its dose account (memory_error): it does not know what the last "
             "24 hours delivered.")
    ctx.show(f"  It will assume {mass(ng, u)} ({vol(ng_to_nl(ng, conc))}), {why}. The basal "
             "starts at once; the maximum daily dose holds under this assumption, so boluses "
             f"get at most {mass(room, u)} until it has left the 24-hour account.")
    ctx.show("  If the patient may have had more (a bolus just before the fault), give "
             "--assume-24h with that dose.")
    return ng


# ---- boluses -----------------------------------------------------------------------------------

def _current(ctx: Context) -> tuple[dict, dict]:
    """The stored prescription and the status, for anything that converts doses."""
    lk = ctx.link()
    settings = lk.call("settings", changes=False).get("settings")
    if not settings:
        raise PumpError("E_REFUSED", "the pump has no prescription: program it first",
                        "not_programmed")
    return settings, lk.call("status", changes=False)


def _dose_nl(text: str, conc: int) -> tuple[int, int | None]:
    """A dose as a mass ("0.5 mg", converted with the pump's concentration) or a volume."""
    try:
        ng = units.mass_ng(text, "--dose")
        return ng_to_nl(ng, conc), ng
    except InputError:
        pass
    try:
        return units.volume_nl(text, "--dose"), None
    except InputError:
        raise InputError("--dose", text, 'a dose such as "0.5 mg", "50 mcg" or a volume such '
                         'as "20 uL"') from None


def _bolus_library(ctx: Context, settings: dict, dose_nl: int, u) -> list[str]:
    """The drug library's clinician-bolus limits: a hard one refuses (nothing is sent), a soft
    one is a warning the clinician confirms."""
    name = (settings.get("meta") or {}).get("drug")
    if not name:
        return ["the pump's prescription does not name its drug: the drug library's bolus "
                "limits cannot be checked"]
    drug = druglib.get(name, "drug (stored in the pump)")
    ng = nl_to_ng(dose_nl, settings["conc_ng_ml"])
    lim = drug.clinician_bolus
    if ng > lim.hard:
        raise InputError("--dose", mass(ng, u), f"at most the library's hard limit for one "
                         f"{drug.name} clinician bolus, {mass(lim.hard, u)} "
                         f"({druglib.cite(lim.hard_source)})")
    if ng > lim.soft:
        return [f"{mass(ng, u)} is above the library's soft limit of {mass(lim.soft, u)} for "
                f"one {drug.name} clinician bolus ({druglib.cite(lim.soft_source)})"]
    return []


def do_bolus(ctx: Context, args) -> int:
    dur_s = 0
    if args.duration:
        ms = units.duration_ms(args.duration, "--duration")
        if ms % 1000 or not 0 < ms <= DAY_S * 1000:
            raise InputError("--duration", args.duration, "whole seconds from 1 s to 1 d")
        dur_s = ms // 1000
    ctx.need_confirmation(args.yes, False, "a clinician bolus")
    settings, st = _current(ctx)
    conc = settings["conc_ng_ml"]
    u = settings_unit(settings)
    dose_nl, _ = _dose_nl(args.dose, conc)
    stroke = limits(ctx).stroke_nl
    if dose_nl < stroke:
        raise InputError("--dose", args.dose, f"at least one stroke ({vol(stroke)})")
    cap = st.get("max_daily_nl", 0)
    if cap and dose_nl > cap:
        raise InputError("--dose", args.dose, f"at most the maximum daily dose "
                         f"({fmt.dose(cap, conc, u)})")
    warnings = _bolus_library(ctx, settings, dose_nl, u)
    how = f"over {span(dur_s)}" if dur_s else "as fast as the motor allows"
    what = f"{fmt.dose(dose_nl, conc, u)} {how}"
    ctx.show(f"Clinician bolus: {what}, on top of the basal.")
    for w in warnings:
        ctx.show(f"  warning: {w}")
    ctx.confirm("Give this bolus?", args.yes)
    reply = _body(ctx.link().call("bolus", {"dose_nl": dose_nl, "duration_s": dur_s,
                                            "kind": "clinician"}))
    ctx.result({**reply, "dose_nl": dose_nl, "duration_s": dur_s, "warnings": warnings},
               [f"clinician bolus started: {what}"])
    return 0


def do_patient_bolus(ctx: Context, args) -> int:
    ctx.need_confirmation(args.yes, False, "a patient bolus")
    ctx.show("Patient bolus: the dose the prescription sets, if its lockout and daily count "
             "allow it.")
    ctx.confirm("Ask the pump for the patient bolus?", args.yes)
    reply = _body(ctx.link("patient").call("patient_bolus"))
    ctx.result(reply, ["patient bolus started"])
    return 0


def do_prime(ctx: Context, args) -> int:
    volume = units.volume_nl(args.volume, "--volume")
    if volume <= 0:
        raise InputError("--volume", args.volume, "a volume above zero")
    ctx.need_confirmation(args.yes, True, "a priming bolus", args.confirm)
    settings, st = _current(ctx)
    catheter, note = _catheter_nl(ctx, settings)
    if volume > catheter:
        raise InputError("--volume", args.volume, f"at most the catheter's volume, "
                         f"{vol(catheter)}{note}: a priming bolus fills an empty catheter, and "
                         "anything beyond it reaches the patient")
    conc = settings["conc_ng_ml"]
    meta = settings.get("meta") or {}
    # Step one: the pump checks the volume against the catheter in its settings and holds the
    # prime; nothing moves until step two repeats it with the id it gave, within 2 minutes.
    lk = ctx.link()
    armed = _body(lk.call("bolus", {"dose_nl": volume, "duration_s": 0, "kind": "prime"}))
    ctx.show(f"Priming bolus: {vol(volume)} as fast as the motor allows, to fill the catheter "
             f"({vol(armed.get('catheter_nl', catheter))}{note}); the pump holds it for "
             f"{span(armed.get('expires_s', 120))} awaiting confirmation.")
    ctx.show(f"It holds {mass(fmt.nl_to_ng(volume, conc), settings_unit(settings))} of "
             f"{meta.get('drug', 'drug')}: if the catheter is already full, the patient gets "
             "all of it at once.")
    ctx.confirm_volume("priming bolus", volume, args.yes, args.confirm)
    reply = _body(lk.call("bolus", {"dose_nl": volume, "duration_s": 0, "kind": "prime",
                                    "confirm": armed.get("confirm")}))
    ctx.result({**reply, "dose_nl": volume, "catheter_nl": armed.get("catheter_nl")},
               [f"priming bolus started: {vol(volume)}"])
    return 0


def bridge_plan(catheter_nl: int, old_conc: int, new_conc: int, basal_nl_day: int):
    """The bridge bolus after a concentration change: (dose_nl, duration_s), or None.

    The catheter still holds old drug, pushed out by whatever the pump moves. At the new,
    stronger concentration the basal moves less volume, so the old drug would trickle out too
    slowly (under-dosing). Adding the difference between the old and the new volume rates, for
    as long as the old rate takes to empty the catheter, delivers the old drug at its prescribed
    dose; then the new drug reaches the tip and the basal alone carries on. When the new drug is
    weaker no bolus can help: the catheter empties faster than prescribed (see
    bridge_overdose)."""
    if new_conc <= old_conc or basal_nl_day <= 0:
        return None
    # The old volume rate (the same dose in old drug) is basal * new / old; kept as a fraction
    # so nothing is rounded until the end.
    duration_s = catheter_nl * DAY_S * old_conc // (basal_nl_day * new_conc)
    # The pump takes a bolus of at most a day. A slower flush gets the right rate for its first
    # day; after that the rest of the old drug leaves at the new rate (_show_bridge says so).
    duration_s = min(duration_s, DAY_S)
    dose_nl = basal_nl_day * (new_conc - old_conc) * duration_s // (old_conc * DAY_S)
    return dose_nl, duration_s


def bridge_overdose(catheter_nl: int, old_conc: int, new_conc: int, basal_nl_day: int):
    """When the concentration goes down: (hours, factor) the old drug runs stronger than
    prescribed while it leaves the catheter."""
    if new_conc >= old_conc or basal_nl_day <= 0:
        return None
    return catheter_nl * DAY_S // basal_nl_day, old_conc / new_conc


def _show_bridge(ctx: Context, catheter: int, note: str, old_conc: int, new_conc: int,
                 basal_nl_day: int, u: str | None):
    ctx.show(f"The catheter holds {vol(catheter)}{note} of the old drug "
             f"({mass(nl_to_ng(catheter, old_conc), u)} at {mass(old_conc, u)}/mL).")
    plan = bridge_plan(catheter, old_conc, new_conc, basal_nl_day)
    over = bridge_overdose(catheter, old_conc, new_conc, basal_nl_day)
    if plan:
        dose, dur = plan
        ctx.show(f"Bridge bolus: {vol(dose)} over {span(dur)}, so the old drug keeps reaching "
                 "the patient at the prescribed dose until the new drug arrives.")
        full = catheter * DAY_S * old_conc // (basal_nl_day * new_conc)
        if full > dur:
            ctx.show(f"  The catheter takes {span(full)} to flush at the old rate; a bolus lasts "
                     "at most 1 d, so after it the rest of the old drug arrives more slowly.")
    elif over:
        secs, factor = over
        ctx.show(f"WARNING: the new drug is weaker. For about {span(secs)} the old drug leaves "
                 f"the catheter at the new volume rate: {factor:.3g} times the prescribed dose. "
                 "No bridge bolus can help; consider a lower rate for that time.")
    return plan


def do_bridge(ctx: Context, args) -> int:
    old_conc = units.concentration_ng_per_ml(args.old_concentration, "--old-concentration")
    if old_conc <= 0:
        raise InputError("--old-concentration", args.old_concentration, "a concentration "
                         "above zero")
    ctx.need_confirmation(args.yes, True, "a bridge bolus", args.confirm)
    settings, st = _current(ctx)
    catheter, note = _catheter_nl(ctx, settings)
    new_conc = settings["conc_ng_ml"]
    u = settings_unit(settings)
    plan = _show_bridge(ctx, catheter, note, old_conc, new_conc, st.get("basal_nl_day", 0), u)
    if not plan or plan[0] <= 0:
        raise UsageError(f"no bridge bolus applies: the pump's concentration "
                         f"({mass(new_conc, u)}/mL) is not above {args.old_concentration}")
    dose, dur = plan
    ctx.confirm_volume("bridge bolus", dose, args.yes, args.confirm)
    reply = _body(ctx.link().call("bolus", {"dose_nl": dose, "duration_s": dur,
                                            "kind": "bridge"}))
    ctx.result({**reply, "dose_nl": dose, "duration_s": dur},
               [f"bridge bolus started: {vol(dose)} over {span(dur)}"])
    return 0


# ---- refill ------------------------------------------------------------------------------------

def do_refill(ctx: Context, args) -> int:
    volume = units.volume_nl(args.volume, "--volume")
    new_conc = (units.concentration_ng_per_ml(args.concentration, "--concentration")
                if args.concentration else 0)
    if args.concentration and new_conc <= 0:
        raise InputError("--concentration", args.concentration, "a concentration above zero")
    residual = units.volume_nl(args.residual, "--residual") if args.residual else -1
    ctx.need_confirmation(args.yes, False, "refill")

    lk = ctx.link()
    lim = limits(ctx)
    if volume > lim.reservoir_nl:
        raise InputError("--volume", args.volume, f"at most the reservoir's {vol(lim.reservoir_nl)}"
                         f" (the volume in the reservoir after refilling; board {lim.name})")
    settings = lk.call("settings", changes=False).get("settings")
    st = lk.call("status", changes=False)
    meta = (settings or {}).get("meta") or {}
    u = settings_unit(settings)
    old_conc = (settings or {}).get("conc_ng_ml", 0)
    if new_conc and not settings:
        raise InputError("--concentration", args.concentration, "no concentration here: the "
                         "pump has no prescription yet, and `pumpctl program` sets it")
    changes_conc = bool(new_conc and settings and new_conc != old_conc)
    if changes_conc and meta.get("drug"):
        drug = druglib.get(meta["drug"], "drug (stored in the pump)")
        if new_conc > drug.hard_concentration_ng_per_ml:
            raise InputError("--concentration", args.concentration, f"at most the library's "
                             f"hard limit for {drug.name}, "
                             f"{mass(drug.hard_concentration_ng_per_ml, u)}/mL")
    if changes_conc:
        check_on_board({**settings, "conc_ng_ml": new_conc}, lim, "--concentration")

    stable_ms, stable_why = _fill_stability(args, meta, new_conc or old_conc, st)
    expected = st.get("reservoir_nl", 0)
    ctx.show(f"Refill: the reservoir will hold {vol(volume)}.")
    if stable_ms:
        ctx.show(f"  this fill stays usable for {span(stable_ms // 1000)} ({stable_why}); the "
                 "pump raises drug_expired after that")
    else:
        ctx.show(f"  no drug_expired warning for this fill ({stable_why})")
    if residual >= 0:
        ctx.show(f"  measured residual {vol(residual)}; the pump's account is {vol(expected)} "
                 f"(difference {vol(residual - expected)})")
    plan = None
    bridge_nl = -1
    if changes_conc:
        catheter, note = _catheter_nl(ctx, settings)
        ctx.show(f"  concentration changes from {mass(old_conc, u)}/mL to {mass(new_conc, u)}/mL;"
                 " the daily doses stay as prescribed and the volume rates follow")
        plan = _show_bridge(ctx, catheter, note, old_conc, new_conc,
                            st.get("basal_nl_day", 0), u)
        bridge_nl = catheter
    ctx.confirm("Record this refill?", args.yes)
    req = {"volume_nl": volume}
    if new_conc:
        req["conc_ng_ml"] = new_conc
    if residual >= 0:
        req["residual_nl"] = residual
    if bridge_nl >= 0:
        req["bridge_nl"] = bridge_nl
    if stable_ms:
        req["stable_s"] = stable_ms // 1000
    reply = _body(lk.call("refill", req))
    lines = [f"refill recorded: the reservoir holds {vol(reply.get('reservoir_nl', volume))}"]
    if reply.get("expiry_ts", -1) >= 0:
        lines.append(f"drug_expired after {pump_time(reply['expiry_ts'])[:16]} (pump clock)")
    if residual >= 0:
        lines.append(f"residual {vol(residual)} against {vol(reply.get('expected_nl', 0))} "
                     "expected" + (": DISCREPANCY, the pump raised an alarm"
                                   if reply.get("discrepancy") else ": within tolerance"))
    out = {**reply, "bridge": None}
    if plan and plan[0] > 0:
        dose, dur = plan
        if args.confirm is not None or args.yes >= 2 or ctx.interactive:
            ctx.confirm_volume("bridge bolus", dose, args.yes, args.confirm)
            _body(lk.call("bolus", {"dose_nl": dose, "duration_s": dur, "kind": "bridge"}))
            out["bridge"] = {"dose_nl": dose, "duration_s": dur, "started": True}
            lines.append(f"bridge bolus started: {vol(dose)} over {span(dur)}")
        else:
            out["bridge"] = {"dose_nl": dose, "duration_s": dur, "started": False}
            lines.append(f"bridge bolus NOT given (it needs --yes --yes or --confirm): "
                         f"pumpctl bridge --old-concentration \"{mass(old_conc, u)}/mL\"")
    ctx.result(out, lines)
    if reply.get("discrepancy"):
        ctx.warn("the measured residual disagrees with the pump's account: check the pump")
    return 0


def _fill_stability(args, meta: dict, conc: int, st: dict) -> tuple[int, str]:
    """How long this fill stays usable: --stable-for, else the library's stability table (the
    pump's first fill when it never recorded one). (0, why) when nothing is known."""
    from host_tools import stability

    given = getattr(args, "stable_for", None)
    if given:
        ms = units.duration_ms(given, "--stable-for")
        if ms % 1000 or not 3_600_000 <= ms <= 365 * DAY_S * 1000:
            raise InputError("--stable-for", given, "whole seconds from 1 h to 365 d")
        return ms, "as given with --stable-for"
    drug = meta.get("drug")
    if not drug or not conc:
        return 0, "the pump's settings name no drug"
    try:
        ms, why = stability.fill_stability(drug, conc, not st.get("fills"))
    except InputError:
        return 0, f"{drug} is not in the drug library"
    return ms, f"{drug}, {why}: drugs.toml [stability]"


# ---- log, stop, resume, clock, maintenance -----------------------------------------------------

def _reason(n) -> str:
    from firmware import codes

    return codes.REASON_NAMES.get(n, str(n)) if isinstance(n, int) else str(n)


def _alarm(n) -> str:
    from firmware import codes

    return codes.ALARM_NAMES.get(n, str(n)) if isinstance(n, int) else str(n)


def explain(event: str, a, b) -> str:
    """One log entry's numbers in words (firmware/codes.py says what a and b hold)."""
    return {
        "program": lambda: f"basal {vol(a)}/day, cap {vol(b)} a day",
        "program_bolus": lambda: (f"patient bolus {vol(a)} over {span(b)}" if a else
                                  "no patient bolus"),
        "program_bolus_limits": lambda: f"lockout {span(a)}, at most {b} a day",
        "patient_bolus": lambda: f"{vol(a)}",
        "patient_bolus_denied": lambda: _reason(a),
        "clinician_bolus": lambda: f"{vol(a)} over {span(b // 1000)}",
        "clinician_bolus_denied": lambda: _reason(a),
        "bolus_end": lambda: ("patient" if a == 1 else "clinician") + (", cut short" if b else ""),
        "alarm": lambda: _alarm(a),
        "alarm_clear": lambda: _alarm(a),
        "ack": lambda: _alarm(a),
        "stroke_refused": lambda: _reason(a),
        "refill": lambda: (f"refused: {_reason(b)}" if a == -1 else f"reservoir {vol(a * 1000)}"),
        "refill_check": lambda: f"expected {vol(a * 1000)}, measured {vol(b * 1000)}",
        "concentration_change": lambda: f"{mass(a * 1000)}/mL, bridge {vol(b)}",
        "step": lambda: f"step {a + 1 if isinstance(a, int) else a} at {vol(b)}/day",
        "missed_strokes": lambda: f"{a} strokes skipped",
        "stop": lambda: f"for {span(a)}" if a else "until resume",
        "resume": lambda: "the timed stop ended" if a else "",
        "stroke_uncertain": lambda: "the motor stalled partway; counted as given",
        "save_failed": lambda: "a state save failed: delivery goes on within the last reserve",
        "account_assumed": lambda: f"the lost dose account now holds {vol(a)} for the last 24 h",
        "record_migrated": lambda: f"state record layout {a} read and migrated to {b}",
        "prime_armed": lambda: f"{vol(a)} held for confirmation (catheter {vol(b)})",
        "fill": lambda: (f"stable for {span(a * 3600)}" if a else "no stability given")
                        + f", fill {b}",
        "suspend_restored": lambda: f"the timed stop goes on for {span(a)}"
                                    + (" (the clock counted the time off)" if b else ""),
        "motor_retry": lambda: f"after {a} failed attempts",
        "record_fallback": lambda: "newest state record damaged; the one before it was used "
                                   "(a refill, stop or bolus start just before may be missing)",
        "log_lost": lambda: "the stored event log was damaged and has been restarted",
        "clock_set": lambda: f"the clock moved {'+' if a >= 0 else '-'}{span(abs(a))}",
        "clock_lost": lambda: f"the board's clock had restarted ({span(a)} behind); the pump "
                              "carried on from its last saved time",
        "keys": lambda: {1: "provisioned", 2: "re-keyed",
                         3: "provisioned after the button at the pump"}.get(a, str(a)),
        "button": lambda: "button held at boot: provisioning open for 10 min",
        "update": lambda: (("switched to the new firmware in slot " if a == 1 else
                            "the new firmware confirmed, slot ") + "-ab"[b] if 0 <= b <= 2
                           else f"{a} {b}"),
        "rollback": lambda: ("back to the previous firmware: slot " + ("-ab"[a] if 0 <= a <= 2
                                                                      else str(a))
                             + (" did not confirm" if b == 1 else " was damaged")),
        "crash": lambda: "an uncaught exception reset the pump" + (" (new firmware on trial)"
                                                                  if b else ""),
        "key_fallback": lambda: "newest key record damaged; the older one was used",
    }.get(event, lambda: "" if not a and not b else f"{a} {b}")()


def do_log(ctx: Context, args) -> int:
    since_seq, since_s = 0, None
    if args.since:
        t = args.since.strip()
        if t.isdigit():
            since_seq = int(t)
        else:
            since_s = units.duration_ms(t, "--since") // 1000
    lk = ctx.link()
    entries, total, chain_ok, nxt = [], 0, True, since_seq
    while True:
        r = lk.call("log", {"since": nxt, "max": 50}, changes=False)
        rows = r.get("entries") or []
        total, chain_ok = r.get("total", 0), chain_ok and bool(r.get("chain_ok", True))
        entries += rows
        if not rows or r.get("next", total) >= total or r.get("next") == nxt:
            break
        nxt = r["next"]
    if since_s is not None:
        now_ts = lk.info(refresh=True).get("clock_ts", 0)
        entries = [e for e in entries if e[1] >= now_ts - since_s]
    out = {"entries": [{"seq": e[0], "ts": e[1], "event": e[2], "a": e[3], "b": e[4]}
                       for e in entries], "total": total, "chain_ok": chain_ok}
    lines = [f"{e[0]:6} {pump_time(e[1])}  {e[2]:22} {explain(e[2], e[3], e[4])}"
             for e in entries] or ["no entries"]
    if not chain_ok:
        lines.append("WARNING: the log's hash chain does not verify: entries were altered or "
                     "lost")
    ctx.result(out, lines)
    if not chain_ok:
        ctx.warn("the event log's hash chain does not verify")
    return 0


def do_stop(ctx: Context, args) -> int:
    for_s = 0
    if args.for_:
        ms = units.duration_ms(args.for_, "--for")
        if ms < 1000 or ms > 7 * DAY_S * 1000:
            raise InputError("--for", args.for_, "a duration from 1 s to 7 d")
        for_s = ms // 1000
    ctx.need_confirmation(args.yes, False, "stop")
    lk = ctx.link()
    drug = ((_settings_or_none(ctx) or {}).get("meta") or {}).get("drug")
    ctx.show("Stop: all delivery stops now, basal and boluses, "
             + (f"for {span(for_s)}, then it resumes by itself." if for_s else
                "until `pumpctl resume`."))
    ctx.show("  Withdrawal risk: stopping intrathecal "
             f"{drug or 'therapy'} abruptly can be dangerous (for baclofen, life-threatening); "
             "missed doses are never made up later.")
    ctx.confirm("Stop delivery?", args.yes)
    reply = _body(lk.call("stop", {"for_s": for_s} if for_s else {}))
    ctx.result({**reply, "for_s": for_s},
               [f"delivery stopped; it resumes by itself in {span(for_s)}" if for_s else
                "delivery stopped until `pumpctl resume`"])
    return 0


def do_resume(ctx: Context, args) -> int:
    ctx.need_confirmation(args.yes, False, "resume")
    ctx.show("Resume: the basal starts again from now, as programmed (missed doses are not "
             "made up); a fixed motor stall or sensor fault is cleared.")
    ctx.confirm("Resume delivery?", args.yes)
    reply = _body(ctx.link().call("resume"))
    if reply.get("stopped"):
        ctx.result(reply, ["the pump is still stopped"])
        return 1
    st = ctx.link().call("status", changes=False)
    ctx.result({**reply, "delivering": st.get("delivering"), "alarms": st.get("alarms")},
               ["delivery resumed" if st.get("delivering") else
                f"resumed, but NOT delivering: alarms {_alarm_text(st.get('alarms'))}"])
    return 0


def do_clock(ctx: Context, args) -> int:
    lk = ctx.link()
    if args.set is None:
        reply = lk.call("clock", changes=False)
        ts = reply.get("clock_ts", 0)
        drift = ts - host_now_ts()
        lost = bool(reply.get("clock_lost"))
        ctx.result({"clock_ts": ts, "host_ts": ts - drift, "drift_s": drift, "clock_lost": lost},
                   [f"pump clock {pump_time(ts)} ({'+' if drift >= 0 else '-'}"
                    f"{span(abs(drift))} from this computer's clock)"
                    + (": NOT SET, the pump lost it (clock_lost)" if lost else "")])
        if lost:
            offer_clock(ctx, [{"code": "clock_lost"}], getattr(args, "yes", 0))
        return 0
    if args.set != "now":
        raise InputError("--set", args.set, '"now" (this computer\'s local time)')
    ctx.need_confirmation(args.yes, False, "setting the clock")
    before = lk.call("clock", changes=False).get("clock_ts", 0)
    target = host_now_ts()
    ctx.show(f"Set the pump clock from {pump_time(before)} to {pump_time(target)}: the basal "
             "schedule's steps follow the new time from then on.")
    ctx.confirm("Set the clock?", args.yes)
    ts = lk.call("clock", {"set_ts": target}).get("clock_ts", 0)
    ctx.result({"clock_ts": ts, "previous_ts": before},
               [f"pump clock set to {pump_time(ts)} (it was {pump_time(before)}); the basal "
                "schedule follows the new time from now on"])
    return 0


def do_maintenance(ctx: Context, args) -> int:
    ctx.need_confirmation(args.yes, False, "maintenance")
    lk = ctx.link()
    pump_id = lk.info().get("pump_id")
    if lk.info().get("build") == "production":
        raise UsageError("this pump runs a production build, which never hands out the REPL: "
                         "update it with `make flash` (a signed update over the protocol)")
    ctx.show(f"Maintenance stops delivery on pump {pump_id}, saves its state and hands the "
             "MicroPython REPL back (development builds only).")
    ctx.confirm("Stop delivery and enter maintenance?", args.yes)
    reply = _body(lk.call("maintenance"))
    port = getattr(lk.port, "port", None) or getattr(lk.port, "name", "")
    board = boardlimits.name_of(lk.info().get("board")) or "pico"
    ctx.result({**reply, "port": port, "board": board},
               ["delivery stopped and state saved; the REPL is on the serial port",
                f"flash it now (make flash PORT={port} BOARD={board}); after the restart the "
                "pump is stopped until `pumpctl resume`"])
    return 0


COMMANDS = {
    "ports": do_ports, "info": do_info, "status": do_status, "program": do_program,
    "bolus": do_bolus, "patient-bolus": do_patient_bolus, "prime": do_prime,
    "bridge": do_bridge, "refill": do_refill, "alarms": do_alarms, "ack": do_ack,
    "log": do_log, "stop": do_stop, "resume": do_resume, "clock": do_clock,
    "maintenance": do_maintenance,
}
