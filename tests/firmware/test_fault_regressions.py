"""Regressions found by the fault state machine (tests/firmware/test_fault_state_machine.py),
each replaying the shrunk sequence of steps on the same bench."""

from test_fault_state_machine import FaultBench


def test_a_fallback_to_the_older_record_takes_the_reservoir_account_down_by_a_reserve():
    """Six patient boluses at every lockout's end, then a boot that finds the newest state record
    damaged and falls back to the one before it. The guard counted the extra reserve of strokes
    (up to two saves' worth may have gone since that record) but the reservoir account did not:
    the pump believed in 500 nL more drug than the reservoir held, so it could have pumped below
    the board's minimum. Boot now takes the reserve off the reservoir account too."""
    params = {"conc_ng_ml": 1_000_000, "steps": [[0, 200_000]], "low_res_nl": 0,
              "max_daily_ng": 220_250, "pb": [250, 1, 600, 1]}
    b = FaultBench(seed=0, noise_pa=0, tod0=0, tick0=0)
    b.start(params, 20_000_000)
    lockout_ms = params["pb"][2] * 1000
    for _ in range(6):
        b.advance(lockout_ms)
        b.patient_bolus()
    b.check_accounts()
    b.restart("rot", 0, 0)
    assert b.th.reservoir.nl <= b.true_res_nl
    b.check_accounts()
    b.advance(86_400_000)
    b.check_accounts()


def test_the_rolling_cap_holds_when_the_power_fails_right_after_a_stroke_at_the_cap():
    """Fill the guard to the cap with a clinician bolus, cut the power right after a stroke (the
    pump never accounted it), and ask for the whole room the rebooted pump sees: the 24 h of real
    strokes stays within the cap."""
    params = {"conc_ng_ml": 1_000_000, "steps": [[0, 100_000]], "low_res_nl": 0,
              "max_daily_ng": 105_000, "pb": None}
    b = FaultBench(seed=1, noise_pa=500, tod0=0, tick0=(1 << 30) - 5000)
    b.start(params, 20_000_000)
    b.advance(86_400_000)
    b.clinician_bolus(b.pump.guard.room_nl(250), 0)
    b.cut, b.cut_off_ms = "stroke", 1000
    b.advance(3_600_000)
    assert b.cuts == 1
    room = b.pump.guard.room_nl(250)
    if room > 0:
        b.clinician_bolus(room, 0)
    b.advance(86_400_000)
    b.check_accounts()


def test_a_torn_resume_then_a_damaged_record_leaves_nothing_and_raises_memory_error():
    """Stopped, refilled, then the power fails in the middle of the resume's save (tearing the
    slot that held the stop), and the surviving record is then found damaged too. Nothing valid
    is left: the pump must boot into memory_error and deliver nothing, not run on as if the
    stop had never been. (Found by the deep profile; the bench first took this for a fallback.)"""
    from firmware import codes

    params = {"conc_ng_ml": 1_000_000, "steps": [[0, 48_000]], "low_res_nl": 0,
              "max_daily_ng": 53_000, "pb": None}
    b = FaultBench(seed=0, noise_pa=0, tod0=0, tick0=0)
    b.start(params, 20_000_000)
    b.stop()
    b.refill(20_000_000)
    b.cut, b.cut_off_ms = "save", 0
    b.advance(600_000)
    b.resume()
    assert b.cuts == 1 and b.pump.stopped  # the resume never reached flash
    b.restart("rot", 0, 0)
    assert b.th.sup.alarms & (1 << codes.AL_MEMORY_ERROR)
    before = len(b.strokes)
    b.advance(86_400_000)
    assert len(b.strokes) == before
    b.check_accounts()


