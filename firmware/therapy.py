# The therapy room: the rules of every command a clinician, the patient or the shell gives the
# pump. Each verb brings time up to `now` first (the timing core's service), checks its rules
# and answers 0 or the reason it refused (a refused command changes nothing and is logged);
# program() raises RxError instead, with the key that was wrong.
#
# It also builds the pump's rooms and hands each the ports it needs from above:
#
#   Therapy --- pump (firmware/pump.py: time, rate, the stroke) --- kernel, stroke clock
#           --- sup (firmware/supervisor.py: alarms, the periodic check)
#           --- record (firmware/record.py: the state record, through the shell's save port)
#           --- hist (firmware/history.py: the therapy history, through the shell's port)
#           --- reservoir (firmware/reservoir.py), guard (firmware/guard.py),
#               pb_policy (firmware/bolus.py), mon (firmware/monitor.py)
#
# These verbs may allocate: they are requests, not the steady state.
from firmware import codes
from firmware.bolus import PatientBolusPolicy
from firmware.compat import TYPE_CHECKING, const
from firmware.guard import RESERVE, UNITS, DoseGuard
from firmware.history import History
from firmware.monitor import Monitor
from firmware.pump import Pump
from firmware.record import Record
from firmware.reservoir import FULL, MAX_STABLE_S, Reservoir, valid_name
from firmware.rx import DAY_MS, Rx, RxError, bolus_rate, ng_to_nl
from firmware.selftest import SelfTest
from firmware.supervisor import Supervisor

if TYPE_CHECKING:
    from firmware.hal import HistoryPort, Log, Mechanism, SavePort

BOOT_WATCHDOG = const(1)       # boot(cause=...): the watchdog reset the board
PRIME_CONFIRM_S = const(120)   # a priming bolus's (or a catheter revision's) second step must
                               # come within this
_FLUSH = const(2)               # after a change to a weaker solution, the catheter's volume times
                               # this counts at the stronger one (a catheter up to twice as long
                               # as the settings say is still covered)
_CRITICAL = const(301990746)  # codes.CRITICAL_MASK (checked in tests/firmware/test_alarms.py)
_DOSE_LIMIT_BIT = const(1 << 7)  # 1 << codes.AL_DOSE_LIMIT


