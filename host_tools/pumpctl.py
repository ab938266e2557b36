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
import json
import sys

from firmware.rx import Rx, RxError
from host_tools import commands
from host_tools.errors import InputError
from host_tools.link import LinkError, PumpError, ReplyUnverified
from host_tools.prescription import load_prescription


def _mass(ng: float) -> str:
    return f"{ng / 1e6:g} mg" if ng >= 100_000 else f"{ng / 1e3:g} mcg"


def _hhmm(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}"


def cmd_check(args) -> int:
    """Validate a prescription as the host and as the firmware would, and show it."""
    from boards import virtual

    try:
        rx = load_prescription(args.file)
    except InputError as e:
        print(f"pumpctl: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"pumpctl: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        fw = Rx(rx.to_firmware(), virtual)
    except RxError as e:
        print(f"pumpctl: {args.file}: the firmware would refuse it: {e}", file=sys.stderr)
        return 2
    conc = rx.concentration_ng_per_ml
    if args.json:
        print(json.dumps({
            "drug": rx.drug, "concentration_ng_per_ml": conc,
            "steps": [{"start_s": s.start_ms // 1000, "rate_ng_per_day": s.rate_ng_per_day,
                       "rate_nl_per_day": fw.step_rate_nl_day[i]} for i, s in enumerate(rx.steps)],
            "basal_ng_per_day": rx.daily_basal_ng(), "basal_nl_per_day": fw.basal_nl_day,
            "max_daily_ng": rx.max_daily_ng, "max_daily_nl": fw.max_daily_nl,
            "patient_bolus": None if rx.patient_bolus is None else {
                "dose_ng": rx.patient_bolus.dose_ng, "dose_nl": fw.pb_dose_nl,
                "duration_s": rx.patient_bolus.duration_ms // 1000,
                "lockout_s": rx.patient_bolus.lockout_ms // 1000,
                "max_per_day": rx.patient_bolus.max_per_day},
            "low_reservoir_nl": rx.low_reservoir_nl, "warnings": list(rx.warnings)}))
        return 0
    print(f"{args.file}: valid")
    print(f"  drug            {rx.drug} at {_mass(conc)}/mL")
    for i, s in enumerate(rx.steps):
        label = "basal" if i == 0 else ""
        print(f"  {label:15} from {_hhmm(s.start_ms)}  {_mass(s.rate_ng_per_day)}/day"
              f"  ({fw.step_rate_nl_day[i] / 1000:g} uL/day)")
    print(f"  basal per day   {_mass(rx.daily_basal_ng())} ({fw.basal_nl_day / 1000:g} uL)")
    pb = rx.patient_bolus
    if pb:
        print(f"  patient bolus   {_mass(pb.dose_ng)} ({fw.pb_dose_nl / 1000:g} uL) over "
              f"{pb.duration_ms // 60_000} min, lockout {pb.lockout_ms // 60_000} min, "
              f"at most {pb.max_per_day} in 24 h")
    print(f"  max in 24 h     {_mass(rx.max_daily_ng)} ({fw.max_daily_nl / 1000:g} uL)")
    print(f"  low reservoir   {rx.low_reservoir_nl / 1e6:g} mL")
    for w in rx.warnings:
        print(f"  warning         {w}")
    return 0


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
a reply that could not be verified (the pump may or may not have acted: check status)."""


def _common(p, top: bool) -> None:
    """Options accepted before and after the command (`pumpctl --json status` and
    `pumpctl status --json`). On the subcommands they default to 'not given', so they never
    overwrite what was given before the command."""
    d = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument("--port", metavar="PORT", help="serial device or pyserial URL of the pump",
                   **d)
    p.add_argument("--key", metavar="FILE", help="key file that signs requests", **d)
    p.add_argument("--json", action="store_true", help="print one JSON object", **d)
    p.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for each reply "
                   "before the request is sent again (default 3; three tries in all)", **d)


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
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="pumpctl", description=_DESCRIPTION, epilog=_EPILOG,
                                formatter_class=fmt)
    _common(p, True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name, help_, description=None):
        c = sub.add_parser(name, help=help_, description=description or help_,
                           epilog=_EPILOG)
        _common(c, False)
        return c

    c = cmd("check", "validate a prescription file offline (nothing is sent)",
            "Check a prescription against the drug library and the firmware's own limits, and "
            "show it in clinical units. Needs no pump.")
    c.add_argument("file", metavar="FILE.toml")
    cmd("ports", "list the pumps pumpctl can see")
    cmd("info", "pump id, firmware version, board, pump clock, key counters (no key needed)")
    cmd("status", "therapy, rates, reservoir and refill date, alarms, battery, last 24 h",
        "Show what the pump is doing. With the clinician key, doses are also shown in the "
        "units of the prescription; the patient key shows volumes.")
    c = cmd("program", "validate, compare, confirm, write, read back and verify a "
            "prescription",
            "Program a prescription file (see `pumpctl check`). Shows the pump's settings and "
            "the new ones side by side (changed rows marked *), checks the drug's titration "
            "guard (drugs.toml), asks before writing, reads the settings back and verifies "
            "them, and confirms the pump is delivering.")
    c.add_argument("file", metavar="FILE.toml")
    _confirm_opts(c, False)
    c.add_argument("--override-titration", metavar="REASON",
                   help="program even though the change breaks the drug's titration guard; "
                        "the reason is printed and stored in the pump with the settings")
    c = cmd("bolus", "give a clinician bolus",
            "Give a clinician bolus on top of the basal rate. The dose is a mass (converted "
            "with the pump's concentration) or a volume.")
    c.add_argument("--dose", required=True, metavar="D", help='e.g. "0.5 mg" or "20 uL"')
    c.add_argument("--duration", metavar="T", help='spread it over this time, e.g. "30 min" '
                   "(default: as fast as the motor allows)")
    cmd("patient-bolus", "ask for the prescribed patient bolus (the patient key suffices)")
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
    c.add_argument("--residual", metavar="R", help='the residual volume drawn out, e.g. '
                   '"2.1 mL"')
    _confirm_opts(c, True)
    cmd("alarms", "list the active alarms")
    c = cmd("ack", "acknowledge an alarm (silences its tone)")
    c.add_argument("code", metavar="CODE", help="alarm code, e.g. occlusion or reservoir_low")
    c = cmd("log", "show the pump's event log")
    c.add_argument("--since", metavar="T", help='a duration ("2 h": entries of the last two '
                   'hours of pump time) or a sequence number ("120")')
    c = cmd("stop", "suspend delivery (optionally for a while)")
    c.add_argument("--for", dest="for_", metavar="T", help='resume by itself after this long, '
                   'e.g. "30 min" (at most 7 d; default: until `pumpctl resume`)')
    cmd("resume", "resume delivery (also clears a fixed motor stall or sensor fault)")
    c = cmd("clock", "read the pump clock, or set it to this computer's local time")
    c.add_argument("--set", metavar="now", help='"now": set the pump clock to local time')
    c = cmd("maintenance", "development builds: stop delivery and hand back the REPL")
    _confirm_opts(c, False)
    c = cmd("provision", "give a new pump its keys (or one whose button was held at boot)",
            "Provision a pump that never had keys, or whose button was held while it booted "
            "(the physical act that replaces damaged or lost keys). Writes clinician.key and "
            "patient.key to --out DIR (default: a virtual board's flash directory). A pump "
            "that never had an update key also gets the public half of --update-key "
            "(default: the repository's DEVELOPMENT-ONLY key).")
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


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "check":
        return cmd_check(args)
    ctx = commands.Context(args)
    from host_tools import keycmds
    run = {"provision": keycmds.do_provision, "rekey": keycmds.do_rekey}.get(args.command) \
        or commands.COMMANDS[args.command]
    try:
        return run(ctx, args)
    except InputError as e:
        print(f"pumpctl: {e}", file=sys.stderr)
        return 2
    except commands.UsageError as e:
        print(f"pumpctl: {e}", file=sys.stderr)
        return 2
    except PumpError as e:
        print(f"pumpctl: the pump refused: {e}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": e.code, "message": e.message,
                              "reason": e.reason}))
        return 1
    except LinkError as e:
        what = "" if isinstance(e, ReplyUnverified) else "no connection: "
        print(f"pumpctl: {what}{e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("pumpctl: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
