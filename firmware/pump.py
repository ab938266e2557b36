# The pump's timing core: time, the schedule's rate, and the one path of a stroke.
#
# It never reads a clock. The shell (the main loop on a board, or the simulator) calls
# service(now) at or after the time next_in_ms() asked for. A stroke has exactly one path, in
# _stroke():
#
#     the stroke clock proposes -> the safety kernel decides (firmware/kernel.py: therapy off,
#     late, critical alarm, reservoir, pressure sensor, occlusion, dose guard) -> the motor
#     moves (hal.stroke: DONE, NOT_DONE or UNCERTAIN) -> the reservoir account, the checks
#     after the stroke, a save every SAVE_AT strokes
#
# Nothing is ever caught up: a stroke whose time passed while the pump was stopped, in alarm,
# refused by the guard or too late to be delivered on time is dropped, not delivered later.
#
# The rest lives in rooms of their own: the rules of every command in firmware/therapy.py, what
# the pump does about alarms (and the periodic check) in firmware/supervisor.py, the reservoir
# account in firmware/reservoir.py, the state record in firmware/record.py. This file only keeps
# time and rate; it is handed the supervisor (`sup`) and the record's save port (`save`) from
# above.
from firmware.codes import (AL_BATTERY_SENSOR, AL_DOSE_LIMIT, AL_MOTOR_STALL, AL_RESERVOIR_LOW,
                            AL_SENSOR_FAULT, EV_BOLUS_END, EV_MISSED, EV_MOTOR_RETRY,
                            EV_RESUME, EV_STEP, EV_STOP, EV_STROKE_REFUSED, EV_STROKE_UNCERTAIN,
                            NOT_DONE, R_NOT_PROGRAMMED, R_STOPPED, UNCERTAIN)
from firmware.compat import TYPE_CHECKING, const
from firmware.kernel import Kernel
from firmware.rx import DAY_MS
from firmware.stroke_clock import StrokeClock
from firmware.ticks import add, diff

if TYPE_CHECKING:
    from firmware.guard import DoseGuard
    from typing import Callable

    from firmware.hal import Log, Mechanism
    from firmware.history import History
    from firmware.monitor import Monitor
    from firmware.reservoir import Reservoir

MAX_SLEEP_MS = const(3600000)  # service at least hourly: keeps every tick difference valid
NONE = const(1 << 28)          # "no change in sight" (re-checked when it comes, 3 days on)
# The per-stroke loop of service() and next_in_ms() inline ticks.diff with these: a call per
# stroke costs more than the arithmetic; and the stroke path names no module-level name of
# another module (each such lookup costs hundreds of instructions on the MicroPython VM): the
# constants below are copies (tests/firmware/test_alarms.py holds them to the originals).
# Measured: docs/benchmarks.md, "The stroke path".
_HALF = const(1 << 29)
_MASK = const((1 << 30) - 1)
_DOSE_LIMIT_BIT = const(1 << 7)  # 1 << codes.AL_DOSE_LIMIT
_RES_LOW_BIT = const(1 << 2)     # 1 << codes.AL_RESERVOIR_LOW
_R_LATE = const(18)              # codes.R_LATE
_R_UNSAVED = const(22)           # codes.R_UNSAVED
_DONE = const(1)                 # codes.DONE
_SAVE_AT = const(32)             # guard.SAVE_AT


