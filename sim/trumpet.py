"""Trumpet-curve accuracy analysis (the method of IEC 60601-2-24) for a simulated pump.

Host-side only (CPython): this module is never loaded into the MicroPython VM.

The standard weighs an infusion pump's output on a balance read every S = 0.5 min, then, for
each observation window of P minutes (2, 5, 11, 19, 31), slides the window one sample at a time
over the analysis period and works out the percentage flow error of every window position:

    E(j) = 100 * (delivered in window j - ideal in window j) / ideal in window j

The largest and smallest E over all positions, Ep(max) and Ep(min), plotted against P, make the
"trumpet". The overall error A is the same quantity over the whole analysis period. An
intrathecal pump runs at µL/day, so much longer windows (1 h, 6 h, 24 h) say more about it than
the standard's minutes; the window list is a parameter.

Here the balance is replaced by the plant's own record (every stroke's time and volume), the
programmed rate by the ideal cumulative volume, which may be a constant rate or any schedule.

Arithmetic is exact: volumes are integers, the ideal is brought to integers over a common
denominator, and the extremes are found by exact comparison; only the reported percentages are
rounded (to the nearest float). Cost is O(strokes + samples x windows); the inner loops run in
C through map/max/min over prefix sums, so a year at 30 s sampling (~1M samples) takes seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from itertools import accumulate
from operator import mul, sub, truediv

DAY_MS = 86_400_000
IEC_WINDOWS_MIN = (2, 5, 11, 19, 31)
DEFAULT_WINDOWS_MIN = IEC_WINDOWS_MIN + (60, 360, 1440)
DEFAULT_SAMPLE_MS = 30_000   # IEC 60601-2-24: S = 0.5 min
DEFAULT_START_MS = 3_600_000  # IEC analyses from the second hour of the test on


def sample_delivered(times_ms, volumes_nl, sample_ms, n_samples):
    """Cumulative delivered volume (nL) at the sample times k * sample_ms, k = 0..n_samples-1.

    A stroke at time t counts at every sample time >= t (a stroke exactly on a sample time is
    already on the balance at that sample). Strokes after the last sample time are ignored.
    """
    if len(times_ms) != len(volumes_nl):
        raise ValueError("times_ms and volumes_nl differ in length")
    inc = [0] * n_samples
    last = n_samples - 1
    for t, v in zip(times_ms, volumes_nl):
        if t < 0:
            raise ValueError(f"stroke at negative time {t} ms")
        k = -(-t // sample_ms)  # first sample time at or after the stroke
        if k <= last:
            inc[k] += v
    return list(accumulate(inc))


# A cumulative volume in nL, and what `ideal` may be (see _ideal_series).
Volume = int | Fraction | float
Ideal = int | Fraction | Callable[[int], Volume] | Sequence[Volume]


def _ideal_series(ideal: Ideal, sample_ms: int, n_samples: int) -> tuple[list[int], int]:
    """The ideal cumulative volume at each sample time as (integers, denominator): the ideal at
    sample k is values[k] / denominator, exactly.

    `ideal` is one of:
      - a number (int or Fraction): a constant programmed rate in nL/day;
      - a callable f(t_ms) -> cumulative ideal volume in nL (int, Fraction or float);
      - a sequence of the cumulative ideal volume in nL at each sample time (n_samples values).
    Only differences of the ideal matter, so its value at t = 0 need not be 0.
    """
    if isinstance(ideal, (int, Fraction)):
        rate = Fraction(ideal)
        if rate < 0:
            raise ValueError("negative ideal rate")
        # ideal(k) = rate * k * sample_ms / DAY_MS = (num * sample_ms * k) / (den * DAY_MS)
        step = rate.numerator * sample_ms
        return [step * k for k in range(n_samples)], rate.denominator * DAY_MS
    if isinstance(ideal, float):
        raise TypeError("give a constant ideal rate as an int or Fraction (nL/day), not a float")
    if callable(ideal):
        vals = [ideal(k * sample_ms) for k in range(n_samples)]
    else:
        vals = list(ideal)
        if len(vals) != n_samples:
            raise ValueError(f"ideal has {len(vals)} values; the run has {n_samples} samples")
    ints = [v for v in vals if type(v) is int]
    if len(ints) == len(vals):
        return ints, 1
    fracs = [v if isinstance(v, Fraction) else Fraction(v) for v in vals]
    den = math.lcm(*{f.denominator for f in fracs})
    return [f.numerator * (den // f.denominator) for f in fracs], den


def _extreme(dws, iws, ratios, pick):
    """Index of the exact largest (pick=max) or smallest (pick=min) dws[i] / iws[i].

    Integer true division is correctly rounded, hence monotonic: the exact extreme is among the
    positions whose float ratio equals the float extreme. Those few are compared exactly.
    """
    f = pick(ratios)
    best = None
    for i, r in enumerate(ratios):
        if r == f:
            q = Fraction(dws[i], iws[i])
            if best is None or (q > best if pick is max else q < best):
                best, at = q, i
    return at, best


def _pct(ratio):
    """100 * (ratio - 1), the percentage error of delivered/ideal, as the nearest float."""
    return float(100 * (ratio - 1))


def trumpet(times_ms, volumes_nl, duration_ms, ideal, *, sample_ms=DEFAULT_SAMPLE_MS,
            start_ms=DEFAULT_START_MS, windows_min=DEFAULT_WINDOWS_MIN):
    """Trumpet analysis of a run.

    times_ms, volumes_nl: every stroke the plant delivered (ms since the start of the run,
        integer nL), in any order.
    duration_ms: the run's length; samples are taken at 0, S, 2S, ... up to duration_ms.
    ideal: the programmed delivery: a constant rate in nL/day (int or Fraction), a callable
        giving the ideal cumulative volume (nL) at a time in ms, or a sequence of the ideal
        cumulative volume at every sample time (see _ideal_series).
    sample_ms: the sample interval S (IEC: 30 s).
    start_ms: where the analysis period starts (IEC: after the first hour); it runs to the last
        sample. Must be a multiple of sample_ms; 0 analyses the whole run.
    windows_min: the observation windows P, in minutes; each must be a whole number of samples.

    Returns a dict:
      sample_s, start_s, end_s: the sampling and the analysis period [start_s, end_s];
      delivered_nl, ideal_nl: over the analysis period (ideal_nl as the nearest float);
      overall_pct: the overall error A over the analysis period, or None if its ideal is 0;
      windows: one dict per window, in the order given:
        window_min: P;
        n_windows: how many window positions were evaluated (0 when P is longer than the
            analysis period, or the ideal is 0 in every position);
        max_pct, min_pct: Ep(max) and Ep(min) in percent (None when n_windows is 0);
        max_at_s, min_at_s: where the first window reaching each extreme starts (None if 0);
        n_undefined: positions skipped because their ideal volume is 0 (no programmed flow,
            so no percentage error).
    """
    if sample_ms <= 0:
        raise ValueError("sample_ms must be positive")
    if duration_ms < 0:
        raise ValueError("duration_ms must not be negative")
    if start_ms < 0 or start_ms % sample_ms:
        raise ValueError(f"start_ms = {start_ms} is not a whole number of samples of "
                         f"{sample_ms} ms")
    n_samples = duration_ms // sample_ms + 1
    delivered = sample_delivered(times_ms, volumes_nl, sample_ms, n_samples)
    ideal_s, den = _ideal_series(ideal, sample_ms, n_samples)
    # Bring the delivered volume onto the ideal's denominator: both integer, same units.
    delivered_s = delivered if den == 1 else list(map(mul, delivered, [den] * n_samples))

    a = start_ms // sample_ms  # first sample of the analysis period
    b = n_samples - 1          # last sample
    result = {
        "sample_s": sample_ms / 1000,
        "start_s": start_ms / 1000,
        "end_s": b * sample_ms / 1000,
        "delivered_nl": None,
        "ideal_nl": None,
        "overall_pct": None,
        "windows": [],
    }
    if a <= b:
        d_all = delivered[b] - delivered[a]
        i_all = ideal_s[b] - ideal_s[a]
        if i_all < 0:
            raise ValueError("the ideal cumulative volume decreases over the analysis period")
        result["delivered_nl"] = d_all
        result["ideal_nl"] = float(Fraction(i_all, den))
        if i_all > 0:
            result["overall_pct"] = _pct(Fraction(d_all * den, i_all))

    for p in windows_min:
        span_ms = p * 60_000
        if span_ms <= 0 or span_ms % sample_ms:
            raise ValueError(f"window of {p} min is not a whole number of {sample_ms} ms samples")
        m = span_ms // sample_ms
        row = {"window_min": p, "n_windows": 0, "max_pct": None, "min_pct": None,
               "max_at_s": None, "min_at_s": None, "n_undefined": 0}
        result["windows"].append(row)
        if a + m > b:
            continue  # longer than the analysis period: no position fits
        # Window j covers samples [j, j + m], for j = a .. b - m.
        dws = list(map(sub, delivered_s[a + m:b + 1], delivered_s[a:b + 1 - m]))
        iws = list(map(sub, ideal_s[a + m:b + 1], ideal_s[a:b + 1 - m]))
        i_lo, i_hi = min(iws), max(iws)
        if i_lo < 0:
            raise ValueError("the ideal cumulative volume decreases")
        if i_lo == i_hi:
            # Constant ideal per window (a constant rate): the extremes of the error are the
            # extremes of the delivered volume; no division per position.
            if i_lo == 0:
                row["n_undefined"] = len(iws)
                continue
            hi, lo = max(dws), min(dws)
            at_hi, at_lo = dws.index(hi), dws.index(lo)
            q_hi, q_lo = Fraction(hi, i_lo), Fraction(lo, i_lo)
            n = len(dws)
        else:
            offsets = None
            if i_lo == 0:
                # Positions with no programmed flow have no percentage error: leave them out.
                offsets = [j for j, iw in enumerate(iws) if iw]
                row["n_undefined"] = len(iws) - len(offsets)
                if not offsets:
                    continue
                dws = [dws[j] for j in offsets]
                iws = [iws[j] for j in offsets]
            ratios = list(map(truediv, dws, iws))
            at_hi, q_hi = _extreme(dws, iws, ratios, max)
            at_lo, q_lo = _extreme(dws, iws, ratios, min)
            if offsets is not None:
                at_hi, at_lo = offsets[at_hi], offsets[at_lo]
            n = len(dws)
        row["n_windows"] = n
        row["max_pct"] = _pct(q_hi)
        row["min_pct"] = _pct(q_lo)
        row["max_at_s"] = (a + at_hi) * sample_ms / 1000
        row["min_at_s"] = (a + at_lo) * sample_ms / 1000
    return result


def _hms(seconds):
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    mi, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{mi:02d}:{s:02d}"


def _fmt_pct(v):
    return "-" if v is None else f"{v:+.3f}"


def format_trumpet(result):
    """The result of trumpet() as a plain-text table."""
    lines = [
        "Trumpet analysis (IEC 60601-2-24 method)",
        f"  sampling every {result['sample_s']:g} s; analysis period "
        f"{_hms(result['start_s'])} .. {_hms(result['end_s'])}",
    ]
    if result["ideal_nl"] is not None:
        lines.append(f"  delivered {result['delivered_nl']} nL, ideal "
                     f"{result['ideal_nl']:.3f} nL, overall error A = "
                     f"{_fmt_pct(result['overall_pct'])} %")
    else:
        lines.append("  analysis period is empty (it starts after the end of the run)")
    header = ("window", "positions", "Ep(max) %", "Ep(min) %", "max at", "min at")
    rows = []
    for w in result["windows"]:
        n = w["n_windows"]
        note = f"  ({w['n_undefined']} without programmed flow)" if w["n_undefined"] else ""
        rows.append((
            f"{w['window_min']} min",
            str(n) if n else "0 (absent)",
            _fmt_pct(w["max_pct"]),
            _fmt_pct(w["min_pct"]),
            "-" if w["max_at_s"] is None else _hms(w["max_at_s"]),
            "-" if w["min_at_s"] is None else _hms(w["min_at_s"]),
            note,
        ))
    widths = [max([len(header[c])] + [len(r[c]) for r in rows]) for c in range(len(header))]
    lines.append("  " + "  ".join(h.rjust(widths[c]) for c, h in enumerate(header)))
    for r in rows:
        lines.append("  " + "  ".join(r[c].rjust(widths[c]) for c in range(len(header)))
                     + r[-1])
    return "\n".join(lines)
