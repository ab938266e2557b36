"""pumpsim: run the pump in virtual time.

  pumpsim run SCENARIO.toml [--runtime cpython|micropython] [--json] [--report DIR]
  pumpsim accuracy PRESCRIPTION.toml [--duration T] [--tolerance P] [--plot FILE] [--json]
  pumpsim fleet SCENARIO.toml --pumps N [--workers K] [--engine local|dask] [--json]
  pumpsim board ... / pumpsim inject ...   (the virtual Pico: sim/board.py)

Exit status: 0 the run finished and every [expect] check passed; 1 an expectation failed (each
failure is named; for a fleet: a pump broke its daily cap or failed its checks); 2 the file is
invalid or the firmware refused its prescription (nothing ran); 3 the simulated runtime itself
failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction

from firmware.rx import RxError
from host_tools import fmt
from host_tools.errors import InputError
from host_tools.scenario import load_scenario
from sim import expect, mass
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
    run.add_argument("--report", metavar="DIR",
                     help="also write plots (PNG), an HTML page and a JUnit XML file of the "
                          "[expect] checks into DIR (see docs/reports.md)")

    acc = sub.add_parser(
        "accuracy", help="the IEC 60601-2-24 trumpet curve of a prescription",
        description="Run a prescription on the simulated pump, sample the delivered volume "
                    "every 30 s and compute the trumpet curve of IEC 60601-2-24 (windows of 2, "
                    "5, 11, 19, 31 min, 1 h, 6 h, 24 h), once with an exact mechanism (what the "
                    "controller contributes: quantisation, at most one stroke) and once with the "
                    "stroke-volume tolerance (what the mechanism adds). Prints the table and "
                    "writes the plot.")
    acc.add_argument("prescription", metavar="PRESCRIPTION.toml")
    acc.add_argument("--duration", default="3 d",
                     help="length of the run (default 3 d; the analysis starts after 1 h)")
    acc.add_argument("--tolerance", default="2 %",
                     help="stroke-volume tolerance of the second run (default 2 %%)")
    acc.add_argument("--seed", type=int, default=1, help="seed of the mechanism's variation")
    acc.add_argument("--plot", metavar="FILE",
                     help="where to write the plot (default build/accuracy/NAME-trumpet.png)")
    acc.add_argument("--json", action="store_true", help="print one JSON object instead")

    fl = sub.add_parser(
        "fleet", help="run many pumps that differ by seed and summarise them",
        description="Run N copies of a scenario, each pump with its own seed: stroke-volume "
                    "tolerance, sensor noise, random faults and patient bolus habits as the "
                    "scenario's [fleet] table says (docs/reports.md). Prints the distribution "
                    "of dose error, alarms per pump-year, time to an occlusion alarm and cap "
                    "violations. Exit 1 if any pump broke its daily cap.")
    fl.add_argument("scenario", metavar="SCENARIO.toml")
    fl.add_argument("--pumps", type=int, required=True, help="how many pumps")
    fl.add_argument("--workers", type=int, default=None,
                    help="processes (local) or tasks at once; default: one per core")
    fl.add_argument("--engine", choices=("local", "dask"), default="local",
                    help="local processes (default) or Dask (its local scheduler, or the "
                         "cluster at --dask-scheduler)")
    fl.add_argument("--dask-scheduler", metavar="ADDRESS",
                    help="with --engine dask: a running Dask scheduler, e.g. tcp://host:8786 "
                         "(docs/reports.md shows how to start one)")
    fl.add_argument("--duration", help="override the scenario's duration, e.g. \"30 d\"")
    fl.add_argument("--json", action="store_true", help="print one JSON object instead")
    fl.add_argument("--no-progress", action="store_true", help="no progress bar")

    # The virtual Pico lives in sim/board.py; these two only hand their arguments over.
    for name, text in (("board", "boot a virtual Pico on a pseudo-terminal"),
                       ("inject", "act on a running virtual board through its harness channel")):
        b = sub.add_parser(name, help=text, description=text, add_help=False)
        b.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _limits_lines(scn, s: dict) -> list[str]:
    """The daily cap in force over time, each beside the highest 24 h delivered under it."""
    u = scn.prescription.unit
    out = []
    for i, p in enumerate(s["limit_periods"]):
        high = fmt.mass(p["max_rolling_24h_ng"], u)
        cap = fmt.mass(p["max_daily_ng"], u)
        head = "Limits     " if i == 0 else "           "
        out.append(f"{head}from {fmt.span(p['t_s'])}: at most {cap} in 24 h "
                   f"({fmt.vol(p['cap_nl'])} at {fmt.conc(p['conc_ng_ml'], u)}); "
                   f"highest 24 h under it {high}")
    return out


def _delivered_lines(scn, s: dict) -> list[str]:
    u = scn.prescription.unit
    segs = mass.segments(s)
    total = sum((g["delivered_ng"] for g in segs), Fraction(0))
    ideal = sum((g["ideal_ng"] for g in segs), Fraction(0))
    lines = [f"Delivered  {fmt.vol(s['delivered_nl'])} ({fmt.mass(total, u)}) in "
             f"{s['strokes']} strokes of {s['stroke_nl']} nL; the prescription asked for "
             f"{fmt.vol(s['ideal_nl'])} ({fmt.mass(ideal, u)})"]
    if len(segs) > 1:
        parts = [f"{fmt.vol(g['delivered_nl'])} at {fmt.conc(g['conc_ng_ml'], u)} "
                 f"({fmt.mass(g['delivered_ng'], u)}) from {fmt.span(g['t_s'])}" for g in segs]
        lines.append("           by concentration: " + "; ".join(parts))
    return lines


def _human(scn, result: dict) -> str:
    rx = scn.prescription
    u = rx.unit
    s = result
    pb = s["patient_boluses"]
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(pb["denied_by_reason"].items()))
    conc0 = s["concentrations"][0]["conc_ng_ml"]
    steps = f"{len(rx.steps)} step{'s' if len(rx.steps) > 1 else ''}"
    lines = [
        f"Scenario   {scn.path} ({fmt.span(scn.duration_ms // 1000)} from "
        f"{fmt.hhmm(scn.start_tod_ms // 60000)}, seed {scn.seed}) on the {s['board']} board, "
        f"{s['runtime']}, in {s['wall_s']:.2f} s",
        f"Drug       {rx.drug} at {fmt.conc(conc0, u)}; basal "
        f"{fmt.mass_rate(rx.daily_basal_ng(), u)} in {steps}"
        + (f"; {len(s['limit_periods']) - 1} change(s) of prescription or concentration, "
           "see Limits" if len(s["limit_periods"]) > 1 else ""),
        *_delivered_lines(scn, s),
        f"Accuracy   largest gap to the prescription {s['max_abs_error_nl']} nL "
        f"(one stroke is {s['stroke_nl']} nL)",
        *_limits_lines(scn, s),
        f"Boluses    patient: {pb['requested']} asked, {pb['delivered']} given, {pb['denied']} "
        f"refused{' (' + reasons + ')' if reasons else ''}",
        "Alarms     " + (", ".join(f"{a['code']} ({a['priority']}) at {fmt.span(a['t_s'])}"
                                   for a in s["alarms"]) or "none"),
    ]
    for r in s["refused"]:
        lines.append(f"Refused    {r['action']} at {fmt.span(r['t_s'])}: {r['reason']} "
                     f"({_reason_text(r['reason'])})")
    lines.append(f"Reservoir  {fmt.vol(s['reservoir_nl'])} left by the pump's account "
                 f"({fmt.vol(s['plant_reservoir_nl'])} really)")
    for w in rx.warnings:
        lines.append(f"Warning    {w}")
    checks = s["expect"]
    if checks:
        bad = [c for c in checks if not c["ok"]]
        lines.append(f"Expect     {len(checks) - len(bad)} of {len(checks)} checks passed")
        for c in bad:
            lines.append(f"  FAILED   {c['name']}: {c['detail']}")
    return "\n".join(lines)


def _reason_text(name: str) -> str:
    from firmware import codes

    if name == "no_power":
        return "the pump was off"
    if name == "not_active":
        return "no such alarm was active"
    for code, n in codes.REASON_NAMES.items():
        if n == name:
            return codes.REASON_TEXT.get(code, name)
    return name


def run_scenario(path, runtime: str = "cpython", trace: bool = False, report_dir=None):
    """Load, run and check one scenario: (exit code, scenario, result, human summary or the
    error message). With report_dir, also write its report there (sim/report.py)."""
    try:
        scn = load_scenario(path)
        plan = build_plan(scn, trace=trace)
    except InputError as e:
        return 2, None, None, f"pumpsim: {e}"
    except OSError as e:
        return 2, None, None, f"pumpsim: cannot read {path}: {e.strerror}"
    if report_dir is not None:
        from sim.report import sample_ms_for

        plan["sample_ms"] = sample_ms_for(scn.duration_ms)
    started = time.perf_counter()
    try:
        summary, trace_rows = run_plan(plan, runtime)
    except RxError as e:
        return 2, None, None, f"pumpsim: the firmware refused the prescription: {e}"
    except RuntimeFailure as e:
        return 3, None, None, f"pumpsim: {e}"
    sampled = summary.pop("series", None)
    result = {"runtime": runtime, **summary}
    result["wall_s"] = round(time.perf_counter() - started, 3)
    result["expect"] = expect.check(scn.expect, summary)
    result["expect_ok"] = all(c["ok"] for c in result["expect"])
    result["warnings"] = list(scn.prescription.warnings)
    text = _human(scn, result)
    if report_dir is not None:
        from sim.report import write_report

        write_report(report_dir, scn, result, sampled, text)
    if trace_rows is not None:
        result["trace"] = trace_rows
    return (0 if result["expect_ok"] else 1), scn, result, text


def cmd_run(args) -> int:
    code, scn, result, text = run_scenario(args.scenario, args.runtime, args.trace, args.report)
    if scn is None:
        print(text, file=sys.stderr)
        return code
    if args.json:
        print(json.dumps(result))
    else:
        print(text)
        if args.report:
            print(f"Report     {args.report}/index.html")
    return code


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # board and inject take their arguments as they are (sim/board.py parses them).
    if argv and argv[0] in ("board", "inject"):
        from sim import board

        rest = argv[1:]
        return board.main_board(rest) if argv[0] == "board" else board.main_inject(rest)
    args = _parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "accuracy":
        from sim import accuracy

        return accuracy.cmd_accuracy(args)
    if args.command == "fleet":
        from sim import fleet

        return fleet.cmd_fleet(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
