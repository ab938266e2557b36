"""Scenario files for `pumpsim run` (TOML, INTERFACES.md).

Additions to the format:
- an event may repeat, `every = "1 d"` (with an optional `until = "30 d"`, default the end of
  the run), so a year of daily boluses is one table;
- `do = "program"` reprograms the pump mid-run with a `prescription` table: keys it gives
  (drug, concentration, basal, patient_bolus, limits) replace the same keys of the scenario's
  [prescription], the others are kept. It is checked like any prescription file. A change of
  concentration comes only with a refill (`refill` with `concentration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware import codes
from host_tools import druglib, fmt, plausible, units
from host_tools.errors import InputError
from host_tools.prescription import Prescription, parse_prescription, read_toml

# every alarm the firmware can raise, in its code order (firmware/codes.py)
ALARM_CODES = tuple(dict.fromkeys(codes.ALARM_NAMES[c] for c in sorted(codes.ALARM_NAMES)))
MAX_DURATION_MS = 3660 * 86_400_000
BOARDS = ("virtual", "pico", "implant")


def _choice(options):
    def parse(text, key):
        if text not in options:
            raise InputError(key, text, "one of " + ", ".join(f'"{o}"' for o in options))
        return text
    return parse


def _celsius(value, key):
    """A temperature in whole degrees Celsius: 80, "80" or "80 degC" (-40 to 150)."""
    text = str(value).strip()
    for unit in ("degC", "°C", "C"):
        if text.endswith(unit):
            text = text[:-len(unit)].strip()
            break
    try:
        c = int(text)
    except ValueError:
        raise InputError(key, value, "whole degrees Celsius, such as \"80 degC\"") from None
    if not -40 <= c <= 150:
        raise InputError(key, value, "a temperature from -40 to 150 degC")
    return c


def _small_int(hi):
    def parse(value, key):
        if isinstance(value, bool) or not str(value).isdigit() or int(value) > hi:
            raise InputError(key, value, f"a whole number from 0 to {hi}")
        return int(value)
    return parse


def _flag(value, key):
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):  # as `pumpsim inject` passes it (KEY=VALUE text)
        return value == "true"
    raise InputError(key, value, "true or false")


def _positive_duration(text, key):
    ms = units.duration_ms(text, key)
    if ms <= 0:
        raise InputError(key, text, "a duration above zero")
    return ms


# action -> {key in the file: (name in Event.args, parser, required)}
ACTIONS = {
    "patient_bolus": {},
    "clinician_bolus": {"dose": ("dose_ng", units.mass_ng, True),
                        "duration": ("duration_ms", units.duration_ms, False)},
    "refill": {"volume": ("volume_nl", units.volume_nl, True),
               "concentration": ("concentration_ng_per_ml", units.concentration_ng_per_ml, False),
               "residual": ("residual_nl", units.volume_nl, False),
               # how long this fill stays usable (default: the drug library's stability table)
               "stable_for": ("stable_ms", _positive_duration, False)},
    "occlusion": {"severity": ("severity", _choice(("full", "partial")), False)},
    "clear_occlusion": {},
    "motor_stall": {"partway": ("partway", _flag, False)},  # partway: the next stroke stalls
                                                            # half way (an uncertain stroke)
    "clear_motor_stall": {},
    "sensor_fault": {"sensor": ("sensor", _choice(("pressure", "battery")), True),
                     "mode": ("mode", _choice(("stuck", "out_of_range", "noisy", "ok")), True)},
    "battery": {"level": ("level_ppm", units.percent_ppm, True)},
    "power_loss": {"for": ("for_ms", _positive_duration, True)},
    "reboot": {},
    "set_clock": {"shift": ("shift_ms", lambda t, k: units.duration_ms(t, k, True), True)},
    "ack": {"alarm": ("alarm", _choice(ALARM_CODES), True)},
    # beyond INTERFACES.md: stop and resume delivery (resume also clears a latched fault that
    # was fixed), a hung control loop (the watchdog resets the board)
    "stop": {"for": ("for_ms", _positive_duration, False)},  # for: resumes by itself after it
    "resume": {},
    "hang": {},
    # the chip's own parts, for the self-test and its periodic checks (docs/alarms.md): the
    # motor driver's DRV_STATUS (otpw: the pre-warning; ot: shutdown; short; open: an open
    # coil; silent: no answer on its UART; ok: healthy again), the RP2040's die temperature,
    # a stuck bit in the RAM region kept for the memory test (on = false repairs it)
    "driver": {"fault": ("fault", _choice(("ok", "otpw", "ot", "short", "open", "silent")),
                         True)},
    "die_temperature": {"celsius": ("celsius", _celsius, True)},
    "memory_fault": {"on": ("on", _flag, False), "cell": ("cell", _small_int(65535), False),
                     "bit": ("bit", _small_int(15), False)},
    "corrupt_flash": {},         # every stored state record is damaged: seen at the next boot
    "flash_failing": {"on": ("on", _flag, False)},  # state saves fail (on = false: they work)
    # a new prescription mid-run (parsed by _program, not by a parser here); assume_24h states
    # what a lost dose account is taken to hold (after memory_error; default the new basal)
    "program": {"prescription": ("prescription", None, True),
                "assume_24h": ("assume_ng", units.mass_ng, False)},
}
RX_KEYS = ("drug", "concentration", "basal", "patient_bolus", "limits", "source", "titration",
           "catheter")


@dataclass(frozen=True)
class Plant:
    stroke_tolerance_ppm: int = 0
    pressure_noise_pa: int = 0


@dataclass(frozen=True)
class Event:
    at_ms: int
    action: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    duration_ms: int
    start_tod_ms: int
    reservoir_nl: int
    seed: int
    prescription: Prescription
    plant: Plant
    events: tuple[Event, ...]
    expect: dict
    path: str | None = None
    fleet: dict = field(default_factory=dict)   # the [fleet] table, parsed (see _fleet)
    board: str = "virtual"                      # the board whose numbers the run uses


def _known(table: dict, allowed, where: str) -> None:
    for k in table:
        if k not in allowed:
            raise InputError(f"{where}{k}", table[k], "one of the keys " + ", ".join(allowed))


def _program(table, base: dict, key: str) -> dict:
    """A program event's prescription: its keys over the scenario's [prescription]."""
    if not isinstance(table, dict):
        raise InputError(key, table, "a prescription table, e.g. { basal = { rate = \"3 mg/day\" } }")
    _known(table, RX_KEYS, f"{key}.")
    merged = dict(base)
    merged.update(table)
    return {"prescription": parse_prescription(merged, where=f"{key}."),
            "concentration_given": "concentration" in table}


def _events(items, duration: int, base_rx: dict | None = None) -> list[Event]:
    if not isinstance(items, list):
        raise InputError("event", items, "[[event]] tables")
    out: list[tuple[int, int, Event]] = []
    for i, ev in enumerate(items):
        k = f"event[{i}]"
        if not isinstance(ev, dict):
            raise InputError(k, ev, "an [[event]] table")
        action = ev.get("do")
        if action not in ACTIONS:
            raise InputError(f"{k}.do", action if action is not None else "(missing)",
                             "one of the actions " + ", ".join(ACTIONS))
        spec = ACTIONS[action]
        _known(ev, ("at", "do", "every", "until", *spec), f"{k}.")
        if "at" not in ev:
            raise InputError(f"{k}.at", "(missing)", "an offset from the start, such as \"1 d 2 h\"")
        at = units.duration_ms(ev["at"], f"{k}.at")
        if at > duration:
            raise InputError(f"{k}.at", ev["at"], "a time within the scenario's duration")
        args = {}
        if action == "program":
            if "prescription" not in ev:
                raise InputError(f"{k}.prescription", "(missing)",
                                 "a prescription table: program needs prescription")
            args = _program(ev["prescription"], base_rx or {}, f"{k}.prescription")
            spec = {"assume_24h": spec["assume_24h"]}
        for name, (arg, parse, required) in spec.items():
            if name in ev:
                args[arg] = parse(ev[name], f"{k}.{name}")
            elif required:
                raise InputError(f"{k}.{name}", "(missing)", f"a value: {action} needs {name}")
        times = [at]
        if "every" in ev:
            every = _positive_duration(ev["every"], f"{k}.every")
            until = units.duration_ms(ev["until"], f"{k}.until") if "until" in ev else duration
            times = range(at, min(until, duration) + 1, every)
        elif "until" in ev:
            raise InputError(f"{k}.until", ev["until"], "until only together with every")
        out.extend((t, i, Event(t, action, dict(args))) for t in times)
    out.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in out]


def _expect(table: dict) -> dict:
    volumes = {"delivered_min": "delivered_min_nl", "delivered_max": "delivered_max_nl",
               "max_abs_error_max": "max_abs_error_max_nl",
               "max_rolling_24h_max": "max_rolling_24h_max_nl", "reservoir_min": "reservoir_min_nl"}
    counts = ("patient_boluses_delivered", "patient_boluses_denied")
    _known(table, ("alarms", "refused", *volumes, *counts), "expect.")
    out: dict = {}
    if "alarms" in table:
        alarms = table["alarms"]
        if not isinstance(alarms, list):
            raise InputError("expect.alarms", alarms, "a list of alarm codes")
        for a in alarms:
            _choice(ALARM_CODES)(a, "expect.alarms")
        out["alarms"] = list(alarms)
    if "refused" in table:
        refused = table["refused"]
        if not isinstance(refused, list):
            raise InputError("expect.refused", refused, "a list of actions the firmware is "
                             'expected to refuse, e.g. ["clinician_bolus"]')
        for a in refused:
            _choice(tuple(ACTIONS))(a, "expect.refused")
        out["refused"] = list(refused)
    for k, name in volumes.items():
        if k in table:
            out[name] = units.volume_nl(table[k], f"expect.{k}")
    for k in counts:
        if k in table:
            if type(table[k]) is not int or table[k] < 0:
                raise InputError(f"expect.{k}", table[k], "a whole number, 0 or more")
            out[k] = table[k]
    return out


def _range(value, key, parse):
    """One value or [low, high] -> (low, high), each parsed."""
    if isinstance(value, list):
        if len(value) != 2:
            raise InputError(key, value, "one value or a [low, high] pair")
        lo, hi = parse(value[0], f"{key}[0]"), parse(value[1], f"{key}[1]")
        if hi < lo:
            raise InputError(key, value, "a [low, high] pair with low <= high")
        return lo, hi
    v = parse(value, key)
    return v, v


def _count(value, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InputError(key, value, "a number, 0 or more")
    return float(value)


# [fleet] key -> (parser of one value, is a [low, high] range, default)
FLEET_KEYS = {
    "stroke_tolerance": (units.percent_ppm, True, None),
    "pressure_noise": (units.pressure_pa, True, None),
    "patient_boluses_per_day": (_count, True, (0.0, 0.0)),
    "occlusions_per_year": (_count, False, 0.0),
    "occlusion_lasts": (_positive_duration, False, 6 * 3_600_000),
    "motor_stalls_per_year": (_count, False, 0.0),
    "motor_stall_lasts": (_positive_duration, False, 12 * 3_600_000),
    "power_losses_per_year": (_count, False, 0.0),
    "power_loss_lasts": (_positive_duration, False, 10 * 60_000),
}


def _fleet(table) -> dict:
    """The [fleet] table: how the pumps of `pumpsim fleet` differ (docs/reports.md). Ranges
    are drawn per pump, uniformly; rates are the mean of a Poisson process per pump."""
    if not isinstance(table, dict):
        raise InputError("fleet", table, "a [fleet] table")
    _known(table, tuple(FLEET_KEYS), "fleet.")
    out = {}
    for key, (parse, ranged, default) in FLEET_KEYS.items():
        if key in table:
            out[key] = (_range(table[key], f"fleet.{key}", parse) if ranged
                        else parse(table[key], f"fleet.{key}"))
        elif default is not None:
            out[key] = default
    tol = out.get("stroke_tolerance")
    if tol is not None and tol[1] > 200_000:
        raise InputError("fleet.stroke_tolerance", table["stroke_tolerance"], "at most 20 %")
    return out


def parse_scenario(table: dict, path=None) -> Scenario:
    try:
        return _parse(table, path)
    except InputError as e:
        raise e.located(path) if path is not None and e.path is None else e


def _parse(table: dict, path) -> Scenario:
    _known(table, ("scenario", "prescription", "plant", "event", "expect", "fleet"), "")
    s = table.get("scenario")
    if not isinstance(s, dict):
        raise InputError("scenario", s if s is not None else "(missing)", "a [scenario] table")
    _known(s, ("duration", "start", "reservoir", "seed", "board"), "scenario.")
    for need in ("duration", "reservoir"):
        if need not in s:
            raise InputError(f"scenario.{need}", "(missing)", f"a {need}")
    duration = units.duration_ms(s["duration"], "scenario.duration")
    if not 0 < duration <= MAX_DURATION_MS:
        raise InputError("scenario.duration", s["duration"], "a duration from 1 ms to 3660 d")
    start = units.time_of_day_ms(s.get("start", "00:00"), "scenario.start")
    reservoir = units.volume_nl(s["reservoir"], "scenario.reservoir")
    board = _choice(BOARDS)(s.get("board", "virtual"), "scenario.board")
    seed = s.get("seed", 0)
    if type(seed) is not int or seed < 0:
        raise InputError("scenario.seed", seed, "a whole number, 0 or more")
    if not isinstance(table.get("prescription"), dict):
        raise InputError("prescription", table.get("prescription", "(missing)"),
                         "a [prescription] table")
    rx = parse_prescription(table["prescription"], where="prescription.")
    p = table.get("plant", {})
    if not isinstance(p, dict):
        raise InputError("plant", p, "a [plant] table")
    _known(p, ("stroke_tolerance", "pressure_noise"), "plant.")
    tol = units.percent_ppm(p.get("stroke_tolerance", "0 %"), "plant.stroke_tolerance")
    if tol > 200_000:
        raise InputError("plant.stroke_tolerance", p["stroke_tolerance"], "at most 20 %")
    plant = Plant(tol, units.pressure_pa(p.get("pressure_noise", "0 kPa"), "plant.pressure_noise"))
    events = _events(table.get("event", []), duration, table["prescription"])
    expect_table = table.get("expect", {})
    if not isinstance(expect_table, dict):
        raise InputError("expect", expect_table, "an [expect] table")
    _bolus_limits(events, rx)
    _fills(events, rx)
    return Scenario(duration, start, reservoir, seed, rx, plant, tuple(events),
                    _expect(expect_table), str(path) if path is not None else None,
                    _fleet(table.get("fleet", {})), board)


def _bolus_limits(events, rx: Prescription) -> None:
    """A clinician bolus above the drug library's hard limit is refused like a prescription."""
    lim = druglib.get(rx.drug).clinician_bolus
    for i, ev in enumerate(events):
        if ev.action == "clinician_bolus" and ev.args["dose_ng"] > lim.hard:
            raise InputError(f"event at {fmt.span(ev.at_ms // 1000)}: clinician_bolus.dose",
                             fmt.mass(ev.args["dose_ng"], rx.unit),
                             f"at most the library's hard limit for one {rx.drug} clinician "
                             f"bolus, {fmt.mass(lim.hard, rx.unit)} "
                             f"({druglib.cite(lim.hard_source)})")


