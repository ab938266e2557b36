"""What a dose means over months (issue 19), in the firmware's rooms: the drug is the fill's,
the catheter's state and primes, a stop that is not forgotten, the expiry known in either order,
the time to the low level along the schedule, uptime from the first reply. The mass account and
the restart journal have their own tests (test_guard.py, tests/sim/test_meaning_sim.py, the fault
state machine)."""

from firmware import codes, status
from firmware.guard import UNITS
from firmware.rx import RxError
from firmware.therapy import Therapy
from tests.testboard import HealthyHal

import pytest

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
CATHETER = {"model": "test", "length_mm": 600, "nl_per_cm": 2600}      # 156 uL
MORPHINE = {"conc_ng_ml": 10_000_000, "steps": [[0, 2_000_000]], "max_daily_ng": 3_000_000,
            "low_res_nl": 2_000_000, "catheter": CATHETER, "meta": {"drug": "morphine"},
            "pb": [100_000, 600, 3600, 4]}


class Log:
    def __init__(self):
        self.events = []

    def add(self, code, now, a, b):
        self.events.append((code, a, b))

    def of(self, code):
        return [e for e in self.events if e[0] == code]


def pump(params=MORPHINE, fill=20_000_000, drug=None, conc=0, stable_s=0):
    hal = HealthyHal()
    log = Log()
    th = Therapy(hal, log, hal.save_state)
    th.boot(0, 0, None, None)
    assert th.refill(0, fill, conc, -1, -1, stable_s, None, drug) == 0
    if params is not None:
        th.program(0, params)
    return th, log


def run(th, t0, ms):
    pump_ = th.pump
    t = t0
    while t < t0 + ms:
        t = min(t0 + ms, t + max(1, pump_.next_in_ms(t)))
        pump_.service(t)
    return t


# ---- item 2: the drug is the fill's -------------------------------------------------------------

def test_a_program_of_another_drug_or_concentration_than_the_fill_is_refused():
    """Morphine 10 mg/mL in the reservoir: hydromorphone, or morphine at 25 mg/mL, is refused
    (drug_mismatch) and changes nothing; the reservoir's own drug goes through."""
    th, _ = pump(None, drug="morphine", conc=10_000_000)
    for other in (dict(MORPHINE, meta={"drug": "hydromorphone"}),
                  dict(MORPHINE, conc_ng_ml=25_000_000)):
        with pytest.raises(RxError) as e:
            th.program(0, other)
        assert e.value.key == "drug_mismatch" and th.pump.rx is None
    th.program(0, MORPHINE)
    assert th.pump.rx is not None and th.reservoir.drug == "morphine"


def test_a_fill_that_names_no_drug_takes_the_first_programs():
    """The README's order, refill then program, keeps working; from then on the fill is the
    program's drug and concentration."""
    th, _ = pump(MORPHINE)
    assert (th.reservoir.drug, th.reservoir.conc_ng_ml) == ("morphine", 10_000_000)
    with pytest.raises(RxError):
        th.program(0, dict(MORPHINE, meta={"drug": "ziconotide"}))


def test_a_refill_of_another_drug_stops_delivery_until_its_program():
    th, log = pump(MORPHINE)
    t = run(th, 0, HOUR)
    assert th.refill(t, 20_000_000, 500_000, -1, -1, 0, None, "baclofen") == 0
    assert th.pump.stopped and log.of(codes.EV_FILL_DRUG)
    assert th.resume(t) == codes.R_DRUG_MISMATCH and th.pump.stopped
    n = th.pump.strokes
    t = run(th, t, 2 * HOUR)
    assert th.pump.strokes == n                                  # nothing of the old program
    assert th.sup.alarms & (1 << codes.AL_THERAPY_STOPPED)       # and the stop is reminded
    baclofen = {"conc_ng_ml": 500_000, "steps": [[0, 100_000]], "max_daily_ng": 150_000,
                "low_res_nl": 2_000_000, "catheter": CATHETER, "meta": {"drug": "baclofen"}}
    th.program(t, baclofen)
    assert th.resume(t) == 0 and not th.pump.stopped
    assert not th.sup.alarms & (1 << codes.AL_THERAPY_STOPPED)


# ---- item 3: the catheter and the prime ---------------------------------------------------------

def test_a_prime_fills_an_empty_catheter_and_does_not_count_as_the_patients_dose():
    """After `prime 0.15 mL` of morphine 25 mg/mL the account used to be full for 22 h (every
    stroke and the patient bolus refused). The prime fills the new pump's empty catheter: its
    strokes weigh nothing, the basal flows and the patient bolus is given."""
    params = dict(MORPHINE, conc_ng_ml=25_000_000, max_daily_ng=5_000_000)
    th, _ = pump(params)
    assert th.reservoir.catheter == 0                            # a new pump: empty
    assert th.arm_prime(0, 150_000) == 0
    assert th.prime(0, 150_000, th.prime_id) == 0
    assert th.reservoir.catheter == 1                            # full now
    t = run(th, 0, HOUR)
    assert th.guard.total < 20 * UNITS                           # the basal's strokes only
    assert th.patient_bolus(t) == 0
    t = run(th, t, 2 * HOUR)
    assert not th.sup.alarms & (1 << codes.AL_DOSE_LIMIT)


