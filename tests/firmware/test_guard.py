"""The dose guard alone, and the prescription checks that keep its cap meaningful."""

from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.guard import RESERVE, SAVE_LEN, UNITS, DoseGuard
from firmware.rx import Rx, RxError
from pump_harness import DAY, Bench, Board

BOARD = Board(250, 600, 48000)


@given(cap=st.integers(1, 40),
       gaps=st.lists(st.integers(0, 3 * 3_600_000) | st.integers(0, 120_000), min_size=1,
                     max_size=120))
def test_no_24h_window_ever_holds_more_than_the_cap(cap, gaps):
    """Ask for a stroke after each gap; the approved ones, judged by exact 24 h windows ending at
    each of them, never exceed the cap. (The guard's window is 24 h plus up to one minute.)"""
    g = DoseGuard()
    g.set_cap(cap * UNITS)
    t = 0
    approved = []
    for gap in gaps:
        g.advance(gap)
        t += gap
        if g.needs_save():
            g.save_into(array("i", [0] * SAVE_LEN), 0)
            g.saved()
        if g.approve():
            approved.append(t)
            assert sum(1 for a in approved if a > t - DAY) <= cap
    assert g.total == sum(g.buckets) and g.total <= cap * UNITS


def test_the_oldest_minute_stays_counted_for_a_full_day():
    """Regression (found by the state machine): with 1440 buckets in all, a stroke made in the
    first second of a minute dropped out of the account at 23 h 59 min 1 s, and a 193rd stroke
    fitted in a 24 h window capped at 192."""
    g = DoseGuard()
    g.set_cap(UNITS)
    g.advance(1000)
    assert g.approve()
    g.advance(DAY - 1000)          # exactly 24 h after that stroke's minute began
    assert not g.approve()
    g.advance(1000)                # the stroke is now 24 h old and out of every window ending now
    g.advance(60_000)
    assert g.approve()


def test_the_193rd_stroke_regression_through_the_pump():
    """The state machine's failing case: 48000 nL/day (192 strokes) under a 48000 nL cap, a
    one-stroke patient bolus at the start, three days of delivery."""
    b = Bench(BOARD)
    b.power_on(0, None, None)
    assert b.program({"conc_ng_ml": 1_000_000, "steps": [[0, 48000], [1, 48000], [91, 48000]],
                      "low_res_nl": 0, "max_daily_ng": 48000, "pb": [250, 1, 600, 1]})
    b.patient_bolus()
    b.advance(3 * DAY - 1)   # the bench raises on any 24 h window over the cap
    assert len(b.strokes) >= 3 * 192 - 2


def test_a_save_reserves_strokes_and_a_clean_save_reserves_none():
    g = DoseGuard()
    g.set_cap(1000 * UNITS)
    out = array("i", [0] * SAVE_LEN)
    for _ in range(5):
        assert g.approve()
    g.save_into(out, 0)
    g.saved()
    restored = DoseGuard()
    restored.load_from(out, 0)
    assert restored.total == (5 + RESERVE) * UNITS  # power loss: assume the reserve went out
    # it approves no more than RESERVE strokes before it asks for another save
    n = 0
    while g.approve():
        n += 1
    assert n == RESERVE and g.needs_save()
    g.save_into(out, 0, clean=True)
    g.saved(clean=True)
    restored.load_from(out, 0)
    assert restored.total == (5 + RESERVE) * UNITS  # exact: every approved stroke, no more
    assert not g.approve()                        # nothing after a clean save


def test_a_save_the_flash_did_not_confirm_opens_no_new_reserve():
    """The record is filled but the write fails: the strokes since the last good save stay
    unsaved, so the guard stops at the old reserve (it will not approve past what flash holds)."""
    g = DoseGuard()
    g.set_cap(1000 * UNITS)
    out = array("i", [0] * SAVE_LEN)
    g.save_into(out, 0)
    g.saved()
    n = 0
    while g.approve():
        n += 1
        if g.needs_save():
            g.save_into(out, 0)  # the write fails: saved() is never called
    assert n == RESERVE and g.unsaved == RESERVE
    g.saved()                    # a later write goes through
    assert g.approve()


def test_an_assumed_account_is_spread_over_the_last_day_and_leaves_with_it():
    g = DoseGuard()
    g.set_cap(2000 * UNITS)
    g.advance(5 * 60_000 + 17_000)
    g.assume(1441 + 3)
    assert g.total == 1444 * UNITS == sum(g.buckets)
    assert g.buckets[g.idx] == UNITS        # the most recent minute holds its share
    # After 24 h every assumed stroke has left the window (1441 buckets: one minute more).
    g.advance(DAY + 60_000)
    assert g.total == 0


