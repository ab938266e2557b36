"""The changes a clinician makes to therapy, each worked out as a Plan (host_tools/context.py):
clinician bolus, patient bolus, prime, bridge, refill, stop, resume (programming has its own
module, host_tools/program.py).

plan_* functions take values already parsed from what the person wrote and the open link; they
read the pump, check what the host can check (the drug library, the pump's own board limits,
the titration guard, the catheter) and return what will happen in words and the request that
does it. pumpctl (host_tools/commands.py) shows a Plan, asks and sends it; the page
(host_tools/ui) shows the same Plan and sends it when Confirm is pressed. Every value is checked
again by the pump.
"""

from __future__ import annotations

from host_tools import boardlimits, clinical, druglib, fmt, plausible, stability, units
from host_tools.clinical import DAY_S, nl_to_ng
from host_tools.context import Plan, Report, UsageError, body
from host_tools.errors import InputError
from host_tools.fmt import mass, pump_time, span, vol
from host_tools.link import Link
from host_tools.pumpdata import (catheter_of, check_on_board, current, settings_of,
                                 settings_or_none)
from host_tools.views import alarm_text, settings_unit


# ---- boluses -----------------------------------------------------------------------------------

def parse_duration_s(text: str | None, key: str = "--duration") -> int:
    """A bolus duration: whole seconds from 1 s to 1 d (0 when not given)."""
    if not text:
        return 0
    ms = units.duration_ms(text, key)
    if ms % 1000 or not 0 < ms <= DAY_S * 1000:
        raise InputError(key, text, "whole seconds from 1 s to 1 d")
    return ms // 1000


def dose_nl(text: str, conc: int) -> tuple[int, int | None]:
    """A dose as a mass ("0.5 mg", converted with the pump's concentration) or a volume."""
    try:
        ng = units.mass_ng(text, "--dose")
        return fmt.ng_to_nl(ng, conc), ng
    except InputError:
        pass
    try:
        return units.volume_nl(text, "--dose"), None
    except InputError:
        raise InputError("--dose", text, 'a dose such as "0.5 mg", "50 mcg" or a volume such '
                         'as "20 uL"') from None


def _bolus_library(settings: dict, dose: int, u) -> list[str]:
    """The drug library's clinician-bolus limits: a hard one refuses (nothing is sent), a soft
    one is a warning the clinician confirms."""
    name = (settings.get("meta") or {}).get("drug")
    if not name:
        return ["the pump's prescription does not name its drug: the drug library's bolus "
                "limits cannot be checked"]
    drug = druglib.get(name, "drug (stored in the pump)")
    ng = nl_to_ng(dose, settings["conc_ng_ml"])
    lim = drug.clinician_bolus
    excess = clinical.library_excess(ng, lim.soft, lim.hard)
    if excess == "hard":
        raise InputError("--dose", mass(ng, u), f"at most the library's hard limit for one "
                         f"{drug.name} clinician bolus, {mass(lim.hard, u)} "
                         f"({druglib.cite(lim.hard_source)})")
    if excess == "soft":
        return [f"{mass(ng, u)} is above the library's soft limit of {mass(lim.soft, u)} for "
                f"one {drug.name} clinician bolus ({druglib.cite(lim.soft_source)})"]
    return []


def plan_bolus(lk: Link, dose_text: str, dur_s: int) -> Plan:
    settings, st = current(lk)
    conc = settings["conc_ng_ml"]
    u = settings_unit(settings)
    dose, _ = dose_nl(dose_text, conc)
    stroke = boardlimits.pump_limits(lk).stroke_nl
    if dose < stroke:
        raise InputError("--dose", dose_text, f"at least one stroke ({vol(stroke)})")
    cap = st.get("max_daily_nl", 0)
    if cap and dose > cap:
        raise InputError("--dose", dose_text, f"at most the maximum daily dose "
                         f"({fmt.dose(cap, conc, u)})")
    warnings = _bolus_library(settings, dose, u)
    how = f"over {span(dur_s)}" if dur_s else "as fast as the motor allows"
    what = f"{fmt.dose(dose, conc, u)} {how}"
    args = {"dose_nl": dose, "duration_s": dur_s, "kind": "clinician"}
    return Plan("Clinician bolus",
                [f"Clinician bolus: {what}, on top of the basal."]
                + [f"  warning: {w}" for w in warnings],
                "Give this bolus?", lambda lk: body(lk.call("bolus", args)),
                lambda reply: Report({**reply, "dose_nl": dose, "duration_s": dur_s,
                                      "warnings": warnings},
                                     [f"clinician bolus started: {what}"]))


