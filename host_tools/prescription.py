"""Prescription files (TOML, INTERFACES.md): parsed, checked against the drug library and
against themselves, and turned into the integers the firmware compiles."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from host_tools import druglib, fmt, plausible, units
from host_tools.errors import InputError

DAY_MS = 86_400_000
MAX_STEPS = 13


@dataclass(frozen=True)
class BasalStep:
    start_ms: int
    rate_ng_per_day: int


@dataclass(frozen=True)
class PatientBolus:
    dose_ng: int
    duration_ms: int
    lockout_ms: int
    max_per_day: int


@dataclass(frozen=True)
class Catheter:
    """The patient's catheter as implanted: its volume bounds a priming bolus and is the bridge
    volume of a concentration change (firmware/rx.py catheter_nl computes the same)."""
    model: str
    length_mm: int       # after trimming
    nl_per_cm: int

    @property
    def volume_nl(self) -> int:
        return (self.length_mm * self.nl_per_cm + 5) // 10

    def to_firmware(self) -> dict:
        return {"model": self.model, "length_mm": self.length_mm, "nl_per_cm": self.nl_per_cm}


@dataclass(frozen=True)
class Prescription:
    drug: str
    concentration_ng_per_ml: int
    steps: tuple[BasalStep, ...]
    continuous: bool
    patient_bolus: PatientBolus | None
    max_daily_ng: int
    low_reservoir_nl: int
    warnings: tuple[str, ...] = ()
    unit: str = "mg"                     # the mass unit every figure is shown in (drugs.toml)
    source: str | None = None            # the evidence named for a drug that needs one
    titration_profile: str | None = None
    screening_ng: int | None = None      # the screening bolus that worked (titration start)
    catheter: Catheter | None = None
    refill_notice_ms: int | None = None   # None: the firmware's default, 7 days
    screening_effect_s: int | None = None  # how long the screening bolus's effect lasted
    stop_reminder_ms: int | None = None   # None: the firmware's default, 1 h
    alarm_silence_ms: int | None = None   # None: the firmware's default, 1 h

    def daily_basal_ng(self) -> int:
        """The schedule's total over a day (rounded down)."""
        total = 0
        for i, s in enumerate(self.steps):
            end = self.steps[i + 1].start_ms if i + 1 < len(self.steps) else DAY_MS
            total += s.rate_ng_per_day * (end - s.start_ms)
        return total // DAY_MS

    def to_firmware(self) -> dict:
        """The integer prescription the firmware compiles (firmware/rx.py)."""
        pb = self.patient_bolus
        out = {
            "conc_ng_ml": self.concentration_ng_per_ml,
            "steps": [[s.start_ms // 60_000, s.rate_ng_per_day] for s in self.steps],
            "max_daily_ng": self.max_daily_ng,
            "low_res_nl": self.low_reservoir_nl,
            "pb": None if pb is None else [pb.dose_ng, pb.duration_ms // 1000,
                                           pb.lockout_ms // 1000, pb.max_per_day],
        }
        if self.catheter is not None:
            out["catheter"] = self.catheter.to_firmware()
        if self.refill_notice_ms is not None:
            out["refill_notice_s"] = self.refill_notice_ms // 1000
        if self.stop_reminder_ms is not None:
            out["stop_reminder_s"] = self.stop_reminder_ms // 1000
        if self.alarm_silence_ms is not None:
            out["alarm_silence_s"] = self.alarm_silence_ms // 1000
        return out


def _table(parent: dict, name: str, key: str) -> dict | None:
    """An optional table: None when absent."""
    v = parent.get(name)
    if v is not None and not isinstance(v, dict):
        raise InputError(key, v, "a table")
    return v


def _required_table(parent: dict, name: str, key: str) -> dict:
    v = _table(parent, name, key)
    if v is None:
        raise InputError(key, "(missing)", "a table [" + key + "]")
    return v


def _known(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for k in table:
        if k not in allowed:
            raise InputError(f"{where}{k}", table[k], "one of the keys " + ", ".join(allowed))


def _whole_seconds(ms: int, key: str, text) -> int:
    if ms % 1000:
        raise InputError(key, text, "a whole number of seconds")
    return ms


def _basal(table: dict, w: str) -> tuple[tuple[BasalStep, ...], bool]:
    _known(table, ("rate", "steps"), f"{w}basal.")
    if ("rate" in table) == ("steps" in table):
        raise InputError(f"{w}basal", table, 'either rate = "..." (continuous) or steps = [...]'
                         " (flexible dosing), not both and not neither")
    if "rate" in table:
        rate = units.dose_rate_ng_per_day(table["rate"], f"{w}basal.rate")
        if rate <= 0:
            raise InputError(f"{w}basal.rate", table["rate"], "a rate above zero")
        return (BasalStep(0, rate),), True
    steps = table["steps"]
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        n = len(steps) if isinstance(steps, list) else steps
        raise InputError(f"{w}basal.steps", n, f"a list of 1 to {MAX_STEPS} steps")
    out: list[BasalStep] = []
    for i, step in enumerate(steps):
        k = f"{w}basal.steps[{i}]"
        if not isinstance(step, dict):
            raise InputError(k, step, '{ start = "HH:MM", rate = "..." }')
        _known(step, ("start", "rate"), k + ".")
        for need in ("start", "rate"):
            if need not in step:
                raise InputError(f"{k}.{need}", "(missing)", f"a {need} for every step")
        start = units.time_of_day_ms(step["start"], f"{k}.start")
        if i == 0 and start != 0:
            raise InputError(f"{k}.start", step["start"], 'the first step to start at "00:00"')
        if out and start <= out[-1].start_ms:
            raise InputError(f"{k}.start", step["start"], "a start after the previous step's")
        rate = units.dose_rate_ng_per_day(step["rate"], f"{k}.rate")
        if rate <= 0:
            raise InputError(f"{k}.rate", step["rate"], "a rate above zero")
        out.append(BasalStep(start, rate))
    return tuple(out), False


def _patient_bolus(table: dict, w: str) -> PatientBolus:
    k = f"{w}patient_bolus."
    _known(table, ("dose", "duration", "lockout", "max_per_day"), k)
    for need in ("dose", "duration", "lockout", "max_per_day"):
        if need not in table:
            raise InputError(k + need, "(missing)", "a value (the patient bolus needs all four)")
    dose = units.mass_ng(table["dose"], k + "dose")
    if dose <= 0:
        raise InputError(k + "dose", table["dose"], "a dose above zero")
    duration = _whole_seconds(units.duration_ms(table["duration"], k + "duration"),
                              k + "duration", table["duration"])
    lockout = _whole_seconds(units.duration_ms(table["lockout"], k + "lockout"),
                             k + "lockout", table["lockout"])
    if not 0 < duration <= DAY_MS:
        raise InputError(k + "duration", table["duration"], "a duration from 1 s to 1 d")
    if not 600_000 <= lockout <= DAY_MS:
        raise InputError(k + "lockout", table["lockout"], "a lockout from 10 min to 1 d")
    if duration > lockout:
        raise InputError(k + "duration", table["duration"],
                         f"a bolus that ends within its lockout ({table['lockout']})")
    n = table["max_per_day"]
    if type(n) is not int or not 1 <= n <= 24:
        raise InputError(k + "max_per_day", n, "a whole number from 1 to 24")
    return PatientBolus(dose, duration, lockout, n)


def _catheter(table: dict, w: str) -> Catheter:
    k = f"{w}catheter."
    _known(table, ("model", "length", "volume_per_cm"), k)
    for need in ("model", "length", "volume_per_cm"):
        if need not in table:
            raise InputError(k + need, "(missing)", "a value (the catheter needs model, length "
                             "after trimming and volume_per_cm)")
    model = table["model"]
    if not isinstance(model, str) or not 0 < len(model.strip()) <= 32:
        raise InputError(k + "model", model, "the catheter's model name, 1 to 32 characters")
    length = units.length_mm(table["length"], k + "length")
    if not 10 <= length <= 3000:
        raise InputError(k + "length", table["length"], "the implanted length after trimming, "
                         "from 1 cm to 300 cm")
    per_cm = units.volume_nl(table["volume_per_cm"], k + "volume_per_cm")
    if not 100 <= per_cm <= 20_000:
        raise InputError(k + "volume_per_cm", table["volume_per_cm"], "the volume of 1 cm of "
                         "catheter, from 0.1 uL to 20 uL (Prometra's is 2.6 uL: 0.0026 mL/cm)")
    return Catheter(model.strip(), length, per_cm)


def parse_prescription(table: dict, where: str = "", path=None) -> Prescription:
    """Check a prescription table; raise InputError naming the first problem."""
    try:
        return _parse(table, where)
    except InputError as e:
        raise e.located(path) if path is not None else e


def _parse(table: dict, w: str) -> Prescription:
    _known(table, ("drug", "concentration", "basal", "patient_bolus", "limits", "source",
                   "titration", "catheter"), w)
    if "drug" not in table:
        raise InputError(f"{w}drug", "(missing)", "a drug name from the library")
    drug = druglib.get(table["drug"], f"{w}drug")
    u = drug.unit

    def m(ng):
        return fmt.mass(ng, u)

    source = _source(table, drug, w)
    profile, screening, effect = _titration(table, drug, w)
    if "concentration" not in table:
        raise InputError(f"{w}concentration", "(missing)", 'a concentration such as "25 mg/mL"')
    conc = units.concentration_ng_per_ml(table["concentration"], f"{w}concentration")
    slips = plausible.concentration(drug, conc, f"{w}concentration", table["concentration"])
    steps, continuous = _basal(_required_table(table, "basal", f"{w}basal"), w)
    pb_table = _table(table, "patient_bolus", f"{w}patient_bolus")
    pb = _patient_bolus(pb_table, w) if pb_table is not None else None
    limits = _required_table(table, "limits", f"{w}limits")
    _known(limits, ("max_daily_dose", "low_reservoir", "refill_notice", "stop_reminder",
                    "alarm_silence"), f"{w}limits.")
    if "max_daily_dose" not in limits:
        raise InputError(f"{w}limits.max_daily_dose", "(missing)", 'a dose such as "6 mg"')
    max_daily = units.mass_ng(limits["max_daily_dose"], f"{w}limits.max_daily_dose")
    if max_daily <= 0 or max_daily > drug.daily.hard:
        raise InputError(f"{w}limits.max_daily_dose", limits["max_daily_dose"],
                         f"a daily dose above zero and at most the library's hard limit for "
                         f"{drug.name}, {m(drug.daily.hard)} ({druglib.cite(drug.daily.hard_source)})")
    low = units.volume_nl(limits.get("low_reservoir", "0 mL"), f"{w}limits.low_reservoir")
    notice = None
    if "refill_notice" in limits:
        notice = _whole_seconds(units.duration_ms(limits["refill_notice"],
                                                  f"{w}limits.refill_notice"),
                                f"{w}limits.refill_notice", limits["refill_notice"])
        if notice > 90 * DAY_MS:
            raise InputError(f"{w}limits.refill_notice", limits["refill_notice"],
                             "a notice from 0 to 90 d before the low-reservoir date")
    reminder = _reminder(limits, "stop_reminder", w, "an open-ended stop raises therapy_stopped")
    silence = _reminder(limits, "alarm_silence", w, "an acknowledged critical alarm sounds again")
    cat_table = _table(table, "catheter", f"{w}catheter")
    catheter = _catheter(cat_table, w) if cat_table is not None else None
    rx = Prescription(drug.name, conc, steps, continuous, pb, max_daily, low)
    basal = rx.daily_basal_ng()
    if basal > max_daily:
        raise InputError(f"{w}basal", f"{m(basal)}/day",
                         f"a basal schedule within limits.max_daily_dose ({m(max_daily)})")
    slips += plausible.basal_volume(drug, conc, basal, f"{w}basal")
    if pb is not None and pb_table is not None:
        _bolus_hard(pb, pb_table, drug, max_daily, w)
    warnings = slips + _warnings(drug, conc, max_daily, basal, pb)
    return Prescription(drug.name, conc, steps, continuous, pb, max_daily, low, tuple(warnings),
                        u, source, profile, screening, catheter, notice, effect, reminder,
                        silence)


def _reminder(limits: dict, key: str, w: str, what: str) -> int | None:
    """limits.stop_reminder / limits.alarm_silence: 1 min to 24 h (None: not given)."""
    if key not in limits:
        return None
    ms = _whole_seconds(units.duration_ms(limits[key], f"{w}limits.{key}"), f"{w}limits.{key}",
                        limits[key])
    if not 60_000 <= ms <= DAY_MS:
        raise InputError(f"{w}limits.{key}", limits[key], f"from 1 min to 24 h ({what} after it)")
    return ms


def _source(table: dict, drug, w: str) -> str | None:
    source = table.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise InputError(f"{w}source", source, "the published evidence, in words")
    if drug.needs_source and source is None:
        raise InputError(f"{w}source", "(missing)",
                         f"a citation of the published evidence for intrathecal {drug.name}: no "
                         "guideline or label in the drug library supports it")
    return source


def _titration(table: dict, drug, w: str) -> tuple[str | None, int | None, int | None]:
    """[titration]: (profile, screening dose in ng, how long its effect lasted in s)."""
    t = _table(table, "titration", f"{w}titration")
    if t is None:
        return None, None, None
    _known(t, ("profile", "screening_dose", "screening_effect"), f"{w}titration.")
    profile = t.get("profile")
    if profile is not None:
        drug.titration_for(profile)  # refuses a profile the drug does not have
    screening = effect = None
    if "screening_dose" in t:
        screening = screening_dose_ng(drug, t["screening_dose"], f"{w}titration.screening_dose")
    if "screening_effect" in t:
        if screening is None:
            raise InputError(f"{w}titration.screening_dose", "(missing)", "the screening dose "
                             "whose effect titration.screening_effect gives")
        effect = screening_effect_s(t["screening_effect"], f"{w}titration.screening_effect")
    return profile, screening, effect


def screening_dose_ng(drug, text, key: str) -> int:
    """A screening bolus that worked: above zero and within one clinician bolus of the drug
    (a screening dose is given as one)."""
    ng = units.mass_ng(text, key)
    lim = drug.clinician_bolus
    if not 0 < ng <= lim.hard:
        raise InputError(key, text, f"the screening dose that worked, above zero and at most "
                         f"the library's hard limit for one {drug.name} clinician bolus, "
                         f"{fmt.mass(lim.hard, drug.unit)} ({druglib.cite(lim.hard_source)})")
    return ng


def screening_effect_s(text, key: str) -> int:
    """How long a screening bolus's effect lasted: 1 min to 24 h, a duration ("6 h") or a bare
    number of hours ("6")."""
    expected = ('how long the screening dose\'s effect lasted, from 1 min to 24 h, e.g. "6 h" '
                "(a bare number is hours)")
    written = text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    if isinstance(text, str) and text.strip().replace(".", "", 1).isdigit():
        text = f"{text.strip()} h"
    try:
        ms = units.duration_ms(text, key)
    except InputError:
        raise InputError(key, written, expected) from None
    if ms % 1000 or not 60_000 <= ms <= DAY_MS:
        raise InputError(key, written, expected)
    return ms // 1000


def _bolus_hard(pb: PatientBolus, pb_table: dict, drug, max_daily: int, w: str) -> None:
    k = f"{w}patient_bolus."
    u = drug.unit
    if pb.dose_ng > max_daily:
        raise InputError(k + "dose", pb_table["dose"],
                         f"a dose within limits.max_daily_dose ({fmt.mass(max_daily, u)})")
    lim = drug.patient_bolus
    if pb.dose_ng > lim.hard:
        raise InputError(k + "dose", pb_table["dose"],
                         f"at most the library's hard limit for one {drug.name} patient bolus, "
                         f"{fmt.mass(lim.hard, u)} ({druglib.cite(lim.hard_source)})")
    n = drug.patient_boluses_per_day
    if pb.max_per_day > n.hard:
        raise InputError(k + "max_per_day", pb.max_per_day,
                         f"at most the library's hard limit of {n.hard} {drug.name} patient "
                         f"boluses a day ({druglib.cite(n.hard_source)})")


def _warnings(drug, conc: int, max_daily: int, basal: int, pb: PatientBolus | None) -> list[str]:
    u = drug.unit

    def m(ng):
        return fmt.mass(ng, u)

    out = []
    if conc > drug.concentration.soft:
        out.append(f"{drug.name} at {m(conc)}/mL is above the library's soft limit of "
                   f"{m(drug.concentration.soft)}/mL ({druglib.cite(drug.concentration.soft_source)})")
    if max_daily > drug.daily.soft:
        out.append(f"a maximum daily dose of {m(max_daily)} is above the library's soft limit of "
                   f"{m(drug.daily.soft)} a day for {drug.name} "
                   f"({druglib.cite(drug.daily.soft_source)})")
    if basal > drug.daily.soft:
        out.append(f"the basal schedule gives {m(basal)} a day, above the library's soft limit "
                   f"of {m(drug.daily.soft)} for {drug.name}")
    if pb is None:
        return out
    if pb.dose_ng > drug.patient_bolus.soft:
        out.append(f"a patient bolus of {m(pb.dose_ng)} is above the library's soft limit of "
                   f"{m(drug.patient_bolus.soft)} for {drug.name} "
                   f"({druglib.cite(drug.patient_bolus.soft_source)})")
    if pb.max_per_day > drug.patient_boluses_per_day.soft:
        out.append(f"{pb.max_per_day} patient boluses a day is above the library's soft limit of "
                   f"{drug.patient_boluses_per_day.soft} for {drug.name}")
    most = basal + pb.dose_ng * pb.max_per_day
    if most > max_daily:
        out.append(f"the basal ({m(basal)} a day) and {pb.max_per_day} patient boluses of "
                   f"{m(pb.dose_ng)} add up to {m(most)}, above limits.max_daily_dose "
                   f"({m(max_daily)}): the pump refuses the boluses that would break it")
    return out


def _mass(ng: int) -> str:
    return fmt.mass(ng)


def load_prescription(path) -> Prescription:
    return parse_prescription(read_toml(path), path=path)


def read_toml(path) -> dict:
    p = Path(path)
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InputError("(file)", p.name, f"valid TOML ({e})", path) from None
