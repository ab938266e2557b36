"""pumpctl: the clinician's tool for the pump (the command line; see `pumpctl --help`).

Layers, as in mpremote: this file parses the command line and maps errors to exit codes;
host_tools/commands.py has one do_* function per command; host_tools/link.py is the client
library (discovery, keys, signing, the exchange); pyserial is the transport.

Exit status (INTERFACES.md): 0 done; 1 the pump refused (its code and message are printed);
2 bad usage or an invalid file (nothing that changes the pump was sent); 3 no connection,
or a reply that could not be verified.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys

from importlib import metadata

from firmware.rx import DEFAULT_REMINDER_S, DEFAULT_SILENCE_S, Rx
from firmware.version import VERSION

from host_tools import boardlimits, commands, fmt, keycmds, pumpdata
from host_tools.context import Context, Failure, UsageError, failure_of
from host_tools.errors import InputError
from host_tools.link import LinkError, PumpError
from host_tools.prescription import load_prescription, read_toml


def version() -> str:
    try:
        host = metadata.version("intrathecal-pump")
    except metadata.PackageNotFoundError:
        host = "(not installed)"
    return f"pumpctl {host} (speaks to firmware {VERSION})"


def cmd_check(args) -> int:
    """Validate a prescription as the host and as the firmware would, and show it."""
    try:
        raw = read_toml(args.file)
    except OSError as e:
        raise Failure(2, "E_INPUT", f"cannot read {args.file}: {e.strerror}") from None
    if "scenario" in raw:
        raise Failure(2, "E_INPUT", f"{args.file} is a scenario file, not a prescription: run "
                      f"it with `pumpsim run {args.file}`")
    rx = load_prescription(args.file)
    lim = boardlimits.board_limits(args.board)
    params = rx.to_firmware()
    pumpdata.check_on_board(params, lim, str(args.file))
    fw = Rx(params, lim)
    conc = rx.concentration_ng_per_ml
    u = rx.unit
    if args.json:
        print(json.dumps({
            "drug": rx.drug, "mass_unit": u, "board": lim.name,
            "concentration_ng_per_ml": conc,
            "steps": [{"start_s": s.start_ms // 1000, "rate_ng_per_day": s.rate_ng_per_day,
                       "rate_nl_per_day": fw.step_rate_nl_day[i]} for i, s in enumerate(rx.steps)],
            "basal_ng_per_day": rx.daily_basal_ng(), "basal_nl_per_day": fw.basal_nl_day,
            "max_daily_ng": rx.max_daily_ng, "max_daily_nl": fw.max_daily_nl,
            "patient_bolus": None if rx.patient_bolus is None else {
                "dose_ng": rx.patient_bolus.dose_ng, "dose_nl": fw.pb_dose_nl,
                "duration_s": rx.patient_bolus.duration_ms // 1000,
                "lockout_s": rx.patient_bolus.lockout_ms // 1000,
                "max_per_day": rx.patient_bolus.max_per_day},
            "low_reservoir_nl": rx.low_reservoir_nl, "refill_notice_s": fw.refill_notice_s,
            "catheter_nl": fw.catheter_nl, "stop_reminder_s": _reminders(rx)[0],
            "alarm_silence_s": _reminders(rx)[1], "warnings": list(rx.warnings)}))
        return 0
    print(f"{args.file}: valid on board {lim.describe()}")
    print(f"  drug            {rx.drug} at {fmt.conc(conc, u)}")
    for i, s in enumerate(rx.steps):
        label = "basal" if i == 0 else ""
        print(f"  {label:15} from {fmt.hhmm(s.start_ms // 60_000)}  "
              f"{fmt.mass_rate(s.rate_ng_per_day, u)} ({fmt.vol_rate(fw.step_rate_nl_day[i])})")
    print(f"  basal a day     {fmt.mass(rx.daily_basal_ng(), u)} ({fmt.vol(fw.basal_nl_day)})")
    pb = rx.patient_bolus
    if pb:
        print(f"  patient bolus   {fmt.mass(pb.dose_ng, u)} ({fmt.vol(fw.pb_dose_nl)}) over "
              f"{fmt.span(pb.duration_ms // 1000)}, lockout {fmt.span(pb.lockout_ms // 1000)}, "
              f"at most {pb.max_per_day} in 24 h")
    print(f"  max in 24 h     {fmt.mass(rx.max_daily_ng, u)} ({fmt.vol(fw.max_daily_nl)})")
    print(f"  low reservoir   {fmt.vol(rx.low_reservoir_nl)}; refill_due "
          f"{fmt.span(fw.refill_notice_s)} before it")
    reminder, silence = _reminders(rx)
    print(f"  reminders       therapy_stopped {fmt.span(reminder)} into an open-ended stop; "
          f"an acknowledged critical alarm sounds again after {fmt.span(silence)}")
    cat = rx.catheter
    print("  catheter        " + (f"{cat.model}, {cat.length_mm / 10:g} cm at "
                                  f"{fmt.vol(cat.nl_per_cm)}/cm: {fmt.vol(fw.catheter_nl)}"
                                  if cat else "none set (priming and bridging need one)"))
    for w in rx.warnings:
        print(f"  warning         {w}")
    return 0


def _reminders(rx) -> tuple[int, int]:
    """The stop reminder and the alarm silence in s, the firmware's defaults where not given."""
    return (DEFAULT_REMINDER_S if rx.stop_reminder_ms is None
            else rx.stop_reminder_ms // 1000,
            DEFAULT_SILENCE_S if rx.alarm_silence_ms is None
            else rx.alarm_silence_ms // 1000)


_DESCRIPTION = """\
Program and inspect the intrathecal pump over its USB serial line (docs/protocol.md).

Without --port (or the environment variable PUMPCTL_PORT), pumpctl uses the one pump it can
see: a Raspberry Pi Pico (USB vendor id 0x2E8A) or a virtual board started with
`pumpsim board`. --port takes a device path or any pyserial URL (rfc2217://host:port,
spy://..., loop://).

Commands that change or read therapy are signed with a key file (JSON: role, key, pump_id):
--key FILE, else the file named by PUMPCTL_KEY, else a discovered virtual board's own key
file (the clinician key; patient-bolus takes the patient key).

Quantities are written with units: "0.5 mg", "50 mcg", "20 uL", "2 mL", "25 mg/mL", "10 min",
"1 d 2 h". With --json every command prints one JSON object on stdout (integers in nL, ng and
s); text meant for the person then goes to stderr.
"""

_EPILOG = """\
exit status: 0 done; 1 the pump refused (its error code and message are printed);
2 bad usage or an invalid file (nothing that changes the pump was sent); 3 no connection, or
a reply that could not be verified (the pump may or may not have acted: check status).
With --json, errors too are one JSON object on stdout: {"ok": false, "error": CODE,
"message": TEXT}."""

# The options each command uses, beyond --json (which every command takes).
_PORT = ("port", "timeout")
_KEY = ("port", "key", "timeout")


def _common(p, top: bool, uses=("port", "key", "timeout")) -> None:
    """Options accepted before and after the command (`pumpctl --json status` and
    `pumpctl status --json`). On the subcommands they default to 'not given', so they never
    overwrite what was given before the command; each subcommand lists only those it uses."""
    d = {} if top else {"default": argparse.SUPPRESS}
    if "port" in uses:
        p.add_argument("--port", metavar="PORT", help="serial device or pyserial URL of the "
                       "pump", **d)
    if "key" in uses:
        p.add_argument("--key", metavar="FILE", help="key file that signs requests", **d)
    p.add_argument("--json", action="store_true", help="print one JSON object", **d)
    if "timeout" in uses:
        p.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for each "
                       "reply before the request is sent again (default 3; three tries in all)",
                       **d)