def plan_patient_bolus() -> Plan:
    return Plan("Patient bolus",
                ["Patient bolus: the dose the prescription sets, if its lockout and daily count "
                 "allow it."],
                "Ask the pump for the patient bolus?",
                lambda lk: body(lk.call("patient_bolus")),
                lambda reply: Report(reply, ["patient bolus started"]), role="patient")


def parse_prime_volume(text: str) -> int:
    volume = units.volume_nl(text, "--volume")
    if volume <= 0:
        raise InputError("--volume", text, "a volume above zero")
    return volume


def plan_prime(lk: Link, volume: int, volume_text: str) -> Plan:
    """A priming bolus. Step one goes to the pump now: it checks the volume against the
    catheter in its settings and holds the prime; nothing moves until the plan is sent, which
    repeats it with the id the pump gave, within its expiry (2 minutes)."""
    settings, _ = current(lk)
    catheter, note = catheter_of(settings)
    if volume > catheter:
        raise InputError("--volume", volume_text, f"at most the catheter's volume, "
                         f"{vol(catheter)}{note}: a priming bolus fills an empty catheter, and "
                         "anything beyond it reaches the patient")
    conc = settings["conc_ng_ml"]
    meta = settings.get("meta") or {}
    armed = body(lk.call("bolus", {"dose_nl": volume, "duration_s": 0, "kind": "prime"}))
    lines = [f"Priming bolus: {vol(volume)} as fast as the motor allows, to fill the catheter "
             f"({vol(armed.get('catheter_nl', catheter))}{note}); the pump holds it for "
             f"{span(armed.get('expires_s', 120))} awaiting confirmation.",
             f"It holds {mass(fmt.nl_to_ng(volume, conc), settings_unit(settings))} of "
             f"{meta.get('drug', 'drug')}: if the catheter is already full, the patient gets "
             "all of it at once."]
    args = {"dose_nl": volume, "duration_s": 0, "kind": "prime", "confirm": armed.get("confirm")}
    return Plan("Priming bolus", lines, f"Give the priming bolus of {vol(volume)}?",
                lambda lk: body(lk.call("bolus", args)),
                lambda reply: Report({**reply, "dose_nl": volume,
                                      "catheter_nl": armed.get("catheter_nl")},
                                     [f"priming bolus started: {vol(volume)}"]),
                volume_nl=volume, volume_what="priming bolus",
                data={"expires_s": armed.get("expires_s", 120)})


def bridge_lines(catheter: int, note: str, old_conc: int, new_conc: int, basal_nl_day: int,
                 u: str | None) -> tuple[list[str], tuple[int, int] | None]:
    """What a concentration change does to the drug in the catheter, and the bridge bolus that
    keeps the old drug at its prescribed dose (None when none applies)."""
    lines = [f"The catheter holds {vol(catheter)}{note} of the old drug "
             f"({mass(nl_to_ng(catheter, old_conc), u)} at {mass(old_conc, u)}/mL)."]
    plan = clinical.bridge_plan(catheter, old_conc, new_conc, basal_nl_day)
    over = clinical.bridge_overdose(catheter, old_conc, new_conc, basal_nl_day)
    if plan:
        dose, dur = plan
        lines.append(f"Bridge bolus: {vol(dose)} over {span(dur)}, so the old drug keeps "
                     "reaching the patient at the prescribed dose until the new drug arrives.")
        full = clinical.flush_s(catheter, old_conc, new_conc, basal_nl_day)
        if full > dur:
            lines.append(f"  The catheter takes {span(full)} to flush at the old rate; a bolus "
                         "lasts at most 1 d, so after it the rest of the old drug arrives more "
                         "slowly.")
    elif over:
        secs, factor = over
        lines.append(f"WARNING: the new drug is weaker. For about {span(secs)} the old drug "
                     f"leaves the catheter at the new volume rate: {factor:.3g} times the "
                     "prescribed dose. No bridge bolus can help; consider a lower rate for that "
                     "time.")
    return lines, plan


