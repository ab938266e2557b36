"""Titration guards (host_tools/titration.py, drugs.toml): each rule refuses what it should and
nothing else; decreases are never limited."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from host_tools import druglib, titration
from host_tools.titration import Change, check

H, D = 3600, 86_400
NOW = 100 * D
ZICO = druglib.get("ziconotide").titration
BACLOFEN = druglib.get("baclofen").titration
MORPHINE = druglib.get("morphine").titration


def zico(ng, ts=0, increase=False):
    return Change(ts, "ziconotide", ng, increase)


def test_every_titration_rule_cites_a_source():
    for drug in druglib.load().values():
        if drug.titration is not None:
            assert drug.titration.sources, drug.name


def test_the_library_holds_the_labelled_numbers():
    # EU SmPC section 4.2: steps of at most 2.4 mcg/day, recommended 48 h apart; the start of
    # at most 1.2 mcg/day is the low-and-slow consensus (McDowell and Pope 2016).
    assert (ZICO.max_start_ng_day, ZICO.max_step_ng_day) == (1200, 2400)
    assert ZICO.min_interval_s == 48 * H
    assert ZICO.sources["min_interval"] == ZICO.sources["max_step"] == "prialt_eu"
    assert (ZICO.max_increases, ZICO.increase_window_s) == (3, 7 * D)
    assert (BACLOFEN.max_increase_ppm, BACLOFEN.percent_window_s) == (300_000, D)
    assert druglib.get("baclofen").titration_for("cerebral").max_increase_ppm == 150_000
    assert MORPHINE.max_increase_ppm == 200_000


@pytest.mark.parametrize("ng, ok", [(1200, True), (1201, False), (600, True), (2400, False)])
def test_ziconotide_starts_at_most_at_1_2_mcg_a_day(ng, ok):
    assert (check(ZICO, "ziconotide", None, ng, NOW) == []) == ok
    # A pump that ran another drug counts as a start too.
    assert (check(ZICO, "ziconotide", Change(0, "morphine", 100), ng, NOW) == []) == ok


@given(old=st.integers(1, 19_200), step=st.integers(1, 10_000))
def test_a_ziconotide_step_may_add_at_most_2_4_mcg_a_day(old, step):
    found = check(ZICO, "ziconotide", zico(old), old + step, NOW)
    assert (found == []) == (step <= 2400)
    if found:
        assert "2.4 mcg/day" in found[0]


def test_ziconotide_rises_at_most_three_times_in_any_seven_days():
    history = [zico(2400, NOW - 6 * D, True), zico(4800, NOW - 4 * D, True),
               zico(7200, NOW - 2 * D, True)]
    found = check(ZICO, "ziconotide", zico(7200), 8400, NOW, history)
    assert len(found) == 1 and "3 time(s) in the last 7 d" in found[0]
    # A week after the first one, one slot is free again.
    assert check(ZICO, "ziconotide", zico(7200), 8400, NOW + D + 1, history) == []
    # Changes that were not increases do not count.
    flat = [zico(2400, NOW - 6 * D), zico(4800, NOW - 4 * D, True), zico(7200, NOW - 2 * D, True)]
    assert check(ZICO, "ziconotide", zico(7200), 8400, NOW, flat) == []


def test_two_ziconotide_increases_are_two_days_apart():
    history = [zico(4800, NOW - 44 * H, True)]
    found = check(ZICO, "ziconotide", zico(4800), 6000, NOW, history)
    assert len(found) == 1 and "at least 2 d apart" in found[0]
    assert check(ZICO, "ziconotide", zico(4800), 6000, NOW + 4 * H, history) == []


def test_baclofen_of_cerebral_origin_rises_at_most_15_percent_a_day():
    rule = druglib.get("baclofen").titration_for("cerebral")
    old = Change(0, "baclofen", 100_000)
    assert check(rule, "baclofen", old, 115_000, NOW) == []
    assert "15 %" in check(rule, "baclofen", old, 116_000, NOW)[0]
    assert check(BACLOFEN, "baclofen", old, 116_000, NOW) == []  # spinal origin: 30 %


def test_baclofen_starts_from_the_screening_dose():
    assert "screening" in check(BACLOFEN, "baclofen", None, 100_000, NOW)[0]
    assert check(BACLOFEN, "baclofen", None, 100_000, NOW, screening_ng=50_000) == []
    found = check(BACLOFEN, "baclofen", None, 100_001, NOW, screening_ng=50_000)
    assert "from a screening dose of 50 mcg" in found[0] and "100 mcg/day" in found[0]


@pytest.mark.parametrize("drug, top_ng", [("morphine", 500_000), ("hydromorphone", 150_000),
                                           ("fentanyl", 75_000), ("sufentanil", 20_000),
                                           ("bupivacaine", 4_000_000), ("clonidine", 100_000)])
def test_an_opioid_naive_start_is_bounded(drug, top_ng):
    rule = druglib.get(drug).titration
    assert check(rule, drug, None, top_ng, NOW) == []
    found = check(rule, drug, None, top_ng + 1, NOW)
    assert len(found) == 1 and "override" in found[0]


@given(old=st.integers(1_000, 2_000_000), new=st.integers(1_000, 3_000_000))
def test_baclofen_rises_at_most_30_percent_in_a_day(old, new):
    found = check(BACLOFEN, "baclofen", Change(0, "baclofen", old), new, NOW)
    assert (found == []) == (new <= old * 13 // 10)


def test_two_baclofen_steps_in_a_day_cannot_add_up_past_30_percent():
    # 100 -> 125 mcg/day 20 h ago; now 125 -> 135: only 8 % over the current basal, but 35 %
    # over the lowest basal of the last 24 h, and a second increase within 24 h.
    history = [Change(NOW - 30 * H, "baclofen", 100_000), Change(NOW - 20 * H, "baclofen",
                                                                 125_000, True)]
    found = check(BACLOFEN, "baclofen", Change(0, "baclofen", 125_000), 135_000, NOW, history)
    assert len(found) == 2
    assert "100 mcg/day earlier" in found[0] and "130 mcg/day" in found[0]
    assert "1 time(s) in the last 1 d" in found[1]
    # A day later both rules are satisfied.
    assert check(BACLOFEN, "baclofen", Change(0, "baclofen", 125_000), 135_000,
                 NOW + 5 * H, history) == []


@given(old=st.integers(1, 10**9), new=st.integers(1, 10**9),
       drug=st.sampled_from(sorted(druglib.load())))
def test_a_decrease_is_never_refused(old, new, drug):
    assume(new <= old)
    rule = druglib.get(drug).titration
    assert check(rule, drug, Change(0, drug, old), new, NOW,
                 [Change(NOW - H, drug, old * 2, True)] * 5) == []


def test_a_drug_without_a_rule_is_not_limited():
    assert druglib.get("ketamine").titration is None
    assert check(None, "ketamine", Change(0, "ketamine", 1), 10**9, NOW) == []


def test_the_record_round_trips_per_pump(tmp_path, monkeypatch):
    monkeypatch.setenv("PUMPCTL_STATE_DIR", str(tmp_path))
    assert titration.load_history("p/1") == []
    titration.record("p/1", Change(5, "baclofen", 100, False, None))
    titration.record("p/1", Change(9, "baclofen", 120, True, "spasms at night"))
    assert titration.load_history("p/1") == [Change(5, "baclofen", 100, False, None),
                                              Change(9, "baclofen", 120, True,
                                                     "spasms at night")]
    assert titration.load_history("other") == []
