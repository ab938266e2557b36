"""The host's clinical arithmetic: doses, schedules and the drug left in the catheter.

Plain functions of integers (nL, ng, s, minutes of the day), no I/O: pumpctl's commands and the
page (host_tools/ui) both show what these compute, and tests/host_tools/test_clinical.py holds
the properties they keep. The firmware computes the same quantities for itself and enforces
every limit again; nothing here is trusted by the pump.
"""

from __future__ import annotations

from collections.abc import Sequence

DAY_S = 86_400
DAY_MIN = 1440


def nl_to_ng(nl: int, conc_ng_ml: int) -> int:
    """The drug mass in a volume, rounded down to a whole ng (the form --json carries)."""
    return nl * conc_ng_ml // 1_000_000


def daily_basal_ng(steps: Sequence[Sequence[int]]) -> int:
    """The daily total of a [[start_min, rate_ng_day], ...] schedule (rounded down).

    Each step runs from its start to the next one's, the last to midnight."""
    total = 0
    for i, (start, rate) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else DAY_MIN
        total += rate * (end - start)
    return total // DAY_MIN


def rate_at(steps: Sequence[Sequence[int]], minute: int) -> int:
    """The schedule's rate (per day) at a minute of the day: the last step started by then."""
    rate = steps[0][1] if steps else 0
    for start, r in steps:
        if start <= minute:
            rate = r
    return rate


def flush_s(catheter_nl: int, old_conc: int, new_conc: int, basal_nl_day: int) -> int:
    """How long the old drug takes to leave the catheter at its own volume rate (the rate
    that gives the prescribed dose of the old drug: basal * new / old)."""
    return catheter_nl * DAY_S * old_conc // (basal_nl_day * new_conc)


def bridge_plan(catheter_nl: int, old_conc: int, new_conc: int,
                basal_nl_day: int) -> tuple[int, int] | None:
    """The bridge bolus after a concentration change: (dose_nl, duration_s), or None.

    The catheter still holds old drug, pushed out by whatever the pump moves. At the new,
    stronger concentration the basal moves less volume, so the old drug would trickle out too
    slowly (under-dosing). Adding the difference between the old and the new volume rates, for
    as long as the old rate takes to empty the catheter, delivers the old drug at its prescribed
    dose; then the new drug reaches the tip and the basal alone carries on. When the new drug is
    weaker no bolus can help: the catheter empties faster than prescribed (see
    bridge_overdose)."""
    if new_conc <= old_conc or basal_nl_day <= 0:
        return None
    # The pump takes a bolus of at most a day. A slower flush gets the right rate for its first
    # day; after that the rest of the old drug leaves at the new rate.
    duration_s = min(flush_s(catheter_nl, old_conc, new_conc, basal_nl_day), DAY_S)
    # The old volume rate is basal * new / old; kept as a fraction so nothing is rounded until
    # the end.
    dose_nl = basal_nl_day * (new_conc - old_conc) * duration_s // (old_conc * DAY_S)
    return dose_nl, duration_s


def bridge_overdose(catheter_nl: int, old_conc: int, new_conc: int,
                    basal_nl_day: int) -> tuple[int, float] | None:
    """When the concentration goes down: (seconds, factor) the old drug runs stronger than
    prescribed while it leaves the catheter."""
    if new_conc >= old_conc or basal_nl_day <= 0:
        return None
    return catheter_nl * DAY_S // basal_nl_day, old_conc / new_conc


def bolus_room_ng(max_daily_ng: int, assumed_ng: int) -> int:
    """What boluses may still add in the 24 h account after a lost account is rebuilt on an
    assumption: the cap less the assumption, never below zero."""
    return max(max_daily_ng - assumed_ng, 0)


def library_excess(ng: int, soft_ng: int, hard_ng: int) -> str | None:
    """Where a dose stands against a library's limits: "hard" (refused), "soft" (a warning
    the clinician confirms) or None."""
    if ng > hard_ng:
        return "hard"
    if ng > soft_ng:
        return "soft"
    return None
