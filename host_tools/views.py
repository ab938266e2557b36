"""The pump's replies in words: what `info`, `status`, `alarms`, `log`, `history` and a
prescription look like to a person. pumpctl prints these lines and the page (host_tools/ui) shows the same ones,
so a figure reads the same on both (the rules for each quantity are host_tools/fmt.py).

Functions of reply data only: no link, no I/O.
"""

from __future__ import annotations

import json

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
    """`info.self_test`, when the firmware reports it, as one line: when it ran, whether it
    passed, each part's outcome (and what a part that did not pass found). Parts come as
    {name: {"outcome", "found", ...}}, {name: outcome} or [{"part", "outcome"}]; an outcome
    is "pass", "fail", "skipped", "not_run" or a bool. Nothing when the pump does not say."""
    if not isinstance(st, dict):
        return []
    when = st.get("when_ts", st.get("when"))
    passed = st.get("passed")
    head = ("not run yet" if passed is None or (isinstance(when, int) and when < 0)
            else "passed" if passed else "FAILED")
    if isinstance(when, int) and when >= 0:
        head += f" at {pump_time(when)}"
    detail = ", ".join(f"{name} {_outcome(got)}" for name, got in _parts(st.get("parts")))
    return [f"self-test    {head}" + (f" ({detail})" if detail else "")]


def _parts(parts) -> list[tuple[str, object]]:
    if isinstance(parts, dict):
        return [(str(k), v) for k, v in parts.items()]
    if isinstance(parts, list):
        return [(str(p.get("part", p.get("name", "?"))), p) for p in parts if isinstance(p, dict)]
    return []


def _outcome(v) -> str:
    """One part's outcome in words: ok, FAILED (and what it found), skipped, not run."""
    found = ""
    if isinstance(v, dict):
        found = str(v.get("found") or "")
        v = v.get("outcome", v.get("passed"))
    word = {True: "ok", False: "FAILED", "pass": "ok", "fail": "FAILED", "not_run": "not run",
            None: "?"}.get(v, str(v)) if isinstance(v, (bool, str, type(None))) else str(v)
    return f"{word}: {found}" if found and word != "ok" else word


def battery_text(st: dict) -> str:
    """The battery as `status` reports it: its voltage, and the days to ERI (elective
    replacement) and to EOS (end of service) when the firmware estimates them (-1: not yet
    known; absent: a firmware that does not estimate them)."""
    text = f"{st.get('battery_mv')} mV"
    days = [(name, st.get(key)) for name, key in (("ERI", "battery_eri_days"),
                                                  ("EOS", "battery_eos_days"))]
    known = [f"about {d} d to {name}" if d >= 0 else f"{name} not yet known"
             for name, d in days if isinstance(d, int) and not isinstance(d, bool)]
    return text + (", " + ", ".join(known) if known else "")


# ---- status ------------------------------------------------------------------------------------

def status_view(st: dict, settings: dict | None) -> dict:
    """What `status` shows, as data: the same for the text and for --json."""
    meta = (settings or {}).get("meta") or {}
    conc = (settings or {}).get("conc_ng_ml")
    u = settings_unit(settings)
    if not st.get("programmed"):
        therapy = "not programmed"
    elif st.get("stopped") and fill_differs(st, settings):
        therapy = (f"STOPPED: the reservoir holds {st.get('fill_drug') or 'another solution'}, "
                   "not the program's; delivery waits for a program of it, then a resume")
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


def fill_differs(st: dict, settings: dict | None) -> bool:
    """The reservoir holds another drug or concentration than the program names (after a
    refill with --drug or --concentration and before the program that follows it)."""
    if not settings or not st.get("fills"):
        return False
    fill, fill_conc = st.get("fill_drug"), st.get("fill_conc_ng_ml", 0)
    drug = (settings.get("meta") or {}).get("drug")
    return bool((fill is not None and drug is not None and fill != drug)
                or (fill_conc and fill_conc != settings.get("conc_ng_ml")))


def fill_unit(st: dict, settings: dict | None) -> str | None:
    """The mass unit of the fill's drug (the library's), else the program's."""
    try:
        return druglib.get(st.get("fill_drug")).unit
    except InputError:
        return settings_unit(settings)