def test_a_pump_booted_from_a_clean_record_saves_its_reserve_before_the_first_stroke():
    """An orderly reboot saves the account exactly (no reserve). The loaded guard then counted
    nothing as unsaved, so up to 32 strokes went by with only that clean record on flash; a
    power cut then forgot them (the reservoir account too: 20 mL believed, 19.99975 mL there).
    The guard now asks for a save before its first approval after a load."""
    params = {"conc_ng_ml": 1_000_000, "steps": [[0, 48_000]], "low_res_nl": 0,
              "max_daily_ng": 53_000, "pb": None}
    b = FaultBench(seed=0, noise_pa=0, tod0=0, tick0=0)
    b.start(params, 20_000_000)
    b.restart("reboot", 0, 0)
    b.advance(600_000)  # one stroke at 0.048 mL/day
    assert len(b.strokes) == 1
    b.restart("cut", 0, 0)
    assert b.th.reservoir.nl <= b.true_res_nl
    b.check_accounts()


def test_a_fallback_to_a_clean_record_covers_every_stroke_since():
    """The same hole through a damaged record: a clean reboot at the cap, 50 strokes, then the
    newest record is found damaged and the pump falls back to the clean one. Without a save
    before the first stroke, 32 of the 50 strokes were in no record and the fallback's reserve
    covered only 32 of them: the reservoir account came out 18 strokes above the truth. The deep
    profile found the same root cause breaking the cap (2096 strokes in a day capped at 2095,
    after a clean reboot, a bolus to the cap and a damaged newest record)."""
    params = {"conc_ng_ml": 1_000_000, "steps": [[0, 2_000_000]], "low_res_nl": 0,
              "max_daily_ng": 2_010_000, "pb": None}  # 8000 strokes a day, cap 8040
    b = FaultBench(seed=3, noise_pa=0, tod0=0, tick0=0)
    b.start(params, 20_000_000)
    b.advance(86_400_000)
    b.clinician_bolus(b.pump.guard.room_nl(250), 0)
    b.advance(600_000)
    b.restart("reboot", 0, 0)
    n = len(b.strokes)
    b.advance(540_000)
    assert len(b.strokes) - n == 50
    b.restart("rot", 0, 0)
    room = b.pump.guard.room_nl(250)
    if room > 0:
        b.clinician_bolus(room, 0)
    b.advance(86_400_000)
    b.check_accounts()


def test_a_fallback_past_saves_that_failed_loses_what_they_held_too():
    """Issue 13 (deep profile, an oracle's error): stopped, then the flash refuses writes, the
    resume's save fails, the flash comes back and the next save holds the resume. That newest
    record is then found damaged: the store falls back to the record before, written before
    the resume, so the pump boots stopped, which is all it can know. The bench blamed only the
    command that wrote the lost record (a periodic save), not the resume whose own save had
    failed, and took the stopped boot for a violation."""
    params = {"conc_ng_ml": 1_000_000, "steps": [[0, 200_000]], "low_res_nl": 0,
              "max_daily_ng": 220_250, "pb": None}
    b = FaultBench(seed=0, noise_pa=0, tod0=0, tick0=0)
    b.start(params, 20_000_000)
    b.stop()
    b.advance(60_000)
    b.write_fails = True
    b.resume()
    b.advance(60_000)
    assert "resume" in b.unsaved_cmds
    b.write_fails = False
    saves = b.saves
    while b.saves == saves:    # until the pump saves again, once
        b.advance(60_000)
    assert "resume" in b.newest_covers and not b.unsaved_cmds
    b.restart("rot", 0, 0)
    assert b.pump.stopped      # the record before the resume's
    b.check_accounts()