def _params(**kw):
    p = {"conc_ng_ml": 1_000_000, "steps": [[0, 48000]], "max_daily_ng": 48000,
         "low_res_nl": 0, "pb": None}
    p.update(kw)
    return p


def test_a_cap_below_the_basal_in_whole_strokes_is_refused():
    """Regression (state machine): a basal of 66700 nL/day under a 66700 nL cap is 266.8 strokes
    a day against a cap of 266: the basal alone would hit the dose limit every day."""
    steps = [[0, 48000], [1308, 252000]]  # 43600 + 23100 = 66700 nL/day
    with pytest.raises(RxError) as e:
        Rx(_params(steps=steps, max_daily_ng=66700), BOARD)
    assert e.value.key == "steps" and "267 strokes" in e.value.message
    assert Rx(_params(steps=steps, max_daily_ng=66750), BOARD).max_daily_strokes == 267


def test_a_cap_beyond_what_the_motor_can_pump_is_refused():
    """Regression (state machine): a cap of 2**30 - 1 strokes put a value above 2**30 in the
    pump's state. No cap can exceed a day of the motor at full speed."""
    motor_day_ng = 600 * 1440 * 250  # nL at 1 mg/mL is ng
    assert Rx(_params(max_daily_ng=motor_day_ng), BOARD).max_daily_strokes == 600 * 1440
    with pytest.raises(RxError) as e:
        Rx(_params(max_daily_ng=motor_day_ng + 250), BOARD)
    assert e.value.key == "max_daily_ng"


def test_a_weaker_solution_does_not_open_room_in_the_window():
    """After a change from 25 to 10 mg/mL, strokes of the old drug count 2.5 times against the
    cap in the new drug's units: the mass in any 24 h stays under the prescribed maximum."""
    g = DoseGuard()
    g.set_cap(1000 * UNITS)
    for minute in range(5):
        for _ in range(3):
            assert g.approve()
        g.unsaved = 0
        g.advance(60_000)
    assert g.total == 15 * UNITS
    g.rescale(25_000_000, 10_000_000)
    assert g.total == 5 * 3 * UNITS * 25 // 10  # 37.5 strokes' worth of the new drug, exactly
    g.rescale(10_000_000, 25_000_000)   # and back: the same mass
    assert g.total == 15 * UNITS
    g.rescale(1, 10 ** 9)
    assert g.total == 5      # anything non-zero stays at least one unit a minute


def test_a_stronger_solution_does_not_trip_the_cap():
    """Regression (issue 19, item 1): morphine 10 -> 25 mg/mL, 2.5 mg/day under a 3 mg cap. The
    account used to count each minute's old strokes as at least one new stroke (rounded up per
    minute), so a day of about one stroke a minute at 10 mg/mL became a day of them at 25:
    dose_limit minutes after the refill. In drug mass it holds 2.5 mg, as it should."""
    stroke = 250
    old, new = 10_000_000, 25_000_000
    g = DoseGuard()
    g.set_cap(3_000_000 * 1_000_000 * UNITS // (old * stroke))   # 3 mg at 10 mg/mL
    for minute in range(1440):           # 1000 strokes a day: 2.5 mg at 10 mg/mL
        if minute * 1000 // 1440 != (minute + 1) * 1000 // 1440:
            assert g.approve()
            g.unsaved = 0
        g.advance(60_000)
    g.rescale(old, new)
    g.set_cap(3_000_000 * 1_000_000 * UNITS // (new * stroke))   # 3 mg at 25 mg/mL
    held_ng = g.total * stroke * new // (UNITS * 1_000_000)
    unit_ng = stroke * new // (UNITS * 1_000_000)
    assert 2_500_000 <= held_ng <= 2_500_000 + 1000 * unit_ng   # never below; a unit a minute
    assert g.room() >= 60 * UNITS              # room for the new basal's strokes


def test_the_small_int_invariant_names_a_big_value_inside_an_array():
    """The state machines' small_ints check skips naming in-range ints of flat arrays; it must
    still find and name an out-of-range one there."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from pump_harness import big_ints

    from firmware.therapy import Therapy
    from tests.testboard import HealthyHal

    class Log:
        def add(self, *a):
            pass

    hal = HealthyHal()
    th = Therapy(hal, Log(), hal.save_state)
    assert big_ints(th) == []
    th.guard.buckets[7] = 1 << 30
    th.record.state[3] = -(1 << 30)
    assert sorted(big_ints(th)) == [("th.guard.buckets[7]", 1 << 30),
                                    ("th.record.state[3]", -(1 << 30))]
