"""pumpsim: run the pump in virtual time.

  pumpsim run SCENARIO.toml [--runtime cpython|micropython] [--json] [--report DIR]
  pumpsim accuracy PRESCRIPTION.toml [--duration T] [--tolerance P] [--plot FILE] [--json]
  pumpsim fleet SCENARIO.toml --pumps N [--workers K] [--engine local|dask] [--json]
  pumpsim board ... / pumpsim inject ...   (the virtual Pico: sim/board.py; the emulated
                                           one, --runtime rp2: sim/rp2board.py)

Exit status: 0 the run finished and every [expect] check passed; 1 an expectation failed (each
failure is named; for a fleet: a pump broke its daily cap or failed its checks); 2 the file is
invalid or the firmware refused its prescription (nothing ran); 3 the simulated runtime itself
failed.
"""

from __future__ import annotations

import argparse
import json
import sys

from sim import summary
from sim.runner import RUNTIMES


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


def run_scenario(path, runtime: str = "cpython", trace: bool = False, report_dir=None):
    """Load, run and check one scenario: (exit code, scenario, result, human summary or the
    error message). With report_dir, also write its report there (sim/report.py)."""
    if report_dir is None:
        return summary.run_scenario(path, runtime, trace)
    from sim import report   # matplotlib: only when a report is asked for

    def write(scn, result, sampled, text):
        report.write_report(report_dir, scn, result, sampled, text)

    return summary.run_scenario(path, runtime, trace, report.sample_ms_for, write)


def _board_runtime(argv: list[str]) -> str | None:
    """The --runtime that `pumpsim board` was given (sim/board.py's parser checks it)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--runtime")
    return p.parse_known_args(argv)[0].runtime


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
    # board and inject take their arguments as they are (sim/board.py parses them). The
    # emulated Pico builds on the virtual board (sim/rp2board.py imports sim/board.py), so the
    # choice between them is made here, above both.
    if argv and argv[0] in ("board", "inject"):
        rest = argv[1:]
        if argv[0] == "board" and _board_runtime(rest) == "rp2":
            from sim import rp2board

            return rp2board.main_board(rest)
        from sim import board

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