def _fills(events, rx: Prescription) -> None:
    """A refill's new concentration, and the basal at it, pass the guards a prescription file
    passes (host_tools/plausible.py): a unit slip in a refill is refused as in a file, and so is
    a basal whose volume the new fill makes implausible (a program that keeps the fill's
    concentration is checked at that concentration)."""
    drug = druglib.get(rx.drug)
    conc, basal = rx.concentration_ng_per_ml, rx.daily_basal_ng()
    for ev in events:
        where = f"event at {fmt.span(ev.at_ms // 1000)}"
        if ev.action == "program":
            new = ev.args["prescription"]
            drug, basal = druglib.get(new.drug), new.daily_basal_ng()
            if ev.args["concentration_given"]:
                conc = new.concentration_ng_per_ml
            plausible.basal_volume(drug, conc, basal, f"{where}: program.prescription.basal")
        elif ev.action == "refill" and "concentration_ng_per_ml" in ev.args:
            conc = ev.args["concentration_ng_per_ml"]
            key = f"{where}: refill.concentration"
            plausible.concentration(drug, conc, key, fmt.conc(conc, drug.unit))
            plausible.basal_volume(drug, conc, basal, key)


def load_scenario(path) -> Scenario:
    return parse_scenario(read_toml(path), path=path)
