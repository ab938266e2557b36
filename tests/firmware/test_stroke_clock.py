"""The stroke clock alone: its small-integer long multiplication and the exact carry of the part
of a stroke already accumulated when the rate changes."""

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from firmware.stroke_clock import DAY_MS, StrokeClock

S = 250
rates = st.integers(48_000, (1 << 28) - 1)


@given(x=st.integers(0, (1 << 30) - 1), y=st.integers(0, 1 << 40), d=st.integers(1, (1 << 28) - 1))
def test_muldiv_is_divmod(x, y, d):
    c = StrokeClock(S)
    q, r = divmod(x * y, d)
    if q >= 1 << 30:
        return  # outside the documented range
    c._muldiv(x, y, d)
    assert (c._mq, c._mr) == (q, r)


def _strokes(c, until):
    """Stroke times (ms) up to `until`, from a clock started at 0."""
    out = []
    while c.due <= until:
        out.append(c.due)
        c.stroke_done()
    return out


@given(rate=rates, n=st.integers(1, 400))
def test_constant_rate_fires_at_the_first_ms_the_ideal_reaches_each_stroke(rate, n):
    c = StrokeClock(S)
    c.start(0, rate)
    got = _strokes(c, n * S * DAY_MS // rate + 1)
    # stroke k is due at ceil(k * S * DAY / rate)
    want = [-(-k * S * DAY_MS // rate) for k in range(1, len(got) + 1)]
    assert got == want and len(got) >= n


@given(segments=st.lists(st.tuples(rates, st.integers(1, 200_000)), min_size=1, max_size=6),
       lead=st.integers(0, (1 << 28) - 1))
def test_rate_changes_carry_the_accumulated_part_exactly(segments, lead):
    """Piecewise-constant rates, with a lead (a bolus's rounding remainder, nL*ms/day) credited
    at the first change: stroke k fires at the first ms at which the exact ideal volume reaches
    k strokes, so delivery is never ahead of the ideal nor a whole stroke behind it."""
    starts = [0]
    for _, length in segments:
        starts.append(starts[-1] + length)

    def ideal(t):
        v = Fraction(0)
        for (rate, _), a, b in zip(segments, starts, starts[1:]):
            if t > a:
                v += Fraction(rate * (min(t, b) - a), DAY_MS)
        if len(segments) > 1 and t >= starts[1]:
            v += Fraction(lead, DAY_MS)
        return v

    c = StrokeClock(S)
    c.start(0, segments[0][0])
    fired = []
    for i, (rate, _) in enumerate(segments):
        if i:
            c.change_rate(starts[i], rate, lead if i == 1 else 0)
        while c.due <= starts[i + 1]:
            fired.append(c.due)
            c.stroke_done()
    for k, when in enumerate(fired, start=1):
        assert ideal(when) >= k * S, ("ahead of the ideal", k, when)
        assert ideal(when - 1) < k * S, ("a stroke late", k, when)
    assert ideal(starts[-1]) - len(fired) * S < S