def test_a_prime_into_a_full_catheter_is_refused_and_a_revision_empties_it():
    th, log = pump(MORPHINE)
    assert th.arm_prime(0, 150_000) == 0 and th.prime(0, 150_000, th.prime_id) == 0
    t = run(th, 0, HOUR)
    assert th.arm_prime(t, 100_000) == codes.R_CATHETER_FULL     # a second prime
    assert th.revise_catheter(t, 1234) == codes.R_PRIME_UNCONFIRMED   # unarmed
    th.arm_catheter(t)
    assert th.revise_catheter(t, th.cath_id) == 0 and log.of(codes.EV_CATHETER)
    assert th.reservoir.catheter == 0
    assert th.arm_prime(t, 157_000) == codes.R_CATHETER          # more than it holds
    assert th.arm_prime(t, 150_000) == 0


def test_the_basal_fills_an_empty_catheter_too_and_leaves_a_prime_only_the_rest():
    th, _ = pump(dict(MORPHINE, steps=[[0, 10_000_000]], max_daily_ng=12_000_000))  # 1 mL/day
    t = run(th, 0, HOUR)                                         # about 42 uL pumped into it
    room = th.reservoir.room_nl(th.catheter_nl())
    assert 100_000 < room < 120_000
    assert th.arm_prime(t, 150_000) == codes.R_CATHETER_FULL
    assert th.arm_prime(t, room) == 0


def test_a_weaker_solution_counts_at_the_stronger_while_the_catheter_holds_it():
    """25 -> 10 mg/mL: the catheter's 156 uL (twice over) of the stronger solution is still to
    come out of the tip, so those strokes count at 25 mg/mL; after them, at 10."""
    th, _ = pump(dict(MORPHINE, conc_ng_ml=25_000_000, max_daily_ng=6_000_000))
    assert th.arm_prime(0, 150_000) == 0 and th.prime(0, 150_000, th.prime_id) == 0
    t = run(th, 0, HOUR)
    assert th.refill(t, 20_000_000, 10_000_000, -1, 156_000) == 0
    g = th.guard
    assert g.w == UNITS * 25 // 10 and g.left == (2 * 156_000 + 249) // 250
    assert th.reservoir.tip_left_nl() == 156_000
    st = status.snapshot(th, t, 0)
    assert st["tip_conc_ng_ml"] == 25_000_000 and st["new_drug_at_tip_s"] > 0


# ---- item 7: a stop that is not forgotten -------------------------------------------------------

def test_an_open_ended_stop_raises_therapy_stopped_after_the_reminder():
    """71 hours stopped used to pass in silence. An open-ended stop raises therapy_stopped (a
    warning, with its tone) once it has lasted the prescription's stop_reminder; a timed stop
    does not; the alarm ends when delivery goes on."""
    th, _ = pump(dict(MORPHINE, stop_reminder_s=30 * 60))
    th.stop(0)
    t = run(th, 0, 25 * MIN)
    assert not th.sup.alarms & (1 << codes.AL_THERAPY_STOPPED)
    t = run(th, t, 10 * MIN)
    assert th.sup.alarms & (1 << codes.AL_THERAPY_STOPPED)
    assert th.resume(t) == 0 and not th.sup.alarms & (1 << codes.AL_THERAPY_STOPPED)
    th.stop(t, 3 * HOUR)
    t = run(th, t, 2 * HOUR)
    assert not th.sup.alarms & (1 << codes.AL_THERAPY_STOPPED)


def test_how_long_a_stop_has_lasted_survives_a_restart():
    th, _ = pump(MORPHINE)
    th.stop(0)
    t = run(th, 0, 50 * MIN)
    th.save()
    rec = list(th.hal.saved) if hasattr(th.hal, "saved") else list(th.record.state)
    again = Therapy(th.hal, Log(), th.hal.save_state)
    again.boot(t, 0, MORPHINE, rec, clock_ts=-1)
    t = run(again, t, 15 * MIN)
    assert again.sup.alarms & (1 << codes.AL_THERAPY_STOPPED)


# ---- item 9: figures a clinician plans by ------------------------------------------------------

def test_the_expiry_is_known_in_either_order():
    """Refill, then program (the README's order) left "drug expires unknown": the program now
    gives the fill the stability the refill could not."""
    th, _ = pump(None)
    assert th.reservoir.expires_ts() == -1
    th.program(0, MORPHINE, -1, 90 * 86400)
    assert th.reservoir.expires_ts() == th.reservoir.fill_ts + 90 * 86400


def test_the_time_to_the_low_level_follows_the_schedules_steps():
    """A two-step schedule (0.05 mL/day by night, 0.45 by day): the daily mean put the low
    level hours early; along the steps it is right to the second."""
    params = dict(MORPHINE, steps=[[0, 500_000], [720, 4_500_000]], max_daily_ng=3_000_000,
                  low_res_nl=2_000_000)
    th, _ = pump(params, fill=2_100_000)                         # 100 uL above the low level
    # from midnight: 12 h at 0.05 mL/day give 25 uL, the remaining 75 uL at 0.45 mL/day take 4 h
    assert th.reservoir.low_in_s(0) == 12 * 3600 + 4 * 3600
    assert th.reservoir.low_in_s(-1) == 100_000 * 86400 // th.reservoir.projected_nl_day()


def test_uptime_is_right_from_the_first_reply():
    th, _ = pump(MORPHINE)
    assert status.uptime_s(th, 20_000) == 20                     # before any service call
