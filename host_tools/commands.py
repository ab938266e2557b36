"""pumpctl's commands: one do_* function each, between the command line and the client library.

Each do_* takes a Context (host_tools/context.py: the open link, output streams, what the
person may be asked) and the parsed arguments, and does input and output only: it reads what
was written, asks host_tools/therapy.py for the Plan of a change (or reads the pump through
host_tools/link.py), and shows it in the words of host_tools/views.py. Errors travel as
exceptions and pumpctl.main turns them into exit codes (context.failure_of).

Host-side checks only help: every value is checked again by the pump.
"""

from __future__ import annotations

from host_tools import boardlimits, link, program, therapy, units
from host_tools.context import Context, UsageError, body, carry_out, is_ours, show_and_ask
from host_tools.errors import InputError
from host_tools.fmt import host_now_ts, mass, pump_time, span
from host_tools.views import (alarm_codes, history_lines as history_text, info_lines, log_line,
                              status_lines, status_view)


# ---- ports, info, status, alarms ---------------------------------------------------------------

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


def do_info(ctx: Context, args) -> int:
    info = body(ctx.link().info())
    ctx.result(info, info_lines(info, ctx.limits()))
    return 0


def do_status(ctx: Context, args) -> int:
    lk = ctx.link()
    st = body(lk.call("status", changes=False))
    settings = therapy.settings_or_none(lk)
    view = status_view(st, settings)
    ctx.result({**st, **view}, status_lines(st, settings, view))
    offer_clock(ctx, st.get("alarms"))
    return 0


def do_alarms(ctx: Context, args) -> int:
    al = body(ctx.link().call("alarms", changes=False))
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


def do_ack(ctx: Context, args) -> int:
    if args.code not in alarm_codes():
        raise InputError("CODE", args.code, "an alarm code: " + ", ".join(alarm_codes()))
    reply = body(ctx.link().call("ack", {"code": args.code}))
    ctx.result(reply, [f"{args.code} acknowledged"])
    return 0


# ---- therapy: each a Plan from host_tools/therapy.py, shown, confirmed, sent, reported ----------

def do_program(ctx: Context, args) -> int:
    raw, rx = program.load_rx(args.file)
    program.check_override(args.override_titration)
    trial = program.parse_trial(rx, getattr(args, "trial_dose", None),
                                getattr(args, "trial_effect", None))
    params = program.build_params(raw, rx, args.override_titration)
    ctx.need_confirmation(args.yes, False, "program")
    plan = program.plan_program(ctx.link(), rx, params, str(args.file),
                                args.override_titration, getattr(args, "assume_24h", None),
                                trial)
    return carry_out(ctx, plan, args.yes)


def do_bolus(ctx: Context, args) -> int:
    dur_s = therapy.parse_duration_s(args.duration)
    ctx.need_confirmation(args.yes, False, "a clinician bolus")
    return carry_out(ctx, therapy.plan_bolus(ctx.link(), args.dose, dur_s), args.yes)


def do_patient_bolus(ctx: Context, args) -> int:
    ctx.need_confirmation(args.yes, False, "a patient bolus")
    return carry_out(ctx, therapy.plan_patient_bolus(), args.yes)


def do_prime(ctx: Context, args) -> int:
    volume = therapy.parse_prime_volume(args.volume)
    ctx.need_confirmation(args.yes, True, "a priming bolus", args.confirm)
    return carry_out(ctx, therapy.plan_prime(ctx.link(), volume, args.volume), args.yes,
                     args.confirm)


def do_bridge(ctx: Context, args) -> int:
    old_conc = therapy.parse_concentration(args.old_concentration, "--old-concentration")
    ctx.need_confirmation(args.yes, True, "a bridge bolus", args.confirm)
    plan = therapy.plan_bridge(ctx.link(), old_conc, args.old_concentration)
    return carry_out(ctx, plan, args.yes, args.confirm)


def do_refill(ctx: Context, args) -> int:
    volume = units.volume_nl(args.volume, "--volume")
    new_conc = (therapy.parse_concentration(args.concentration, "--concentration")
                if args.concentration else 0)
    residual = units.volume_nl(args.residual, "--residual") if args.residual else -1
    stable_ms = therapy.parse_stable_for(getattr(args, "stable_for", None))
    ctx.need_confirmation(args.yes, False, "refill")
    r = therapy.plan_refill(ctx.link(), volume, args.volume, new_conc, args.concentration,
                            residual, stable_ms, getattr(args, "drug", None))
    rep = r.plan.report(show_and_ask(ctx, r.plan, args.yes))
    if r.bridge is not None:
        b = r.bridge.data
        if args.confirm is not None or args.yes >= 2 or ctx.interactive:
            got = r.bridge.report(show_and_ask(ctx, r.bridge, args.yes, args.confirm))
            rep.obj["bridge"] = got.obj
            rep.lines += got.lines
        else:
            rep.obj["bridge"] = {**b, "started": False}
            rep.lines.append(f"bridge bolus NOT given (it needs --yes --yes or --confirm): "
                             f"pumpctl bridge --old-concentration \"{mass(r.old_conc, r.u)}/mL\"")
    ctx.result(rep.obj, rep.lines)
    for w in rep.warnings:
        ctx.warn(w)
    return rep.status