def status_lines(st: dict, settings: dict | None, view: dict) -> list[str]:
    """`pumpctl status` as lines (view: status_view of the same reply)."""
    text = view["text"]
    lines = [f"therapy      {view['therapy']}"]
    if settings:
        lines.append(f"drug         {view['drug'] or '?'} at {text['concentration']}")
    fill = st.get("fill_drug")
    fill_conc = st.get("fill_conc_ng_ml", 0)
    if st.get("fills") and (fill is not None or fill_conc):
        lines.append(f"reservoir of {fill or '(drug not named)'}"
                     + (f" at {fmt.conc(fill_conc, fill_unit(st, settings))}"
                        if fill_conc else "")
                     + (": NOT the program's: delivery waits for a program of it"
                        if fill_differs(st, settings) else ""))
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
        count, lockout = patient_bolus_text(pb)
        lines.append(f"patient      {count}; {lockout}")
    lines += [f"boluses      {', '.join(running) + ' running' if running else 'none running'}",
              f"battery      {battery_text(st)}",
              f"alarms       {alarm_text(st.get('alarms'))}",
              f"pump clock   {pump_time(st.get('clock_ts', 0))}"]
    return lines


def patient_bolus_text(pb: dict) -> tuple[str, str]:
    """`status.patient_bolus` in words: (today's count against the most a day, the lockout)."""
    left = pb.get("lockout_left_s", 0)
    return (f"{pb.get('count_24h', 0)} of {pb.get('max_per_day', 0)} boluses in the last 24 h",
            f"next allowed in {span(left)}" if left else "allowed now")


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
        "history_failed": lambda: (f"a therapy history entry could not be written: {a} waiting "
                                   "in RAM (retried)" + (f", {b} lost" if b else "")),
        "history_lost": lambda: (f"the therapy history's open page was damaged: page {a} begun "
                                 "anew" + (f", {b} entries lost" if b and b > 0 else "")),
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
        "catheter_revised": lambda: f"a new or revised catheter, taken as empty ({vol(b)})",
        "fill_drug_changed": lambda: "the fill is of another drug: delivery stopped until a "
                                     "program of it",
    }.get(event, lambda: "" if not a and not b else f"{a} {b}")()


def log_line(e) -> str:
    return f"{e[0]:6} {pump_time(e[1])}  {e[2]:22} {explain(e[2], e[3], e[4])}"


# ---- the therapy history -----------------------------------------------------------------------

_KIND_TEXT = {"program": "program", "refill": "refill", "catheter": "catheter revised",
              "prime": "prime", "bridge": "bridge bolus", "clinician_bolus": "clinician bolus",
              "stop": "stop", "resume": "resume", "patient_boluses": "patient boluses",
              "lost": "entries lost"}


def _unit_of(notes: dict | None, unit: str | None) -> str | None:
    """The mass unit a program's notes name (its drug's in drugs.toml, else its `units`)."""
    notes = notes or {}
    try:
        return druglib.get(notes.get("drug")).unit
    except InputError:
        u = notes.get("units")
        return u if u in fmt.MASS_UNITS else unit


def _per_day(ng, nl, unit: str | None) -> str:
    return f"{fmt.mass_rate(ng, unit)} ({fmt.vol_rate(nl)})"


def _program_text(e: dict, unit: str | None) -> str:
    notes = e.get("notes") or {}
    new = _per_day(e.get("basal_ng_day", 0), e.get("basal_nl_day", 0), unit)
    old_ng = e.get("old_basal_ng_day", -1)
    basal = (f"basal {_per_day(old_ng, e.get('old_basal_nl_day', 0), unit)} -> {new}"
             if old_ng is not None and old_ng >= 0 else f"basal {new} (the first program)")
    cap, old_cap = e.get("max_daily_ng", 0), e.get("old_max_daily_ng", -1)
    parts = [basal, f"max a day {mass(old_cap, unit)} -> {mass(cap, unit)}"
             if old_cap is not None and 0 <= old_cap != cap else f"max a day {mass(cap, unit)}"]
    drug = notes.get("drug")
    parts.append(f"{drug or 'drug not recorded'} at {fmt.conc(e.get('conc_ng_ml', 0), unit)}")
    why = notes.get("titration_override")
    parts.append(f"why: {why}" if why else "no override")
    parts.append(f"drug library {notes.get('library') or 'not recorded'}")
    if e.get("recovered"):
        parts.append("recorded at the boot after a power cut (it had taken effect)")
    return "; ".join(parts)