def _bridge_send(dose: int, dur: int):
    return lambda lk: body(lk.call("bolus", {"dose_nl": dose, "duration_s": dur,
                                             "kind": "bridge"}))


def parse_concentration(text: str, key: str) -> int:
    conc = units.concentration_ng_per_ml(text, key)
    if conc <= 0:
        raise InputError(key, text, "a concentration above zero")
    return conc


def plan_bridge(lk: Link, old_conc: int, old_text: str) -> Plan:
    settings, st = current(lk)
    catheter, note = catheter_of(settings)
    new_conc = settings["conc_ng_ml"]
    u = settings_unit(settings)
    lines, plan = bridge_lines(catheter, note, old_conc, new_conc, st.get("basal_nl_day", 0), u)
    if not plan or plan[0] <= 0:
        return Plan("Bridge bolus", lines, "", _refused, _refused, refusal=UsageError(
            f"no bridge bolus applies: the pump's concentration ({mass(new_conc, u)}/mL) is not "
            f"above {old_text}"))
    dose, dur = plan
    return Plan("Bridge bolus", lines, f"Give the bridge bolus of {vol(dose)}?",
                _bridge_send(dose, dur),
                lambda reply: Report({**reply, "dose_nl": dose, "duration_s": dur},
                                     [f"bridge bolus started: {vol(dose)} over {span(dur)}"]),
                volume_nl=dose, volume_what="bridge bolus")


def _refused(_):
    raise AssertionError("a blocked plan is never sent")


# ---- refill ------------------------------------------------------------------------------------

def parse_stable_for(given: str | None) -> int | None:
    """--stable-for in ms (None when not given)."""
    if not given:
        return None
    ms = units.duration_ms(given, "--stable-for")
    if ms % 1000 or not 3_600_000 <= ms <= 365 * DAY_S * 1000:
        raise InputError("--stable-for", given, "whole seconds from 1 h to 365 d")
    return ms


def fill_stability(stable_ms: int | None, meta: dict, conc: int, st: dict) -> tuple[int, str]:
    """How long this fill stays usable: --stable-for, else the library's stability table (the
    pump's first fill when it never recorded one). (0, why) when nothing is known."""
    if stable_ms:
        return stable_ms, "as given with --stable-for"
    drug = meta.get("drug")
    if not drug or not conc:
        return 0, "the pump's settings name no drug"
    try:
        ms, why = stability.fill_stability(drug, conc, not st.get("fills"))
    except InputError:
        return 0, f"{drug} is not in the drug library"
    return ms, f"{drug}, {why}: drugs.toml [stability]"


class Refill:
    """A refill worked out: the refill's Plan, and when the concentration goes up, the bridge
    bolus that follows it (its own Plan, confirmed in two steps)."""

    def __init__(self, plan: Plan, bridge: Plan | None, old_conc: int, u: str | None):
        self.plan = plan
        self.bridge = bridge
        self.old_conc = old_conc
        self.u = u


