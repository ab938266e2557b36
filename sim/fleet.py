"""`pumpsim fleet SCENARIO.toml --pumps N`: many simulated pumps, each a little different.

Pump i runs the scenario with its own seed and its own draws from the scenario's [fleet] table
(stroke-volume tolerance, pressure-sensor noise, random occlusions, motor stalls and power
losses at given rates, how often its patient asks for a bolus; docs/reports.md). Everything a
pump does follows from (scenario, i) alone: the same fleet gives the same figures on one worker,
on many, or on a Dask cluster.

Engines (--engine):
  local  a pool of local processes (concurrent.futures), one per core by default;
  dask   dask.delayed tasks: on Dask's local process scheduler, or, with --dask-scheduler
         ADDRESS, on a running Dask cluster (`distributed`, pinned in requirements.lock; every
         worker needs this project installed, e.g. the same virtual environment; see
         docs/reports.md). Nothing else changes.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import sys
import time
from functools import lru_cache

from firmware.rx import RxError
from host_tools import units
from host_tools.errors import InputError
from host_tools.scenario import load_scenario
from sim.plan import build_plan
from sim.runner import run_plan

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS


@lru_cache(maxsize=4)
def _scenario(path: str):
    return load_scenario(path)


def _poisson_times(rng: random.Random, per_year: float, duration_ms: int) -> list[int]:
    """Event times of a Poisson process with per_year events a year on average."""
    out = []
    if per_year <= 0:
        return out
    mean_gap = YEAR_MS / per_year
    t = rng.expovariate(1.0) * mean_gap
    while t < duration_ms:
        out.append(int(t))
        t += rng.expovariate(1.0) * mean_gap
    return out


def pump_plan(scn, index: int, duration_ms: int | None = None) -> tuple[dict, dict]:
    """The plan of pump `index` and what was drawn for it. Deterministic in (scn, index)."""
    fleet = scn.fleet
    rng = random.Random(f"{scn.seed}/{index}")  # str seeds are stable across processes
    plan = build_plan(scn)
    if duration_ms is not None:
        plan["duration_ms"] = duration_ms
        plan["events"] = [e for e in plan["events"] if e[0] <= duration_ms]
    end = plan["duration_ms"]
    plan["seed"] = (scn.seed * 1_000_003 + index) % 2_147_483_647
    drawn = {}
    if "stroke_tolerance" in fleet:
        lo, hi = fleet["stroke_tolerance"]
        plan["tolerance_ppm"] = rng.randint(lo, hi)
    if "pressure_noise" in fleet:
        lo, hi = fleet["pressure_noise"]
        plan["pressure_noise_pa"] = rng.randint(lo, hi)
    drawn["tolerance_ppm"] = plan["tolerance_ppm"]
    drawn["pressure_noise_pa"] = plan["pressure_noise_pa"]
    extra = []
    lo, hi = fleet.get("patient_boluses_per_day", (0.0, 0.0))
    per_day = rng.uniform(lo, hi)
    drawn["patient_boluses_per_day"] = round(per_day, 3)
    for t in _poisson_times(rng, per_day * 365, end):
        extra.append([t, "patient_bolus", {}])
    faults = (("occlusions_per_year", "occlusion_lasts", ["occlusion"], ["clear_occlusion"]),
              ("motor_stalls_per_year", "motor_stall_lasts", ["motor_stall"],
               ["clear_motor_stall", "resume"]),
              ("power_losses_per_year", "power_loss_lasts", [], []))
    for rate_key, lasts_key, start, stop in faults:
        lasts = fleet.get(lasts_key, 0)
        times = _poisson_times(rng, fleet.get(rate_key, 0.0), end)
        drawn[rate_key.replace("_per_year", "")] = len(times)
        for t in times:
            if rate_key == "power_losses_per_year":
                extra.append([t, "power_loss", {"for_ms": lasts}])
                continue
            for a in start:
                extra.append([t, a, {}])
            for k, a in enumerate(stop):  # fixed after `lasts`; a stall needs the resume too
                if t + lasts + k * 60_000 <= end:
                    extra.append([t + lasts + k * 60_000, a, {}])
    if extra:
        # Stable: the scenario's own events first at equal times, then the drawn ones in order.
        plan["events"] = sorted(plan["events"] + extra, key=lambda e: e[0])
    return plan, drawn


def _cap_nl(plan: dict) -> int:
    """The highest daily cap in nL any prescription of the run allows (initial and programmed,
    at the concentration of each)."""
    caps = [plan["rx"]["max_daily_ng"] * 1_000_000 // plan["rx"]["conc_ng_ml"]]
    conc = plan["rx"]["conc_ng_ml"]
    for _, action, args in plan["events"]:
        if action == "refill" and "conc_ng_ml" in args:
            conc = args["conc_ng_ml"]
            caps.append(plan["rx"]["max_daily_ng"] * 1_000_000 // conc)
        elif action == "program":
            caps.append(args["rx"]["max_daily_ng"] * 1_000_000 // args["rx"]["conc_ng_ml"])
    return max(caps)


def run_pump(path: str, index: int, duration_ms: int | None = None) -> dict:
    """Run pump `index` of the fleet of scenario `path`; its key figures (plain JSON types)."""
    scn = _scenario(str(path))
    plan, drawn = pump_plan(scn, index, duration_ms)
    s, _ = run_plan(plan, "cpython")
    cap = _cap_nl(plan)
    # The guard counts strokes; the plant's strokes may each be up to the tolerance larger, so
    # the truth may exceed the cap by that much without any extra stroke.
    allowed = cap + cap * plan["tolerance_ppm"] // 1_000_000
    ideal = s["ideal_nl"]
    return {
        "pump": index,
        "seed": plan["seed"],
        "drawn": drawn,
        "years": plan["duration_ms"] / YEAR_MS,
        "delivered_nl": s["delivered_nl"],
        "ideal_nl": ideal,
        "dose_error_pct": 100 * (s["delivered_nl"] - ideal) / ideal if ideal else 0.0,
        "max_abs_error_nl": s["max_abs_error_nl"],
        "alarms": len(s["alarms"]),
        "alarm_codes": sorted({a["code"] for a in s["alarms"]}),
        "occlusion_alarm_s": [o["time_to_alarm_s"] for o in s["occlusions"]
                              if o["time_to_alarm_s"] >= 0],
        "occlusions_missed": sum(1 for o in s["occlusions"] if o["time_to_alarm_s"] < 0),
        "max_rolling_24h_nl": s["max_rolling_24h_nl"],
        "cap_nl": cap,
        "cap_violation": s["max_rolling_24h_nl"] > allowed,
        "patient_boluses": s["patient_boluses"],
        "strokes": s["strokes"],
    }


# ---- engines ----------------------------------------------------------------------------------

def _bar(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="pump", disable=not show, file=sys.stderr, dynamic_ncols=True)


def run_local(path: str, pumps: int, workers: int, duration_ms=None, progress=True) -> list:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: dict[int, dict] = {}
    with _bar(pumps, progress) as bar:
        if workers <= 1:
            for i in range(pumps):
                results[i] = run_pump(path, i, duration_ms)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(run_pump, path, i, duration_ms): i for i in range(pumps)}
                for f in as_completed(futures):
                    results[futures[f]] = f.result()
                    bar.update(1)
    return [results[i] for i in range(pumps)]


def run_dask(path: str, pumps: int, workers: int, duration_ms=None, progress=True,
             scheduler_address: str | None = None) -> list:
    """The same tasks on Dask: its local process scheduler, or a cluster's scheduler."""
    if scheduler_address:
        from distributed import Client, as_completed  # only for a cluster

        client = Client(scheduler_address)
        try:
            futures = client.map(run_pump, [path] * pumps, range(pumps),
                                 [duration_ms] * pumps, pure=False)
            with _bar(pumps, progress) as bar:
                for _ in as_completed(futures):
                    bar.update(1)
            return [f.result() for f in futures]
        finally:
            client.close()
    from dask.base import compute
    from dask.callbacks import Callback
    from dask.delayed import delayed

    class _Progress(Callback):
        def __init__(self, bar):
            super().__init__()
            self.bar = bar

        def _posttask(self, key, result, dsk, state, worker_id):
            self.bar.update(1)

    tasks = [delayed(run_pump, pure=True)(path, i, duration_ms) for i in range(pumps)]
    with _bar(pumps, progress) as bar, _Progress(bar):
        return list(compute(*tasks, scheduler="processes", num_workers=workers))


