"""Drug-specific titration guards: how fast a daily basal dose may go up.

The pump enforces hard limits (a maximum concentration and daily dose) but has no notion of how
quickly a clinician may raise a dose; for ziconotide, baclofen and the opioids the labels and
guidelines do (drugs.toml [<drug>.titration] cites them). `assess` compares a new
prescription's daily basal with what the pump runs now and with a record of earlier changes, and
returns every rule it breaks as a Breach: a sentence, and the most an override may lift the
daily basal to past that rule (the label's start ceiling, a labelled step; None where only the
library's hard limits bound it). An empty list means the change may go ahead; `check` gives the
sentences alone.

A start after a screening trial (baclofen) follows the drug's start rule: the screening dose
that worked, times a factor that depends on how long its effect lasted (`start_rule`).

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


@dataclass(frozen=True)
class Breach:
    """A titration rule a change breaks: the sentence, and the override's ceiling for it: the
    highest daily basal (ng/day) an override may program past this rule, with the reason and
    source in words (None: only the library's hard limits bound the override)."""
    text: str
    ceiling_ng_day: int | None = None
    ceiling_why: str = ""


@dataclass(frozen=True)
class StartRule:
    """The start after a screening trial: the screening dose that worked and how long its
    effect lasted give the first daily basal (dose_ng_day), shown with the rule (why)."""
    screening_ng: int
    effect_s: int
    dose_ng_day: int
    ceiling_ng_day: int
    why: str


def is_increase(old: Change | None, drug: str, new_ng_day: int) -> bool:
    return old is not None and old.drug == drug and new_ng_day > old.basal_ng_day


def is_start(old: Change | None, drug: str) -> bool:
    """The drug was not running (the pump ran another drug, or nothing)."""
    return old is None or old.drug != drug


def start_rule(rule: Titration | None, drug: str, screening_ng: int,
               effect_s: int) -> StartRule | None:
    """The drug's start rule after a screening trial (None: the drug has none)."""
    if rule is None or rule.trial_effect_s is None or rule.start_per_screening is None:
        return None
    assert rule.start_per_screening_long is not None  # druglib keeps the three together
    u = _unit(drug)
    longer = effect_s > rule.trial_effect_s
    factor = rule.start_per_screening_long if longer else rule.start_per_screening
    dose = screening_ng * factor
    times = {1: "the screening dose itself", 2: "twice the screening dose"}.get(
        factor, f"{factor} times the screening dose")
    why = (f"{drug} after a screening trial: the screening dose of {_mass(screening_ng, u)} "
           f"worked for {_span(effect_s)}, {'longer than' if longer else 'not longer than'} "
           f"{_span(rule.trial_effect_s)}, so the first daily dose is {times}, "
           f"{_mass(dose, u)}/day ({druglib.cite(rule.sources.get('trial_effect', ''))})")
    return StartRule(screening_ng, effect_s, dose,
                     screening_ng * rule.start_per_screening, why)


def check(rule: Titration | None, drug: str, old: Change | None, new_ng_day: int, now_ts: int,
          history: Sequence[Change] = (), screening_ng: int | None = None,
          effect_s: int | None = None) -> list[str]:
    """The sentences of assess()."""
    return [b.text for b in assess(rule, drug, old, new_ng_day, now_ts, history, screening_ng,
                                   effect_s)]


def assess(rule: Titration | None, drug: str, old: Change | None, new_ng_day: int, now_ts: int,
           history: Sequence[Change] = (), screening_ng: int | None = None,
           effect_s: int | None = None) -> list[Breach]:
    """The guards a change from `old` (the pump's settings now, None when it has none) to a
    daily basal of new_ng_day of `drug` would break, at pump time now_ts. screening_ng: the
    screening bolus that worked (--trial-dose, a prescription's titration.screening_dose), for
    the drugs whose start is measured from it; effect_s: how long its effect lasted
    (--trial-effect), for the drugs whose start rule depends on it."""
    if rule is None:
        return []
    if is_start(old, drug):
        return _start(rule, drug, new_ng_day, screening_ng, effect_s)
    assert old is not None
    if new_ng_day <= old.basal_ng_day:
        return []  # decreases and unchanged doses are never limited
    return _increase(rule, drug, old, new_ng_day, now_ts, history)


def _ceiling_text(ng_day: int | None, u: str | None, why: str) -> str:
    return "" if ng_day is None else f"{_mass(ng_day, u)}/day ({why})"


def _start(rule: Titration, drug: str, new_ng_day: int, screening_ng: int | None,
           effect_s: int | None) -> list[Breach]:
    u = _unit(drug)
    out = []
    if rule.max_start_ng_day is not None and new_ng_day > rule.max_start_ng_day:
        top = rule.max_start_override_ng_day
        why = (f"the label's highest start, {druglib.cite(rule.sources['max_start_override'])}"
               if top is not None else "")
        lift = (f"; an override with the reason may start it at most at "
                f"{_ceiling_text(top, u, why)}" if top is not None else
                " (a patient already on it: override with the reason)")
        out.append(Breach(f"{drug} is started at {_mass(new_ng_day, u)}/day; it may start at most "
                          f"at {_mass(rule.max_start_ng_day, u)}/day{lift}", top, why))
    if rule.start_per_screening is None:
        return out
    if screening_ng is None:
        out.append(Breach(f"{drug} is started without the screening bolus that worked: give it "
                          "with --trial-dose D --trial-effect H, or as titration.screening_dose "
                          "in the prescription (a patient already on it: override with the "
                          "reason)"))
        return out
    top = screening_ng * rule.start_per_screening
    ceiling_why = (f"{rule.start_per_screening} times the screening dose, the highest start "
                   f"after a screening trial, {druglib.cite(rule.sources['start_per_screening'])}")
    found = start_rule(rule, drug, screening_ng, effect_s) if effect_s is not None else None
    if found is not None and new_ng_day != found.dose_ng_day:
        out.append(Breach(f"{drug} is started at {_mass(new_ng_day, u)}/day, not at the "
                          f"{_mass(found.dose_ng_day, u)}/day the start rule gives ({found.why})",
                          top, ceiling_why))
    elif found is None and new_ng_day > top:
        out.append(Breach(f"{drug} is started at {_mass(new_ng_day, u)}/day; from a screening "
                          f"dose of {_mass(screening_ng, u)} it may start at most at "
                          f"{_mass(top, u)}/day", top, ceiling_why))
    return out


def _increase(rule: Titration, drug: str, old: Change, new_ng_day: int, now_ts: int,
              history: Sequence[Change]) -> list[Breach]:
    u = _unit(drug)
    out = []
    src = rule.sources
    step = new_ng_day - old.basal_ng_day
    if rule.max_step_ng_day is not None and step > rule.max_step_ng_day:
        extra = rule.max_step_override_ng_day
        top = None if extra is None else old.basal_ng_day + extra
        why = "" if extra is None else (f"a step of at most {_mass(extra, u)}/day even with an "
                                        f"override, {druglib.cite(src['max_step_override'])}")
        out.append(Breach(f"{drug} goes up by {_mass(step, u)}/day (from "
                          f"{_mass(old.basal_ng_day, u)} to {_mass(new_ng_day, u)}/day); one "
                          f"increase may add at most {_mass(rule.max_step_ng_day, u)}/day",
                          top, why))
    same = sorted((c for c in history if c.drug == drug), key=lambda c: c.ts)
    if rule.max_increase_ppm is not None:
        ref, since = _lowest_in_window(same, old, now_ts - rule.percent_window_s)
        top = ref * (1_000_000 + rule.max_increase_ppm) // 1_000_000
        if new_ng_day > top:
            pct = f"{rule.max_increase_ppm / 10_000:g} %"
            more = rule.max_increase_override_ppm
            ceiling = None if more is None else ref * (1_000_000 + more) // 1_000_000
            why = "" if more is None else (f"at most {more / 10_000:g} % even with an override, "
                                           f"{druglib.cite(src['max_increase_override'])}")
            out.append(Breach(f"{drug} goes to {_mass(new_ng_day, u)}/day; in any "
                              f"{_span(rule.percent_window_s)} it may rise at most {pct} over the "
                              f"lowest daily basal in that time ({_mass(ref, u)}/day{since}), so "
                              f"at most {_mass(top, u)}/day", ceiling, why))
    ups = [c for c in same if c.increase]
    if rule.max_increases is not None:
        recent = [c for c in ups if c.ts > now_ts - rule.increase_window_s]
        if len(recent) >= rule.max_increases:
            out.append(Breach(f"{drug} was already increased {len(recent)} time(s) in the last "
                              f"{_span(rule.increase_window_s)}; at most {rule.max_increases} "
                              f"increase(s) are allowed in any {_span(rule.increase_window_s)}"))
    if rule.min_interval_s is not None and ups:
        ago = now_ts - ups[-1].ts
        if ago < rule.min_interval_s:
            shortest = rule.min_interval_override_s
            blocked = shortest is not None and ago < shortest
            why = "" if shortest is None else (
                f"increases at least {_span(shortest)} apart even with an override, "
                f"{druglib.cite(src['min_interval_override'])}")
            out.append(Breach(f"{drug} was last increased {_span(max(ago, 0) // 60 * 60)} ago; "
                              f"two increases must be at least {_span(rule.min_interval_s)} "
                              "apart", old.basal_ng_day if blocked else None, why))
    return out


def override_ceiling(breaches: Sequence[Breach]) -> Breach | None:
    """The breach whose ceiling is lowest: the most any override may program (None: no
    breach has a ceiling, only the library's hard limits bound the override)."""
    bounded = [b for b in breaches if b.ceiling_ng_day is not None]
    return min(bounded, key=lambda b: b.ceiling_ng_day or 0) if bounded else None


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