def test_a_flash_that_refuses_writes_keeps_the_fallback_it_forced():
    """Issue 13 (deep profile, a rule's error): with the flash refusing writes, the newest
    record is found damaged and the pump falls back to the one before (counting a second
    reserve), and its save after the boot fails. The layout-1 rule then rewrote that older
    record as an undamaged newest one, a write the failing flash could not have taken: booted
    from it the pump counted one reserve, and the reservoir account came out a stroke above
    the truth. The rule now leaves a refusing flash as it is."""
    from test_fault_state_machine import FaultMachine

    m = FaultMachine()
    m.start(params={"conc_ng_ml": 1_000_000, "steps": [[0, 200_000]], "low_res_nl": 0,
                    "max_daily_ng": 220_250, "pb": None},
            volume=20_000_000, seed=0, noise=0, tod0=0, tick0=0, clock=False)
    m.advance(dt=1)
    m.stop_during_a_bolus(before=0, dur=4_427_996, patient=False, pause=2, strokes=2)
    m.flash_failing(on=True)
    m.battery_sensor(mode="ok")
    m.patient_bolus()
    m.patient_bolus()
    m.bolus_to_the_cap_then_restart(after=0, dur=0, how="rot", off=0, tick0=0)
    m.accounts_agree_with_the_plant()
    m.firmware_update_from_layout_1(clean=False, off=0, tick0=0)
    m.accounts_agree_with_the_plant()
    m.teardown()


def test_a_prime_after_the_records_were_lost_is_refused_the_catheter_may_be_full():
    """CI's fault state machine (issue 19): the catheter was filled by a long basal, every record
    was lost (memory_error), the clinic reprogrammed and refilled, and a prime of an eighth of the
    catheter was accepted: the pump took a lost catheter state for a new pump's empty one, so the
    prime's drug left the full catheter's tip and the patient's 24 h went past the cap (53.2 ug of
    53 ug). A lost record now leaves the catheter counted as full: a prime needs a catheter
    revision first."""
    from test_fault_state_machine import FaultMachine

    m = FaultMachine()
    m.start(params={"conc_ng_ml": 1_000_000, "steps": [[0, 48_000], [60, 48_000]],
                    "low_res_nl": 0, "max_daily_ng": 53_000, "pb": None,
                    "catheter": {"model": "test", "length_mm": 600, "nl_per_cm": 2600}},
            volume=20_000_000, seed=0, noise=500, tod0=1, tick0=(1 << 30) - 1, clock=False)
    m.advance(dt=1)
    m.clear_occlusion()
    m.stop_during_a_bolus(before=0, dur=60_000, patient=False, pause=0, strokes=2)
    m.reprogram_after_memory_error(off=0, tick0=0)
    m.bolus_to_the_cap_then_restart(after=0, dur=0, how="cut", off=0, tick0=0)
    m.reprogram_after_memory_error(off=0, tick0=0)
    m.bolus_to_the_cap_then_restart(after=0, dur=0, how="cut", off=0, tick0=0)
    m.accounts_agree_with_the_plant()
    m.prime(eighths=1)
    m.accounts_agree_with_the_plant()
    m.advance(dt=3101)
    m.accounts_agree_with_the_plant()
    m.teardown()


def test_the_cap_holds_under_an_assumption_across_a_weaker_refill_and_lost_records():
    """CI's fault state machine (issue 19), shrunk: records lost three times and reprogrammed
    with the assumption each time, a refill to a weaker solution of the same drug (2 -> 1 mg/mL)
    with its bridge, and records lost again: under the stated assumption the last 24 h reached
    102.2 ug at the tip against a cap of 102 ug."""
    from test_fault_state_machine import FaultMachine

    m = FaultMachine()
    m.start(params={"conc_ng_ml": 2_000_000, "steps": [[0, 96_000], [60, 96_000]],
                    "low_res_nl": 0, "max_daily_ng": 102_000, "pb": None,
                    "catheter": {"model": "test", "length_mm": 600, "nl_per_cm": 2600}},
            volume=20_000_000, noise=0, seed=724, clock=True, tod0=176_314, tick0=384)
    m.advance(dt=1)
    m.advance(dt=1)
    m.occlusion(full=False)
    m.stop_for_a_while_with_a_restart(before=15_176, for_ms=7_200_000, how="reboot", off=1515,
                                      tick0=1468)
    m.flash_failing(on=False)
    m.advance(dt=1)
    m.clear_occlusion()
    m.reprogram_after_memory_error(off=0, tick0=130)
    m.advance(dt=960)
    m.reprogram_after_memory_error(off=1029, tick0=201_608)
    m.reprogram_after_memory_error(off=358, tick0=25)
    m.occlusion(full=True)
    m.clear_occlusion()
    m.refill_at_another_concentration(conc=1_000_000, volume=20_000_000)
    m.clear_occlusion()
    m.accounts_agree_with_the_plant()
    m.reprogram_after_memory_error(off=0, tick0=0)
    m.accounts_agree_with_the_plant()
    m.teardown()


