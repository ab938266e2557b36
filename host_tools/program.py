"""Programming a prescription as a Plan (host_tools/context.py): the notes the pump keeps with
it, the side-by-side view, the titration guard (and the ceiling of its override), the start rule
after a screening trial, the assumption after a lost dose account; when sent, written, read back
and verified. pumpctl program and the page's Confirm carry out the same Plan."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from host_tools import boardlimits, clinical, druglib, fmt, stability, titration, units
from host_tools.clinical import daily_basal_ng
from host_tools.context import Plan, Report, UsageError
from host_tools.errors import InputError
from host_tools.fmt import mass, vol
from host_tools.link import Link, PumpError
from host_tools.prescription import (Prescription, load_prescription, read_toml,
                                     screening_dose_ng, screening_effect_s)
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


REASON_WORDS = 3   # an override's reason: at least this many different words


def check_override(override: str | None) -> None:
    """An override's reason is stored with the program and read by the next clinician: it
    must say why in words, at least REASON_WORDS different words of two letters or more."""
    if override is None:
        return
    words = {w.lower() for w in re.findall(r"[^\W\d_]{2,}", override)}
    if len(words) < REASON_WORDS:
        raise InputError("--override-titration", override,
                         f"a reason in words: at least {REASON_WORDS} different words (of two "
                         "letters or more) that say why the guard is passed, e.g. \"already on "
                         "4 mcg/day in her previous pump\"; it is stored with the program")


@dataclass(frozen=True)
class Trial:
    """The screening trial a start is measured from: the dose that worked (ng) and how long
    its effect lasted (s), from --trial-dose/--trial-effect or the prescription's [titration]
    (given: on the command line)."""
    screening_ng: int | None = None
    effect_s: int | None = None
    given: bool = False


def parse_trial(rx: Prescription, dose_text: str | None, effect_text: str | None) -> Trial:
    """--trial-dose D --trial-effect H (together), checked against the drug's start rule and
    the prescription's own [titration]; without them, the prescription's."""
    file_trial = Trial(rx.screening_ng, rx.screening_effect_s)
    if dose_text is None and effect_text is None:
        return file_trial
    drug = druglib.get(rx.drug)
    rule = drug.titration_for(rx.titration_profile)
    if rule is None or rule.trial_effect_s is None:
        flag, text = ("--trial-dose", dose_text) if dose_text is not None else \
            ("--trial-effect", effect_text)
        raise InputError(flag, text, f"no screening trial for {drug.name}: the drug library "
                         "gives it no start rule after one (baclofen has one)")
    if dose_text is None:
        raise InputError("--trial-dose", "(missing)", "the screening dose that worked, given "
                         "together with --trial-effect")
    if effect_text is None:
        raise InputError("--trial-effect", "(missing)", "how long the screening dose's effect "
                         "lasted, e.g. \"6 h\", given together with --trial-dose: the start "
                         "rule depends on it")
    dose = screening_dose_ng(drug, dose_text, "--trial-dose")
    effect = screening_effect_s(effect_text, "--trial-effect")
    for flag, text, given, written in (("--trial-dose", dose_text, dose, rx.screening_ng),
                                       ("--trial-effect", effect_text, effect,
                                        rx.screening_effect_s)):
        if written is not None and written != given:
            raise InputError(flag, text, "the value the prescription's [titration] gives, or "
                             "none there: the two disagree")
    return Trial(dose, effect, True)


def _strings(raw: dict, rx: Prescription) -> dict:
    """What the clinician wrote, as short strings for the pump to keep with the settings."""
    basal = raw.get("basal") or {}
    if "rate" in basal:
        text = str(basal["rate"])
    else:
        steps = basal.get("steps") or []
        text = ", ".join(f"{s.get('start')} {s.get('rate')}" for s in steps)
    meta = {"drug": rx.drug, "units": rx.unit, "library": druglib.version(),
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
                 assume_24h: str | None = None, trial: Trial | None = None) -> Plan:
    """Program a prescription (params: build_params of it): validated on the pump's board,
    shown beside what the pump holds, the titration guard checked (an override only up to its
    ceiling), the start rule after a screening trial shown; when sent, written, read back and
    verified, and the pump asked whether it delivers. trial: parse_trial's (default: the
    prescription's own [titration])."""
    check_on_board(params, boardlimits.pump_limits(lk), label)
    old = settings_of(lk)
    if "catheter" not in params and old and old.get("catheter"):
        params["catheter"] = old["catheter"]  # the implanted catheter does not change with a dose
    info = lk.info(refresh=True)
    now_ts, pump_id = info.get("clock_ts", 0), str(info.get("pump_id"))
    new_ng = rx.daily_basal_ng()
    old_change = _old_change(old, rx.drug)
    trial = trial or Trial(rx.screening_ng, rx.screening_effect_s)
    if trial.given and not titration.is_start(old_change, rx.drug):
        assert old is not None
        raise InputError("--trial-dose", mass(trial.screening_ng or 0, rx.unit),
                         f"a screening trial only when {rx.drug} is started: the pump already "
                         f"runs it at {fmt.mass_rate(daily_basal_ng(old['steps']), rx.unit)}")
    history = titration.load_history(pump_id)
    rule = druglib.get(rx.drug).titration_for(rx.titration_profile)
    broken = titration.assess(rule, rx.drug, old_change, new_ng, now_ts, history,
                              trial.screening_ng, trial.effect_s)
    ceiling = titration.override_ceiling(broken)
    start = None
    if titration.is_start(old_change, rx.drug) and trial.screening_ng and trial.effect_s:
        start = titration.start_rule(rule, rx.drug, trial.screening_ng, trial.effect_s)

    st = lk.call("status", changes=False)
    fill_drug, fill_conc = st.get("fill_drug"), st.get("fill_conc_ng_ml", 0)
    mismatch = ((fill_drug is not None and fill_drug != rx.drug)
                or (fill_conc and fill_conc != rx.concentration_ng_per_ml))
    table = side_by_side(old, params)
    lines = [f"Pump {pump_id}: {label}", *table]
    lines += [f"  warning: {w}" for w in rx.warnings]
    if start is not None:
        lines.append(f"  start rule: {start.why}")
        if new_ng == start.dose_ng_day:
            lines.append("  this prescription starts there")
    req: dict = {"params": params}
    if st.get("fills") and st.get("expiry_ts", -1) < 0:
        # the fill came before its drug was known (refill, then program): its stability now
        try:
            stable_ms, why = stability.fill_stability(rx.drug, rx.concentration_ng_per_ml,
                                                      st.get("fills") == 1)
            req["stable_s"] = stable_ms // 1000
            lines.append(f"  the fill in the reservoir stays usable for {fmt.span(stable_ms // 1000)}"
                         f" ({rx.drug}, {why}): drug_expired after that")
        except InputError:
            pass
    cap = None if ceiling is None else ceiling.ceiling_ng_day
    start_obj = None if start is None else {
        "screening_ng": start.screening_ng, "effect_s": start.effect_s,
        "dose_ng_day": start.dose_ng_day, "ceiling_ng_day": start.ceiling_ng_day,
        "rule": start.why}

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
                      "alarms": st.get("alarms"), "titration": [b.text for b in broken],
                      "override": override, "override_ceiling_ng_day": cap,
                      "start_rule": start_obj, "library": params["meta"].get("library"),
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

    texts = [b.text for b in broken]
    plan = Plan("Program", lines, f"Write these settings to pump {pump_id}?", send, report,
                data={"old": old, "new": params, "titration": texts, "override": override,
                      "override_ceiling_ng_day": cap, "start_rule": start_obj,
                      "text_table": table})
    if mismatch:
        held = (f"{fill_drug or 'a drug not named'}"
                + (f" at {fmt.conc(fill_conc, rx.unit)}" if fill_conc else ""))
        plan.blocked = [f"the reservoir holds {held}; this prescription is for {rx.drug} at "
                        f"{fmt.conc(rx.concentration_ng_per_ml, rx.unit)}"]
        plan.refusal = UsageError(
            f"refill first: the reservoir holds {held}, and a program must be for the drug and "
            f"concentration in it (`pumpctl refill --volume V --drug {rx.drug} --concentration "
            f"\"{fmt.conc(rx.concentration_ng_per_ml, rx.unit)}\"`); nothing was sent")
        return plan
    if broken and (not override or (cap is not None and new_ng > cap)):
        plan.blocked = [f"titration: {b}" for b in texts]
        plan.refusal = UsageError(_refusal(rx, new_ng, ceiling, override))
        return plan
    lines += [f"  titration guard overridden: {b}" for b in texts]
    if ceiling is not None:
        lines.append(f"  the override stays within its ceiling, "
                     f"{fmt.mass_rate(cap, rx.unit)} ({ceiling.ceiling_why})")
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


def _refusal(rx: Prescription, new_ng: int, ceiling: titration.Breach | None,
             override: str | None) -> str:
    """Why a change that breaks the titration guard is not written, and what would be."""
    u = rx.unit
    if ceiling is None or ceiling.ceiling_ng_day is None:
        return ("the change breaks the titration guard (drugs.toml); nothing was written. To go "
                "ahead anyway, give --override-titration \"REASON\" (why, in words)")
    top = fmt.mass_rate(ceiling.ceiling_ng_day, u)
    if new_ng <= ceiling.ceiling_ng_day:
        return ("the change breaks the titration guard (drugs.toml); nothing was written. To go "
                "ahead anyway, give --override-titration \"REASON\" (why, in words): an "
                f"override may program at most {top} ({ceiling.ceiling_why})")
    said = "the override given" if override else "--override-titration"
    return (f"{said} lifts the titration guard only up to {top} ({ceiling.ceiling_why}), never "
            f"past it: {fmt.mass_rate(new_ng, u)} is above it, and nothing was written")


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
