"""pumpsim: run the pump in virtual time.

  pumpsim run SCENARIO.toml [--runtime cpython|micropython] [--json]

Exit status: 0 the run finished and every [expect] check passed; 1 an expectation failed (each
failure is named); 2 the scenario file is invalid or the firmware refused its prescription
(nothing ran); 3 the simulated runtime itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from firmware.rx import RxError
from host_tools.errors import InputError
from host_tools.scenario import load_scenario
from sim import expect
from sim.plan import build_plan
from sim.runner import RUNTIMES, RuntimeFailure, run_plan


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pumpsim",
        description="Simulate the intrathecal pump in virtual time: the firmware's timing core "
                    "drives a simulated mechanism and reservoir, on CPython or inside the real "
                    "MicroPython VM.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run", help="run a scenario file and summarise it",
        description="Run a scenario (TOML, see INTERFACES.md and examples/) and print what was "
                    "delivered, how close it was to the prescription, boluses and alarms. "
                    "Exit 1 if an [expect] check fails, 2 if the file is invalid.",
    )
    run.add_argument("scenario", metavar="SCENARIO.toml")
    run.add_argument("--runtime", choices=RUNTIMES, default="cpython",
                     help="where the firmware code runs (default: cpython)")
    run.add_argument("--json", action="store_true", help="print one JSON object instead")
    run.add_argument("--trace", action="store_true",
                     help="with --json, include every event and stroke (large)")
    return p


def _ml(nl: int) -> str:
    return f"{nl / 1e6:.4f} mL"


def _mass(nl: int, conc_ng_ml: int) -> str:
    mg = nl * conc_ng_ml / 1e12
    return f"{mg:.4g} mg" if mg >= 0.1 else f"{mg * 1000:.4g} mcg"


def _duration(ms: int) -> str:
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m else "",
             f"{s} s" if s else ""]
    return " ".join(x for x in parts if x) or "0 s"


def _human(scn, result: dict) -> str:
    rx = scn.prescription
    conc = rx.concentration_ng_per_ml
    s = result
    pb = s["patient_boluses"]
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(pb["denied_by_reason"].items()))
    lines = [
        f"Scenario   {scn.path} ({_duration(scn.duration_ms)} from "
        f"{scn.start_tod_ms // 3600000:02d}:{scn.start_tod_ms // 60000 % 60:02d}, "
        f"seed {scn.seed}) on {s['runtime']} in {s['wall_s']:.2f} s",
        f"Drug       {rx.drug} at {_mass(1000000, conc)}/mL; basal "
        f"{_mass(rx.daily_basal_ng() * 1000000 // conc, conc)}/day in {len(rx.steps)} "
        f"step{'s' if len(rx.steps) > 1 else ''}; at most {_mass(rx.max_daily_ng * 1000000 // conc, conc)} in 24 h",
        f"Delivered  {_ml(s['delivered_nl'])} ({_mass(s['delivered_nl'], conc)}) in "
        f"{s['strokes']} strokes of {s['stroke_nl']} nL; the prescription asked for "
        f"{_ml(s['ideal_nl'])}",
        f"Accuracy   largest gap to the prescription {s['max_abs_error_nl']} nL "
        f"(one stroke is {s['stroke_nl']} nL)",
        f"Last 24 h  at most {_ml(s['max_rolling_24h_nl'])} "
        f"({_mass(s['max_rolling_24h_nl'], conc)}) in any 24 h",
        f"Boluses    patient: {pb['requested']} asked, {pb['delivered']} given, {pb['denied']} "
        f"refused{' (' + reasons + ')' if reasons else ''}",
        "Alarms     " + (", ".join(f"{a['code']} ({a['priority']}) at {_duration(a['t_s'] * 1000)}"
                                   for a in s["alarms"]) or "none"),
        f"Reservoir  {_ml(s['reservoir_nl'])} left by the pump's account "
        f"({_ml(s['plant_reservoir_nl'])} really)",
    ]
    for w in rx.warnings:
        lines.append(f"Warning    {w}")
    checks = s["expect"]
    if checks:
        bad = [c for c in checks if not c["ok"]]
        lines.append(f"Expect     {len(checks) - len(bad)} of {len(checks)} checks passed")
        for c in bad:
            lines.append(f"  FAILED   {c['name']}: {c['detail']}")
    return "\n".join(lines)


def cmd_run(args) -> int:
    try:
        scn = load_scenario(args.scenario)
        plan = build_plan(scn, trace=args.trace)
    except InputError as e:
        print(f"pumpsim: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"pumpsim: cannot read {args.scenario}: {e.strerror}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        summary, trace = run_plan(plan, args.runtime)
    except RxError as e:
        print(f"pumpsim: the firmware refused the prescription: {e}", file=sys.stderr)
        return 2
    except RuntimeFailure as e:
        print(f"pumpsim: {e}", file=sys.stderr)
        return 3
    result = {"runtime": args.runtime, **summary}
    result["wall_s"] = round(time.perf_counter() - started, 3)
    result["expect"] = expect.check(scn.expect, summary)
    result["expect_ok"] = all(c["ok"] for c in result["expect"])
    result["warnings"] = list(scn.prescription.warnings)
    if trace is not None:
        result["trace"] = trace
    if args.json:
        print(json.dumps(result))
    else:
        print(_human(scn, result))
    return 0 if result["expect_ok"] else 1


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
