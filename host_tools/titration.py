"""Drug-specific titration guards: how fast a daily basal dose may go up.

The pump enforces hard limits (a maximum concentration and daily dose) but has no notion of how
quickly a clinician may raise a dose; for ziconotide, baclofen and the opioids the labels and
guidelines do (drugs.toml [<drug>.titration] cites them). `check` compares a new prescription's
daily basal with what the pump runs now and with a record of earlier changes, and returns every
rule it breaks as a sentence. An empty list means the change may go ahead.

The record of earlier changes is kept by the host, one JSON file per pump, because the pump's
event log holds volumes, not doses, and forgets old entries. Times in it are the pump's own
clock (`clock_ts`), so a virtual board running faster than real time is judged in its own time.
A change made from another computer is not in this host's record: the comparison with the
pump's current settings still applies, the counts over a week may then be short.

Only daily basal doses are compared (the schedule's total over a day); patient boluses are
bounded by the prescription's own maximum daily dose.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from host_tools import druglib, fmt
from host_tools.druglib import Titration
from host_tools.errors import InputError


@dataclass(frozen=True)
class Change:
    """One programmed prescription as the titration guard sees it."""
    ts: int                      # pump clock, seconds since 2024-01-01
    drug: str
    basal_ng_day: int
    increase: bool = False       # above the basal that ran before it, same drug
    override: str | None = None  # the reason given when a guard was overridden


def _mass(ng: int, unit: str | None = None) -> str:
    return fmt.mass(ng, unit)


def _span(s: int) -> str:
    return fmt.span(s)


def _unit(drug: str) -> str | None:
    try:
        return druglib.get(drug).unit
    except InputError:
        return None


def is_increase(old: Change | None, drug: str, new_ng_day: int) -> bool:
    return old is not None and old.drug == drug and new_ng_day > old.basal_ng_day


def check(rule: Titration | None, drug: str, old: Change | None, new_ng_day: int, now_ts: int,
          history: Sequence[Change] = (), screening_ng: int | None = None) -> list[str]:
    """The guards a change from `old` (the pump's settings now, None when it has none) to a
    daily basal of new_ng_day of `drug` would break, at pump time now_ts. screening_ng: the
    screening bolus that worked (a prescription's titration.screening_dose), for the drugs
    whose start is measured from it."""
    if rule is None:
        return []
    u = _unit(drug)
    out = []
    if old is None or old.drug != drug:   # a start: this drug was not running
        if rule.max_start_ng_day is not None and new_ng_day > rule.max_start_ng_day:
            out.append(f"{drug} is started at {_mass(new_ng_day, u)}/day; it may start at most at "
                       f"{_mass(rule.max_start_ng_day, u)}/day (a patient already on it: override "
                       "with the reason)")
        if rule.start_per_screening is not None:
            if screening_ng is None:
                out.append(f"{drug} is started without the screening bolus that worked: give it "
                           "as titration.screening_dose in the prescription")
            elif new_ng_day > screening_ng * rule.start_per_screening:
                out.append(f"{drug} is started at {_mass(new_ng_day, u)}/day; from a screening dose "
                           f"of {_mass(screening_ng, u)} it may start at most at "
                           f"{_mass(screening_ng * rule.start_per_screening, u)}/day")
        return out
    if new_ng_day <= old.basal_ng_day:
        return out  # decreases and unchanged doses are never limited
    step = new_ng_day - old.basal_ng_day
    if rule.max_step_ng_day is not None and step > rule.max_step_ng_day:
        out.append(f"{drug} goes up by {_mass(step, u)}/day (from {_mass(old.basal_ng_day, u)} to "
                   f"{_mass(new_ng_day, u)}/day); one increase may add at most "
                   f"{_mass(rule.max_step_ng_day, u)}/day")
    same = sorted((c for c in history if c.drug == drug), key=lambda c: c.ts)
    if rule.max_increase_ppm is not None:
        ref, since = _lowest_in_window(same, old, now_ts - rule.percent_window_s)
        top = ref * (1_000_000 + rule.max_increase_ppm) // 1_000_000
        if new_ng_day > top:
            pct = f"{rule.max_increase_ppm / 10_000:g} %"
            out.append(f"{drug} goes to {_mass(new_ng_day, u)}/day; in any "
                       f"{_span(rule.percent_window_s)} it may rise at most {pct} over the lowest "
                       f"daily basal in that time ({_mass(ref, u)}/day{since}), so at most "
                       f"{_mass(top, u)}/day")
    ups = [c for c in same if c.increase]
    if rule.max_increases is not None:
        recent = [c for c in ups if c.ts > now_ts - rule.increase_window_s]
        if len(recent) >= rule.max_increases:
            out.append(f"{drug} was already increased {len(recent)} time(s) in the last "
                       f"{_span(rule.increase_window_s)}; at most {rule.max_increases} "
                       f"increase(s) are allowed in any {_span(rule.increase_window_s)}")
    if rule.min_interval_s is not None and ups:
        ago = now_ts - ups[-1].ts
        if ago < rule.min_interval_s:
            out.append(f"{drug} was last increased {_span(max(ago, 0) // 60 * 60)} ago; two "
                       f"increases must be at least {_span(rule.min_interval_s)} apart")
    return out


def _lowest_in_window(same: list[Change], old: Change, start_ts: int) -> tuple[int, str]:
    """The lowest daily basal in effect at any time from start_ts until now: the pump's current
    one, every change made since start_ts, and the one already running at start_ts."""
    lowest, note = old.basal_ng_day, " now"
    before = [c for c in same if c.ts <= start_ts]
    inside = [c for c in same if c.ts > start_ts]
    for c in inside + before[-1:]:
        if c.basal_ng_day < lowest:
            lowest, note = c.basal_ng_day, " earlier"
    return lowest, note


# ---- the host's record -------------------------------------------------------------------------

def state_dir() -> Path:
    """PUMPCTL_STATE_DIR, else $XDG_STATE_HOME/pumpctl, else ~/.local/state/pumpctl."""
    if os.environ.get("PUMPCTL_STATE_DIR"):
        return Path(os.environ["PUMPCTL_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "pumpctl"


def _record_path(pump_id: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in pump_id) or "unknown"
    return state_dir() / f"titration-{safe}.json"


def load_history(pump_id: str) -> list[Change]:
    p = _record_path(pump_id)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise OSError(f"cannot read the titration record {p}: {e}") from None
    out = []
    for c in data.get("changes", []):
        out.append(Change(int(c["ts"]), str(c["drug"]), int(c["basal_ng_day"]),
                          bool(c.get("increase")), c.get("override")))
    return out


def record(pump_id: str, change: Change) -> Path:
    """Append a change to the pump's record (written whole, then renamed into place)."""
    p = _record_path(pump_id)
    changes = load_history(pump_id) + [change]
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pump_id": pump_id, "changes": [asdict(c) for c in changes]},
                              indent=1), encoding="utf-8")
    os.replace(tmp, p)
    return p
