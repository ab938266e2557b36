"""The [expect] table of a scenario, checked against a run's summary."""

from __future__ import annotations


def _nl(v: int) -> str:
    from host_tools import fmt

    return f"{v} nL ({fmt.vol(v)})"


def check(expect: dict, summary: dict) -> list[dict]:
    """One result per expectation: {"name", "ok", "detail"}."""
    out = []

    def add(name, ok, detail):
        out.append({"name": name, "ok": bool(ok), "detail": detail})

    if "alarms" in expect:
        want = sorted(set(expect["alarms"]))
        got = sorted({a["code"] for a in summary["alarms"]})
        add("alarms", want == got, f"expected alarms {want or 'none'}, raised {got or 'none'}")
    bounds = [
        ("delivered_min_nl", "delivered_nl", ">="),
        ("delivered_max_nl", "delivered_nl", "<="),
        ("max_abs_error_max_nl", "max_abs_error_nl", "<="),
        ("max_rolling_24h_max_nl", "max_rolling_24h_nl", "<="),
        ("reservoir_min_nl", "reservoir_nl", ">="),
    ]
    for key, field, op in bounds:
        if key in expect:
            limit, value = expect[key], summary[field]
            ok = value >= limit if op == ">=" else value <= limit
            add(key, ok, f"{field} = {_nl(value)}, expected {op} {_nl(limit)}")
    for key, field in (("patient_boluses_delivered", "delivered"),
                       ("patient_boluses_denied", "denied")):
        if key in expect:
            value = summary["patient_boluses"][field]
            add(key, value == expect[key], f"{key} = {value}, expected {expect[key]}")
    refused = summary.get("refused") or []
    if refused or "refused" in expect:
        # A refusal from the firmware is never dropped: unless the scenario expects exactly
        # these actions to be refused, the run fails and says what was refused and why.
        want = sorted(set(expect.get("refused", [])))
        got = sorted({r["action"] for r in refused})
        said = "; ".join(f"{r['action']} at {r['t_s']} s: {r['reason']}" for r in refused)
        add("refused", want == got, f"expected refusals of {want or 'nothing'}, the firmware "
                                    f"refused {said or 'nothing'}")
    return out