def plan_refill(lk: Link, volume: int, volume_text: str, new_conc: int, conc_text: str | None,
                residual: int, stable_ms: int | None, drug_name: str | None = None) -> Refill:
    """A refill. drug_name: the fill's drug (--drug; a library name). Another drug than the
    program's is a change of drug: it needs its concentration, and delivery stops until a
    program of that drug (the pump refuses any other: drug_mismatch)."""
    lim = boardlimits.pump_limits(lk)
    if volume > lim.reservoir_nl:
        raise InputError("--volume", volume_text, f"at most the reservoir's "
                         f"{vol(lim.reservoir_nl)} (the volume in the reservoir after refilling; "
                         f"board {lim.name})")
    settings = settings_of(lk)
    st = lk.call("status", changes=False)
    meta = (settings or {}).get("meta") or {}
    u = settings_unit(settings)
    old_conc = (settings or {}).get("conc_ng_ml", 0)
    new_drug = None
    slips: list[str] = []
    if drug_name is not None:
        new_drug = druglib.get(drug_name.strip().lower(), "--drug")
    check_drug = new_drug or (druglib.get(meta["drug"], "drug (stored in the pump)")
                              if meta.get("drug") else None)
    if new_conc and check_drug is not None:
        slips = plausible.concentration(check_drug, new_conc, "--concentration",
                                        conc_text or "")
    prog_drug = meta.get("drug")
    other_drug = (new_drug is not None and settings is not None and prog_drug is not None
                  and new_drug.name != prog_drug)
    if new_drug is not None and other_drug and not new_conc:
        raise InputError("--concentration", "(missing)", f"the concentration of the "
                         f"{new_drug.name} now in the reservoir (a change of drug)")
    if new_conc and not settings and new_drug is None:
        raise InputError("--concentration", conc_text, "no concentration without the drug "
                         "here: the pump has no prescription yet; give --drug too, or let "
                         "`pumpctl program` set it")
    changes_conc = bool(new_conc and settings and new_conc != old_conc and not other_drug)
    if changes_conc and meta.get("drug"):
        drug = druglib.get(meta["drug"], "drug (stored in the pump)")
        if new_conc > drug.hard_concentration_ng_per_ml:
            raise InputError("--concentration", conc_text, f"at most the library's "
                             f"hard limit for {drug.name}, "
                             f"{mass(drug.hard_concentration_ng_per_ml, u)}/mL")
    if changes_conc:
        check_on_board({**(settings or {}), "conc_ng_ml": new_conc}, lim, "--concentration")

    fill_meta = {"drug": new_drug.name} if new_drug is not None else meta
    stable, stable_why = fill_stability(stable_ms, fill_meta, new_conc or old_conc, st)
    expected = st.get("reservoir_nl", 0)
    lines = [f"Refill: the reservoir will hold {vol(volume)}"
             + (f" of {new_drug.name}" if new_drug is not None else "")
             + (f" at {mass(new_conc, new_drug.unit if new_drug else u)}/mL" if new_conc
                else "") + "."]
    lines += [f"  warning: {w}" for w in slips]
    if other_drug:
        assert new_drug is not None
        lines.append(f"  CHANGE OF DRUG: the pump runs {prog_drug}; the reservoir will hold "
                     f"{new_drug.name}. Delivery stops now, until a prescription of "
                     f"{new_drug.name} is programmed (`pumpctl program FILE`; the pump refuses "
                     "any other), and the catheter still holds the old drug.")
    if stable:
        lines.append(f"  this fill stays usable for {span(stable // 1000)} ({stable_why}); the "
                     "pump raises drug_expired after that")
    else:
        lines.append(f"  no drug_expired warning for this fill ({stable_why})")
    if residual >= 0:
        lines.append(f"  measured residual {vol(residual)}; the pump's account is "
                     f"{vol(expected)} (difference {vol(residual - expected)})")
    bridge = None
    bridge_nl = -1
    if changes_conc:
        catheter, note = catheter_of(settings or {})
        lines.append(f"  concentration changes from {mass(old_conc, u)}/mL to "
                     f"{mass(new_conc, u)}/mL; the daily doses stay as prescribed and the volume "
                     "rates follow")
        more, dose_plan = bridge_lines(catheter, note, old_conc, new_conc,
                                       st.get("basal_nl_day", 0), u)
        lines += more
        bridge_nl = catheter
        if dose_plan and dose_plan[0] > 0:
            dose, dur = dose_plan
            bridge = Plan("Bridge bolus", [], f"Give the bridge bolus of {vol(dose)}?",
                          _bridge_send(dose, dur),
                          lambda reply: Report({"dose_nl": dose, "duration_s": dur,
                                                "started": True},
                                               [f"bridge bolus started: {vol(dose)} over "
                                                f"{span(dur)}"]),
                          volume_nl=dose, volume_what="bridge bolus",
                          data={"dose_nl": dose, "duration_s": dur})
    req: dict = {"volume_nl": volume}
    if new_drug is not None:
        req["drug"] = new_drug.name
    if new_conc:
        req["conc_ng_ml"] = new_conc
    if residual >= 0:
        req["residual_nl"] = residual
    if bridge_nl >= 0:
        req["bridge_nl"] = bridge_nl
    if stable:
        req["stable_s"] = stable // 1000

    def report(reply: dict) -> Report:
        lines = [f"refill recorded: the reservoir holds {vol(reply.get('reservoir_nl', volume))}"]
        if reply.get("expiry_ts", -1) >= 0:
            lines.append(f"drug_expired after {pump_time(reply['expiry_ts'])[:16]} (pump clock)")
        if other_drug and new_drug is not None:
            lines.append(f"delivery is stopped: program a prescription of {new_drug.name}, "
                         "then resume")
        if residual >= 0:
            lines.append(f"residual {vol(residual)} against {vol(reply.get('expected_nl', 0))} "
                         "expected" + (": DISCREPANCY, the pump raised an alarm"
                                       if reply.get("discrepancy") else ": within tolerance"))
        rep = Report({**reply, "bridge": None}, lines)
        if reply.get("discrepancy"):
            rep.warnings.append("the measured residual disagrees with the pump's account: "
                                "check the pump")
        return rep

    plan = Plan("Refill", lines, "Record this refill?",
                lambda lk: body(lk.call("refill", req)), report)
    return Refill(plan, bridge, old_conc, u)