class Pump:
    def __init__(self, hal: "Mechanism", log: "Log", reservoir: "Reservoir", guard: "DoseGuard",
                 mon: "Monitor", sup) -> None:
        self.hal = hal          # stroke(); board constants as attributes
        self.log = log          # add(code, now, a, b)
        self.res = reservoir    # firmware.reservoir.Reservoir
        self.guard = guard      # firmware.guard.DoseGuard
        self.mon = mon          # firmware.monitor.Monitor
        self.sup = sup          # firmware.supervisor.Supervisor (acts on refusals and alarms)
        self.al = sup.al        # its alarm state, read on the stroke path
        self.save: "Callable[..., bool] | None" = None  # handed in: the record's save()
        self.hist: "History | None" = None  # handed in: the therapy history (history.py)
        self.stroke_nl = hal.STROKE_NL
        self.stall_retries = hal.STALL_RETRIES
        self.check_ms = hal.CHECK_MS
        self.clock = StrokeClock(self.stroke_nl)
        self.kernel = Kernel(self.clock, sup.al, guard, mon, reservoir)
        self.rx = None          # the prescription running (firmware/rx.py)
        self.t = 0              # ticks up to which time has been accounted
        self.t_guard = 0        # ticks up to which the dose guard's window has moved
        self.t_clock = 0        # ticks up to which mono_s/mono_ms/tod_ms are current
        self.mono_s = 0         # seconds since boot (monotonic; small for 34 years)
        self.mono_ms = 0        # and the milliseconds past it
        self.tod_ms = 0         # pump clock: time of day
        self.ts0 = 0            # pump clock (s since 2024-01-01) at mono_s == 0
        self.step = 0
        self.change_at = 0      # ticks of the next rate change (a step start or a bolus end)
        self.stopped = False
        self.stop_left_ms = 0   # ms to the next stroke when delivery stopped (the phase kept)
        self.susp_s = -1        # a timed stop ends at mono time susp_s s + susp_ms ms (-1: none)
        self.susp_ms = 0
        self.stop_since_s = 0   # uptime (s) since which delivery has been stopped
        self.journal: "Callable[[int], bool] | None" = None  # handed in: the record's journal
        self.pb_on = False
        self.pb_end = 0
        self.cb_on = False
        self.cb_end = 0
        self.cb_rate = 0
        self.check_at = 0       # ticks of the next periodic check
        self.stroke_at = -1     # ticks of the last stroke
        self.strokes = 0        # strokes delivered since boot
        self.uncertain = 0      # strokes that stalled partway since boot (counted as given)
        self.missed = 0         # strokes dropped since boot because the loop ran late
        self.missed_run = 0     # ... in this service call (logged as one EV_MISSED)
        self.refused = 0        # strokes the kernel refused since boot (late ones aside)
        self.refusing = 0       # reason of the run of refusals in progress (0: none)

    # ---- time ----------------------------------------------------------------------------
    def start(self, now, tod_ms, ts):
        """Time starts at a boot: ticks `now`, the pump clock's time of day and its second."""
        self.t = now
        self.t_guard = now
        self.t_clock = now
        self.check_at = now
        self.tod_ms = tod_ms % DAY_MS
        self.ts0 = ts

    def _sync(self):
        """Bring the uptime and time-of-day counters up to self.t. They are read rarely (rate
        changes, commands, saves), so the stroke path only moves self.t and leaves this to them;
        service() also calls it at least daily so the tick difference stays valid."""
        ms = ((self.t - self.t_clock + _HALF) & _MASK) - _HALF  # diff(), inline: every check
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

    def ts(self):
        """The pump clock now (s since 2024-01-01), as far as self.t."""
        self._sync()
        return self.ts0 + self.mono_s

    def set_tod(self, now, tod_ms, ts=-1):
        """The pump clock was set (ts: the new clock in s since 2024-01-01, if known): the
        schedule follows it from now on."""
        self._sync()
        self.tod_ms = tod_ms % DAY_MS
        if ts >= 0:
            self.ts0 = ts - self.mono_s
        if self.delivering():
            self.step = self.rx.step_at(self.tod_ms)
            self.retime(now)

    def _susp_left_ms(self, now):
        """ms from `now` to the end of a timed stop (only while one runs)."""
        return ((self.susp_s - self.mono_s) * 1000 + self.susp_ms - self.mono_ms
                - diff(now, self.t_clock))

    def suspend_left_ms(self, now):
        """ms until a timed stop ends (0: not stopped, or stopped until resume)."""
        if not self.stopped or self.susp_s < 0:
            return 0
        d = self._susp_left_ms(now)
        return d if d > 0 else 0

    # ---- the rate --------------------------------------------------------------------------
    def delivering(self):
        return self.rx is not None and not self.stopped

    def _total_rate(self):
        rx = self.rx
        rate = rx.step_rate_nl_day[self.step]
        if self.pb_on:
            rate += rx.pb_rate_nl_day
        if self.cb_on:
            rate += self.cb_rate
        return rate

    def _next_change_ms(self):
        """ms from self.t to the next change of the total rate (NONE if there is none)."""
        best = NONE
        starts = self.rx.step_start_ms
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

    def retime(self, now, lead=0):
        """The total rate changed at `now` (a step, a bolus, the clock): re-time the stroke in
        progress at the new rate (lead: volume credited at once, a bolus's rounding) and find
        the next change."""
        self.clock.change_rate(now, self._total_rate(), lead)
        self._sync()
        self.change_at = add(self.t, self._next_change_ms())

    def restart(self, now):
        """Delivery starts again from nothing accumulated (a critical alarm ended): nothing
        missed is made up."""
        if self.delivering():
            self.clock.start(now, self._total_rate())
            self._sync()
            self.change_at = add(self.t, self._next_change_ms())

    def _rate_change(self):
        """Time self.t has reached a step start or a bolus end: apply what changed."""
        self._sync()
        rx = self.rx
        if self.pb_on and self.pb_end == self.t:
            self.pb_on = False
            self.log.add(EV_BOLUS_END, self.t, 1, 0)
        if self.cb_on and self.cb_end == self.t:
            self.cb_on = False
            self.log.add(EV_BOLUS_END, self.t, 2, 0)
        step = rx.step_at(self.tod_ms)
        if step != self.step:
            self.step = step
            self.log.add(EV_STEP, self.t, step, rx.step_rate_nl_day[step])
        self.retime(self.t)

    def install(self, now, rx):
        """A prescription takes over: running boluses end, the cap and the step are its."""
        self._sync()
        self.rx = rx
        self.end_boluses(now)
        self.guard.set_cap(rx.max_daily_units)
        self.step = rx.step_at(self.tod_ms)
        self.clock.start(now, rx.step_rate_nl_day[self.step])
        self.change_at = add(self.t, self._next_change_ms())
        if self.stopped:
            self.stop_left_ms = self.clock.left_ms(now)
        self.set_stopped(self.stopped)
        self.res.plan(rx)

    def set_stopped(self, stopped):
        self.stopped = stopped
        self.kernel.off = R_NOT_PROGRAMMED if self.rx is None else R_STOPPED if stopped else 0

    def stopped_s(self):
        """How long delivery has been stopped (s, as far as self.t)."""
        self._sync()
        return self.mono_s - self.stop_since_s

    def stopped_for(self, s):
        """Restored from a record: delivery had been stopped s seconds (-1: it was not)."""
        self.stop_since_s = self.mono_s - s if s > 0 else self.mono_s

    def halt(self, now, for_ms=0):
        """Delivery stops, until go() or (for_ms > 0) for that long; running boluses end here
        and are not resumed. The phase of the stroke in progress is kept."""
        self._sync()
        if for_ms > 0:
            m = self.mono_ms + for_ms
            self.susp_s = self.mono_s + m // 1000
            self.susp_ms = m % 1000
        else:
            self.susp_s = -1
        if not self.stopped:
            if self.rx is not None:
                self.end_boluses(now)
                self.stop_left_ms = self.clock.left_ms(now)
            self.set_stopped(True)
            self.stop_since_s = self.mono_s
        self.save(False, now)
        self.log.add(EV_STOP, now, for_ms // 1000, 0)
        self.hist.note("stop", now, for_ms // 1000)

    def go(self, now, auto):
        """Delivery goes on (auto: a timed stop ended by itself)."""
        self.susp_s = -1
        self.set_stopped(False)
        self._sync()
        if self.rx is not None:
            # The phase is kept; the stopped time is not there. Re-time at today's basal rate.
            self.clock.resume_at(now, self.stop_left_ms)
            self.step = self.rx.step_at(self.tod_ms)
            self.retime(now)
        self.save(False, now)
        self.log.add(EV_RESUME, now, 1 if auto else 0, 0)
        self.hist.note("resume", now, 1 if auto else 0)

    def start_patient_bolus(self, now):
        rx = self.rx
        self.pb_on = True
        self.pb_end = add(now, rx.pb_dur_ms)
        self.retime(now, rx.pb_lead)

    def start_clinician_bolus(self, now, rate, dur_ms, lead):
        self.cb_on = True
        self.cb_rate = rate
        self.cb_end = add(now, dur_ms)
        self.retime(now, lead)

    def end_boluses(self, now):
        if self.pb_on:
            self.pb_on = False
            self.log.add(EV_BOLUS_END, now, 1, 1)
        if self.cb_on:
            self.cb_on = False
            self.log.add(EV_BOLUS_END, now, 2, 1)

    # ---- servicing -------------------------------------------------------------------------
    def next_in_ms(self, now):
        """How long the shell may sleep before it must call service() again."""
        best = ((self.check_at - now + _HALF) & _MASK) - _HALF
        if self.rx is None or self.stopped:
            if self.susp_s >= 0:
                d = self._susp_left_ms(now)
                if d < best:
                    best = d
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
            if self.susp_s >= 0 and self._susp_left_ms(now) <= 0:
                self.go(now, True)  # the timed stop is over
            if diff(now, self.check_at) >= 0:
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
                self._stroke(now)
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
        if self.missed_run:
            self.log.add(EV_MISSED, now, self.missed_run, 0)
            self.missed_run = 0
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

    def _check(self, now):
        self.check_at = add(now, self.check_ms)
        self.sup.check(now)

    # ---- the one path of a stroke ----------------------------------------------------------
    def _stroke(self, now):
        kernel = self.kernel
        reason = kernel.decide(now)
        self.clock.stroke_done()  # the next stroke is timed whatever happens to this one
        if reason:
            if reason == _R_UNSAVED and self.save(False, now):
                reason = self.guard.step()
            if reason:
                self._refused(now, reason)
                return
        journal = self.journal
        if journal is not None and not journal(self.guard.unsaved):
            # The flash did not take the journal: a full save covers the stroke instead (it is
            # counted in the record), or the stroke does not happen.
            if not self.save(False, now):
                self.guard.undo()
                self._refused(now, _R_UNSAVED)
                return
        if self.refusing:
            self.refusing = 0
            if self.al.active & _DOSE_LIMIT_BIT:
                self.sup.clear_alarm(AL_DOSE_LIMIT, now)
        res = self.res
        r = self.hal.stroke()
        if r != _DONE:
            r = self._motor_trouble(now, r)
            if not r:
                return
        if r == _DONE:
            res.nl -= self.stroke_nl
            self.stroke_at = now
            self.strokes += 1
            mon = self.mon
            if not mon.rise_ok(kernel.before_pa):
                self.sup.raise_alarm(AL_SENSOR_FAULT, now)
            if mon.probe and not mon.probe_under_load():
                self.sup.raise_alarm(AL_BATTERY_SENSOR, now)
        if res.nl <= self.rx.low_res_nl and not self.al.active & _RES_LOW_BIT:
            self.sup.raise_alarm(AL_RESERVOIR_LOW, now)
        if self.guard.unsaved >= _SAVE_AT:
            self.save(False, now)

    def _motor_trouble(self, now, r):
        """The motor did not report a whole stroke. What did not move (NOT_DONE) is tried again
        at most STALL_RETRIES times, then taken back out of the dose account (motor_stall); what
        stalled partway (UNCERTAIN) counts as given, in the guard and the reservoir account
        (never above the truth), and is never retried, which could give more than one stroke
        in all (motor_stall). Returns the outcome in the end."""
        tries = 0
        while not r:
            tries += 1
            if tries > self.stall_retries:
                self.guard.undo()
                self.sup.raise_alarm(AL_MOTOR_STALL, now)
                return NOT_DONE
            r = self.hal.stroke()
        if tries:
            self.log.add(EV_MOTOR_RETRY, now, tries, 0)
        if r == UNCERTAIN:
            self.uncertain += 1
            self.res.nl -= self.stroke_nl
            self.log.add(EV_STROKE_UNCERTAIN, now, self.uncertain, 0)
            self.sup.raise_alarm(AL_MOTOR_STALL, now)
        return r

    def _refused(self, now, reason):
        """Act on the kernel's refusal: count it, log the first of a run; the supervisor
        raises the alarm that goes with it."""
        if reason == _R_LATE:
            self.missed += 1
            self.missed_run += 1
            return
        self.refused += 1
        if reason != self.refusing:
            self.refusing = reason
            self.log.add(EV_STROKE_REFUSED, now, reason, 0)
        self.sup.refused(now, reason)
