"""The pump's replies in words: what `info`, `status`, `alarms`, `log` and a prescription look
like to a person. pumpctl prints these lines and the page (host_tools/ui) shows the same ones,
so a figure reads the same on both (the rules for each quantity are host_tools/fmt.py).

Functions of reply data only: no link, no I/O.
"""

from __future__ import annotations

from firmware import codes
from firmware.rx import catheter_nl

from host_tools import boardlimits, druglib, fmt
from host_tools.clinical import daily_basal_ng, nl_to_ng
from host_tools.errors import InputError
from host_tools.fmt import hhmm, mass, pump_time, span, vol


def settings_unit(settings: dict | None) -> str | None:
    """The mass unit of the pump's prescription: its drug's (drugs.toml), else what the host
    that programmed it stored, else None (shown by size)."""
    meta = (settings or {}).get("meta") or {}
    try:
        return druglib.get(meta.get("drug")).unit
    except InputError:
        u = meta.get("units")
        return u if u in fmt.MASS_UNITS else None


def catheter_text(cat: dict | None) -> str:
    """The settings' catheter in words: model, implanted length, volume per cm."""
    if not cat:
        return "none set"
    return (f"{cat.get('model')}, {cat.get('length_mm', 0) / 10:g} cm at "
            f"{vol(cat.get('nl_per_cm', 0))}/cm")


def alarm_text(alarms) -> str:
    if not alarms:
        return "none"
    return ", ".join(f"{a['code']} ({a['priority']}{', acknowledged' if a.get('acked') else ''})"
                     for a in alarms)


def alarm_codes() -> list[str]:
    return sorted(set(codes.ALARM_NAMES.values()))


# ---- info --------------------------------------------------------------------------------------

def info_lines(info: dict, lim: boardlimits.BoardLimits) -> list[str]:
    ctr = info.get("ctr") or {}
    upd = info.get("update") or {}
    lines = [f"pump id      {info.get('pump_id')}",
             f"firmware     {info.get('firmware')} ({info.get('build', '?')} build"
             + (f", slot {upd['slot']}{', on trial' if upd.get('trial') else ''}" if upd else "")
             + ")",
             f"board        {lim.describe()}",
             f"keys         {info.get('keys', 'ok' if info.get('provisioned') else 'none')}"]
    if "clock_ts" in info:   # only a keyed caller (a session) sees the rest
        lines += [f"pump clock   {pump_time(info.get('clock_ts', 0))}",
                  f"uptime       {span(info.get('uptime_s', 0))}",
                  f"counters     clinician {ctr.get('clinician')}, patient {ctr.get('patient')}"]
    if upd.get("last_crash"):
        lines.append(f"last crash   {upd['last_crash']}")
    lines += self_test_lines(info.get("self_test"))
    return lines


def self_test_lines(st) -> list[str]:
    """`info.self_test` (when the firmware reports it: when, passed, each part's outcome)."""
    if not isinstance(st, dict):
        return []
    when = st.get("when_ts", st.get("when"))
    head = "passed" if st.get("passed") else "FAILED"
    if isinstance(when, int):
        head += f" at {pump_time(when)}"
    parts = st.get("parts") or {}
    items = parts.items() if isinstance(parts, dict) else (
        (p.get("part"), p.get("outcome", p.get("passed"))) for p in parts if isinstance(p, dict))
    detail = ", ".join(f"{k} {_outcome(v)}" for k, v in items)
    return [f"self-test    {head}" + (f" ({detail})" if detail else "")]


def _outcome(v) -> str:
    if isinstance(v, dict):   # the firmware's form: {"outcome", "critical", "found"}
        out = str(v.get("outcome"))
        if out == "fail":
            found = v.get("found")
            return "FAILED" + (f": {found}" if found else "")
        return out
    return {True: "ok", False: "FAILED"}.get(v, str(v)) if isinstance(v, bool) else str(v)


# ---- status ------------------------------------------------------------------------------------

def status_view(st: dict, settings: dict | None) -> dict:
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


def status_lines(st: dict, settings: dict | None, view: dict) -> list[str]:
    """`pumpctl status` as lines (view: status_view of the same reply)."""
    text = view["text"]
    lines = [f"therapy      {view['therapy']}"]
    if settings:
        lines.append(f"drug         {view['drug'] or '?'} at {text['concentration']}")
    fill = st.get("fill_drug")
    fill_conc = st.get("fill_conc_ng_ml", 0)
    if st.get("fills") and (fill is not None or fill_conc):
        differs = (fill is not None and fill != view["drug"]) or (
            fill_conc and fill_conc != view["concentration_ng_per_ml"])
        lines.append(f"reservoir of {fill or '(drug not named)'}"
                     + (f" at {fmt.conc(fill_conc, view['mass_unit'] or settings_unit(settings))}"
                        if fill_conc else "")
                     + (": NOT the program's: delivery waits for a program of it" if differs
                        and settings else ""))
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
    lines += status_plan_lines(st, settings)
    b = st.get("bolus") or {}
    running = [k for k in ("patient", "clinician") if b.get(k)]
    pb = st.get("patient_bolus")
    if pb:
        left = pb.get("lockout_left_s", 0)
        lines.append(f"patient      {pb.get('count_24h', 0)} of {pb.get('max_per_day', 0)} "
                     "boluses in the last 24 h; "
                     + (f"next allowed in {span(left)}" if left else "allowed now"))
    lines += [f"boluses      {', '.join(running) + ' running' if running else 'none running'}",
              f"battery      {st.get('battery_mv')} mV" + battery_days_text(st),
              f"alarms       {alarm_text(st.get('alarms'))}",
              f"pump clock   {pump_time(st.get('clock_ts', 0))}"]
    return lines


