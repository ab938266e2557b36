"""The simulator's figures, recorded: every example and library scenario on both runtimes, their
sampled series (what reports and the accuracy method read), and some pumps of the standard fleet.

A change that only makes the simulator faster must leave every figure here exactly as it was:
delivered and ideal volumes, the largest error, the rolling 24 h, alarm times, the trace hash.

    python tests/sim/golden.py check [--quick]   # compare with tests/sim/golden.json
    python tests/sim/golden.py record            # write it anew (say why in the commit)
    python tests/sim/golden.py record --new      # add only scenarios it lacks, keep the rest

`check` runs everything (about a minute on a quiet machine); `--quick` only CPython, which is
what tests/sim/test_golden.py runs in `make test` (the runtimes' agreement is the business of
test_runtimes.py and test_scenarios.py). A change meant to alter behaviour (a firmware fix, a
new plant) records the file again and says in its commit which figures moved and why.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOLDEN = Path(__file__).with_name("golden.json")
RUNTIMES = ("cpython", "micropython")
FLEET = "examples/fleet/standard.toml"
FLEET_PUMPS = 6          # a year each: occlusions, stalls and power losses among them
ACCURACY_RX = "examples/prescriptions/morphine_flex.toml"


def scenarios() -> list[str]:
    paths = sorted(ROOT.glob("examples/*.toml")) + sorted(ROOT.glob("examples/scenarios/*.toml"))
    return [str(p.relative_to(ROOT)) for p in paths]


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


# The figures kept in the clear (the rest of the output is in its digest).
KEY_FIGURES = ("trace_hash", "strokes", "delivered_nl", "ideal_nl", "max_abs_error_nl",
               "max_abs_error_commanded_nl", "max_rolling_24h_nl", "alarms", "occlusions",
               "patient_boluses", "reservoir_nl", "plant_reservoir_nl", "missed_strokes",
               "flash_saves", "plant_pressure_kpa")


def run_figures(path: str, runtime: str) -> dict:
    """What `pumpsim run PATH --json --runtime RUNTIME` prints (less the wall time and the
    runtime's name): the key figures, and a digest of all of it."""
    from sim.cli import run_scenario

    _, _, result, text = run_scenario(ROOT / path, runtime)
    if result is None:
        raise SystemExit(f"golden: {path} on {runtime}: {text}")
    del result["wall_s"], result["runtime"]
    out = {k: result[k] for k in KEY_FIGURES}
    out["all"] = _digest(result)
    return out


def sampled_figures(path: str, runtime: str) -> dict:
    """The series a report of the run plots (`pumpsim run --report`), as a digest."""
    from host_tools.scenario import load_scenario
    from sim.plan import build_plan
    from sim.report import sample_ms_for
    from sim.runner import run_plan

    scn = load_scenario(ROOT / path)
    plan = build_plan(scn)
    plan["sample_ms"] = sample_ms_for(scn.duration_ms)
    summary, _ = run_plan(plan, runtime)
    series = summary.pop("series")
    return {"summary": _digest(summary), "series": _digest(series),
            "samples": len(series["rows"])}


def fleet_figures(pumps: int = FLEET_PUMPS) -> list[dict]:
    from sim.fleet import run_pump

    return [run_pump(str(ROOT / FLEET), i) for i in range(pumps)]


def accuracy_figures() -> dict:
    from sim.accuracy import analyse

    out = json.loads(json.dumps(analyse(ROOT / ACCURACY_RX, 86_400_000, 20_000, 1)))
    out["prescription"] = ACCURACY_RX   # not where this checkout happens to be
    return out


def collect(runtimes=RUNTIMES, fleet: bool = True) -> dict:
    out: dict = {"runs": {}, "sampled": {}}
    for path in scenarios():
        out["runs"][path] = {rt: run_figures(path, rt) for rt in runtimes}
        out["sampled"][path] = {rt: sampled_figures(path, rt) for rt in runtimes}
    if fleet:
        out["fleet"] = fleet_figures()
        out["accuracy"] = accuracy_figures()
    return out


def differences(want, got, where: str = "") -> list[str]:
    """Every place where got differs from want, as 'path: want -> got'."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in sorted(set(want) | set(got), key=str):
            if k not in got:
                out.append(f"{where}/{k}: missing")
            elif k not in want:
                out.append(f"{where}/{k}: new")
            else:
                out.extend(differences(want[k], got[k], f"{where}/{k}"))
        return out
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        out = []
        for i, (a, b) in enumerate(zip(want, got)):
            out.extend(differences(a, b, f"{where}[{i}]"))
        return out
    if want != got or type(want) is not type(got):
        return [f"{where}: {str(want)[:200]} -> {str(got)[:200]}"]
    return []


def load() -> dict:
    return json.loads(GOLDEN.read_text())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "record"):
        print(__doc__)
        return 2
    if argv[0] == "record" and "--new" in argv:
        # only the scenarios the record lacks: every recorded figure stays as it was
        want = load()
        new = [p for p in scenarios() if p not in want["runs"]]
        for path in new:
            want["runs"][path] = {rt: run_figures(path, rt) for rt in RUNTIMES}
            want["sampled"][path] = {rt: sampled_figures(path, rt) for rt in RUNTIMES}
        GOLDEN.write_text(json.dumps(want, sort_keys=True, indent=1) + "\n")
        print(f"recorded {len(new)} new: " + (", ".join(new) or "none"))
        return 0
    if argv[0] == "record":
        GOLDEN.write_text(json.dumps(collect(), sort_keys=True, indent=1) + "\n")
        print(f"wrote {GOLDEN.relative_to(ROOT)}")
        return 0
    quick = "--quick" in argv
    want = load()
    got = collect(("cpython",) if quick else RUNTIMES, fleet=not quick)
    if quick:
        for group in ("runs", "sampled"):
            for path in want[group]:
                want[group][path] = {"cpython": want[group][path]["cpython"]}
        want.pop("fleet")
        want.pop("accuracy")
    diff = differences(want, got)
    for line in diff:
        print(line)
    print("golden: " + ("all figures as recorded" if not diff else f"{len(diff)} differences"))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
