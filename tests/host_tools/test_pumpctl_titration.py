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


# ---- the override's ceilings and the start rule (issue 19, item 5) -------------------------------

def ceiling(*args, **kw):
    found = titration.override_ceiling(titration.assess(*args, **kw))
    return None if found is None else found.ceiling_ng_day


def test_the_override_ceilings_are_the_labels():
    assert ZICO.max_start_override_ng_day == 2400
    assert ZICO.sources["max_start_override"] == "prialt_us"
    assert ZICO.max_step_override_ng_day == 2400 and ZICO.min_interval_override_s == 24 * H
    assert BACLOFEN.trial_effect_s == 8 * H
    assert (BACLOFEN.start_per_screening, BACLOFEN.start_per_screening_long) == (2, 1)


@given(new=st.integers(1201, 21_600))
def test_an_override_may_start_ziconotide_at_most_at_the_labels_2_4_mcg_a_day(new):
    found = titration.assess(ZICO, "ziconotide", None, new, NOW)
    assert len(found) == 1 and found[0].ceiling_ng_day == 2400
    assert "an override with the reason may start it at most at 2.4 mcg/day" in found[0].text
    assert "PRIALT" in found[0].ceiling_why


def test_an_override_never_makes_a_ziconotide_step_larger_than_the_label():
    assert ceiling(ZICO, "ziconotide", zico(2400), 7200, NOW) == 4800
    # 20 h after the last increase: under the SmPC's 24 h, no increase at all.
    assert ceiling(ZICO, "ziconotide", zico(2400), 3600, NOW,
                   [zico(2400, NOW - 20 * H, True)]) == 2400
    # 30 h after it: only the recommended 48 h is broken, and an override lifts that.
    assert ceiling(ZICO, "ziconotide", zico(2400), 3600, NOW,
                   [zico(2400, NOW - 30 * H, True)]) is None


def test_an_opioid_start_override_is_bounded_by_the_hard_limits_only():
    assert ceiling(MORPHINE, "morphine", None, 10_000_000, NOW) is None


@given(screening=st.integers(1_000, 100_000), effect_h=st.integers(1, 24))
def test_the_baclofen_start_rule_is_twice_the_screening_dose_unless_it_worked_over_8_h(
        screening, effect_h):
    rule = titration.start_rule(BACLOFEN, "baclofen", screening, effect_h * H)
    assert rule is not None
    assert rule.dose_ng_day == screening * (1 if effect_h > 8 else 2)
    assert rule.ceiling_ng_day == 2 * screening
    assert titration.assess(BACLOFEN, "baclofen", None, rule.dose_ng_day, NOW, (), screening,
                            effect_h * H) == []
    for other in (rule.dose_ng_day - 1, rule.dose_ng_day + 1, 3 * screening):
        found = titration.assess(BACLOFEN, "baclofen", None, other, NOW, (), screening,
                                 effect_h * H)
        assert len(found) == 1 and found[0].ceiling_ng_day == 2 * screening
        assert "the start rule gives" in found[0].text


def test_the_start_rule_names_its_source_and_the_drugs_without_one_have_none():
    rule = titration.start_rule(BACLOFEN, "baclofen", 50_000, 6 * H)
    assert rule is not None and "Saulino" in rule.why and "100 mcg/day" in rule.why
    assert titration.start_rule(ZICO, "ziconotide", 1000, 6 * H) is None
    assert titration.start_rule(None, "ketamine", 1000, 6 * H) is None


@given(drug=st.sampled_from(sorted(druglib.load())), new=st.integers(1, 10**8))
def test_no_start_override_ceiling_is_past_a_hard_limit(drug, new):
    """Every ceiling a start can meet (the label's start, twice a screening dose within one
    clinician bolus) stays under the drug's hard daily dose."""
    d = druglib.get(drug)
    screening = d.clinician_bolus.hard
    for effect in (None, H, 24 * H):
        top = ceiling(d.titration, drug, None, new, NOW, (), screening, effect)
        assert top is None or top <= d.daily.hard
