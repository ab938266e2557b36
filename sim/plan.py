"""Turn a parsed scenario into the plan the engine runs (plain integers, JSON-serialisable)."""

from __future__ import annotations

from firmware.rx import ng_to_nl
from host_tools.errors import InputError

# The actions this simulator runs today. The fault actions (occlusion, motor_stall, sensor_fault,
# battery, set_clock, ack) are parsed but arrive with the safety interlocks.
SUPPORTED = ("patient_bolus", "clinician_bolus", "refill", "reboot", "power_loss")


def build_plan(scenario, start_ticks: int = 0, trace: bool = False) -> dict:
    rx = scenario.prescription
    params = rx.to_firmware()
    conc = params["conc_ng_ml"]
    events = []
    for i, ev in enumerate(scenario.events):
        key = f"event[{i}].do"
        if ev.action not in SUPPORTED:
            raise InputError(key, ev.action,
                             "one of the actions this simulator supports yet: " + ", ".join(SUPPORTED),
                             path=scenario.path)
        args: dict = {}
        if ev.action == "clinician_bolus":
            args["dose_nl"] = ng_to_nl(ev.args["dose_ng"], conc)
            args["duration_ms"] = ev.args.get("duration_ms", 0)
        elif ev.action == "refill":
            for extra in ("concentration_ng_per_ml", "residual_nl"):
                if extra in ev.args:
                    name = extra.split("_")[0]
                    raise InputError(f"event[{i}].{name}", "(given)",
                                     "no concentration or residual yet: refills with them arrive "
                                     "with the safety interlocks", path=scenario.path)
            args["volume_nl"] = ev.args["volume_nl"]
        elif ev.action == "power_loss":
            args["for_ms"] = ev.args["for_ms"]
        events.append([ev.at_ms, ev.action, args])
    return {
        "duration_ms": scenario.duration_ms,
        "start_tod_ms": scenario.start_tod_ms,
        "start_ticks": start_ticks,
        "reservoir_nl": scenario.reservoir_nl,
        "seed": scenario.seed,
        "tolerance_ppm": scenario.plant.stroke_tolerance_ppm,
        "rx": params,
        "events": events,
        "trace": trace,
    }
