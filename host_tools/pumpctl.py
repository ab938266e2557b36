"""pumpctl: the clinician's tool for the pump.

  pumpctl check FILE.toml [--json]     validate a prescription offline and show it

Exit status (INTERFACES.md): 0 done; 1 the pump refused; 2 bad usage or an invalid file
(nothing was sent); 3 no connection. The commands that talk to a pump over USB serial (info,
status, program, bolus, ...) arrive with the virtual board and the protocol.
"""

from __future__ import annotations

import argparse
import json
import sys

from firmware.rx import Rx, RxError
from host_tools.errors import InputError
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pumpctl", description="Program and inspect the "
                                "intrathecal pump. Exit 0 done, 1 refused by the pump, 2 bad "
                                "usage or invalid file, 3 no connection.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = sub.add_parser("check", help="validate a prescription file offline",
                       description="Check a prescription against the drug library and the "
                                   "firmware's own limits, and show it in clinical units.")
    c.add_argument("file", metavar="FILE.toml")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    return cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())