class Therapy:
    def __init__(self, hal: "Mechanism", log: "Log", save_state: "SavePort",
                 save_journal: "SavePort | None" = None,
                 hist_port: "HistoryPort | None" = None) -> None:
        """hal: the board (firmware/hal.pyi); log: add(code, now, a, b); save_state(buf): the
        shell's port that puts the state record on flash, True when it is there; save_journal
        the same for the journal (firmware/record.py; None: no journal, a restart then costs
        the whole reserve); hist_port: the shell's pages of the therapy history (None: no
        history is kept)."""
        self.hal = hal
        self.log = log
        self.stroke_nl = hal.STROKE_NL
        self.guard = DoseGuard()
        self.pb_policy = PatientBolusPolicy()
        self.reservoir = Reservoir(hal.STROKE_NL, hal.RESERVOIR_MIN_NL)
        self.mon = Monitor(hal)
        self.sup = Supervisor(hal, log, self.mon, self.reservoir)
        self.pump = Pump(hal, log, self.reservoir, self.guard, self.mon, self.sup)
        self.hist = History(hist_port, log)
        self.record = Record(save_state, log, self.pump, self.sup, self.reservoir,
                             self.pb_policy, self.guard, self.hist)
        self.pump.hist = self.hist
        self.sup.pump = self.pump
        self.sup.save = self.record.save
        self.pump.save = self.record.save
        self.checks = SelfTest(hal, log, self.sup, self.pump)
        self.sup.checks = self.checks
        if save_journal is not None:
            self.record.journal_port = save_journal
            self.pump.journal = self.record.journal
        self.params = None      # the prescription as programmed (for a concentration change)
        self.prime_id = 0       # a priming bolus waiting for its second step: its id,
        self.prime_nl = 0       # volume
        self.prime_s = -1       # and uptime (s) of the first step (-1: none waiting)
        self.cath_id = 0        # a catheter revision waiting for its second step: its id
        self.cath_s = -1        # and uptime (s) of the first step (-1: none waiting)

    def save(self, clean=False, now=-1):
        return self.record.save(clean, now)

    # ---- boot ------------------------------------------------------------------------------
    def boot(self, now, tod_ms, params=None, state=None, cause=0, damaged=False, clock_ts=-1,
             journal=None):
        """Start after power-up or reset, from stored settings and state (either may be None:
        a factory-fresh pump). Missed doses are not delivered: the stroke clock starts afresh.
        cause is BOOT_WATCHDOG after a watchdog reset. damaged says the store saw a damaged
        record: with state, the store fell back to the previous record (A/B), at most one save
        older, so RESERVE more strokes are counted as delivered; without state, or with a
        state record no layout explains, the dose account is lost: it is taken as full and
        memory_error raised, until a reprogram states what to assume (program()). Settings
        that do not make sense raise memory_error too (the account stays). clock_ts is the
        pump clock (s since 2024-01-01) if the shell trusts it, else -1: the time the pump
        was off then does not count towards a timed stop, nor towards a fill's age. journal:
        the last journal record ([save number, strokes since]) or None."""
        pump = self.pump
        pump.start(now, tod_ms, clock_ts if clock_ts >= 0 else 0)
        self.sup.al.tone_at = now
        self.log.add(codes.EV_BOOT, now, cause, 0)
        lost = False
        resume = False
        if state is not None:
            got = self.record.load(state, now, clock_ts, damaged, journal)
            if got < 0:
                lost = True
            else:
                resume = got == 1
                if damaged:
                    # the older record: the guard and the reservoir account one reserve further
                    self.guard.assume_full(RESERVE)
                    self.reservoir.take_worst_case(RESERVE)
        elif damaged:
            lost = True
        rx = None
        bad_settings = False
        if params is not None:
            try:
                rx = Rx(params, self.hal)
            except RxError:
                bad_settings = True
        if lost:
            self.guard.assume_full(self.hal.MAX_STROKES_PER_MIN * 1440)
            self.guard.lost = True
            # What the catheter holds went with the record: full, as far as a prime goes (a
            # prime into a full one reaches the patient), until a catheter revision says empty.
            self.reservoir.catheter = FULL
        if lost or bad_settings:
            self.sup.raise_alarm(codes.AL_MEMORY_ERROR, now)
        elif rx is not None:
            self.params = params
            self._install(now, rx)
        if resume:
            pump.go(now, True)
        if cause == BOOT_WATCHDOG:
            self.sup.raise_alarm(codes.AL_WATCHDOG_RESET, now)

    # ---- the prescription --------------------------------------------------------------------
    def program(self, now, params, assume_ng=-1, stable_s=0):
        """Install a new prescription (raises RxError and changes nothing if it is refused).
        After a lost dose account (guard.lost) it also states what the last 24 hours are
        taken to have delivered: assume_ng of the new drug, by default the new basal of a day;
        the basal then flows at once and boluses get what the cap leaves above it. stable_s:
        how long the fill in the reservoir stays stable, when the refill could not say (the
        drug was not known yet): the expiry is then known in either order."""
        self.pump.service(now)
        rx = Rx(params, self.hal)
        strokes = self.assumed_strokes(rx, assume_ng)
        self.check_fill(rx)
        self.params = params
        res = self.reservoir
        res.adopt(rx.drug, rx.conc_ng_ml)
        if stable_s > 0 and not res.stable_s and res.fill_ts >= 0 and stable_s <= MAX_STABLE_S:
            res.stable_s = stable_s
            self.pump.check_at = now  # drug_expired judged afresh
        self._install(now, rx)
        if strokes >= 0:
            self._assume(strokes)
            self.guard.lost = False
            self.log.add(codes.EV_ASSUMED, now, strokes * self.stroke_nl, 0)
        self.log.add(codes.EV_PROGRAM, now, rx.basal_nl_day, rx.max_daily_nl)
        self.hist.note("program", now, params, rx)
        self.log.add(codes.EV_PROGRAM_BOLUS, now, rx.pb_dose_nl, rx.pb_dur_ms // 1000)
        if rx.pb_dose_nl:
            self.log.add(codes.EV_PROGRAM_BOLUS_LIMITS, now, rx.pb_lockout_s, rx.pb_max)
        sup = self.sup
        sup.mem_flash = False
        sup.clear_alarm(codes.AL_MEMORY_ERROR, now)
        if res.refill_nl < 0 or res.nl > res.refill_nl:
            sup.clear_alarm(codes.AL_REFILL_DUE, now)
        self.save(False, now)
        return rx

    def check_fill(self, rx):
        """A program must name the drug and the concentration in the reservoir (what the fill
        does not say yet, the first program gives it). Raises RxError("drug_mismatch")."""
        res = self.reservoir
        if not res.fill_is(rx.drug, rx.conc_ng_ml):
            raise RxError("drug_mismatch", "the reservoir holds %s at %d ng/mL; the program is "
                          "for %s at %d ng/mL: refill with it first (a change of drug or "
                          "concentration comes with a refill)"
                          % (res.drug or "a drug not named", res.conc_ng_ml,
                             rx.drug or "a drug not named", rx.conc_ng_ml))

    def _install(self, now, rx):
        self.pump.install(now, rx)
        self.sup.al.silence_ms = rx.alarm_silence_s * 1000
        self.prime_s = -1       # a priming bolus waiting for confirmation is cut short too

    def _assume(self, strokes):
        """Put `strokes` into the lost account as the schedule would have delivered them over
        the last 24 hours: the minute j back weighs the basal rate at that time of day (so as
        the assumed strokes leave the window, the new basal's strokes take their place)."""
        self.guard.assume(strokes, self._basal_minutes_back)

    def _basal_minutes_back(self, j):
        rx = self.pump.rx
        return rx.step_rate_nl_day[rx.step_at((self.pump.tod_ms - j * 60000) % DAY_MS)]

    def assumed_strokes(self, rx, assume_ng=-1):
        """Strokes a reprogram with `rx` puts into a lost account (-1: the account is not
        lost). Raises RxError for an assumption that does not apply or does not fit."""
        if not self.guard.lost:
            if assume_ng >= 0:
                raise RxError("assume_24h_ng", "applies only after memory_error: the pump's "
                              "dose account is intact")
            return -1
        if assume_ng < 0:
            return rx.basal_strokes
        if type(assume_ng) is not int:
            raise RxError("assume_24h_ng", "must be an integer number of ng")
        nl = ng_to_nl(assume_ng, rx.conc_ng_ml)
        if nl > rx.max_daily_nl:
            raise RxError("assume_24h_ng", "%d nL is more than the daily maximum of %d nL"
                          % (nl, rx.max_daily_nl))
        return (nl + self.stroke_nl - 1) // self.stroke_nl

    def catheter_nl(self):
        """The patient's catheter volume from the settings (0: none set)."""
        rx = self.pump.rx
        return rx.catheter_nl if rx is not None else 0

    # ---- boluses -------------------------------------------------------------------------------
    def _common_refusal(self):
        pump = self.pump
        if pump.rx is None:
            return codes.R_NOT_PROGRAMMED
        if pump.stopped:
            return codes.R_STOPPED
        if self.sup.al.active & (_CRITICAL | _DOSE_LIMIT_BIT):
            return codes.R_ALARM
        return 0

    def patient_bolus(self, now):
        """Returns 0 if the bolus starts, else the reason it was refused (also logged)."""
        pump = self.pump
        pump.service(now)
        rx = pump.rx
        reason = self._common_refusal()
        if not reason and not rx.pb_dose_nl:
            reason = codes.R_NO_PATIENT_BOLUS
        pump._sync()
        if not reason:
            reason = self.pb_policy.reason_to_deny(pump.mono_s, rx.pb_lockout_s, rx.pb_max)
        if not reason and pump.pb_on:
            reason = codes.R_BOLUS_ACTIVE
        if not reason and pump.cb_on:
            reason = codes.R_CB_RUNNING   # never on top of a clinician's (docs/alarms.md)
        if not reason and self.guard.room_nl(self.stroke_nl) < rx.pb_dose_nl:
            reason = codes.R_DAILY_MAX
        if reason:
            self.log.add(codes.EV_PB_DENIED, now, reason, 0)
            self.hist.patient_bolus(now, reason, 0, 0)
            return reason
        old = self.pb_policy.record(pump.mono_s + (1 if pump.mono_ms else 0))
        if not self.save(False, now):
            # The start must be on record before a drop is delivered, or a restart would
            # forget the lockout: no save, no bolus.
            self.pb_policy.undo(old)
            self.log.add(codes.EV_PB_DENIED, now, codes.R_UNSAVED, 0)
            self.hist.patient_bolus(now, codes.R_UNSAVED, 0, 0)
            return codes.R_UNSAVED
        self.reservoir.bolus_started(rx.pb_dose_nl)
        pump.start_patient_bolus(now)
        self.log.add(codes.EV_PB_START, now, rx.pb_dose_nl, 0)
        self.hist.patient_bolus(now, 0, rx.pb_dose_nl, rx.conc_ng_ml)
        return 0

    def clinician_bolus(self, now, dose_nl, dur_ms, prime=False, kind="clinician_bolus"):
        """Dose (nL) over dur_ms (0: as fast as the motor allows). 0 or a refusal reason. A
        prime (prime=True, from prime()) fills an empty catheter: it does not count against the
        patient's cap (its strokes weigh nothing in the dose guard). kind: the therapy
        history's name for it (clinician_bolus, prime, bridge)."""
        pump = self.pump
        pump.service(now)
        rx = pump.rx
        reason = self._common_refusal()
        if not reason and pump.cb_on:
            reason = codes.R_BOLUS_ACTIVE
        if not reason and (type(dose_nl) is not int or type(dur_ms) is not int or dur_ms < 0
                           or dur_ms > DAY_MS or dose_nl < self.stroke_nl
                           or dose_nl > rx.max_daily_nl):
            reason = codes.R_BAD_VALUE
        rate = lead = 0
        if not reason:
            # The motor's spare rate: what it can give above the fastest basal step and a
            # patient bolus running at the same time.
            spare = rx.max_motor_nl_day - max(rx.step_rate_nl_day) - rx.pb_rate_nl_day
            if dur_ms == 0:
                dur_ms = (dose_nl * DAY_MS + spare - 1) // spare if spare > 0 else DAY_MS + 1
                if dur_ms > DAY_MS:
                    reason = codes.R_MOTOR_RATE
            if not reason:
                rate, lead = bolus_rate(dose_nl, dur_ms)
                if rate > spare:
                    reason = codes.R_MOTOR_RATE
        if not reason and not prime and self.guard.room_nl(self.stroke_nl) < dose_nl:
            reason = codes.R_DAILY_MAX
        if reason:
            self.log.add(codes.EV_CB_DENIED, now, reason, 0)
            return reason
        if prime:
            self.guard.weigh(dose_nl // self.stroke_nl, 0)
            self.reservoir.catheter = FULL
        pump.start_clinician_bolus(now, rate, dur_ms, lead)
        self.reservoir.bolus_started(dose_nl)
        self.log.add(codes.EV_CB_START, now, dose_nl, dur_ms)
        self.hist.note(kind, now, dose_nl, dur_ms, rx.conc_ng_ml)
        return 0

    def bridge(self, now, dose_nl, dur_ms):
        """A bridge bolus pushes the old drug out of the catheter: a clinician bolus of never
        more than the catheter holds."""
        if dose_nl > self.catheter_nl():
            self.log.add(codes.EV_CB_DENIED, now, codes.R_CATHETER, 0)
            return codes.R_CATHETER
        return self.clinician_bolus(now, dose_nl, dur_ms, False, "bridge")

    def arm_prime(self, now, dose_nl):
        """First step of a priming bolus: check it (at most the patient's catheter volume,
        from the settings) and hold it for PRIME_CONFIRM_S. 0 (then self.prime_id names it)
        or a refusal reason; nothing is delivered."""
        pump = self.pump
        pump.service(now)
        reason = self._common_refusal()
        if not reason and (type(dose_nl) is not int or dose_nl < self.stroke_nl):
            reason = codes.R_BAD_VALUE
        if not reason and dose_nl > pump.rx.catheter_nl:
            reason = codes.R_CATHETER  # no catheter set, or more than it holds
        if not reason and self.reservoir.room_nl(self.catheter_nl()) < dose_nl:
            # a prime only fills an empty catheter, and no more than is left empty in it
            reason = codes.R_CATHETER_FULL
        if reason:
            self.log.add(codes.EV_CB_DENIED, now, reason, 0)
            return reason
        pump._sync()
        self.prime_id = (self.prime_id + now) % 9000 + 1000  # a fresh 4-digit id each time
        self.prime_nl = dose_nl
        self.prime_s = pump.mono_s
        self.log.add(codes.EV_PRIME_ARMED, now, dose_nl, pump.rx.catheter_nl)
        return 0

    def prime(self, now, dose_nl, prime_id, dur_ms=0):
        """Second step: the same volume and the id the first step gave, within
        PRIME_CONFIRM_S. Starts it as a clinician bolus (every limit applies again)."""
        pump = self.pump
        pump.service(now)
        pump._sync()
        armed = self.prime_s >= 0 and pump.mono_s - self.prime_s <= PRIME_CONFIRM_S
        if not armed or prime_id != self.prime_id or dose_nl != self.prime_nl:
            self.log.add(codes.EV_CB_DENIED, now, codes.R_PRIME_UNCONFIRMED, 0)
            return codes.R_PRIME_UNCONFIRMED
        self.prime_s = -1
        if self.reservoir.room_nl(self.catheter_nl()) < dose_nl:   # (filled since the first step)
            self.log.add(codes.EV_CB_DENIED, now, codes.R_CATHETER_FULL, 0)
            return codes.R_CATHETER_FULL
        return self.clinician_bolus(now, dose_nl, dur_ms, True, "prime")

    # ---- the catheter ----------------------------------------------------------------------------
    def arm_catheter(self, now):
        """First step of recording a new or revised catheter (it will be empty, so a prime may
        fill it): 0, then self.cath_id names it; nothing changes yet."""
        pump = self.pump
        pump.service(now)
        pump._sync()
        self.cath_id = (self.cath_id + now + 4321) % 9000 + 1000
        self.cath_s = pump.mono_s
        return 0

    def revise_catheter(self, now, cath_id):
        """Second step: the id the first gave, within PRIME_CONFIRM_S. The catheter is empty."""
        pump = self.pump
        pump.service(now)
        pump._sync()
        armed = self.cath_s >= 0 and pump.mono_s - self.cath_s <= PRIME_CONFIRM_S
        if not armed or cath_id != self.cath_id:
            return codes.R_PRIME_UNCONFIRMED
        self.cath_s = -1
        self.reservoir.emptied()
        self.log.add(codes.EV_CATHETER, now, 1, self.catheter_nl())
        self.hist.note("catheter", now, self.catheter_nl(), None)
        self.save(False, now)
        return 0

    # ---- stop and resume -------------------------------------------------------------------------
    def stop(self, now, for_ms=0):
        """Suspend delivery, until resume() or (for_ms > 0) for that long; running boluses end
        here and are not resumed. A timed stop survives restarts (the record keeps it)."""
        self.pump.service(now)
        self.pump.halt(now, for_ms)

    def resume(self, now):
        """Resume after a stop. It is also the clinician's word that a latched fault was seen
        to and fixed (motor stall, a sensor fault): those alarms clear, and come straight back
        if the fault is still there. 0, or R_DRUG_MISMATCH: the reservoir holds another drug
        than the program's (a refill changed it), and delivery stays stopped until a program
        for it."""
        pump = self.pump
        pump.service(now)
        rx = pump.rx
        if rx is not None and not self.reservoir.fill_is(rx.drug, rx.conc_ng_ml):
            return codes.R_DRUG_MISMATCH
        for code in (codes.AL_MOTOR_STALL, codes.AL_SENSOR_FAULT, codes.AL_BATTERY_SENSOR,
                     codes.AL_DRIVER_FAULT):
            self.sup.clear_alarm(code, now)
        self.mon.bad_rises = 0
        self.mon.reset_battery()
        self.checks.opens = 0
        if pump.stopped:
            pump.go(now, False)
        self.sup.clear_alarm(codes.AL_THERAPY_STOPPED, now)
        return 0

    # ---- alarms and the clock ----------------------------------------------------------------------
    def ack(self, now, code):
        """Silence an alarm (see Supervisor.ack). False when it is not active."""
        self.pump.service(now)
        return self.sup.ack(now, code)

    def set_time_of_day(self, now, tod_ms, ts=-1):
        """The pump clock was set (ts: the new clock in s since 2024-01-01, if known)."""
        self.pump.service(now)
        self.pump.set_tod(now, tod_ms, ts)

    # ---- refills -----------------------------------------------------------------------------------
    def refill(self, now, volume_nl, conc_ng_ml=0, residual_nl=-1, bridge_nl=-1, stable_s=0,
               meta=None, drug=None):
        """The reservoir now holds volume_nl, a new fill. Optional: its drug (the names the pump
        keeps: firmware/reservoir.py valid_name) and concentration; a new concentration of the
        program's drug needs bridge_nl equal to the patient's catheter volume from the settings,
        which the host showed the clinician (meta: the host's words for the new solution);
        another drug than the program's stops delivery until a program for it comes. Also the
        residual measured when the old drug was drawn out, and how long this fill stays stable
        in the pump (s; drug_expired after that). A fill that names no drug is the program's
        (or, with none, the first program's). Returns 0 or a refusal reason; a refused refill
        changes nothing."""
        pump = self.pump
        pump.service(now)
        hal = self.hal
        res = self.reservoir
        sup = self.sup
        if type(volume_nl) is not int or not 0 <= volume_nl <= hal.RESERVOIR_NL:
            return self._refuse_refill(now, codes.R_BAD_VALUE)
        if type(stable_s) is not int or not 0 <= stable_s <= MAX_STABLE_S:
            return self._refuse_refill(now, codes.R_BAD_VALUE)
        if drug is not None and not valid_name(drug):
            return self._refuse_refill(now, codes.R_BAD_VALUE)
        rx = None
        params = None
        old = pump.rx
        other = drug is not None and old is not None and old.drug is not None and drug != old.drug
        if conc_ng_ml and old is not None and conc_ng_ml != old.conc_ng_ml and not other:
            if old.catheter_nl <= 0:
                return self._refuse_refill(now, codes.R_CATHETER)
            if bridge_nl != old.catheter_nl:
                return self._refuse_refill(now, codes.R_BRIDGE_UNCONFIRMED)
            params = {}
            for k in self.params:
                params[k] = self.params[k]
            params["conc_ng_ml"] = conc_ng_ml
            if meta is not None:
                params["meta"] = meta
            try:
                rx = Rx(params, hal)
            except RxError:
                return self._refuse_refill(now, codes.R_BAD_VALUE)
        off = 0                   # 1: the residual measured is off what the pump expected
        if residual_nl >= 0:
            expected = res.nl
            tol = hal.REFILL_TOLERANCE_NL + expected * hal.REFILL_TOLERANCE_PCT // 100
            self.log.add(codes.EV_REFILL_CHECK, now, expected // 1000, residual_nl // 1000)
            if residual_nl - expected > tol or expected - residual_nl > tol:
                sup.raise_alarm(codes.AL_REFILL_DISCREPANCY, now)
                off = 1
        if rx is not None:
            self._new_concentration(old.conc_ng_ml, conc_ng_ml, old.catheter_nl)
            self.params = params
            self._install(now, rx)
            self.log.add(codes.EV_CONCENTRATION, now, conc_ng_ml // 1000, bridge_nl)
        notes = meta
        if drug is not None:      # the history keeps the fill's drug with the host's words
            notes = {"drug": drug}
            if type(meta) is dict:
                for k in meta:
                    if k != "drug":
                        notes[k] = meta[k]
        self.hist.note("refill", now, volume_nl, conc_ng_ml, residual_nl, res.nl, stable_s, off,
                       notes)
        res.fill(volume_nl, pump.ts(), stable_s)
        if other:
            # Another drug: the program no longer fits the reservoir. Delivery stops (an
            # open-ended stop: therapy_stopped reminds) until a program of this drug comes.
            res.drug = drug
            res.conc_ng_ml = conc_ng_ml
            res.old_conc_ng_ml = 0
            self.log.add(codes.EV_FILL_DRUG, now, 1, 0)
            if not pump.stopped:
                pump.halt(now)
        else:
            if drug is not None or old is not None:
                res.drug = drug if drug is not None else old.drug
            elif not conc_ng_ml:
                res.drug = None       # not known until the first program
            if rx is not None:
                res.changed_to(volume_nl, conc_ng_ml, old.catheter_nl)
            elif conc_ng_ml or old is None:
                res.conc_ng_ml = conc_ng_ml
        self.log.add(codes.EV_REFILL, now, volume_nl // 1000, 0)
        self.log.add(codes.EV_FILL, now, (stable_s + 3599) // 3600, res.fills)
        sup.clear_alarm(codes.AL_DRUG_EXPIRED, now)
        if volume_nl - self.stroke_nl >= res.min_nl:
            sup.clear_alarm(codes.AL_RESERVOIR_EMPTY, now)
        if pump.rx is not None and volume_nl > pump.rx.low_res_nl:
            sup.clear_alarm(codes.AL_RESERVOIR_LOW, now)
        res.replan()
        if res.refill_nl < 0 or volume_nl > res.refill_nl:
            sup.clear_alarm(codes.AL_REFILL_DUE, now)
        self.save(False, now)
        pump.check_at = now  # refill_due and drug_expired are judged afresh at once
        return 0

    def _new_concentration(self, old, new, catheter_nl):
        """What the dose guard's window holds was the old solution: count it in the new one's
        units. A weaker one follows a stronger one out of a full catheter: until _FLUSH times
        its volume has been pumped, each stroke counts at the stronger solution."""
        guard = self.guard
        guard.rescale(old, new)
        if new < old and self.reservoir.catheter == FULL and catheter_nl > 0:
            strokes = (_FLUSH * catheter_nl + self.stroke_nl - 1) // self.stroke_nl
            w = (UNITS * old + new - 1) // new
            if guard.left and guard.w > w:
                w = guard.w
            if guard.left > strokes:
                strokes = guard.left
            guard.weigh(strokes, w)

    def _refuse_refill(self, now, reason):
        self.log.add(codes.EV_REFILL, now, -1, reason)
        return reason
