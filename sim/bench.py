"""make bench: time the simulator on the reference scenarios and print one table.

Each figure is the wall time of the real command (`pumpsim run SCENARIO --json`) in a fresh
process, best of --repeat runs, so start-up is included as a user would see it. Record the
output in docs/benchmarks.md with the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["examples/baclofen_year.toml", "examples/flex_week.toml"]


def time_run(scenario: str, runtime: str, repeat: int) -> tuple[float, dict]:
    best, result = float("inf"), {}
    pumpsim = [sys.executable, "-m", "sim.cli"]
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run([*pumpsim, "run", scenario, "--json", "--runtime", runtime],
                              capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
        if proc.returncode not in (0, 1):
            raise SystemExit(f"bench: {scenario} on {runtime} failed:\n{proc.stderr}")
        best, result = min(best, wall), json.loads(proc.stdout)
    return best, result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.bench", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    p.add_argument("scenarios", nargs="*", default=SCENARIOS)
    args = p.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}")
    print(f"{'scenario':32} {'runtime':12} {'strokes':>9} {'wall s':>8} {'us/stroke':>10} "
          f"{'max err nL':>10} {'stroke nL':>9}")
    for scenario in args.scenarios:
        for runtime in ("cpython", "micropython"):
            wall, r = time_run(scenario, runtime, args.repeat)
            print(f"{Path(scenario).name:32} {runtime:12} {r['strokes']:>9} {wall:>8.2f} "
                  f"{wall / max(r['strokes'], 1) * 1e6:>10.2f} {r['max_abs_error_nl']:>10} "
                  f"{r['stroke_nl']:>9}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