def test_lost_records_after_a_weaker_refill_and_a_new_program_restate_the_catheter():
    """The fault state machine (a random run, shrunk): 10 mg/mL, a refill at 1 mg/mL, then a
    program for the weaker solution whose rate is below what the board runs at 10 mg/mL, and
    every record lost. The clinic's restatement of the catheter's 10 mg/mL (docs/architecture.md)
    must use the prescription that ran on it, not the new one at that strength (which no pump
    accepts)."""
    from test_fault_state_machine import FaultMachine

    m = FaultMachine()
    cath = {"model": "test", "length_mm": 600, "nl_per_cm": 2600}
    m.start(params={"conc_ng_ml": 10_000_000, "steps": [[0, 480_000], [60, 480_000],
                                                        [120, 480_000]],
                    "low_res_nl": 0, "max_daily_ng": 1_152_500, "pb": [47_500, 193, 600, 1],
                    "catheter": cath},
            noise=0, clock=False, tod0=579, volume=20_000_000, seed=107, tick0=300)
    m.arm_power_cut(off=4999, where="save")
    m.stop_during_a_bolus(before=92_339, dur=62_201, patient=False, pause=287_388, strokes=2)
    m.prime(eighths=8)
    m.clinic_visit(ack=False)
    m.arm_power_cut(off=32, where="save")
    m.patient_presses_again_and_again(eighths=2, n=6, slack=188)
    b = m.bench
    b.program(dict(b.params))
    m.refill_at_another_concentration(conc=1_000_000, volume=20_000_000)
    m.late_wakeup(lag=1)
    m.refill(residual="none", volume=20_000_000)
    m.patient_bolus()
    b.program({"conc_ng_ml": 1_000_000, "steps": [[0, 305_500], [540, 888_001], [780, 48_000],
                                                  [1200, 360_001]],
               "low_res_nl": 2_000_000, "max_daily_ng": 338_750, "pb": [2500, 467, 790, 5],
               "catheter": cath})
    b.program(dict(b.params))
    m.patient_presses_again_and_again(eighths=8, n=6, slack=52)
    m.motor_stall(on=2)
    m.prime(eighths=7)
    m.prime(eighths=8)
    m.accounts_agree_with_the_plant()
    m.reprogram_after_memory_error(off=26_101, tick0=536_870_212)
    m.accounts_agree_with_the_plant()
    m.teardown()


def test_a_layout_1_update_after_lost_records_and_a_fallback_keeps_the_reservoir_account():
    """The fault state machine (a random run, shrunk): every record lost and the pump
    reprogrammed and refilled, a restart that found the newest state record damaged, then a
    firmware update from the layout-1 firmware (its older record, damaged newest): the pump's
    reservoir account came out a stroke above what the reservoir held."""
    from test_fault_state_machine import FaultMachine

    m = FaultMachine()
    m.start(params={"conc_ng_ml": 1_000_000, "steps": [[0, 48_000], [60, 48_000],
                                                       [120, 48_000], [1260, 451_250]],
                    "low_res_nl": 0, "max_daily_ng": 108_500, "pb": None},
            seed=0, tick0=0, noise=0, volume=20_000_000, tod0=0, clock=False)
    m.reprogram_after_memory_error(off=0, tick0=0)
    m.accounts_agree_with_the_plant()
    m.restart(how="rot", off=0, tick0=0)
    m.accounts_agree_with_the_plant()
    m.firmware_update_from_layout_1(clean=False, off=0, tick0=0)
    m.accounts_agree_with_the_plant()
    m.teardown()
