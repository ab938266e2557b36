# The pump's timing core: one object that turns a prescription into strokes.
#
# It never reads a clock. The shell (the main loop on a board, or the simulator) calls
# service(now) at or after the time next_in_ms() asked for, and passes requests in with `now`.
# A stroke has exactly one path, in _stroke():
#
#     scheduler proposes (StrokeClock) -> dose guard approves -> interlocks approve
#     -> motor moves (hal.stroke) -> account and log
#
# Nothing is ever caught up: a stroke whose time passed while the pump was stopped, in alarm,
# refused by the guard or too late to be delivered on time is dropped, not delivered later.
from array import array

from firmware import codes
from firmware.bolus import SAVE_LEN as PB_SAVE_LEN
from firmware.bolus import PatientBolusPolicy
from firmware.compat import const
from firmware.guard import RESERVE, DoseGuard
from firmware.guard import SAVE_LEN as GUARD_SAVE_LEN
from firmware.monitor import BAD, Monitor
from firmware.rx import DAY_MS, Rx, RxError, bolus_rate
from firmware.stroke_clock import StrokeClock
from firmware.ticks import add, diff

MAX_SLEEP_MS = const(3600000)  # service at least hourly: keeps every tick difference valid
LATE_MS = const(2000)          # a stroke this late is dropped rather than delivered late
NONE = const(1 << 28)          # "no change in sight" (re-checked when it comes, 3 days on)
STATE_MAGIC = const(0x5057)  # changes with the layout
_HDR = const(5)                # [magic, flags, stop_left_ms, reservoir_nl, alarms]
BOOT_WATCHDOG = const(1)       # boot(cause=...): the watchdog reset the board
_PB_AT = _HDR
_GUARD_AT = _HDR + PB_SAVE_LEN
STATE_LEN = _GUARD_AT + GUARD_SAVE_LEN
_F_STOPPED = const(1)
# The hot path inlines ticks.diff with these (see firmware/ticks.py) and tests alarm bits
# directly: a function call or a module attribute per stroke costs more than the arithmetic.
_HALF = const(1 << 29)
_MASK = const((1 << 30) - 1)
_DOSE_LIMIT_BIT = const(1 << 7)  # 1 << codes.AL_DOSE_LIMIT
_RES_LOW_BIT = const(1 << 2)     # 1 << codes.AL_RESERVOIR_LOW
_CRITICAL = const(858)           # codes.CRITICAL_MASK (checked in tests/firmware/test_alarms.py)


