"""pumpctl's key commands: `provision` (a new pump, or after the button at the pump) and
`rekey` (new keys for both roles, e.g. when the counters near their end). See
docs/security.md; the client side of both is in host_tools/link.py."""

from __future__ import annotations

import os
from pathlib import Path

from host_tools import bundle, link
from host_tools.context import Context, UsageError


def _out_dir(ctx: Context, given: str | None) -> Path:
    if given:
        return Path(given)
    board = ctx.found.board if ctx.found else None
    if board and board.get("flash"):
        return Path(board["flash"])   # a virtual board's key files live in its flash dir
    raise UsageError("say where the new key files go: --out DIR")


def do_provision(ctx: Context, args) -> int:
    ctx.need_confirmation(args.yes, False, "provision")
    lk = ctx.link()
    lk.key = None
    info = lk.public_info(refresh=True)
    out = _out_dir(ctx, args.out)
    state = info.get("keys")
    ctx.show(f"Pump {info.get('pump_id')} ({info.get('board')}): keys {state}.")
    ctx.show(f"New clinician and patient keys go to {out}/clinician.key and patient.key;"
             " whoever holds them controls the pump.")
    ctx.confirm("Provision this pump?", args.yes)
    upd = bundle.modulus(bundle.load_update_key(args.update_key))
    c, p = link.provision(lk, upd)
    out.mkdir(parents=True, exist_ok=True)
    link.write_key(out / "clinician.key", c)
    link.write_key(out / "patient.key", p)
    ctx.result({"provisioned": True, "pump_id": c.pump_id,
                "clinician_key": str(out / "clinician.key"),
                "patient_key": str(out / "patient.key")},
               [f"provisioned: keys written to {out}/clinician.key and {out}/patient.key"])
    return 0


def do_rekey(ctx: Context, args) -> int:
    ctx.need_confirmation(args.yes, False, "rekey")
    lk = ctx.link()
    key = lk._need_key("rekey")
    if key.role != "clinician" or not key.path:
        raise UsageError("rekey needs the clinician key file (--key FILE)")
    patient = Path(args.patient_key) if args.patient_key else \
        Path(os.path.dirname(os.path.abspath(key.path))) / "patient.key"
    ctx.show(f"Re-key pump {lk.pump_id()}: both keys are replaced; {key.path} and {patient} "
             "are rewritten, and every other copy of the old keys stops working.")
    ctx.confirm("Replace the keys?", args.yes)
    link.rekey_files(lk, key.path, patient)
    ctx.result({"rekeyed": True, "clinician_key": key.path, "patient_key": str(patient)},
               [f"re-keyed: new keys in {key.path} and {patient}; give the patient's app the "
                "new patient key"])
    return 0
