"""The host's clinical arithmetic (host_tools/clinical.py): the bridge bolus, daily totals, the
schedule at a minute, the room left after an assumed account, the library's limits. Property
tests name the invariant each one keeps."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from host_tools import clinical, fmt
from host_tools.prescription import BasalStep, Prescription

DAY_MIN = 1440


@st.composite
def schedules(draw):
    """1 to 13 steps: the first at 00:00, the starts ascending, rates in ng/day."""
    n = draw(st.integers(1, 13))
    starts = sorted(draw(st.sets(st.integers(1, DAY_MIN - 1), min_size=n - 1, max_size=n - 1)))
    rates = draw(st.lists(st.integers(0, 50_000_000_000), min_size=n, max_size=n))
    return [[s, r] for s, r in zip([0, *starts], rates)]


@given(old=st.integers(1_000, 50_000_000), factor=st.integers(11, 100),
       basal=st.integers(48_000, 2_000_000))
def test_a_bridge_bolus_keeps_the_old_drug_at_the_prescribed_dose(old, factor, basal):
    new = old * factor // 10          # a stronger drug: 1.1 to 10 times
    catheter = 200_000
    dose, dur = clinical.bridge_plan(catheter, old, new, basal)
    old_rate = basal * new / old      # the volume rate that gave the prescribed dose before
    # Basal plus bridge push the catheter out at the old volume rate ...
    assert basal + dose * 86_400 / dur == pytest.approx(old_rate, rel=0.01, abs=2)
    # ... for as long as it takes the old rate to empty the catheter (a bolus lasts a day at most).
    assert 0 < dur <= 86_400
    if dur < 86_400:
        assert old_rate * dur / 86_400 == pytest.approx(catheter, abs=old_rate / 86_400 + 1)
    else:
        assert old_rate <= catheter + old_rate / 86_400  # a day at the old rate does not flush it


def test_no_bridge_bolus_when_the_drug_gets_weaker():
    assert clinical.bridge_plan(200_000, 25_000_000, 10_000_000, 240_000) is None
    hours, factor = clinical.bridge_overdose(200_000, 25_000_000, 10_000_000, 600_000)
    assert factor == 2.5 and hours == 200_000 * 86_400 // 600_000


@given(schedules())
def test_the_daily_total_lies_between_the_lowest_and_highest_step(steps):
    total = clinical.daily_basal_ng(steps)
    rates = [r for _, r in steps]
    assert min(rates) <= total <= max(rates)


@given(schedules())
@example([[0, 3_000_000]])
def test_the_daily_total_is_the_integral_of_the_schedule_minute_by_minute(steps):
    integral = sum(clinical.rate_at(steps, m) for m in range(DAY_MIN))
    assert clinical.daily_basal_ng(steps) == integral // DAY_MIN


@given(schedules())
def test_the_daily_total_is_the_one_the_prescription_computes(steps):
    rx = Prescription("morphine", 25_000_000,
                      tuple(BasalStep(s * 60_000, r) for s, r in steps), False, None, 1, 0)
    assert clinical.daily_basal_ng(steps) == rx.daily_basal_ng()


@given(st.integers(0, 10**12), st.integers(1, 100_000_000))
def test_a_mass_in_ng_is_the_exact_mass_rounded_down(nl, conc):
    exact = fmt.nl_to_ng(nl, conc)
    assert clinical.nl_to_ng(nl, conc) == int(exact) and exact - 1 < clinical.nl_to_ng(nl, conc)


@given(st.integers(1, 10**9), st.integers(1, 10**8), st.integers(1, 10**8),
       st.integers(1, 10**9))
def test_a_weaker_drug_gets_no_bridge_and_a_warning_of_how_much_stronger_the_old_runs(
        catheter, old, new, basal):
    plan = clinical.bridge_plan(catheter, old, new, basal)
    over = clinical.bridge_overdose(catheter, old, new, basal)
    assert plan is None or over is None             # never both
    if new < old:
        assert plan is None and over is not None
        secs, factor = over
        assert factor == old / new > 1 and secs == catheter * 86_400 // basal
    if new > old:
        assert over is None and plan is not None and 0 <= plan[0] and 0 <= plan[1] <= 86_400


@given(st.integers(0, 10**10), st.integers(0, 10**10))
def test_the_room_left_for_boluses_is_never_negative_nor_above_the_cap(cap, assumed):
    room = clinical.bolus_room_ng(cap, assumed)
    assert 0 <= room <= cap and (room == 0 or room + assumed == cap)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_a_dose_is_refused_only_above_the_hard_limit_and_warned_only_above_the_soft(ng, a, b):
    soft, hard = min(a, b), max(a, b)
    excess = clinical.library_excess(ng, soft, hard)
    assert (excess == "hard") == (ng > hard)
    assert (excess == "soft") == (soft < ng <= hard)


def test_the_rate_at_a_minute_is_the_step_started_by_then():
    steps = [[0, 2], [420, 3], [1320, 5]]
    assert [clinical.rate_at(steps, m) for m in (0, 419, 420, 1319, 1320, 1439)] == \
        [2, 2, 3, 3, 5, 5]
