# The replies that describe the pump rather than act on it: `help` (what each command does, as
# JSON for a program and as lines for a person at a terminal) and `info` (who the pump is, its
# keys, clock and limits). Loaded for the request and let go after it (firmware/handlers.py
# about()): held for good, the commands' descriptions and this code took 3.9 KB of the
# Pico's heap (docs/benchmarks.md). Which role each command needs is firmware/handlers.py's
# COMMANDS.
from firmware import auth, buildinfo, status
from firmware.compat import unload
from firmware.version import VERSION

# name -> what it does
WHAT = {
    "help": "list the commands",
    "ping": "check the pump answers",
    "info": "who the pump is; with a key: clock, counters, limits",
    "provision": "set the two role keys (a new pump, or after the button)",
    "hello": "open a session (its id and counter)",
    "status": "therapy, reservoir, alarms, battery, last 24 h",
    "alarms": "active alarms",
    "patient_bolus": "ask for the prescribed patient bolus",
    "settings": "the stored prescription",
    "program": "install a prescription",
    "bolus": "clinician, priming or bridge bolus",
    "catheter": "record a new or revised catheter (empty)",
    "refill": "record a refill",
    "ack": "silence an alarm",
    "log": "read the event log",
    "history": "read the therapy history (at least 400 days)",
    "stop": "suspend delivery",
    "resume": "resume delivery",
    "clock": "read or set the pump clock",
    "rekey": "replace both role keys (counters start again)",
    "update_begin": "start a signed firmware update",
    "update_chunk": "the next piece of the update",
    "update_commit": "check the update and switch to it",
    "update_confirm": "end the new firmware's trial",
    "maintenance": "dev builds: stop, hand back the REPL",
}


def _key(role, form):
    return "" if role == auth.NONE else form % ("patient" if role == auth.PATIENT
                                                else "clinician")


def help(roles, out):
    """`help` as JSON: each command, what it does and the key it needs (roles:
    firmware/handlers.py COMMANDS)."""
    cmds = {}
    for name in roles:
        cmds[name] = WHAT[name] + _key(roles[name], " [key: %s]")
    out["commands"] = cmds


def board_limits(hal):
    """What the host validates against: this board's own numbers (info -> limits)."""
    return {"stroke_nl": hal.STROKE_NL, "reservoir_nl": hal.RESERVOIR_NL,
            "reservoir_min_nl": hal.RESERVOIR_MIN_NL, "min_rate_nl_day": hal.MIN_RATE_NL_DAY,
            "max_strokes_per_min": hal.MAX_STROKES_PER_MIN,
            "max_rate_nl_day": hal.MAX_STROKES_PER_MIN * hal.STROKE_NL * 1440,
            "catheter_nl": hal.CATHETER_NL}


def info(h, now, out):
    """`info`, for the handlers h (firmware/handlers.py). Without a key: what a person needs to
    pick the key (pump id, firmware, board, build, whether it has keys). In a session (signed):
    everything else."""
    app = h.app
    hal = app.hal
    keys = app.keys
    out["pump_id"] = app.uid
    out["firmware"] = VERSION
    out["board"] = hal.NAME
    out["build"] = buildinfo.KIND
    out["keys"] = "damaged" if keys.damaged else "ok" if keys.provisioned() else "none"
    out["provisioned"] = keys.usable()
    from firmware import testreport   # loaded for the request only (a small heap)
    out["self_test"] = testreport.report(h.th.checks)
    unload("firmware.testreport")
    if h.role == auth.NONE:
        return
    out["clock_ts"] = app.clock_ts(now)
    out["uptime_s"] = status.uptime_s(h.th, now)
    out["ctr"] = {"clinician": keys.last[auth.CLINICIAN], "patient": keys.last[auth.PATIENT]}
    out["stroke_nl"] = hal.STROKE_NL
    out["catheter_nl"] = h.th.catheter_nl()  # the patient's, from the settings
    out["reservoir_max_nl"] = hal.RESERVOIR_NL
    out["limits"] = board_limits(hal)
    out["update"] = app.update_info()



def text_help(app, roles, terminal):
    """`help` typed at a terminal: readable lines (roles, terminal: firmware/handlers.py
    COMMANDS, TERMINAL)."""
    lines = ["Intrathecal pump %s, firmware %s, board %s" % (app.uid, VERSION, app.hal.NAME),
             "Type one of these and press Enter:"]
    for name in terminal:
        lines.append("  %-14s %s" % (name, WHAT[name]))
    lines.append("Everything else is for programs (pumpctl does it for you): one JSON")
    lines.append("request a line, signed with a key (docs/protocol.md):")
    for name in sorted(roles):
        if name in terminal:
            continue
        lines.append("  %-14s %s%s" % (name, WHAT[name], _key(roles[name], "  [%s key]")))
    return "\r\n".join(lines)


def text_info(out):
    """`info` typed at a terminal: readable lines."""
    keys = {"ok": "yes", "none": "none yet (provision it)",
            "damaged": "DAMAGED: nothing that changes therapy is accepted until the pump "
                       "is provisioned again after its button is held at boot"}
    rows = (("pump id", out["pump_id"]), ("firmware", out["firmware"]),
            ("build", out["build"]), ("board", out["board"]),
            ("keys", keys.get(out["keys"], out["keys"])),
            ("more", "clock, counters and the board's limits: pumpctl info (with a key)"))
    return "\r\n".join(["%-12s %s" % (k, v) for k, v in rows])
