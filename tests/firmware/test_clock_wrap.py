"""ticks_ms wraps at 2**30 (MicroPython's TICKS_PERIOD): the same run started anywhere before
the wrap must make the same strokes at the same instants and log the same events."""

from hypothesis import given
from hypothesis import strategies as st

from firmware import ticks
from pump_harness import DAY, HOUR, Bench, Board
from strategies import prescriptions

BOARD = Board(250, 600, 48000)
WRAP = 1 << 30


def _run(params, tick0, tod0, script):
    b = Bench(BOARD, tod0=tod0, tick0=tick0)
    b.power_on(tick0, None, None)
    assert b.program(params)
    for what, x in script:
        if what == "advance":
            b.advance(x)
        elif what == "pb":
            b.patient_bolus()
        elif what == "cb":
            b.clinician_bolus(x * BOARD.STROKE_NL, HOUR)
        elif what == "reboot":
            b.reboot(x, (tick0 + b.v) & (WRAP - 1))
    return b.strokes, [(v, code, a, c) for v, code, a, c in b.events]


scripts = st.lists(st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 6 * HOUR) | st.integers(1, 5000)),
    st.tuples(st.just("pb"), st.just(0)),
    st.tuples(st.just("cb"), st.integers(1, 20)),
    st.tuples(st.just("reboot"), st.integers(0, 3000)),
), min_size=1, max_size=12)


@given(data=st.data(), before=st.integers(1, 2 * DAY) | st.integers(1, 10_000),
       tod0=st.integers(0, DAY - 1), script=scripts)
def test_runs_across_the_wrap_match_runs_from_zero(data, before, tod0, script):
    params = data.draw(prescriptions(BOARD, valid_only=True))
    script = script + [("advance", DAY)]
    assert _run(params, WRAP - before, tod0, script) == _run(params, 0, tod0, script)


def test_tick_arithmetic_at_the_wrap():
    assert ticks.add(WRAP - 1, 1) == 0
    assert ticks.diff(0, WRAP - 1) == 1
    assert ticks.diff(WRAP - 1, 0) == -1
    assert ticks.add(5, -10) == WRAP - 5