def _dose_text(e: dict, unit: str | None) -> str:
    dur = e.get("duration_ms", 0)
    return (fmt.dose(e.get("dose_nl", 0), e.get("conc_ng_ml"), unit)
            + (f" over {fmt.span_ms(dur)}" if dur else ", as fast as the motor allows"))


def _refill_text(e: dict, unit: str | None, conc: int | None, drug: str | None) -> str:
    notes = e.get("notes") or {}
    new_conc = e.get("conc_ng_ml") or 0
    what = f"reservoir {vol(e.get('volume_nl', 0))}"
    drug = notes.get("drug") or drug
    if new_conc:
        what += (f" of {drug or 'the drug'} at {fmt.conc(new_conc, unit)}"
                 + (f" (was {fmt.conc(conc, unit)})" if conc and conc != new_conc else ""))
    elif drug:
        what += f" of {drug}"
    res, exp = e.get("residual_nl", -1), e.get("expected_nl", 0)
    if res is not None and res >= 0:
        d = res - exp
        what += (f"; residual {vol(res)} measured, {vol(exp)} expected "
                 f"({'+' if d >= 0 else '-'}{vol(abs(d))}"
                 + (": a discrepancy, refill_discrepancy raised)" if e.get("discrepancy")
                    else ")"))
    stable = e.get("stable_s", 0)
    if stable:
        what += f"; usable for {span(stable)}"
    return what


def history_lines(entries: list[dict], today: dict | None = None) -> list[str]:
    """The therapy history as a clinician reads it, oldest first: when, what, by whom, what
    changed (old -> new in mass and volume a day) and why. A mass is shown in the unit of the
    program in force (the entry's own concentration where it has one)."""
    lines, unit, conc, drug = [], None, None, None
    for e in entries:
        kind = e.get("kind", "?")
        when = pump_time(e["ts"])[:16] if isinstance(e.get("ts"), int) else ""
        if kind == "program":
            unit = _unit_of(e.get("notes"), unit)
            text = _program_text(e, unit)
            conc = e.get("conc_ng_ml") or conc
            drug = (e.get("notes") or {}).get("drug") or drug
            label = f"program {e.get('program')}"
        elif kind == "refill":
            unit = _unit_of(e.get("notes"), unit) if e.get("notes") else unit
            text = _refill_text(e, unit, conc, drug)
            conc = e.get("conc_ng_ml") or conc
            label = "refill"
        elif kind in ("prime", "bridge", "clinician_bolus"):
            text, label = _dose_text(e, unit), _KIND_TEXT[kind]
        elif kind == "stop":
            text, label = (f"for {span(e['for_s'])}" if e.get("for_s") else
                           "until resumed"), "stop"
        elif kind == "resume":
            text, label = ("the timed stop ended" if e.get("auto") else "resumed"), "resume"
        elif kind == "patient_boluses":
            when = when[:10]
            text = (f"{e.get('given', 0)} given ({mass(e.get('mass_ng', 0), unit)}, "
                    f"{vol(e.get('volume_nl', 0))}), {e.get('denied', 0)} denied")
            label = "patient boluses"
        elif kind == "catheter":
            nl = e.get("catheter_nl", 0)
            text, label = ("new or revised, empty" + (f": {vol(nl)}" if nl else "")), \
                "catheter revised"
        elif kind == "lost":
            n = e.get("entries", -1)
            text = (f"{n} entries could not be read (a damaged page)" if n and n > 0 else
                    "the page in progress was damaged: its entries are lost")
            label = "entries lost"
        else:
            text, label = json.dumps({k: v for k, v in e.items() if k not in ("seq", "ts")}), kind
        flag = "  (NOT YET ON FLASH)" if e.get("unsaved") else ""
        lines.append(f"{when:16}  {label:16} {e.get('by', ''):9}  {text}{flag}")
    if today and (today.get("given") or today.get("denied")):
        lines.append(f"{pump_time(today['day_ts'])[:10]:16}  {'patient boluses':16} "
                     f"{'patient':9}  {today['given']} given "
                     f"({mass(today.get('mass_ng', 0), unit)}, {vol(today.get('volume_nl', 0))}),"
                     f" {today['denied']} denied so far today")
    return lines