# ---- figures ----------------------------------------------------------------------------------

def _dist(values: list) -> dict | None:
    if not values:
        return None
    v = sorted(values)
    n = len(v)

    def q(p):  # nearest rank
        return v[min(n - 1, max(0, math.ceil(p * n) - 1))]

    return {"n": n, "min": v[0], "p5": q(0.05), "median": q(0.5), "mean": statistics.fmean(v),
            "p95": q(0.95), "max": v[-1]}


def figures(results: list) -> dict:
    years = sum(r["years"] for r in results)
    return {
        "pumps": len(results),
        "pump_years": years,
        "dose_error_pct": _dist([r["dose_error_pct"] for r in results]),
        "max_abs_error_nl": _dist([r["max_abs_error_nl"] for r in results]),
        "alarms_per_pump_year": _dist([r["alarms"] / r["years"] for r in results]),
        "occlusion_time_to_alarm_s": _dist([t for r in results for t in r["occlusion_alarm_s"]]),
        "occlusions_without_alarm": sum(r["occlusions_missed"] for r in results),
        "cap_violations": sum(1 for r in results if r["cap_violation"]),
        "alarm_codes": {c: sum(1 for r in results if c in r["alarm_codes"])
                        for c in sorted({c for r in results for c in r["alarm_codes"]})},
        "patient_boluses": {k: sum(r["patient_boluses"][k] for r in results)
                            for k in ("requested", "delivered", "denied")},
        "strokes": sum(r["strokes"] for r in results),
    }