def do_catheter(ctx: Context, args) -> int:
    if not args.revised:
        raise UsageError("catheter: say --revised (a new or revised catheter, which the pump "
                         "then takes as empty)")
    ctx.need_confirmation(args.yes, True, "recording a new catheter", args.confirm)
    return carry_out(ctx, therapy.plan_catheter(ctx.link()), args.yes, args.confirm)


def do_stop(ctx: Context, args) -> int:
    for_s = therapy.parse_stop_for(args.for_)
    ctx.need_confirmation(args.yes, False, "stop")
    return carry_out(ctx, therapy.plan_stop(ctx.link(), for_s), args.yes)


def do_resume(ctx: Context, args) -> int:
    ctx.need_confirmation(args.yes, False, "resume")
    return carry_out(ctx, therapy.plan_resume(), args.yes)


# ---- log, clock, maintenance -------------------------------------------------------------------

def read_log(lk: link.Link, since_seq: int = 0) -> tuple[list, int, bool]:
    """Every log entry from since_seq on, 50 at a time: (entries, total, chain_ok)."""
    entries, total, chain_ok, nxt = [], 0, True, since_seq
    while True:
        r = lk.call("log", {"since": nxt, "max": 50}, changes=False)
        rows = r.get("entries") or []
        total, chain_ok = r.get("total", 0), chain_ok and bool(r.get("chain_ok", True))
        entries += rows
        if not rows or r.get("next", total) >= total or r.get("next") == nxt:
            break
        nxt = r["next"]
    return entries, total, chain_ok


def do_log(ctx: Context, args) -> int:
    since_seq, since_s = 0, None
    if args.since:
        t = args.since.strip()
        if t.isdigit():
            since_seq = int(t)
        else:
            since_s = units.duration_ms(t, "--since") // 1000
    lk = ctx.link()
    entries, total, chain_ok = read_log(lk, since_seq)
    if since_s is not None:
        now_ts = lk.info(refresh=True).get("clock_ts", 0)
        entries = [e for e in entries if e[1] >= now_ts - since_s]
    out = {"entries": [{"seq": e[0], "ts": e[1], "event": e[2], "a": e[3], "b": e[4]}
                       for e in entries], "total": total, "chain_ok": chain_ok}
    lines = [log_line(e) for e in entries] or ["no entries"]
    if not chain_ok:
        lines.append("WARNING: the log's hash chain does not verify: entries were altered or "
                     "lost")
    ctx.result(out, lines)
    if not chain_ok:
        ctx.warn("the event log's hash chain does not verify")
    return 0


HISTORY_ROWS = 20      # the page's newest entries (pumpctl ui)


def read_history(lk: link.Link, last: int | None = None) -> tuple[list, dict]:
    """The pump's therapy history, a reply at a time (each from one page of it): every entry
    held, oldest first, or only the `last` few; and the last reply (total, first, unsaved,
    dropped, today)."""
    entries: list = []
    args: dict = {"last": last} if last else {}
    while True:
        r = lk.call("history", {**args, "max": 20}, changes=False)
        rows = r.get("entries") or []
        entries += rows
        nxt = r.get("next", 0)
        if last or not rows or nxt >= r.get("total", 0) or nxt == args.get("since"):
            return entries, r
        args = {"since": nxt}


def history_warnings(r: dict, entries: list) -> list[str]:
    out = []
    if r.get("unsaved"):
        out.append(f"{r['unsaved']} entries are only in the pump's RAM: its flash refused them "
                   "(history_failed in the log); the pump writes them when the flash takes them")
    if r.get("dropped"):
        out.append(f"{r['dropped']} entries were lost: too many waited for a failing flash")
    if r.get("first") and entries and isinstance(entries[0].get("ts"), int):
        out.append(f"entries before #{r['first']} made room for newer ones: the history holds "
                   f"from {pump_time(entries[0]['ts'])[:10]}")
    return out


def do_history(ctx: Context, args) -> int:
    entries, r = read_history(ctx.link())
    lines = history_text(entries, r.get("today")) or ["no entries"]
    warnings = history_warnings(r, entries)
    out = {"entries": [{**e, "text": t} for e, t in zip(entries, history_text(entries))],
           "total": r.get("total", 0), "first": r.get("first", 0),
           "unsaved": r.get("unsaved", 0), "dropped": r.get("dropped", 0),
           "today": r.get("today"), "warnings": warnings}
    ctx.result(out, lines + [f"WARNING: {w}" for w in warnings])
    for w in warnings:
        ctx.warn(w)
    return 0


def history_lines(lk: link.Link) -> list[str]:
    """The newest entries of the therapy history, newest first (the page's panel)."""
    entries, r = read_history(lk, HISTORY_ROWS)
    return list(reversed(history_text(entries, r.get("today")))) or ["no entries"]


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
    reply = body(lk.call("maintenance"))
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
    "bridge": do_bridge, "refill": do_refill, "catheter": do_catheter, "alarms": do_alarms,
    "ack": do_ack, "log": do_log, "history": do_history, "stop": do_stop, "resume": do_resume,
    "clock": do_clock, "maintenance": do_maintenance,
}
