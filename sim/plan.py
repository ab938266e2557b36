"""Turn a parsed scenario into the plan the engine runs (plain integers, JSON-serialisable)."""

from __future__ import annotations

from firmware.rx import ng_to_nl
from host_tools.errors import InputError
from host_tools.scenario import ACTIONS
from host_tools.stability import fill_stability


def _stable_s(drug: str, conc: int, first: bool, given_ms: int | None) -> int:
    """A fill's stability in s: as the scenario gives it, else from the drug library."""
    ms = given_ms if given_ms is not None else fill_stability(drug, conc, first)[0]
    return ms // 1000


def build_plan(scenario, start_ticks: int = 0, trace: bool = False) -> dict:
    rx = scenario.prescription
    params = rx.to_firmware()
    conc = params["conc_ng_ml"]
    events = []
    for i, ev in enumerate(scenario.events):
        if ev.action not in ACTIONS:  # the parser already refuses these; belt and braces
            raise InputError(f"event[{i}].do", ev.action, "a known action", path=scenario.path)
        args: dict = {}
        if ev.action == "clinician_bolus":
            args["dose_nl"] = ng_to_nl(ev.args["dose_ng"], conc)
            args["duration_ms"] = ev.args.get("duration_ms", 0)
        elif ev.action == "refill":
            args["volume_nl"] = ev.args["volume_nl"]
            if "concentration_ng_per_ml" in ev.args:
                conc = ev.args["concentration_ng_per_ml"]  # later doses convert at the new one
                args["conc_ng_ml"] = conc
            if "residual_nl" in ev.args:
                args["residual_nl"] = ev.args["residual_nl"]
            args["stable_s"] = _stable_s(rx.drug, conc, False, ev.args.get("stable_ms"))
        elif ev.action == "power_loss":
            args["for_ms"] = ev.args["for_ms"]
        elif ev.action == "program":
            new = ev.args["prescription"].to_firmware()
            if new["conc_ng_ml"] != conc:
                if ev.args["concentration_given"]:
                    raise InputError(f"event[{i}].prescription.concentration",
                                     new["conc_ng_ml"], f"the concentration in the reservoir "
                                     f"({conc} ng/mL): a new one comes with a refill",
                                     path=scenario.path)
                new["conc_ng_ml"] = conc  # the drug in the reservoir since the last refill
            args["rx"] = new
            if "assume_ng" in ev.args:
                args["assume_ng"] = ev.args["assume_ng"]
        else:
            args = dict(ev.args)
        events.append([ev.at_ms, ev.action, args])
    return {
        "duration_ms": scenario.duration_ms,
        "start_tod_ms": scenario.start_tod_ms,
        "start_ticks": start_ticks,
        "reservoir_nl": scenario.reservoir_nl,
        # the starting reservoir is the pump's first fill
        "fill_stable_s": _stable_s(rx.drug, params["conc_ng_ml"], True, None),
        "seed": scenario.seed,
        "tolerance_ppm": scenario.plant.stroke_tolerance_ppm,
        "pressure_noise_pa": scenario.plant.pressure_noise_pa,
        "rx": params,
        "events": events,
        "trace": trace,
    }
