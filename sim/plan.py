"""Turn a parsed scenario into the plan the engine runs (plain integers, JSON-serialisable).

The plan carries the chosen board's constants (`[scenario] board`, boards/<name>.py), and the
scenario is checked against that board before anything runs: a reservoir it cannot hold, a
refill above it, or a prescription the firmware would refuse on it (rates, strokes, the motor)
is an InputError naming the key and the board's limit (pumpsim exits 2).
"""

from __future__ import annotations

import math

from firmware.rx import Rx, RxError, ng_to_nl
from host_tools import fmt
from host_tools.boardlimits import board_data, board_limits
from host_tools.errors import InputError
from host_tools.scenario import ACTIONS
from host_tools.stability import fill_stability


def _stable_s(drug: str, conc: int, first: bool, given_ms: int | None) -> int:
    """A fill's stability in s: as the scenario gives it, else from the drug library."""
    ms = given_ms if given_ms is not None else fill_stability(drug, conc, first)[0]
    return ms // 1000


def _fits(params: dict, limits, key: str, path) -> None:
    """The firmware's own prescription check, on this board's numbers."""
    try:
        Rx(params, limits)
    except RxError as e:
        raise InputError(key, e.key, f"a prescription the {limits.name} board accepts: "
                         f"{e.message} (board: {limits.describe()})", path=path) from None


def _volume(nl: int, key: str, limits, path) -> None:
    if nl > limits.reservoir_nl:
        raise InputError(key, fmt.vol(nl), f"at most the {limits.name} board's reservoir, "
                         f"{fmt.vol(limits.reservoir_nl)}", path=path)


def build_plan(scenario, start_ticks: int = 0, trace: bool = False) -> dict:
    rx = scenario.prescription
    limits = board_limits(scenario.board)
    path = scenario.path
    params = rx.to_firmware()
    _volume(scenario.reservoir_nl, "scenario.reservoir", limits, path)
    _fits(params, limits, "prescription", path)
    conc = params["conc_ng_ml"]
    current = params
    events = []
    for i, ev in enumerate(scenario.events):
        if ev.action not in ACTIONS:  # the parser already refuses these; belt and braces
            raise InputError(f"event[{i}].do", ev.action, "a known action", path=path)
        args: dict = {}
        where = f"event at {fmt.span(ev.at_ms // 1000)} ({ev.action})"
        if ev.action == "clinician_bolus":
            args["dose_nl"] = ng_to_nl(ev.args["dose_ng"], conc)
            args["duration_ms"] = ev.args.get("duration_ms", 0)
        elif ev.action == "refill":
            args["volume_nl"] = ev.args["volume_nl"]
            _volume(args["volume_nl"], f"{where}.volume", limits, path)
            if "concentration_ng_per_ml" in ev.args:
                conc = ev.args["concentration_ng_per_ml"]  # later doses convert at the new one
                args["conc_ng_ml"] = conc
                current = {**current, "conc_ng_ml": conc}
                _fits(current, limits, f"{where}.concentration", path)
            if "residual_nl" in ev.args:
                args["residual_nl"] = ev.args["residual_nl"]
                _volume(args["residual_nl"], f"{where}.residual", limits, path)
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
                                     path=path)
                new["conc_ng_ml"] = conc  # the drug in the reservoir since the last refill
            _fits(new, limits, f"{where}.prescription", path)
            current = new
            args["rx"] = new
            if "assume_ng" in ev.args:
                args["assume_ng"] = ev.args["assume_ng"]
        else:
            args = dict(ev.args)
        events.append([ev.at_ms, ev.action, args])
    concs = [params["conc_ng_ml"]] + [e[2]["conc_ng_ml"] for e in events
                                      if e[1] == "refill" and "conc_ng_ml" in e[2]]
    return {
        "conc_unit": math.gcd(*concs),
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
        "board": board_data(scenario.board),
    }
