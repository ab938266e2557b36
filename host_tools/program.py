"""Programming a prescription as a Plan (host_tools/context.py): the notes the pump keeps with
it, the side-by-side view, the titration guard, the assumption after a lost dose account; when
sent, written, read back and verified. pumpctl program and the page's Confirm carry out the
same Plan."""

from __future__ import annotations

import json

from host_tools import boardlimits, clinical, druglib, fmt, titration, units
from host_tools.clinical import daily_basal_ng
from host_tools.context import Plan, Report, UsageError
from host_tools.errors import InputError
from host_tools.fmt import mass, vol
from host_tools.link import Link, PumpError
from host_tools.prescription import Prescription, load_prescription, read_toml
from host_tools.pumpdata import check_on_board, settings_of
from host_tools.views import alarm_text, side_by_side

META_MAX = 512


def load_rx(path) -> tuple[dict, Prescription]:
    """A prescription file: what was written (for the notes the pump keeps) and its checked
    form."""
    try:
        return read_toml(path), load_prescription(path)
    except OSError as e:
        raise InputError("FILE.toml", str(path), f"a readable file ({e.strerror})") from None


def check_override(override: str | None) -> None:
    if override is not None and not override.strip():
        raise InputError("--override-titration", override, "a reason in words")


def _strings(raw: dict, rx: Prescription) -> dict:
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


def build_params(raw: dict, rx: Prescription, override: str | None) -> dict:
    params = rx.to_firmware()
    if params.get("pb") is None:
        params.pop("pb", None)
    meta = _strings(raw, rx)
    meta["drug_library"] = druglib.version()   # the pump's therapy history keeps it
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


def _old_change(settings: dict | None, new_drug: str) -> titration.Change | None:
    if not settings:
        return None
    name = (settings.get("meta") or {}).get("drug")
    try:
        drug = druglib.get(name).name if name else new_drug
    except InputError:
        drug = str(name)
    return titration.Change(0, drug, daily_basal_ng(settings["steps"]))


def plan_program(lk: Link, rx: Prescription, params: dict, label: str, override: str | None,
                 assume_24h: str | None = None) -> Plan:
    """Program a prescription (params: build_params of it): validated on the pump's board,
    shown beside what the pump holds, the titration guard checked; when sent, written, read
    back and verified, and the pump asked whether it delivers."""
    check_on_board(params, boardlimits.pump_limits(lk), label)
    old = settings_of(lk)
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

    table = side_by_side(old, params)
    lines = [f"Pump {pump_id}: {label}", *table]
    lines += [f"  warning: {w}" for w in rx.warnings]
    req: dict = {"params": params}

    def send(lk: Link) -> dict:
        reply = lk.call("program", req)
        for what, got in (("the program reply", reply.get("settings")),
                          ("`settings`", settings_of(lk))):
            if got != params:
                raise PumpError("E_VERIFY", f"{what} does not match what was sent: the pump "
                                f"holds {json.dumps(got)}; check it before relying on it")
        change = titration.Change(now_ts, rx.drug, new_ng,
                                  titration.is_increase(old_change, rx.drug, new_ng), override)
        try:
            titration.record(pump_id, change)
            unrecorded = None
        except OSError as e:
            unrecorded = f"could not record the change for the titration guard: {e}"
        return {"reply": reply, "status": lk.call("status", changes=False),
                "unrecorded": unrecorded}

    def report(got: dict) -> Report:
        st = got["status"]
        delivering = bool(st.get("delivering"))
        rep = Report({"programmed": True, "verified": True, "pump_id": pump_id,
                      "params": params, "delivering": delivering, "stopped": st.get("stopped"),
                      "alarms": st.get("alarms"), "titration": broken, "override": override,
                      "assumed_24h_nl": got["reply"].get("assumed_24h_nl")},
                     ["written and read back: the pump holds exactly these settings",
                      f"the pump is {'delivering' if delivering else 'NOT delivering'} at "
                      f"{fmt.dose(st.get('rate_nl_day', 0), params['conc_ng_ml'], rx.unit, '/day')}"
                      " now"])
        if got["unrecorded"]:
            rep.warnings.append(got["unrecorded"])
        if not delivering:
            if st.get("stopped"):
                why = "delivery is stopped: `pumpctl resume` starts it"
            elif st.get("alarms"):
                why = f"alarms: {alarm_text(st.get('alarms'))}"
            else:
                why = (f"the reservoir holds {vol(st.get('reservoir_nl', 0))}: record a refill "
                       "with `pumpctl refill --volume V`")
            rep.warnings.append(f"the new settings are stored but the pump is not delivering "
                                f"({why})")
            rep.status = 0 if st.get("stopped") else 1
        return rep

    plan = Plan("Program", lines, f"Write these settings to pump {pump_id}?", send, report,
                data={"old": old, "new": params, "titration": broken, "override": override,
                      "text_table": table})
    if broken and not override:
        plan.blocked = [f"titration: {b}" for b in broken]
        plan.refusal = UsageError("the change breaks the titration guard (drugs.toml); nothing "
                                  "was written. To go ahead anyway, give --override-titration "
                                  "\"REASON\"")
        return plan
    lines += [f"  titration guard overridden: {b}" for b in broken]
    if override:
        lines.append(f"  override reason (stored in the pump): {override}")
    try:
        assume = _assumption(lines, assume_24h, params, lk.call("status", changes=False))
    except UsageError as e:
        plan.refusal = e
        return plan
    if assume is not None:
        req["assume_24h_ng"] = assume
    return plan


def _assumption(lines: list[str], given: str | None, params: dict, st: dict) -> int | None:
    """After memory_error the pump has no dose account: say what it will assume for the last
    24 h (ng of the new drug), so the basal starts at once. None when the account is intact."""
    if st.get("dose_account") != "lost":
        if given:
            raise UsageError("--assume-24h applies only after memory_error: this pump's dose "
                             "account is intact, and it keeps counting it")
        return None
    meta = params.get("meta") or {}
    u = meta.get("units")
    conc = params["conc_ng_ml"]
    if given:
        ng = units.mass_ng(given, "--assume-24h")
        if not 0 <= ng <= params["max_daily_ng"]:
            raise InputError("--assume-24h", given, f"a dose from 0 to the maximum daily dose, "
                             f"{mass(params['max_daily_ng'], u)}")
        why = "as given with --assume-24h"
    else:
        ng, why = daily_basal_ng(params["steps"]), "the new prescription's basal of a day"
    room = clinical.bolus_room_ng(params["max_daily_ng"], ng)
    lines += [
        "The pump lost its dose account (memory_error): it does not know what the last 24 hours "
        "delivered.",
        f"  It will assume {mass(ng, u)} ({vol(fmt.ng_to_nl(ng, conc))}), {why}. The basal "
        "starts at once; the maximum daily dose holds under this assumption, so boluses "
        f"get at most {mass(room, u)} until it has left the 24-hour account.",
        "  If the patient may have had more (a bolus just before the fault), give "
        "--assume-24h with that dose."]
    return ng
