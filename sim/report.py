"""Reports of simulated runs that a person reads: plots, one HTML page, a JUnit file.

`pumpsim run SCENARIO --report DIR` writes, for one run:

  DIR/index.html      the run's summary, its [expect] checks and the plots below
  DIR/cumulative.png  delivered volume against the ideal, and the gap between them
  DIR/rate.png        delivery rate over time, basal steps, boluses asked, given and refused
  DIR/reservoir.png   reservoir volume, the low-reservoir and empty levels, refills
  DIR/pressure.png    catheter outlet pressure and the occlusion threshold
  DIR/alarms.png      which alarm was active when, and when delivery was stopped
  DIR/junit.xml       one test case per [expect] check (sim/junit.py)
  DIR/summary.json    the run's summary as `pumpsim run --json` prints it

`python -m sim.report OUT SCENARIO...` (what `make sim` runs) writes one such directory per
scenario under OUT and an OUT/index.html that lists them. The plots come from the engine's
sampled series (plan["sample_ms"], see SERIES_COLUMNS in sim/engine.py), which the engine takes
without changing the run: a report shows exactly the run that `pumpsim run` would have made.

Host-side only (CPython, matplotlib's Agg renderer; no display needed).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from matplotlib.figure import Figure

from firmware import codes
from host_tools import fmt
from host_tools.boardlimits import board_limits
from sim import mass
from sim.junit import write_junit
from sim.summary import run_scenario

DAY_MS = 86_400_000
PLOTS = ("cumulative", "rate", "reservoir", "pressure", "alarms")
MAX_SAMPLES = 4000
CRITICAL_COLOUR = "#c0392b"
WARNING_COLOUR = "#e67e22"


def sample_ms_for(duration_ms: int) -> int:
    """A sampling interval for a run's plots: at most about MAX_SAMPLES samples, a whole
    number of seconds, at least one second."""
    s = -(-duration_ms // (MAX_SAMPLES * 1000))
    return max(1, s) * 1000


class Series:
    """The sampled series of a run as columns of floats in the units the plots show."""

    def __init__(self, sampled: dict, duration_ms: int):
        cols = sampled["columns"]
        rows = sampled["rows"]
        self.sample_ms = sampled["sample_ms"]
        self.events = sampled["events"]
        self.actions = sampled["actions"]
        self.hours = duration_ms <= 3 * DAY_MS
        self.unit_ms = 3_600_000 if self.hours else DAY_MS
        self.xlabel = "time from start (h)" if self.hours else "time from start (days)"

        def col(name):
            i = cols.index(name)
            return [r[i] for r in rows]

        self.raw = {name: col(name) for name in cols}
        self.t = [v / self.unit_ms for v in self.raw["t_ms"]]
        self.delivered_ml = [v / 1e6 for v in self.raw["delivered_nl"]]
        self.ideal_nl = [n + f / DAY_MS for n, f in zip(self.raw["ideal_nl"],
                                                        self.raw["ideal_frac"])]
        self.ideal_ml = [v / 1e6 for v in self.ideal_nl]

    def x(self, t_ms: int) -> float:
        return t_ms / self.unit_ms


# ---- plots ---------------------------------------------------------------------------------

def _figure(title: str, s: Series, height: float = 3.6):
    fig = Figure(figsize=(10, height), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel(s.xlabel)
    ax.grid(True, alpha=0.3)
    if s.t:
        ax.set_xlim(0, s.t[-1] if s.t[-1] > 0 else 1)
    return fig, ax


def plot_cumulative(s: Series, stroke_nl: int, path: Path) -> None:
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.set_title("Cumulative volume: what reached the patient against the prescription",
                  loc="left", fontsize=11)
    top.plot(s.t, s.ideal_ml, color="#7f8c8d", lw=2.5, alpha=0.6, label="ideal (prescription)")
    top.plot(s.t, s.delivered_ml, color="#2471a3", lw=1, label="delivered (plant truth)")
    top.set_ylabel("volume (mL)")
    top.legend(loc="upper left")
    top.grid(True, alpha=0.3)
    gap = [(d - i) / 1000 for d, i in zip(s.raw["delivered_nl"], s.ideal_nl)]
    bottom.plot(s.t, gap, color="#2471a3", lw=0.8, drawstyle="steps-post")
    for y in (stroke_nl / 1000, -stroke_nl / 1000):
        bottom.axhline(y, color="#7f8c8d", ls="--", lw=0.8)
    bottom.text(0.005, 0.95, f"dashed: one stroke ({stroke_nl} nL) either way", fontsize=8,
                transform=bottom.transAxes, va="top")
    bottom.set_ylabel("delivered − ideal (µL)")
    bottom.set_xlabel(s.xlabel)
    bottom.grid(True, alpha=0.3)
    if s.t:
        bottom.set_xlim(0, s.t[-1] if s.t[-1] > 0 else 1)
    fig.savefig(path, dpi=90)


def _smoothed_rate(s: Series, stroke_nl: int):
    """Delivered rate (mL/day) over windows of k samples: strokes are discrete, so one sample
    alone is either empty or a stroke. A window holds about 1/150 of the run and at least
    about 20 strokes, so it reads as a rate."""
    d = s.raw["delivered_nl"]
    n = len(d)
    span_ms = n * s.sample_ms
    strokes = max(1, d[-1] // stroke_nl) if n else 1
    k = max(1, n // 150, -(-20 * span_ms // (strokes * s.sample_ms)))
    k = min(k, max(1, n // 20))
    xs, ys = [], []
    last = 0
    for i in range(k, n, k):
        xs.append(s.t[i - k])
        ys.append((d[i] - d[i - k]) * DAY_MS / (k * s.sample_ms) / 1e6)
        last = i
    if xs:  # close the last step where its window ends
        xs.append(s.t[last])
        ys.append(ys[-1])
    return xs, ys, k * s.sample_ms


def _span(ms: float) -> str:
    return f"{ms / 3_600_000:.3g} h" if ms >= 3_600_000 else f"{ms / 60000:.3g} min"


def plot_rate(s: Series, stroke_nl: int, path: Path, summary: dict | None = None,
              unit: str = "mg") -> None:
    """Delivery rate in drug mass per day (the prescription's unit, with the daily cap as it
    changed) above the same in mL/day. Mass per day is the volume rate times the
    concentration in the reservoir at that time (sim/mass.py)."""
    xs, ys, window_ms = _smoothed_rate(s, stroke_nl)
    fig = Figure(figsize=(10, 6.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_title("Delivery rate: basal steps, boluses, the daily cap", loc="left", fontsize=11)
    per = 1_000_000 if unit == "mg" else 1000
    if summary is not None:
        conc_x = [mass.conc_at(summary, int(x * s.unit_ms)) for x in xs]
        conc_t = [mass.conc_at(summary, t) for t in s.raw["t_ms"]]
        top.plot(xs, [y * 1e6 * c / 1e6 / per for y, c in zip(ys, conc_x)],
                 drawstyle="steps-post", color="#2471a3", lw=1,
                 label=f"delivered (mean over {_span(window_ms)})")
        top.plot(s.t, [v * c / 1e6 / per for v, c in zip(s.raw["rate_nl_day"], conc_t)],
                 drawstyle="steps-post", color="#27ae60", lw=1, alpha=0.8,
                 label="ideal: basal + boluses, when delivering")
        cap_x, cap_y = [], []
        for p in summary["limit_periods"]:
            cap_x.append(s.x(p["t_s"] * 1000))
            cap_y.append(p["max_daily_ng"] / per)
        if cap_x:
            cap_x.append(s.t[-1] if s.t else cap_x[-1])
            cap_y.append(cap_y[-1])
            top.plot(cap_x, cap_y, drawstyle="steps-post", color=CRITICAL_COLOUR, ls="--",
                     lw=1, label="maximum daily dose (the cap), as programmed")
        top.set_ylabel(f"rate ({unit}/day)")
        top.set_ylim(bottom=0)
        top.legend(loc="best", fontsize=8)
        top.grid(True, alpha=0.3)
    ax = bottom
    ax.plot(xs, ys, drawstyle="steps-post", color="#2471a3", lw=1,
            label=f"delivered (mean over {_span(window_ms)})")
    ax.plot(s.t, [v / 1e6 for v in s.raw["rate_nl_day"]], drawstyle="steps-post",
            color="#27ae60", lw=1, alpha=0.8, label="ideal: basal + boluses, when delivering")
    ax.plot(s.t, [v / 1e6 for v in s.raw["basal_nl_day"]], drawstyle="steps-post",
            color="#7f8c8d", lw=1.5, ls="--", label="programmed basal")
    marks = {
        codes.EV_PB_START: ("v", "#8e44ad", "patient bolus"),
        codes.EV_PB_DENIED: ("x", "#8e44ad", "patient bolus refused"),
        codes.EV_CB_START: ("v", "#d35400", "clinician bolus"),
        codes.EV_CB_DENIED: ("x", "#d35400", "clinician bolus refused"),
        codes.EV_PROGRAM: ("D", "#16a085", "reprogrammed"),
    }
    for code, (marker, colour, label) in marks.items():
        at = [s.x(e[0]) for e in s.events if e[1] == code]
        if at:
            ax.scatter(at, [0.97] * len(at), marker=marker, color=colour, label=label,
                       transform=ax.get_xaxis_transform(), zorder=3, clip_on=False)
    ax.set_ylabel("rate (mL/day)")
    ax.set_xlabel(s.xlabel)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if s.t:
        ax.set_xlim(0, s.t[-1] if s.t[-1] > 0 else 1)
    fig.savefig(path, dpi=90)


def plot_reservoir(s: Series, low_nl: int, path: Path, board=None) -> None:
    board = board or board_limits("virtual")
    fig, ax = _figure("Reservoir volume", s)
    ax.plot(s.t, [v / 1e6 for v in s.raw["reservoir_nl"]], color="#2471a3", lw=1.2,
            label="reservoir (plant truth)")
    ax.axhline(low_nl / 1e6, color=WARNING_COLOUR, ls="--", lw=1,
               label=f"low-reservoir alarm level ({fmt.vol(low_nl)})")
    ax.axhline(board.reservoir_min_nl / 1e6, color=CRITICAL_COLOUR, ls="--", lw=1,
               label=f"empty: delivery stops ({fmt.vol(board.reservoir_min_nl)})")
    refills = [s.x(a[0]) for a in s.actions if a[1] == "refill"]
    for i, x in enumerate(refills):
        ax.axvline(x, color="#27ae60", lw=1, alpha=0.8, label="refill" if i == 0 else None)
    ax.set_ylabel("volume (mL)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower left", fontsize=8)
    fig.savefig(path, dpi=90)


def plot_pressure(s: Series, path: Path, board: dict | None = None) -> None:
    # The highest pressure over windows of at least two stroke intervals: each stroke's peak
    # shows as a level line, not as a comb of spikes between empty samples.
    fig, ax = _figure("Catheter outlet pressure", s)
    p = s.raw["pressure_pa"]
    n = len(p)
    d = s.raw["delivered_nl"]
    from host_tools.boardlimits import board_data

    board = board or board_data("virtual")
    strokes = max(1, d[-1] // board["STROKE_NL"]) if n else 1
    k = max(1, min(-(-2 * n // strokes), max(1, n // 150)))
    xs = [s.t[i] for i in range(0, n, k)]
    ys = [max(p[i:i + k]) / 1000 for i in range(0, n, k)]
    ax.set_title("Catheter outlet pressure (highest in each "
                 f"{_span(k * s.sample_ms)})", loc="left", fontsize=11)
    ax.plot(xs, ys, color="#2471a3", lw=1, drawstyle="steps-post",
            label="outlet pressure (peak after each stroke)")
    ax.axhline(board["OCCLUSION_PA"] / 1000, color=CRITICAL_COLOUR, ls="--", lw=1,
               label=f"occlusion threshold, before a stroke ({board['OCCLUSION_PA'] / 1000:g} kPa)")
    start = None
    spans = []
    for t, action in s.actions:
        if action == "occlusion" and start is None:
            start = t
        elif action == "clear_occlusion" and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, s.raw["t_ms"][-1] if s.t else start))
    for i, (a, b) in enumerate(spans):
        ax.axvspan(s.x(a), s.x(b), color="#f5b7b1", alpha=0.5,
                   label="catheter occluded (injected)" if i == 0 else None)
    ax.set_ylabel("pressure (kPa)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8)
    fig.savefig(path, dpi=90)


def alarm_intervals(s: Series) -> list[tuple[str, str, int, int]]:
    """(alarm code, priority, raised at ms, cleared at ms or the end of the run)."""
    end = s.raw["t_ms"][-1] if s.t else 0
    active: dict[int, int] = {}
    out = []
    for t, code, a, _ in s.events:
        if code == codes.EV_ALARM and a not in active:
            active[a] = t
        elif code == codes.EV_ALARM_CLEAR and a in active:
            out.append((codes.ALARM_NAMES.get(a, str(a)), codes.priority(a), active.pop(a), t))
    for a, t in active.items():
        out.append((codes.ALARM_NAMES.get(a, str(a)), codes.priority(a), t, end))
    return sorted(out, key=lambda x: x[2])


def _runs(t_ms, flags):
    """Intervals [start, end) where flags is true."""
    out, start = [], None
    for t, f in zip(t_ms, flags):
        if f and start is None:
            start = t
        elif not f and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, t_ms[-1]))
    return out


def plot_alarms(s: Series, path: Path) -> None:
    intervals = alarm_intervals(s)
    names = sorted({i[0] for i in intervals})
    rows = names + ["not delivering"]
    fig, ax = _figure("Alarm timeline", s, 1.4 + 0.45 * len(rows))
    span = (s.raw["t_ms"][-1] if s.t else 1) / s.unit_ms
    minimum = span / 400  # an alarm raised and cleared within a sample still shows
    for name, prio, a, b in intervals:
        y = rows.index(name)
        colour = CRITICAL_COLOUR if prio == "critical" else WARNING_COLOUR
        ax.broken_barh([(s.x(a), max(s.x(b - a), minimum))], (y - 0.35, 0.7), color=colour)
    stopped = _runs(s.raw["t_ms"], [not d for d in s.raw["delivering"]])
    y = len(rows) - 1
    ax.broken_barh([(s.x(a), max(s.x(b - a), minimum)) for a, b in stopped], (y - 0.35, 0.7),
                   color="#95a5a6")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.invert_yaxis()
    handles = [ax.bar(0, 0, color=CRITICAL_COLOUR, label="critical (delivery stops)"),
               ax.bar(0, 0, color=WARNING_COLOUR, label="warning (delivery goes on)"),
               ax.bar(0, 0, color="#95a5a6", label="no delivery (alarm, stop, power off)")]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    if not intervals:
        ax.text(0.5, 0.5, "no alarm in this run", transform=ax.transAxes, ha="center",
                color="#7f8c8d")
    fig.savefig(path, dpi=90)


# ---- the page ------------------------------------------------------------------------------

def _description(path) -> str:
    """The comment lines at the head of a scenario file: what it is about."""
    lines = []
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def summary_rows(summary_text: str) -> list[tuple[str, str]]:
    """The text summary's lines as (label, text) rows; continuation lines join their label."""
    rows: list[tuple[str, str]] = []
    for line in summary_text.splitlines():
        label, text = line[:11].strip(), line[11:].strip()
        if not label and rows:
            rows[-1] = (rows[-1][0], rows[-1][1] + "\n" + text)
        else:
            rows.append((label, text))
    return rows


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em; max-width: 940px;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
td, th { padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
#summary th { white-space: nowrap; color: #555; font-weight: 600; }
#summary td { white-space: pre-wrap; overflow-wrap: anywhere; }
tr.ok td:first-child { color: #1e8449; } tr.bad td { color: #c0392b; font-weight: bold; }
#checks td:nth-child(-n+2) { white-space: nowrap; } #checks td { overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; } figure { margin: 1em 0; }
"""


def _page(title: str, description: str, summary_text: str, result: dict) -> str:
    e = html.escape
    checks = result.get("expect", [])
    rows = "".join(
        f"<tr class={'ok' if c['ok'] else 'bad'}><td>{'pass' if c['ok'] else 'FAIL'}</td>"
        f"<td>{e(c['name'])}</td><td>{e(c['detail'])}</td></tr>" for c in checks)
    verdict = ("no [expect] checks" if not checks else
               "every check passed" if result["expect_ok"] else "a check FAILED")
    summary = "".join(f"<tr><th scope=row>{e(k)}</th><td>{e(v)}</td></tr>"
                      for k, v in summary_rows(summary_text))
    figures = "".join(
        f'<figure><img src="{name}.png" alt="{name} plot"></figure>' for name in PLOTS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{e(title)}</h1>
<p>{e(description)}</p>
<h2>Summary</h2>
<table id="summary">{summary}</table>
<h2>Checks ({e(verdict)})</h2>
<table id="checks"><tr><th></th><th>check</th><th>detail</th></tr>{rows}</table>
<p>The same checks are in <a href="junit.xml">junit.xml</a>; the numbers in
<a href="summary.json">summary.json</a>.</p>
<h2>Plots</h2>
{figures}
</body></html>
"""


def write_report(out_dir, scn, result: dict, sampled: dict, summary_text: str) -> list[Path]:
    """Write the report of one run into out_dir; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = Series(sampled, scn.duration_ms)
    name = Path(scn.path).stem if scn.path else "scenario"
    written = []
    p = out / "cumulative.png"
    plot_cumulative(s, result["stroke_nl"], p)
    written.append(p)
    p = out / "rate.png"
    plot_rate(s, result["stroke_nl"], p, result, scn.prescription.unit)
    written.append(p)
    from host_tools.boardlimits import board_data

    p = out / "pressure.png"
    plot_pressure(s, p, board_data(scn.board))
    written.append(p)
    p = out / "alarms.png"
    plot_alarms(s, p)
    written.append(p)
    p = out / "reservoir.png"
    plot_reservoir(s, scn.prescription.low_reservoir_nl, p, board_limits(scn.board))
    written.append(p)
    p = out / "junit.xml"
    write_junit(p, name, result.get("expect", []), result.get("wall_s", 0.0))
    written.append(p)
    p = out / "summary.json"
    p.write_text(json.dumps(result, indent=1) + "\n")
    written.append(p)
    p = out / "index.html"
    p.write_text(_page(f"Scenario {name}", _description(scn.path) if scn.path else "",
                       summary_text, result))
    written.append(p)
    return written


# ---- many scenarios (make sim) ---------------------------------------------------------------

def _one(args) -> dict:
    """Run one scenario and write its report (in a worker process)."""
    path, out = args

    def write(scn, result, sampled, text):
        write_report(out, scn, result, sampled, text)

    # the same path through as `pumpsim run --report`
    code, scn, result, text = run_scenario(path, "cpython", sample_ms=sample_ms_for, on_run=write)
    if scn is None or result is None:
        return {"path": str(path), "dir": None, "code": code, "error": text}
    return {"path": str(path), "dir": str(out), "code": code, "expect_ok": result["expect_ok"],
            "alarms": sorted({a["code"] for a in result["alarms"]}),
            "delivered_nl": result["delivered_nl"], "duration_s": result["duration_s"],
            "wall_s": result["wall_s"], "description": _description(path)}


def write_index(out_dir, entries: list[dict]) -> Path:
    e = html.escape
    rows = []
    for x in entries:
        name = Path(x["path"]).stem
        if x["dir"] is None:
            rows.append(f"<tr class=bad><td>{e(name)}</td><td>ERROR</td><td colspan=3>"
                        f"{e(x['error'])}</td></tr>")
            continue
        link = f'<a href="{e(os.path.relpath(x["dir"], out_dir))}/index.html">{e(name)}</a>'
        rows.append(
            f"<tr class={'ok' if x['expect_ok'] else 'bad'}><td>{link}</td>"
            f"<td>{'pass' if x['expect_ok'] else 'FAIL'}</td>"
            f"<td>{e(', '.join(x['alarms']) or 'none')}</td>"
            f"<td>{fmt.vol(x['delivered_nl'])} in {fmt.span(x['duration_s'])}</td>"
            f"<td>{e(x['description'])}</td></tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Simulation reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 0.3em 0.8em; text-align: left;
vertical-align: top; border-bottom: 1px solid #ddd; }}
tr.bad td {{ color: #c0392b; font-weight: bold; }}
</style></head><body>
<h1>Simulation reports</h1>
<p>One simulated run per scenario file, made {e(time.strftime('%Y-%m-%d %H:%M'))}. Each link opens
the run's plots and checks. "pass" means every check in the scenario's [expect] table held.</p>
<table><tr><th>scenario</th><th>checks</th><th>alarms raised</th><th>delivered</th>
<th>what it shows</th></tr>
{''.join(rows)}
</table></body></html>
"""
    p = Path(out_dir) / "index.html"
    p.write_text(page)
    return p


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sim.report",
        description="Run scenarios and write a report for each, plus an index page (make sim).")
    p.add_argument("out", metavar="OUT_DIR")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO.toml")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="scenarios run at once (default: one per core)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(path, out / Path(path).stem) for path in args.scenarios]
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        entries = []
        for entry in pool.map(_one, jobs):
            mark = ("error" if entry["dir"] is None else
                    "ok" if entry["expect_ok"] else "FAILED")
            print(f"{mark:6} {entry['path']}", flush=True)
            entries.append(entry)
    index = write_index(out, entries)
    print(f"reports: {index}")
    return 0 if all(x["dir"] is not None and x["expect_ok"] for x in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