def battery_days_text(st: dict) -> str:
    """", about N days to ERI (low to high), M to EOS": the pump's estimate (issue 20; nothing
    from a pump that does not give it, or before its first battery reading)."""
    eri, eos = st.get("battery_eri_days"), st.get("battery_eos_days")
    if not isinstance(eri, int) or not isinstance(eos, int) or eri < 0 or eos < 0:
        return ""
    life = st.get("battery_life") or {}
    band = life.get("eri_days") if isinstance(life, dict) else None
    rng = (f" ({band[0]} to {band[2]})" if isinstance(band, list) and len(band) == 3
           and all(isinstance(x, int) for x in band) else "")
    return f", about {eri} days to ERI{rng}, {eos} to EOS"


def status_plan_lines(st: dict, settings: dict | None) -> list[str]:
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
        state = st.get("catheter")
        out.append(f"catheter     {catheter_text(cat)}"
                   + (f": {vol(st.get('catheter_nl', 0))}" if cat else "")
                   + (f", {state}" if state else "")
                   + (" (a prime may fill it)" if state == "empty" and cat else ""))
        tip = st.get("new_drug_at_tip_s", -1)
        if tip is not None and tip >= 0:
            out.append(f"at the tip   the solution before the refill, "
                       f"{fmt.conc(st.get('tip_conc_ng_ml', 0), settings_unit(settings))}, for "
                       f"about {span(tip)} more at the basal rate (then the new one)")
    if st.get("stopped_s", 0) and st.get("stop_left_s", 0) == 0 and st.get("stopped"):
        out.append(f"stopped for  {span(st['stopped_s'])}")
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


# ---- a prescription, old beside new ------------------------------------------------------------

def describe(params: dict | None) -> dict[str, str]:
    """A prescription's rows for the side-by-side view, in its drug's mass unit."""
    if not params:
        return {}
    meta = params.get("meta") or {}
    conc = params["conc_ng_ml"]
    u = settings_unit(params)
    ng_to_nl = fmt.ng_to_nl
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
    cap = params["max_daily_ng"]
    rows["max daily dose"] = f"{mass(cap, u)} ({vol(ng_to_nl(cap, conc))})"
    rows["low reservoir"] = vol(params["low_res_nl"])
    notice = params.get("refill_notice_s")
    rows["refill notice"] = span(notice) if notice is not None else "7 d (default)"
    cat = params.get("catheter")
    rows["catheter"] = f"{catheter_text(cat)}: {vol(catheter_nl(params))}" if cat else "none set"
    return rows


def side_by_side_rows(old: dict | None, new: dict) -> list[tuple[str, str, str, bool]]:
    """(label, now on the pump, new, changed) for every row of either prescription."""
    a, b = describe(old), describe(new)
    labels = list(dict.fromkeys(
        ["drug", "concentration"]
        + sorted({k for k in list(a) + list(b) if k.startswith("basal from")})
        + ["basal a day", "patient bolus", "max daily dose", "low reservoir", "refill notice",
           "catheter"]))
    rows = []
    for k in labels:
        old_t, new_t = a.get(k, "-" if a else "(nothing)"), b.get(k, "-")
        rows.append((k, old_t, new_t, old_t != new_t))
    return rows


def side_by_side(old: dict | None, new: dict) -> list[str]:
    rows = side_by_side_rows(old, new)
    w = max([len(v) for v in describe(old).values()] + [20])
    lines = [f"  {'':16} {'now on the pump':{w}}   new", f"  {'':16} {'-' * w}   {'-' * 15}"]
    for k, old_t, new_t, changed in rows:
        lines.append(f"{'*' if changed else ' '} {k:16} {old_t:{w}}   {new_t}")
    return lines


# ---- the event log -----------------------------------------------------------------------------

def _reason(n) -> str:
    return codes.REASON_NAMES.get(n, str(n)) if isinstance(n, int) else str(n)


def _alarm(n) -> str:
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


def log_line(e) -> str:
    return f"{e[0]:6} {pump_time(e[1])}  {e[2]:22} {explain(e[2], e[3], e[4])}"
