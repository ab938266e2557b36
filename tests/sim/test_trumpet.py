"""The trumpet-curve analysis (IEC 60601-2-24 method) of sim/trumpet.py."""

from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sim.trumpet import DAY_MS, format_trumpet, trumpet

MIN = 60_000
H = 3_600_000


def rows(result):
    return {w["window_min"]: w for w in result["windows"]}


# ---- a reference: the definition, evaluated literally -----------------------------------------

def reference(times, vols, duration_ms, ideal_at, sample_ms, start_ms, windows_min):
    """Ep(max), Ep(min) as exact Fractions per window, straight from the definition: for every
    window position, sum the strokes that fall in it and evaluate the ideal at its two ends.
    Slow (O(positions x strokes)) and independent of the prefix sums under test."""
    end = duration_ms // sample_ms * sample_ms
    out = {}
    for p in windows_min:
        span = p * MIN
        errs = []  # (error, window start in s)
        t0 = start_ms
        while t0 + span <= end:
            d = sum(v for t, v in zip(times, vols) if t0 < t <= t0 + span)
            i = Fraction(ideal_at(t0 + span)) - Fraction(ideal_at(t0))
            if i:
                errs.append((100 * (d - i) / i, t0 / 1000))
            t0 += sample_ms
        if errs:
            hi = max(e for e, _ in errs)
            lo = min(e for e, _ in errs)
            # where the first window reaching each extreme starts
            out[p] = (hi, lo, next(t for e, t in errs if e == hi),
                      next(t for e, t in errs if e == lo))
        else:
            out[p] = (None, None, None, None)
    return out


# ---- constant flow: no error anywhere ---------------------------------------------------------

@given(vol=st.integers(1, 10_000), sample_s=st.sampled_from([10, 30, 60]),
       lag=st.floats(0, 0.999), hours=st.integers(3, 30))