def format_figures(f: dict, wall_s: float) -> str:
    def row(name, d, fmt):
        if d is None:
            return f"  {name:30} (none)"
        return (f"  {name:30} " + "  ".join(f"{k} {fmt(d[k])}" for k in
                                          ("min", "p5", "median", "p95", "max"))
                + f"  (n={d['n']})")

    lines = [
        f"Fleet      {f['pumps']} pumps, {f['pump_years']:.2f} pump-years, {f['strokes']} "
        f"strokes in {wall_s:.1f} s",
        "Figures    distribution over pumps (nearest-rank percentiles)",
        row("dose error (%)", f["dose_error_pct"], lambda v: f"{v:+.4f}"),
        row("largest gap to ideal (nL)", f["max_abs_error_nl"], lambda v: f"{v:.0f}"),
        row("alarms per pump-year", f["alarms_per_pump_year"], lambda v: f"{v:.2f}"),
        row("time to occlusion alarm (s)", f["occlusion_time_to_alarm_s"],
            lambda v: f"{v:.0f}"),
        f"  {'occlusions without an alarm':30} {f['occlusions_without_alarm']}",
        f"  {'pumps that raised each alarm':30} "
        + (", ".join(f"{k}: {v}" for k, v in f["alarm_codes"].items()) or "none"),
        f"  {'patient boluses':30} " + ", ".join(f"{k} {v}" for k, v in
                                                f["patient_boluses"].items()),
        f"Cap        {f['cap_violations']} pumps broke their daily cap"
        + (" (must be zero)" if f["cap_violations"] else ""),
    ]
    return "\n".join(lines)


def cmd_fleet(args) -> int:
    try:
        if args.pumps < 1:
            raise InputError("--pumps", args.pumps, "at least 1")
        duration = (units.duration_ms(args.duration, "--duration")
                    if args.duration is not None else None)
        if duration is not None and duration <= 0:
            raise InputError("--duration", args.duration, "a duration above zero")
        scn = _scenario(str(args.scenario))
        pump_plan(scn, 0, duration)  # refuse a bad file before starting any worker
    except InputError as e:
        print(f"pumpsim: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"pumpsim: cannot read {args.scenario}: {e.strerror}", file=sys.stderr)
        return 2
    workers = args.workers or os.cpu_count() or 1
    started = time.perf_counter()
    try:
        if args.engine == "dask":
            results = run_dask(str(args.scenario), args.pumps, workers, duration,
                               not args.no_progress, args.dask_scheduler)
        else:
            results = run_local(str(args.scenario), args.pumps, workers, duration,
                                not args.no_progress)
    except RxError as e:
        print(f"pumpsim: the firmware refused the prescription: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - started
    f = figures(results)
    if args.json:
        print(json.dumps({"scenario": str(args.scenario), "engine": args.engine,
                          "workers": workers, "wall_s": round(wall, 3), "figures": f,
                          "pumps": results}))
    else:
        print(format_figures(f, wall))
    return 1 if f["cap_violations"] else 0