# ---- the catheter -------------------------------------------------------------------------------

def plan_catheter(lk: Link) -> Plan:
    """Record a new or revised catheter: the pump takes it as empty, so that a prime may fill
    it (and only then). Two steps, as a prime: step one goes to the pump now and returns an id;
    the plan repeats it with the id within two minutes, after the catheter's volume is typed
    again."""
    settings, _ = current(lk)
    catheter, note = catheter_of(settings)
    if catheter <= 0:
        raise InputError("catheter", "(none in the settings)", "a prescription with its "
                         "[catheter] (model, length, volume per cm) programmed first: the pump "
                         "bounds a prime by it")
    armed = body(lk.call("catheter", {"revised": True}))
    lines = [f"Catheter: a new or revised catheter of {vol(catheter)}{note}. The pump will "
             "take it as empty: the next prime may fill it (up to its volume), and a prime is "
             "refused into a catheter that is full.",
             "Record it only when the catheter really is new or was revised and is empty: a "
             "prime into a full catheter pushes its whole volume of drug into the patient."]
    args = {"revised": True, "confirm": armed.get("confirm")}
    return Plan("Catheter", lines, "Record a new or revised, empty catheter?",
                lambda lk: body(lk.call("catheter", args)),
                lambda reply: Report({**reply, "catheter_nl": catheter},
                                     [f"catheter recorded as new: empty ({vol(catheter)}); "
                                      "`pumpctl prime --volume V` fills it"]),
                volume_nl=catheter, volume_what="catheter's volume",
                data={"expires_s": armed.get("expires_s", 120)})


# ---- stop, resume ------------------------------------------------------------------------------

def parse_stop_for(text: str | None) -> int:
    """--for in whole seconds, 1 s to 7 d (0: until resume)."""
    if not text:
        return 0
    ms = units.duration_ms(text, "--for")
    if ms < 1000 or ms > 7 * DAY_S * 1000:
        raise InputError("--for", text, "a duration from 1 s to 7 d")
    return ms // 1000


def plan_stop(lk: Link, for_s: int) -> Plan:
    drug = ((settings_or_none(lk) or {}).get("meta") or {}).get("drug")
    lines = ["Stop: all delivery stops now, basal and boluses, "
             + (f"for {span(for_s)}, then it resumes by itself." if for_s else
                "until `pumpctl resume`."),
             "  Withdrawal risk: stopping intrathecal "
             f"{drug or 'therapy'} abruptly can be dangerous (for baclofen, life-threatening); "
             "missed doses are never made up later."]
    return Plan("Stop", lines, "Stop delivery?",
                lambda lk: body(lk.call("stop", {"for_s": for_s} if for_s else {})),
                lambda reply: Report({**reply, "for_s": for_s},
                                     [f"delivery stopped; it resumes by itself in {span(for_s)}"
                                      if for_s else "delivery stopped until `pumpctl resume`"]))


def plan_resume() -> Plan:
    def send(lk: Link) -> dict:
        reply = body(lk.call("resume"))
        return {**reply, "_status": None if reply.get("stopped") else
                lk.call("status", changes=False)}

    def report(got: dict) -> Report:
        st = got.pop("_status")
        if st is None:
            return Report(got, ["the pump is still stopped"], 1)
        return Report({**got, "delivering": st.get("delivering"), "alarms": st.get("alarms")},
                      ["delivery resumed" if st.get("delivering") else
                       f"resumed, but NOT delivering: alarms {alarm_text(st.get('alarms'))}"])

    return Plan("Resume", ["Resume: the basal starts again from now, as programmed (missed doses "
                           "are not made up); a fixed motor stall or sensor fault is cleared."],
                "Resume delivery?", send, report)