def test_strokes_that_track_the_ideal_at_every_sample_give_zero_error(vol, sample_s, lag, hours):
    """One stroke of `vol` per sample interval, each landing at or shortly before its sample
    time, against the ideal rate of exactly `vol` per interval: at every sample the delivered
    total equals the ideal, so every window and the overall error read 0 %."""
    s = sample_s * 1000
    off = int(lag * s)  # 0 <= off < s
    duration = hours * H
    times = [k * s - off for k in range(1, duration // s + 1)]
    result = trumpet(times, [vol] * len(times), duration, vol * (DAY_MS // s), sample_ms=s)
    assert result["overall_pct"] == 0
    for w in result["windows"]:
        if w["window_min"] * MIN <= duration - H:
            assert w["n_windows"] > 0
            assert w["max_pct"] == 0 and w["min_pct"] == 0, w


# ---- a pulse train computed by hand -----------------------------------------------------------

def test_pulse_train_extremes_match_the_hand_computation():
    """One stroke of 250 nL every 10 min (at t = 0, 10, 20, ... min) against an ideal of
    25 nL/min (36 000 nL/day); 30 s sampling; a 4 h run analysed from 1 h (the IEC default) to
    4 h, i.e. samples 120..480.

    A window of P minutes starting at sample time x holds the strokes in (x, x + P] (a stroke
    exactly on a sample time is on the balance at that sample). As x steps by 0.5 min through
    every phase of the 10 min period, the count is floor(P/10) or ceil(P/10), and both occur.
    The ideal in the window is 25 P nL, so E = 100 (250 n - 25 P) / (25 P):

        P    ideal   strokes   Ep(max)                    Ep(min)
        2      50    0 or 1    100 (250 -  50)/ 50 = +400        -100
        5     125    0 or 1    100 (250 - 125)/125 = +100        -100
       11     275    1 or 2    100 (500 - 275)/275 = +900/11     100 (250 - 275)/275 = -100/11
       19     475    1 or 2    100 (500 - 475)/475 = +100/19     100 (250 - 475)/475 = -900/19
       31     775    3 or 4    100 (1000-775)/775 = +900/31      100 (750 - 775)/775 = -100/31
       60    1500    6         0                                 0

    Positions per window: (480 - 120) - 2P + 1 = 361 - 2P. Windows of 360 and 1440 min do not
    fit in the 3 h period. The overall error A: strokes in (60, 240] min are those at 70..240,
    18 of them, 4500 nL, against 25 x 180 = 4500 nL ideal: 0 %. The first window reaching
    Ep(max) for P = 2 starts at 68 min (it holds the stroke at 70); every window of 2 or 5 min
    starting at 60 min holds no stroke (the stroke at 60 is before it), so Ep(min) is first
    reached there.
    """
    duration = 4 * H
    times = list(range(0, duration + 1, 10 * MIN))
    result = trumpet(times, [250] * len(times), duration, 36_000)
    want = {
        2: (400, -100),
        5: (100, -100),
        11: (Fraction(900, 11), Fraction(-100, 11)),
        19: (Fraction(100, 19), Fraction(-900, 19)),
        31: (Fraction(900, 31), Fraction(-100, 31)),
        60: (0, 0),
    }
    got = rows(result)
    for p, (hi, lo) in want.items():
        assert got[p]["n_windows"] == 361 - 2 * p
        assert got[p]["max_pct"] == float(hi), p
        assert got[p]["min_pct"] == float(lo), p
    for p in (360, 1440):
        assert got[p]["n_windows"] == 0
        assert got[p]["max_pct"] is None and got[p]["min_pct"] is None
    assert result["overall_pct"] == 0
    assert result["delivered_nl"] == 4500
    assert got[2]["max_at_s"] == 68 * 60 and got[2]["min_at_s"] == 60 * 60
    assert got[5]["min_at_s"] == 60 * 60


def test_thirty_days_of_strokes_every_225_s():
    """250 nL every 225 s (3.75 min) is 96 000 nL/day, 200/3 nL/min. Strokes at 3.75 k min.

        P    ideal     strokes in (x, x+P]    Ep(max)                  Ep(min)
        2    400/3     0 or 1                 100 (250/(400/3) - 1) = +87.5    -100
        5   1000/3     1 or 2                 100 (500/(1000/3) - 1) = +50     100 (250/(1000/3) - 1) = -25
       11   2200/3     2 or 3                 100 (750/(2200/3) - 1) = +25/11  100 (500/(2200/3) - 1) = -350/11
       60   4000       16 exactly             0                                0
     1440   96000      384 exactly            0                                0

    A month at 30 s sampling is 86 401 samples: this is also the size check (well under 1 s).
    """
    duration = 30 * DAY_MS
    times = list(range(225_000, duration + 1, 225_000))
    result = trumpet(times, [250] * len(times), duration, 96_000)
    got = rows(result)
    want = {2: (87.5, -100), 5: (50, -25), 11: (Fraction(25, 11), Fraction(-350, 11)),
            60: (0, 0), 1440: (0, 0)}
    for p, (hi, lo) in want.items():
        assert (got[p]["max_pct"], got[p]["min_pct"]) == (float(hi), float(lo)), p
        assert got[p]["n_windows"] == 30 * 2880 - 120 - 2 * p + 1
    assert result["overall_pct"] == 0


# ---- properties -------------------------------------------------------------------------------

SAMPLE_MS = 60_000  # 1 min sampling keeps the examples small; windows are whole minutes


@st.composite
def runs(draw, positive_ideal=False):
    """A short run: strokes at arbitrary ms, and an ideal given in one of the accepted forms.
    Returns (times, vols, duration_ms, ideal argument, ideal_at(t) for the reference)."""
    n_min = draw(st.integers(1, 90))
    duration = n_min * MIN + draw(st.integers(0, MIN - 1))
    times = sorted(draw(st.lists(st.integers(0, duration + MIN), max_size=60)))
    vols = draw(st.lists(st.integers(0, 500), min_size=len(times), max_size=len(times)))
    kind = draw(st.sampled_from(["rate", "fraction", "sequence", "callable"]))
    lo = 1 if positive_ideal else 0
    if kind in ("rate", "fraction"):
        if kind == "rate":
            rate = draw(st.integers(1, 10**6))
        else:
            rate = Fraction(draw(st.integers(1, 10**6)), draw(st.integers(1, 999)))
        return times, vols, duration, rate, lambda t: Fraction(rate) * t / DAY_MS
    steps = draw(st.lists(st.integers(lo, 400), min_size=n_min, max_size=n_min))
    if kind == "sequence":
        seq = [0]
        for s in steps:
            seq.append(seq[-1] + s)
        return times, vols, duration, seq, lambda t: seq[t // SAMPLE_MS]
    den = draw(st.integers(1, 7))

    def ideal_at(t):  # a piecewise schedule in Fractions: steps[k] / den nL in minute k
        k = t // SAMPLE_MS
        return Fraction(sum(steps[:k]), den)
    return times, vols, duration, ideal_at, ideal_at


@given(run=runs(), start_min=st.integers(0, 30))
def test_matches_the_definition_evaluated_literally(run, start_min):
    times, vols, duration, ideal, ideal_at = run
    windows = (1, 2, 3, 5, 11, 19, 31, 60)
    result = trumpet(times, vols, duration, ideal, sample_ms=SAMPLE_MS,
                     start_ms=start_min * MIN, windows_min=windows)
    ref = reference(times, vols, duration, ideal_at, SAMPLE_MS, start_min * MIN, windows)
    for w in result["windows"]:
        hi, lo, hi_at, lo_at = ref[w["window_min"]]
        assert w["max_pct"] == (None if hi is None else float(hi)), w
        assert w["min_pct"] == (None if lo is None else float(lo)), w
        assert (w["max_at_s"], w["min_at_s"]) == (hi_at, lo_at), w
        fits = max(0, duration // MIN - start_min - w["window_min"] + 1)
        assert w["n_windows"] + w["n_undefined"] == fits


@given(run=runs(positive_ideal=True), data=st.data())
def test_a_window_made_of_whole_shorter_windows_never_widens_the_trumpet(run, data):
    """Why only multiples: a window of k x P minutes starting at x is the k windows of P minutes
    at x, x + P, ..., each a valid position, and its error is their mean weighted by their
    ideal volumes (all > 0). A weighted mean lies between the smallest and largest of its
    terms, so Ep(max) can only fall and Ep(min) only rise. For lengths that are not multiples
    this is false (see the next test), so the property is not claimed for them."""
    times, vols, duration, ideal, _ = run
    total = duration // MIN
    assume(total >= 2)
    short = data.draw(st.integers(1, min(8, total // 2)), label="short")
    k = data.draw(st.integers(2, total // short), label="k")
    long = short * k
    start_min = data.draw(st.integers(0, total - long), label="start_min")
    result = trumpet(times, vols, duration, ideal, sample_ms=SAMPLE_MS,
                     start_ms=start_min * MIN, windows_min=(short, long))
    s, lng = result["windows"]
    assert lng["n_windows"] > 0 and s["n_windows"] > 0
    assert lng["max_pct"] <= s["max_pct"]
    assert lng["min_pct"] >= s["min_pct"]


def test_a_longer_window_that_is_not_a_multiple_can_widen_the_trumpet():
    """20 nL at every even minute against 10 nL/min, 1 min sampling. Any 2 min window (x, x+2]
    holds exactly one even minute: 20 nL against 20, every position reads 0 %. A 3 min window
    holds one or two: 20 or 40 nL against 30, so -100/3 % and +100/3 %. Spread 0 -> 200/3."""
    duration = 2 * H
    times = list(range(2 * MIN, duration + 1, 2 * MIN))
    result = trumpet(times, [20] * len(times), duration, 10 * 1440, sample_ms=MIN, start_ms=0,
                     windows_min=(2, 3))
    two, three = result["windows"]
    assert two["max_pct"] == 0 and two["min_pct"] == 0
    assert three["max_pct"] == float(Fraction(100, 3))
    assert three["min_pct"] == float(Fraction(-100, 3))


@given(run=runs(positive_ideal=True), data=st.data())
def test_overall_error_lies_between_the_extremes_of_windows_that_tile_the_period(run, data):
    """When P divides the analysis period, the period is the union of disjoint windows, each a
    valid position, so A is their ideal-weighted mean: Ep(min) <= A <= Ep(max). Exactly so:
    each percentage is its exact value rounded once to a float, and rounding is monotonic."""
    times, vols, duration, ideal, _ = run
    total = duration // MIN
    p = data.draw(st.integers(1, total), label="p")
    q = data.draw(st.integers(1, total // p), label="windows in the period")
    start_min = total - p * q
    result = trumpet(times, vols, duration, ideal, sample_ms=SAMPLE_MS,
                     start_ms=start_min * MIN, windows_min=(p,))
    (w,) = result["windows"]
    assert w["n_windows"] == p * (q - 1) + 1
    assert w["min_pct"] <= result["overall_pct"] <= w["max_pct"]


def test_extremes_are_exact_where_floats_cannot_tell_the_windows_apart():
    """Two 1 min windows whose delivered/ideal ratios are 1 + 1e-17 and 1 + 3/(1e17 + 10): both
    round to the float 1.0, yet their errors (1e-15 % and about 3e-15 %) differ. Ep(max) must
    be the second, found by exact comparison, not the first float tie."""
    big = 10**17
    ideal = [0, big, 2 * big + 10]
    result = trumpet([MIN, 2 * MIN], [big + 1, big + 13], 2 * MIN, ideal, sample_ms=MIN,
                     start_ms=0, windows_min=(1,))
    (w,) = result["windows"]
    assert (big + 1) / big == (big + 13) / (big + 10) == 1.0
    assert w["max_pct"] == float(Fraction(300, big + 10)) and w["max_at_s"] == 60
    assert w["min_pct"] == float(Fraction(100, big)) and w["min_at_s"] == 0
    assert w["max_pct"] > w["min_pct"]


# ---- edges ------------------------------------------------------------------------------------

def test_windows_longer_than_the_analysis_period_are_absent_not_errors():
    duration = 3 * H  # analysis 1 h .. 3 h: 120 min
    times = list(range(0, duration + 1, 10 * MIN))
    result = trumpet(times, [250] * len(times), duration, 36_000,
                     windows_min=(60, 120, 121, 360, 1440))
    got = rows(result)
    assert got[60]["n_windows"] == 121
    assert got[120]["n_windows"] == 1            # exactly the period: one position, which is A
    assert got[120]["max_pct"] == got[120]["min_pct"] == result["overall_pct"]
    for p in (121, 360, 1440):
        assert got[p] == {"window_min": p, "n_windows": 0, "max_pct": None, "min_pct": None,
                          "max_at_s": None, "min_at_s": None, "n_undefined": 0}
    text = format_trumpet(result)
    assert "1440 min" in text and "absent" in text


def test_analysis_from_zero_and_a_period_that_starts_after_the_run():
    """start_ms = 0 includes the first hour; the extra positions see the early stroke."""
    times = [15 * MIN]  # one stroke in the first hour only
    ideal = 250 * 24  # 250 nL/h
    whole = trumpet(times, [250], 2 * H, ideal, start_ms=0, windows_min=(60,))
    skip = trumpet(times, [250], 2 * H, ideal, windows_min=(60,))
    assert rows(whole)[60]["max_pct"] == 0 and rows(whole)[60]["min_pct"] == -100
    assert rows(skip)[60]["max_pct"] == -100 and skip["overall_pct"] == -100
    late = trumpet(times, [250], 2 * H, ideal, start_ms=3 * H, windows_min=(2,))
    assert late["overall_pct"] is None and rows(late)[2]["n_windows"] == 0
    assert "empty" in format_trumpet(late)


def test_positions_without_programmed_flow_are_left_out_and_counted():
    """Nothing programmed for the first 30 min, then 1 nL per 30 s sample. A 10 min window has
    no percentage error while it lies wholly in the first 30 min (starts 0 .. 20 min: 41
    positions of 30 s); the rest are compared normally."""
    duration = 2 * H

    def ideal(t):
        return max(0, t - 30 * MIN) // 30_000

    times = list(range(30 * MIN + 30_000, duration + 1, 30_000))
    result = trumpet(times, [1] * len(times), duration, ideal, start_ms=0, windows_min=(10,))
    (w,) = result["windows"]
    assert w["n_undefined"] == 41
    assert w["n_windows"] == 240 - 20 + 1 - 41
    assert w["max_pct"] == 0 and w["min_pct"] == 0
    # Every defined position reads 0 %, so both extremes are first met at the first defined
    # position, j = 41 (starting at 41 x 30 s = 1230 s), not at the first position overall.
    assert w["max_at_s"] == w["min_at_s"] == 1230


def test_equivalent_forms_of_the_ideal_agree():
    duration = 5 * H
    times = [t for t in range(7_000, duration, 4 * MIN + 13_000)]
    vols = [200 + (i * 37) % 100 for i in range(len(times))]
    by_rate = trumpet(times, vols, duration, 75_000)
    by_call = trumpet(times, vols, duration, lambda t: Fraction(75_000 * t, DAY_MS))
    seq = [Fraction(75_000 * k * 30_000, DAY_MS) for k in range(duration // 30_000 + 1)]
    by_seq = trumpet(times, vols, duration, seq)
    assert by_rate == by_call == by_seq
    assert by_rate["windows"][0]["max_pct"] != by_rate["windows"][0]["min_pct"]


def test_a_fractional_constant_rate_is_exact():
    """The pulse train (250 nL every 10 min) against 72001/2 nL/day, half a nanolitre a day
    above its own mean rate. A 60 min window holds 6 strokes, 1500 nL, against an ideal of
    72001/2 / 24 = 72001/48 nL: E = 100 (1500 x 48 / 72001 - 1) = -100/72001 % in every
    position, and the same for A over 1 h .. 4 h (18 strokes against 3 x 72001/48)."""
    duration = 4 * H
    times = list(range(0, duration + 1, 10 * MIN))
    result = trumpet(times, [250] * len(times), duration, Fraction(72001, 2),
                     windows_min=(60,))
    (w,) = result["windows"]
    assert w["max_pct"] == w["min_pct"] == float(Fraction(-100, 72001))
    assert result["overall_pct"] == float(Fraction(-100, 72001))


@pytest.mark.parametrize("kwargs", [
    {"start_ms": 45_000},             # not a whole number of 30 s samples
    {"windows_min": (2, 0)},          # an empty window
    {"sample_ms": 45_000, "start_ms": 0, "windows_min": (2,)},  # 2 min is not whole samples
    {"sample_ms": 0},
])
def test_rejects_parameters_that_do_not_fit_the_sampling(kwargs):
    with pytest.raises(ValueError):
        trumpet([0], [250], 2 * H, 36_000, **kwargs)


def test_rejects_an_ideal_that_does_not_match_the_samples():
    with pytest.raises(ValueError):
        trumpet([0], [250], 2 * H, [0, 1, 2])
    with pytest.raises(TypeError):
        trumpet([0], [250], 2 * H, 36_000.0)
