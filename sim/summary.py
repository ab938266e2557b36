"""What `pumpsim run` says about a scenario: the run, its [expect] checks and the summary a
person reads (the same for `pumpsim run`, `pumpsim run --report` and `make sim`'s reports).

It sits below both sim/cli.py and sim/report.py: a caller that wants the run's plots hands in
how to sample them and what to do with the run (sim/report.py's sample_ms_for and
write_report), so this module never imports the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

from firmware.rx import RxError
from host_tools import fmt
from host_tools.errors import InputError
from host_tools.scenario import Scenario, load_scenario
from sim import expect, mass
from sim.plan import build_plan
from sim.runner import RuntimeFailure, run_plan

# with the run's sampled series: (scenario, result, series, summary text) -> None
OnRun = Callable[[Scenario, dict, dict, str], None]


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
    from firmware import codes, codetext

    if name == "no_power":
        return "the pump was off"
    if name == "not_active":
        return "no such alarm was active"
    for code, n in codes.REASON_NAMES.items():
        if n == name:
            return codetext.REASON_TEXT.get(code, name)
    return name


def run_scenario(path, runtime: str = "cpython", trace: bool = False,
                 sample_ms: Callable[[int], int] | None = None,
                 on_run: OnRun | None = None):
    """Load, run and check one scenario: (exit code, scenario, result, human summary or the
    error message). sample_ms(duration_ms), when given, is the interval of the sampled series
    the engine takes for plots; on_run gets the run with that series (before --trace rows are
    added to the result): it needs sample_ms."""
    if on_run is not None and sample_ms is None:
        raise ValueError("on_run needs sample_ms: the run's series is what it is handed")
    try:
        scn = load_scenario(path)
        plan = build_plan(scn, trace=trace)
    except InputError as e:
        return 2, None, None, f"pumpsim: {e}"
    except OSError as e:
        return 2, None, None, f"pumpsim: cannot read {path}: {e.strerror}"
    if sample_ms is not None:
        plan["sample_ms"] = sample_ms(scn.duration_ms)
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
    if on_run is not None and sampled is not None:
        on_run(scn, result, sampled, text)
    if trace_rows is not None:
        result["trace"] = trace_rows
    return (0 if result["expect_ok"] else 1), scn, result, text