class Pump:
    def __init__(self, hal, log):
        self.hal = hal          # stroke(), save_state(buf); board constants as attributes
        self.log = log          # add(code, now, a, b)
        self.stroke_nl = hal.STROKE_NL
        self.clock = StrokeClock(self.stroke_nl)
        self.guard = DoseGuard()
        self.pb_policy = PatientBolusPolicy()
        self.rx = None
        self.t = 0              # ticks up to which time has been accounted
        self.t_guard = 0        # ticks up to which the dose guard's window has moved
        self.t_clock = 0        # ticks up to which mono_s/mono_ms/tod_ms are current
        self.mono_s = 0         # seconds since boot (monotonic; small for 34 years)
        self.mono_ms = 0        # and the milliseconds past it
        self.tod_ms = 0         # pump clock: time of day
        self.step = 0
        self.change_at = 0      # ticks of the next rate change (a step start or a bolus end)
        self.stopped = False
        self.stop_left_ms = 0
        self.pb_on = False
        self.pb_end = 0
        self.cb_on = False
        self.cb_end = 0
        self.cb_rate = 0
        self.alarms = 0         # bit (1 << code) per active alarm
        self.acked = 0          # alarms silenced by an acknowledgement
        self.tone_at = 0        # ticks of the next buzzer pattern
        self.mon = Monitor(hal)
        self.check_ms = hal.CHECK_MS
        self.check_at = 0       # ticks of the next periodic check
        self.stroke_at = -1     # ticks of the last stroke
        self.reservoir_min_nl = hal.RESERVOIR_MIN_NL
        self.stall_retries = hal.STALL_RETRIES
        self.params = None      # the prescription as programmed (for a concentration change)
        self.strokes = 0        # strokes delivered since boot
        self.missed = 0         # strokes dropped since boot (never caught up)
        self.reservoir_nl = 0   # the pump's own account of the reservoir
        self.state = array("i", [0] * STATE_LEN)

    # ---- time ----------------------------------------------------------------------------
    def _sync(self):
        """Bring the uptime and time-of-day counters up to self.t. They are read rarely (rate
        changes, commands, saves), so the stroke path only moves self.t and leaves this to them;
        service() also calls it at least daily so the tick difference stays valid."""
        ms = ((self.t - self.t_clock + _HALF) & _MASK) - _HALF
        if ms <= 0:
            return
        self.t_clock = self.t
        m = self.mono_ms + ms
        if m >= 1000:
            s = m // 1000
            self.mono_s += s
            m -= s * 1000
        self.mono_ms = m
        tod = self.tod_ms + ms
        if tod >= DAY_MS:
            tod %= DAY_MS
        self.tod_ms = tod

    def _next_change_ms(self):
        """ms from self.t to the next change of the total rate (NONE if there is none)."""
        best = NONE
        rx = self.rx
        starts = rx.step_start_ms
        if len(starts) > 1:
            nxt = self.step + 1
            if nxt < len(starts):
                best = starts[nxt] - self.tod_ms
            else:
                # On the last step the next change is midnight. tod_ms == 0 means a stroke due
                # exactly at midnight has just carried the clock there: the change is due now.
                best = DAY_MS - self.tod_ms if self.tod_ms else 0
        if self.pb_on:
            d = diff(self.pb_end, self.t)
            if d < best:
                best = d
        if self.cb_on:
            d = diff(self.cb_end, self.t)
            if d < best:
                best = d
        return best

    def _replan(self):
        """Something changed (rate, bolus, clock, prescription): find the next rate change."""
        self._sync()
        self.change_at = add(self.t, self._next_change_ms())

    def _delivering(self):
        return self.rx is not None and not self.stopped

    def next_in_ms(self, now):
        """How long the shell may sleep before it must call service() again."""
        best = ((self.check_at - now + _HALF) & _MASK) - _HALF
        if self.rx is None or self.stopped:
            return best if best > 0 else 0
        d = ((self.change_at - now + _HALF) & _MASK) - _HALF
        if d < best:
            best = d
        d = ((self.clock.due - now + _HALF) & _MASK) - _HALF
        if d < best:
            best = d
        if best > MAX_SLEEP_MS:
            best = MAX_SLEEP_MS
        return best if best > 0 else 0

    def service(self, now):
        """Do everything due up to `now`, in time order. Returns next_in_ms(now)."""
        t = self.t
        lag = ((now - t + _HALF) & _MASK) - _HALF
        if lag < 0:
            return 0
        self.guard.advance(((now - self.t_guard + _HALF) & _MASK) - _HALF)
        self.t_guard = now
        if self.rx is None or self.stopped:
            self.t = now
            self._sync()
            if ((now - self.check_at + _HALF) & _MASK) - _HALF >= 0:
                self._check(now)
            return self.next_in_ms(now)
        clock = self.clock
        stroke = ((clock.due - t + _HALF) & _MASK) - _HALF
        change = ((self.change_at - t + _HALF) & _MASK) - _HALF
        while True:
            if stroke <= change:
                if stroke > lag:
                    break
                self.t = clock.due
                lag -= stroke
                change -= stroke
                self._stroke(now, lag)
                stroke = ((clock.due - self.t + _HALF) & _MASK) - _HALF
            else:
                if change > lag:
                    break
                self.t = self.change_at
                lag -= change
                self._rate_change()
                stroke = diff(clock.due, self.t)
                change = diff(self.change_at, self.t)
        self.t = now
        if ((now - self.t_clock + _HALF) & _MASK) - _HALF > DAY_MS:
            self._sync()
        best = ((self.check_at - now + _HALF) & _MASK) - _HALF
        if best <= 0:
            self._check(now)  # may start or stop delivery: ask afresh
            return self.next_in_ms(now)
        # The next deadline, as next_in_ms(now) would compute it.
        if change - lag < best:
            best = change - lag
        if stroke - lag < best:
            best = stroke - lag
        if best > MAX_SLEEP_MS:
            best = MAX_SLEEP_MS
        return best if best > 0 else 0

    # ---- the one path of a stroke ----------------------------------------------------------
    def _stroke(self, now, late_ms):
        self.clock.stroke_done()
        if late_ms > LATE_MS:
            self.missed += 1
            return
        if self.alarms & _CRITICAL:
            return  # no stroke while a critical alarm is active (and none owed afterwards)
        if self.reservoir_nl - self.stroke_nl < self.reservoir_min_nl:
            self.raise_alarm(codes.AL_RESERVOIR_EMPTY, now)
            return
        mon = self.mon
        before = mon.pressure_pa()
        if before == BAD:
            self.raise_alarm(codes.AL_SENSOR_FAULT, now)
            return
        if before >= mon.occlusion_pa:
            self.raise_alarm(codes.AL_OCCLUSION, now)
            return
        guard = self.guard
        if guard.unsaved >= RESERVE:
            self.save()
        if not guard.approve():
            if not self.alarms & _DOSE_LIMIT_BIT:
                self.raise_alarm(codes.AL_DOSE_LIMIT, now)
            return
        if self.alarms & _DOSE_LIMIT_BIT:
            self.clear_alarm(codes.AL_DOSE_LIMIT, now)
        hal = self.hal
        tries = 0
        while not hal.stroke():
            tries += 1
            if tries > self.stall_retries:
                guard.undo()  # the stroke did not happen: it is not counted
                self.raise_alarm(codes.AL_MOTOR_STALL, now)
                return
        if tries:
            self.log.add(codes.EV_MOTOR_RETRY, now, tries, 0)
        self.stroke_at = now
        self.strokes += 1
        self.reservoir_nl -= self.stroke_nl
        if not mon.rise_ok(before, mon.pressure_pa()):
            self.raise_alarm(codes.AL_SENSOR_FAULT, now)
        if mon.probe and not mon.probe_under_load():
            self.raise_alarm(codes.AL_BATTERY_SENSOR, now)
        if self.reservoir_nl <= self.rx.low_res_nl and not self.alarms & _RES_LOW_BIT:
            self.raise_alarm(codes.AL_RESERVOIR_LOW, now)

    # ---- rates -------------------------------------------------------------------------
    def _total_rate(self):
        rx = self.rx
        rate = rx.step_rate_nl_day[self.step]
        if self.pb_on:
            rate += rx.pb_rate_nl_day
        if self.cb_on:
            rate += self.cb_rate
        return rate

    def _rate_change(self):
        """Time self.t has reached a step start or a bolus end: apply what changed."""
        self._sync()
        rx = self.rx
        if self.pb_on and self.pb_end == self.t:
            self.pb_on = False
            self.log.add(codes.EV_BOLUS_END, self.t, 1, 0)
        if self.cb_on and self.cb_end == self.t:
            self.cb_on = False
            self.log.add(codes.EV_BOLUS_END, self.t, 2, 0)
        step = rx.step_at(self.tod_ms)
        if step != self.step:
            self.step = step
            self.log.add(codes.EV_STEP, self.t, step, rx.step_rate_nl_day[step])
        self.clock.change_rate(self.t, self._total_rate(), 0)
        self._replan()

    # ---- alarms (the alarm manager proper comes with the safety interlocks) -----------------
    def raise_alarm(self, code, now):
        bit = 1 << code
        if self.alarms & bit:
            return
        self.alarms |= bit
        self.acked &= ~bit
        self.log.add(codes.EV_ALARM, now, code, 0)
        if bit & _CRITICAL:
            # Delivery stops: running boluses end here and are not resumed later.
            self._end_boluses(now)
        if bit != _DOSE_LIMIT_BIT:
            self.save()  # the alarm survives a restart
        self.tone_at = now
        self.check_at = now  # the periodic check runs at once and sounds the alarm

    def clear_alarm(self, code, now):
        bit = 1 << code
        if self.alarms & bit:
            self.alarms &= ~bit
            self.acked &= ~bit
            self.log.add(codes.EV_ALARM_CLEAR, now, code, 0)
            if bit & _CRITICAL and not self.alarms & _CRITICAL and self._delivering():
                # Delivery starts again from now: nothing missed is made up.
                self._sync()
                self.clock.start(now, self._total_rate())
                self._replan()

    def ack(self, now, code):
        """Silence an alarm. A condition that persists stays active (and stops delivery if it
        is critical); an alarm that only records an event is cleared."""
        self.service(now)
        bit = 1 << code
        if not self.alarms & bit:
            return False
        self.log.add(codes.EV_ACK, now, code, 0)
        if bit & codes.EVENT_ALARMS_MASK:
            self.clear_alarm(code, now)
        else:
            self.acked |= bit
        return True

    def tone_due(self, now):
        """The buzzer pattern to sound now (0: none): critical alarms every 10 minutes and
        warnings every hour, while any alarm of that priority is unacknowledged."""
        loud = self.alarms & ~self.acked
        if not loud or diff(now, self.tone_at) < 0:
            return 0
        tone = codes.TONE_CRITICAL if loud & _CRITICAL else codes.TONE_WARNING
        self.tone_at = add(now, codes.TONE_EVERY_MS[tone])
        return tone

    def _check(self, now):
        """Every CHECK_MS, stopped or not: battery, the occlusion's end, the buzzer."""
        self.check_at = add(now, self.check_ms)
        mon = self.mon
        hal = self.hal
        # The battery is read at rest: not in the millisecond of a stroke (the cell sags then).
        mv = mon.check_battery() if self.stroke_at != now else 0
        if mv == BAD:
            self.raise_alarm(codes.AL_BATTERY_SENSOR, now)
        elif mv and mon.mv_n >= 4:
            if mv <= hal.B_EOS_MV:
                self.raise_alarm(codes.AL_BATTERY_EOS, now)
            elif mv > hal.B_EOS_MV + 20:
                self.clear_alarm(codes.AL_BATTERY_EOS, now)
            if mv <= hal.B_ERI_MV:
                self.raise_alarm(codes.AL_BATTERY_ERI, now)
            elif mv > hal.B_ERI_MV + 20:
                self.clear_alarm(codes.AL_BATTERY_ERI, now)
        if self.alarms & (1 << codes.AL_OCCLUSION):
            p = mon.pressure_pa()
            if p == BAD:
                self.raise_alarm(codes.AL_SENSOR_FAULT, now)
            elif p < mon.occlusion_pa // 2:
                self.clear_alarm(codes.AL_OCCLUSION, now)
        tone = self.tone_due(now)
        if tone:
            hal.tone(tone)

    def _critical(self):
        return self.alarms & codes.CRITICAL_MASK

    # ---- commands (these may allocate; they are not the steady state) ----------------------
    def boot(self, now, tod_ms, params=None, state=None, cause=0, damaged=False):
        """Start after power-up or reset, from stored settings and state (either may be None:
        a factory-fresh pump). Missed doses are not delivered: the stroke clock starts afresh.
        cause is BOOT_WATCHDOG after a watchdog reset. damaged says the store saw a damaged
        record: with state, the store fell back to the previous record (A/B), at most one save
        older, so RESERVE more strokes are counted as delivered; without state, or with a
        state or settings record that does not make sense, memory_error is raised: delivery
        stays stopped until the pump is reprogrammed, and the dose account is taken as full
        (nothing known about the last 24 hours may open room for more drug)."""
        self.t = now
        self.t_guard = now
        self.t_clock = now
        self.check_at = now
        self.tone_at = now
        self.tod_ms = tod_ms % DAY_MS
        self.log.add(codes.EV_BOOT, now, cause, 0)
        corrupt = False
        if state is not None:
            if not self._load(state):
                corrupt = True
            elif damaged:
                self.guard.assume_full(RESERVE)
                # and the reservoir account, like the guard's, is one reserve short of the truth
                left = self.reservoir_nl - RESERVE * self.stroke_nl
                self.reservoir_nl = left if left > 0 else 0
        elif damaged:
            corrupt = True
        rx = None
        if params is not None:
            try:
                rx = Rx(params, self.hal)
            except RxError:
                corrupt = True
        if corrupt:
            self.guard.assume_full(self.hal.MAX_STROKES_PER_MIN * 1440)
            self.raise_alarm(codes.AL_MEMORY_ERROR, now)
        elif rx is not None:
            self.params = params
            self._install(now, rx)
        if cause == BOOT_WATCHDOG:
            self.raise_alarm(codes.AL_WATCHDOG_RESET, now)

    def program(self, now, params):
        """Install a new prescription (raises RxError and changes nothing if it is refused)."""
        self.service(now)
        rx = Rx(params, self.hal)
        self.params = params
        self._install(now, rx)
        self.log.add(codes.EV_PROGRAM, now, rx.basal_nl_day, rx.max_daily_nl)
        self.log.add(codes.EV_PROGRAM_BOLUS, now, rx.pb_dose_nl, rx.pb_dur_ms // 1000)
        if rx.pb_dose_nl:
            self.log.add(codes.EV_PROGRAM_BOLUS_LIMITS, now, rx.pb_lockout_s, rx.pb_max)
        self.clear_alarm(codes.AL_MEMORY_ERROR, now)
        self.save()
        return rx

    def _install(self, now, rx):
        self._sync()
        self.rx = rx
        self._end_boluses(now)  # a new prescription cuts short what the old one started
        self.guard.set_cap(rx.max_daily_strokes)
        self.step = rx.step_at(self.tod_ms)
        self.clock.start(now, rx.step_rate_nl_day[self.step])
        self._replan()
        if self.stopped:
            self.stop_left_ms = self.clock.left_ms(now)

    def patient_bolus(self, now):
        """Returns 0 if the bolus starts, else the reason it was refused (also logged)."""
        self.service(now)
        rx = self.rx
        reason = self._common_refusal()
        if not reason and not rx.pb_dose_nl:
            reason = codes.R_NO_PATIENT_BOLUS
        self._sync()
        if not reason:
            reason = self.pb_policy.reason_to_deny(self.mono_s, rx.pb_lockout_s, rx.pb_max)
        if not reason and self.pb_on:
            reason = codes.R_BOLUS_ACTIVE
        if not reason and self.guard.room() * self.stroke_nl < rx.pb_dose_nl:
            reason = codes.R_DAILY_MAX
        if reason:
            self.log.add(codes.EV_PB_DENIED, now, reason, 0)
            return reason
        self.pb_policy.record(self.mono_s + (1 if self.mono_ms else 0))
        self.save()  # the start is on record before a drop is delivered
        self.pb_on = True
        self.pb_end = add(now, rx.pb_dur_ms)
        self.clock.change_rate(now, self._total_rate(), rx.pb_lead)
        self._replan()
        self.log.add(codes.EV_PB_START, now, rx.pb_dose_nl, 0)
        return 0

    def clinician_bolus(self, now, dose_nl, dur_ms):
        """Dose (nL) over dur_ms (0: as fast as the motor allows). 0 or a refusal reason."""
        self.service(now)
        rx = self.rx
        reason = self._common_refusal()
        if not reason and self.cb_on:
            reason = codes.R_BOLUS_ACTIVE
        if not reason and (type(dose_nl) is not int or type(dur_ms) is not int or dur_ms < 0
                           or dur_ms > DAY_MS or dose_nl < self.stroke_nl
                           or dose_nl > rx.max_daily_nl):
            reason = codes.R_BAD_VALUE
        spare = 0
        rate = lead = 0
        if not reason:
            top = max(rx.step_rate_nl_day) + rx.pb_rate_nl_day
            spare = rx.max_motor_nl_day - top
            if dur_ms == 0:
                dur_ms = (dose_nl * DAY_MS + spare - 1) // spare if spare > 0 else DAY_MS + 1
                if dur_ms > DAY_MS:
                    reason = codes.R_MOTOR_RATE
        if not reason:
            rate, lead = bolus_rate(dose_nl, dur_ms)
            if rate > spare:
                reason = codes.R_MOTOR_RATE
        if not reason and self.guard.room() * self.stroke_nl < dose_nl:
            reason = codes.R_DAILY_MAX
        if reason:
            self.log.add(codes.EV_CB_DENIED, now, reason, 0)
            return reason
        self.cb_on = True
        self.cb_rate = rate
        self.cb_end = add(now, dur_ms)
        self.clock.change_rate(now, self._total_rate(), lead)
        self._replan()
        self.log.add(codes.EV_CB_START, now, dose_nl, dur_ms)
        return 0

    def _common_refusal(self):
        if self.rx is None:
            return codes.R_NOT_PROGRAMMED
        if self.stopped:
            return codes.R_STOPPED
        if self._critical() or self.alarms & (1 << codes.AL_DOSE_LIMIT):
            return codes.R_ALARM
        return 0

    def stop(self, now):
        """Suspend delivery; running boluses end here and are not resumed."""
        self.service(now)
        if self.stopped:
            return
        if self.rx is not None:
            self._end_boluses(now)
            self.stop_left_ms = self.clock.left_ms(now)
        self.stopped = True
        self.save()
        self.log.add(codes.EV_STOP, now, 0, 0)

    def resume(self, now):
        """Resume after a stop. It is also the clinician's word that a latched fault was seen
        to and fixed (motor stall, a sensor fault): those alarms clear, and come straight back
        if the fault is still there."""
        self.service(now)
        for code in (codes.AL_MOTOR_STALL, codes.AL_SENSOR_FAULT, codes.AL_BATTERY_SENSOR):
            self.clear_alarm(code, now)
        self.mon.bad_rises = 0
        self.mon.reset_battery()
        if not self.stopped:
            return
        self.stopped = False
        self._sync()
        if self.rx is not None:
            # The phase is kept; the stopped time is not there. Re-time at today's basal rate.
            self.clock.resume_at(now, self.stop_left_ms)
            self.step = self.rx.step_at(self.tod_ms)
            self.clock.change_rate(now, self._total_rate(), 0)
            self._replan()
        self.save()
        self.log.add(codes.EV_RESUME, now, 0, 0)

    def _end_boluses(self, now):
        if self.pb_on:
            self.pb_on = False
            self.log.add(codes.EV_BOLUS_END, now, 1, 1)
        if self.cb_on:
            self.cb_on = False
            self.log.add(codes.EV_BOLUS_END, now, 2, 1)

    def set_time_of_day(self, now, tod_ms):
        """The pump clock was set: the schedule follows it from now on."""
        self.service(now)
        self._sync()
        self.tod_ms = tod_ms % DAY_MS
        if self._delivering():
            self.step = self.rx.step_at(self.tod_ms)
            self.clock.change_rate(now, self._total_rate(), 0)
            self._replan()

    def refill(self, now, volume_nl, conc_ng_ml=0, residual_nl=-1, bridge_nl=-1):
        """The reservoir now holds volume_nl. Optional: the new concentration (a change needs
        bridge_nl equal to the catheter's volume, which the host showed the clinician) and the
        residual measured when the old drug was drawn out. Returns 0 or a refusal reason; a
        refused refill changes nothing."""
        self.service(now)
        hal = self.hal
        if type(volume_nl) is not int or not 0 <= volume_nl <= hal.RESERVOIR_NL:
            return self._refuse_refill(now, codes.R_BAD_VALUE)
        rx = None
        params = None
        if conc_ng_ml and self.rx is not None and conc_ng_ml != self.rx.conc_ng_ml:
            if bridge_nl != hal.CATHETER_NL:
                return self._refuse_refill(now, codes.R_BRIDGE_UNCONFIRMED)
            params = {}
            for k in self.params:
                params[k] = self.params[k]
            params["conc_ng_ml"] = conc_ng_ml
            try:
                rx = Rx(params, hal)
            except RxError:
                return self._refuse_refill(now, codes.R_BAD_VALUE)
        if residual_nl >= 0:
            expected = self.reservoir_nl
            tol = hal.REFILL_TOLERANCE_NL + expected * hal.REFILL_TOLERANCE_PCT // 100
            self.log.add(codes.EV_REFILL_CHECK, now, expected // 1000, residual_nl // 1000)
            if residual_nl - expected > tol or expected - residual_nl > tol:
                self.raise_alarm(codes.AL_REFILL_DISCREPANCY, now)
        if rx is not None:
            # What the window already holds was the old drug: count it in new strokes.
            self.guard.rescale(self.rx.conc_ng_ml, conc_ng_ml)
            self.params = params
            self._install(now, rx)
            self.log.add(codes.EV_CONCENTRATION, now, conc_ng_ml // 1000, bridge_nl)
        self.reservoir_nl = volume_nl
        self.log.add(codes.EV_REFILL, now, volume_nl // 1000, 0)
        if volume_nl - self.stroke_nl >= self.reservoir_min_nl:
            self.clear_alarm(codes.AL_RESERVOIR_EMPTY, now)
        if self.rx is not None and volume_nl > self.rx.low_res_nl:
            self.clear_alarm(codes.AL_RESERVOIR_LOW, now)
        self.save()
        return 0

    def _refuse_refill(self, now, reason):
        self.log.add(codes.EV_REFILL, now, -1, reason)
        return reason

    def time_to_empty_s(self):
        """Seconds until the reservoir reaches its minimum at today's basal rates (the basal
        only: boluses come on top). -1 without a prescription."""
        if self.rx is None:
            return -1
        left = self.reservoir_nl - self.reservoir_min_nl
        if left <= 0:
            return 0
        return left * 86400 // self.rx.basal_nl_day

    # ---- persistence -------------------------------------------------------------------
    def save(self, clean=False):
        """Write the state that must survive a restart (limits, lockouts, stop) to flash."""
        self._sync()
        st = self.state
        st[0] = STATE_MAGIC
        st[1] = _F_STOPPED if self.stopped else 0
        st[2] = self.stop_left_ms
        # After an unclean restart assume the reserved strokes were delivered, as the guard does.
        st[3] = self.reservoir_nl - (0 if clean else RESERVE * self.stroke_nl)
        st[4] = self.alarms & ~_DOSE_LIMIT_BIT  # the dose limit is re-derived from the account
        self.pb_policy.save_into(st, _PB_AT, self.mono_s)
        self.guard.save_into(st, _GUARD_AT, clean)
        self.hal.save_state(st)

    def _load(self, src):
        if len(src) != STATE_LEN or src[0] != STATE_MAGIC:
            return False
        self.stopped = bool(src[1] & _F_STOPPED)
        self.stop_left_ms = src[2]
        self.reservoir_nl = src[3] if src[3] > 0 else 0
        self.alarms = src[4]
        self.pb_policy.load_from(src, _PB_AT, self.mono_s)
        self.guard.load_from(src, _GUARD_AT)
        return True