class _Parser(argparse.ArgumentParser):
    """Usage errors become a Failure, so --json can report them as JSON too."""

    def error(self, message):
        # "invalid choice: 'stauts' (choose from 'check', ...)": name the likely command first
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            near = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.6)
            if near:
                message = f"unknown command '{m.group(1)}': did you mean '{near[0]}'?"
        raise Failure(2, "E_USAGE", f"{message} (see `{self.prog} --help`)")


def _confirm_opts(p, twice: bool) -> None:
    if twice:
        p.add_argument("--yes", "-y", action="count", default=0,
                       help="confirm without a prompt; give it twice (--yes --yes) for the "
                            "second, typed confirmation too")
        p.add_argument("--confirm", metavar="VOLUME", help="the volume shown, typed "
                       "beforehand: confirms both steps without a prompt")
    else:
        p.add_argument("--yes", "-y", action="count", default=0,
                       help="confirm without a prompt (needed when stdin is not a terminal)")


def parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter  # noqa: F811 (the formatter, not host_tools.fmt)
    p = _Parser(prog="pumpctl", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=fmt)
    p.add_argument("--version", action="version", version=version())
    _common(p, True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

    def cmd(name, help_, description=None, uses=_KEY):
        c = sub.add_parser(name, help=help_, description=description or help_,
                           epilog=_EPILOG)
        _common(c, False, uses)
        return c

    c = cmd("check", "validate a prescription file offline (nothing is sent)",
            "Check a prescription against the drug library and the firmware's own limits on a "
            "board's numbers, and show it in clinical units. Needs no pump. (A scenario file "
            "runs with `pumpsim run`.)", uses=())
    c.add_argument("file", metavar="FILE.toml")
    c.add_argument("--board", choices=boardlimits.BOARD_NAMES, default="virtual",
                   help="the board whose limits apply (default virtual; `pumpctl program` "
                        "uses the limits the pump itself reports)")
    cmd("ports", "list the pumps pumpctl can see, with each virtual board's flash directory",
        uses=())
    cmd("info", "pump id, firmware version, board and its limits, pump clock (no key needed)",
        uses=_PORT)
    cmd("status", "therapy, rates, reservoir and refill date, alarms, battery, last 24 h",
        "Show what the pump is doing. With the clinician key, doses are also shown in the "
        "units of the prescription; the patient key shows volumes.")
    c = cmd("program", "validate, compare, confirm, write, read back and verify a "
            "prescription",
            "Program a prescription file (see `pumpctl check`). Shows the pump's settings and "
            "the new ones side by side (changed rows marked *), checks the drug's titration "
            "guard (drugs.toml) and, for a start after a screening trial, the drug's start "
            "rule, asks before writing, reads the settings back and verifies them, and "
            "confirms the pump is delivering. The drug library's version goes to the pump "
            "with the settings.")
    c.add_argument("file", metavar="FILE.toml")
    _confirm_opts(c, False)
    c.add_argument("--override-titration", metavar="REASON",
                   help="program even though the change breaks the drug's titration guard, "
                        "never past the guard's ceiling (ziconotide: a start of at most the "
                        "label's 2.4 mcg/day) nor a hard limit; REASON says why in at least "
                        "three words, and is printed and stored in the pump with the settings")
    c.add_argument("--trial-dose", metavar="D",
                   help='a start after a screening trial (baclofen): the screening dose that '
                        'worked, e.g. "50 mcg"; with --trial-effect the drug\'s start rule gives '
                        "the first daily dose (shown with its source), and a prescription that "
                        "departs from it needs --override-titration")
    c.add_argument("--trial-effect", metavar="H",
                   help='how long the screening dose\'s effect lasted, e.g. "6 h" (a bare '
                        "number is hours); baclofen starts at twice the screening dose a day, "
                        "or at the screening dose when the effect lasted more than 8 h")
    c.add_argument("--assume-24h", metavar="DOSE",
                   help="after memory_error (the pump lost its dose account): what the last "
                        "24 h are taken to have delivered, e.g. \"2 mg\" (default: the new "
                        "prescription's basal of a day); shown before anything is written")
    c = cmd("bolus", "give a clinician bolus",
            "Give a clinician bolus on top of the basal rate. The dose is a mass (converted "
            "with the pump's concentration) or a volume.")
    c.add_argument("--dose", required=True, metavar="D", help='e.g. "0.5 mg" or "20 uL"')
    c.add_argument("--duration", metavar="T", help='spread it over this time, e.g. "30 min" '
                   "(default: as fast as the motor allows)")
    _confirm_opts(c, False)
    c = cmd("patient-bolus", "ask for the prescribed patient bolus (the patient key suffices)")
    _confirm_opts(c, False)
    c = cmd("prime", "priming bolus: fill an empty catheter (two-step confirmation)",
            "Fill an empty catheter (after an implant or a catheter revision) as fast as the "
            "motor allows. At most the catheter's volume. Two confirmations: yes, then the "
            "volume typed again; or --yes --yes, or --confirm VOLUME.")
    c.add_argument("--volume", required=True, metavar="V", help='e.g. "200 uL"')
    _confirm_opts(c, True)
    c = cmd("bridge", "bridge bolus after a concentration change (two-step confirmation)",
            "After a refill with a stronger concentration, the catheter still holds the old "
            "drug, which the slower new volume rate would push out too slowly. The bridge bolus "
            "adds the difference between the old and new volume rates until the catheter is "
            "flushed, so the old drug keeps reaching the patient at the prescribed dose. "
            "`refill --concentration` offers it itself; this command gives it later. Two "
            "confirmations: yes, then the volume typed again; or --yes --yes, or --confirm.")
    c.add_argument("--old-concentration", required=True, metavar="C",
                   help='the concentration before the refill, e.g. "10 mg/mL"')
    _confirm_opts(c, True)
    c = cmd("refill", "record a refill; compare the measured residual; bridge a new "
            "concentration",
            "Record a refill, step by step: the volume now in the reservoir; the residual "
            "drawn out and measured (compared with what the pump expected: a discrepancy "
            "raises an alarm); and a new concentration, which shows the drug still in the "
            "catheter and the bridge bolus that delivers it at the prescribed dose. The refill "
            "itself is confirmed once (--yes); the bridge bolus needs the two-step "
            "confirmation (--yes --yes, or --confirm VOLUME); with a single --yes it is not "
            "given and the `pumpctl bridge` command to give it is printed.")
    c.add_argument("--volume", required=True, metavar="V",
                   help='the volume in the reservoir after refilling, e.g. "20 mL"')
    c.add_argument("--concentration", metavar="C", help='the new drug\'s concentration, e.g. '
                   '"25 mg/mL" (default: unchanged)')
    c.add_argument("--drug", metavar="NAME", help="the drug now in the reservoir, from the drug "
                   "library (default: the program's; a pump with no program takes the first "
                   "program's). Another drug than the program's stops delivery until a "
                   "prescription of it is programmed")
    c.add_argument("--residual", metavar="R", help='the residual volume drawn out, e.g. '
                   '"2.1 mL"')
    c.add_argument("--stable-for", metavar="T", help='how long this fill stays usable in the '
                   'pump, e.g. "30 d" (default: the drug library\'s stability table; the pump '
                   'raises drug_expired after it)')
    _confirm_opts(c, True)
    c = cmd("catheter", "record a new or revised catheter: empty, so a prime may fill it "
            "(two-step confirmation)",
            "After an implant or a catheter revision: the pump then takes the catheter as "
            "empty, so that the next prime may fill it (up to its volume); it refuses a prime "
            "into a full catheter, which would push its whole volume of drug into the patient. "
            "Two confirmations: yes, then the catheter's volume typed again; or --yes --yes, "
            "or --confirm VOLUME.")
    c.add_argument("--revised", action="store_true", help="the catheter is new or revised "
                   "(and empty)")
    _confirm_opts(c, True)
    cmd("alarms", "list the active alarms")
    c = cmd("ack", "acknowledge an alarm (silences its tone)")
    c.add_argument("code", metavar="CODE", help="alarm code, e.g. occlusion or reservoir_low")
    c = cmd("log", "show the pump's event log")
    c.add_argument("--since", metavar="T", help='a duration ("2 h": entries of the last two '
                   'hours of pump time) or a sequence number ("120")')
    cmd("history", "the therapy history: programs, refills, boluses, stops, a day's patient "
        "boluses (400 days)",
        "Show the pump's therapy history as a clinician reads it: when, what changed (old -> "
        "new basal in mass and volume a day), by which role, and why (the titration override's "
        "reason, the drug library's version): programs, refills, catheter revisions, primes, "
        "bridges, clinician boluses, stops and resumes, and the patient boluses of each day "
        "(given, denied, volume). The pump keeps at least 400 days of it, apart from the "
        "event log (docs/formats.md). Needs the clinician key.")
    c = cmd("stop", "suspend delivery (optionally for a while)")
    c.add_argument("--for", dest="for_", metavar="T", help='resume by itself after this long, '
                   'e.g. "30 min" (at most 7 d; default: until `pumpctl resume`)')
    _confirm_opts(c, False)
    c = cmd("resume", "resume delivery (also clears a fixed motor stall or sensor fault)")
    _confirm_opts(c, False)
    c = cmd("clock", "read the pump clock, or set it to this computer's local time",
            "Read the pump clock, or set it to this computer's local time. A pump on a board "
            "without a kept clock (a Pico) loses it at a power cut or a reset and raises "
            "clock_lost; then `clock`, `status` and `alarms` offer to set it (one confirmation), "
            "and `clock --yes` sets it without asking.")
    c.add_argument("--set", metavar="now", help='"now": set the pump clock to local time')
    _confirm_opts(c, False)
    c = cmd("maintenance", "development builds: stop delivery and hand back the REPL")
    _confirm_opts(c, False)
    c = cmd("ui", "a page for this pump in the browser (this computer only)",
            "Serve a page for this pump on the loopback interface and open it in the browser: "
            "the pump, therapy now with the day's schedule, the reservoir down to its refill "
            "date, alarms, the event log; programming, refills, boluses, stop and resume with "
            "the same checks and confirmations as these commands (docs/ui.md). The first line "
            "printed is JSON: {\"url\": \"http://127.0.0.1:PORT/?token=...\"}; the page needs "
            "that token. The key stays in this process. With the patient key the page shows the "
            "patient bolus only. Runs until Ctrl-C.")
    c.add_argument("--no-browser", action="store_true", help="print the URL only")
    c.add_argument("--refresh", type=float, default=10.0, metavar="S",
                   help="how often the page reads the pump again while it is shown "
                        "(default 10 s)")
    c = cmd("provision", "give a new pump its keys (or one whose button was held at boot)",
            "Provision a pump that never had keys, or whose button was held while it booted "
            "(the physical act that replaces damaged or lost keys). Writes clinician.key and "
            "patient.key to --out DIR (default: a virtual board's flash directory). A pump "
            "that never had an update key also gets the public half of --update-key "
            "(default: the repository's DEVELOPMENT-ONLY key).", uses=_PORT)
    c.add_argument("--out", metavar="DIR", help="where the new key files go")
    c.add_argument("--update-key", metavar="PEM", help="the update key whose public half a "
                   "pump without one gets (default: the development key)")
    _confirm_opts(c, False)
    c = cmd("rekey", "replace both role keys (clinician key; e.g. when a counter nears its end)",
            "Replace the clinician and patient keys with new ones derived on both sides from "
            "the clinician key and a fresh nonce (nothing secret crosses the line); both "
            "counters start again. Rewrites the --key file and the patient key file.")
    c.add_argument("--patient-key", metavar="FILE", help="the patient key file to rewrite "
                   "(default: patient.key beside the clinician key)")
    _confirm_opts(c, False)
    return p


def _report(json_out: bool, f: Failure) -> int:
    print(f"pumpctl: {f.message}", file=sys.stderr)
    if json_out:
        print(json.dumps({"ok": False, "error": f.code, "message": f.message, **f.extra}))
    return f.status


def _run(argv) -> int:
    args = parser().parse_args(argv)
    if args.command == "check":
        return cmd_check(args)
    ctx = Context(args)
    if args.command == "ui":
        # The page's web stack loads for the page only (it would add about 0.1 s to every
        # other command).
        from host_tools.ui.cli import do_ui
        run = do_ui
    else:
        run = {"provision": keycmds.do_provision, "rekey": keycmds.do_rekey}.get(args.command) \
            or commands.COMMANDS[args.command]
    try:
        return run(ctx, args)
    finally:
        ctx.close()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    json_out = "--json" in argv
    try:
        return _run(argv)
    except (Failure, InputError, UsageError, PumpError, LinkError) as e:
        f = failure_of(e)
        assert f is not None
        return _report(json_out, f)
    except KeyboardInterrupt:
        return _report(json_out, Failure(130, "E_INTERRUPTED", "interrupted"))
    except BrokenPipeError:
        # The reader went away (`pumpctl log | head`): nothing more to say, and no traceback.
        # stdout is pointed at /dev/null so the interpreter's last flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> int:
    """The console script: main() with a closed stdout taken calmly at exit too."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


if __name__ == "__main__":
    sys.exit(entry())
