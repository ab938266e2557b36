"""`pumpsim accuracy PRESCRIPTION.toml`: the IEC 60601-2-24 trumpet curve of a prescription.

The prescription runs twice on the simulated pump from the same seed, with no events:
  - "exact": every stroke moves exactly its nominal volume. Any error left is the controller's
    own: delivery in whole strokes (quantisation), which can never be more than one stroke in
    any window: the "1 stroke" column is that bound in percent of the window's ideal volume.
  - "tolerance": each stroke's volume varies by up to --tolerance (the plant's
    stroke_tolerance). The difference between the two runs is what the mechanism adds.

The delivered volume and the ideal are sampled every 30 s (the standard's S = 0.5 min) by the
engine itself (plan["sample_ms"]); the trumpet computation is sim/trumpet.py.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

from boards import virtual
from firmware.rx import RxError
from host_tools import units
from host_tools.errors import InputError
from host_tools.prescription import load_prescription
from host_tools.scenario import Plant, Scenario
from sim.engine import rate_nl_day
from sim.plan import build_plan
from sim.runner import run_plan
from sim.trumpet import DEFAULT_SAMPLE_MS, DEFAULT_START_MS, DEFAULT_WINDOWS_MIN, trumpet

DAY_MS = 86_400_000


def run_sampled(rx, duration_ms: int, tolerance_ppm: int, seed: int,
                sample_ms: int = DEFAULT_SAMPLE_MS, path=None) -> dict:
    """Run a prescription alone (no events) and return its summary with the sampled series."""
    scn = Scenario(duration_ms, 0, virtual.RESERVOIR_NL, seed, rx, Plant(tolerance_ppm, 0), (),
                   {}, path)
    plan = build_plan(scn)
    plan["sample_ms"] = sample_ms
    summary, _ = run_plan(plan, "cpython")
    return summary


def trumpet_of(summary: dict, windows_min=DEFAULT_WINDOWS_MIN,
               start_ms: int = DEFAULT_START_MS) -> dict:
    """The trumpet analysis of a sampled run (its samples stand in for the balance readings)."""
    series = summary["series"]
    cols = series["columns"]
    rows = series["rows"]
    it, idl, ifr, idel = (cols.index(c) for c in ("t_ms", "ideal_nl", "ideal_frac",
                                                   "delivered_nl"))
    sample_ms = series["sample_ms"]
    times = [r[it] for r in rows]
    # The volume each sample adds, placed at the sample's time: trumpet() rebuilds exactly the
    # sampled cumulative curve from it.
    volumes = [rows[0][idel]] + [rows[k][idel] - rows[k - 1][idel] for k in range(1, len(rows))]
    ideal = [Fraction(r[idl] * DAY_MS + r[ifr], DAY_MS) for r in rows]
    duration = times[-1]
    return trumpet(times, volumes, duration, ideal, sample_ms=sample_ms, start_ms=start_ms,
                   windows_min=windows_min)


def stroke_bound_pct(windows_min, stroke_nl: int, min_rate_nl_day: int) -> dict:
    """One stroke as a percentage of the smallest ideal volume a window can hold (the basal
    schedule's slowest step over the whole window): the most that quantisation alone can
    move a window's error, either way."""
    return {p: 100 * stroke_nl * 1440 / (min_rate_nl_day * p) for p in windows_min}


def _pct(v):
    return "-" if v is None else f"{v:+.3f}"


def format_table(exact: dict, tol: dict, bound: dict, tolerance_text: str) -> str:
    head = ("window", "exact: Ep(max) %", "Ep(min) %", f"±{tolerance_text}: Ep(max) %",
            "Ep(min) %", "1 stroke %")
    rows = []
    for we, wt in zip(exact["windows"], tol["windows"]):
        p = we["window_min"]
        label = f"{p} min" if p < 60 else f"{p // 60} h"
        b = bound[p]
        rows.append((label, _pct(we["max_pct"]), _pct(we["min_pct"]), _pct(wt["max_pct"]),
                     _pct(wt["min_pct"]), "-" if b is None else f"{b:.3f}"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(widths[i]) for i, h in enumerate(head))]
    lines += ["  ".join(c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.append(f"overall error A: exact {_pct(exact['overall_pct'])} %, "
                 f"±{tolerance_text} {_pct(tol['overall_pct'])} %")
    return "\n".join(lines)


def plot_trumpet(exact: dict, tol: dict, bound: dict, tolerance_text: str, title: str,
                 path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    for res, colour, name in ((exact, "#2471a3", "exact mechanism (controller only)"),
                              (tol, "#d35400", f"stroke tolerance ±{tolerance_text}")):
        ws = [w for w in res["windows"] if w["n_windows"]]
        x = [w["window_min"] for w in ws]
        ax.plot(x, [w["max_pct"] for w in ws], "o-", color=colour, label=f"{name}: Ep(max)")
        ax.plot(x, [w["min_pct"] for w in ws], "s--", color=colour, label=f"{name}: Ep(min)")
        if res["overall_pct"] is not None:
            ax.axhline(res["overall_pct"], color=colour, lw=0.8, ls=":")
    bx = [p for p, b in bound.items() if b is not None]
    if bx:
        ax.fill_between(bx, [-bound[p] for p in bx], [bound[p] for p in bx], color="#aab7b8",
                        alpha=0.3, label="± one stroke (the controller's quantisation)")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xscale("log")
    ax.set_xticks(bx, [f"{p}" if p < 60 else f"{p // 60} h" for p in bx])
    ax.set_xlabel("observation window P (minutes; hours marked h)")
    ax.set_ylabel("flow error (%)")
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)


def analyse(path, duration_ms: int, tolerance_ppm: int, seed: int) -> dict:
    rx = load_prescription(path)
    exact = run_sampled(rx, duration_ms, 0, seed, path=str(path))
    tol = run_sampled(rx, duration_ms, tolerance_ppm, seed, path=str(path))
    te, tt = trumpet_of(exact), trumpet_of(tol)
    conc = rx.concentration_ng_per_ml
    slowest = min(rate_nl_day(s.rate_ng_per_day, conc) for s in rx.steps)
    return {"prescription": str(path), "drug": rx.drug, "duration_s": duration_ms // 1000,
            "stroke_nl": exact["stroke_nl"], "tolerance_ppm": tolerance_ppm, "seed": seed,
            "alarms": [a["code"] for a in exact["alarms"] + tol["alarms"]],
            "exact": te, "tolerance": tt, "stroke_bound_pct": stroke_bound_pct([w["window_min"] for w in te["windows"]],
                                                 exact["stroke_nl"], slowest)}


def cmd_accuracy(args) -> int:
    try:
        duration = units.duration_ms(args.duration, "--duration")
        if duration < DEFAULT_START_MS + 2 * 60_000:
            raise InputError("--duration", args.duration, "more than 1 h 2 min (the analysis "
                             "starts after the first hour)")
        tol = units.percent_ppm(args.tolerance, "--tolerance")
        out = analyse(args.prescription, duration, tol, args.seed)
    except InputError as e:
        print(f"pumpsim: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"pumpsim: cannot read {args.prescription}: {e.strerror}", file=sys.stderr)
        return 2
    except RxError as e:
        print(f"pumpsim: the firmware refused the prescription: {e}", file=sys.stderr)
        return 2
    bound = out["stroke_bound_pct"]
    if args.plot is None:
        args.plot = str(Path("build") / "accuracy" / f"{Path(args.prescription).stem}-trumpet.png")
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    plot_trumpet(out["exact"], out["tolerance"], bound, args.tolerance,
                 f"Trumpet curve (IEC 60601-2-24 method): {Path(args.prescription).name}",
                 args.plot)
    out["plot"] = str(args.plot)
    if args.json:
        out["stroke_bound_pct"] = {str(k): v for k, v in bound.items()}
        print(json.dumps(out))
        return 0
    e = out["exact"]
    print(f"Trumpet curve of {args.prescription} ({out['drug']}): {args.duration} sampled every "
          f"{e['sample_s']:g} s, analysis from {e['start_s'] / 3600:g} h to "
          f"{e['end_s'] / 3600:g} h; stroke {out['stroke_nl']} nL")
    print(format_table(e, out["tolerance"], bound, args.tolerance))
    if out["alarms"]:
        print(f"Warning: alarms during the runs ({', '.join(sorted(set(out['alarms'])))}): "
              "the figures include the time without delivery")
    print(f"Plot: {args.plot}")
    return 0
