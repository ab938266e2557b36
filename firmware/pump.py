# The pump's timing core: one object that turns a prescription into strokes.
#
# It never reads a clock. The shell (the main loop on a board, or the simulator) calls
# service(now) at or after the time next_in_ms() asked for, and passes requests in with `now`.
# A stroke has exactly one path, in _stroke():
#
#     scheduler proposes (StrokeClock) -> safety kernel decides (firmware/kernel.py: late,
#     critical alarm, reservoir, pressure sensor, occlusion, dose guard) -> motor moves
#     (hal.stroke: done, not done or uncertain) -> account and log
#
# Nothing is ever caught up: a stroke whose time passed while the pump was stopped, in alarm,
# refused by the guard or too late to be delivered on time is dropped, not delivered later.
#
# The state record (save(), _load()). What must survive a restart is one array of ints:
#
#   [STATE_MAGIC, layout version, oldest layout that can read it, header length H,
#    header fields (_FLAGS .. _BOLUS + 6, see below), then at H the patient-bolus block (PB_SAVE_LEN)
#    and the dose guard's block (GUARD_SAVE_LEN)]
#
# A later layout adds a header field at the end (H grows) or a block after the guard's; a
# reader takes the fields it knows and skips the rest, so firmware of either side of an update
# (or a rollback) reads the other's record. A change that an older reader could not take (a
# field changing meaning or size) raises the "oldest reader" entry, and the new firmware then
# migrates older records in _fields(), as it migrates layout 1 (LEGACY_MAGIC, the record before
# versions existed) today. A record nobody can read is memory_error; a migration never is.
from array import array

from firmware import codes
from firmware.alarms import AlarmState
from firmware.bolus import SAVE_LEN as PB_SAVE_LEN
from firmware.bolus import PatientBolusPolicy
from firmware.compat import const
from firmware.guard import RESERVE, SAVE_AT, DoseGuard
from firmware.guard import SAVE_LEN as GUARD_SAVE_LEN
from firmware.kernel import LATE_MS, Kernel  # noqa: F401  (LATE_MS: the kernel's, re-exported)
from firmware.monitor import BAD, Monitor
from firmware.rx import DAY_MS, Rx, RxError, bolus_rate, ng_to_nl, refill_level_nl
from firmware.stroke_clock import StrokeClock
from firmware.ticks import add, diff

MAX_SLEEP_MS = const(3600000)  # service at least hourly: keeps every tick difference valid
NONE = const(1 << 28)          # "no change in sight" (re-checked when it comes, 3 days on)
BOOT_WATCHDOG = const(1)       # boot(cause=...): the watchdog reset the board
PRIME_CONFIRM_S = const(120)   # a priming bolus's second step must come within this
MAX_STABLE_S = const(31536000)  # a fill's stability: at most a year
BOLUS_DAYS = const(7)          # refill planning counts the boluses of the last 7 days
_BOLUS_DAY_MAX = const(1 << 27)  # a day's bolus volume saturates here (7 of them stay small)
# An unclean restart during a timed stop: the last save may be one periodic check and one late
# wake-up old, so the stop's remaining time is taken that much shorter (never longer).
_SUSPEND_SLACK_MS = const(60000)

# ---- the state record (see the top) ----------------------------------------------------------
LEGACY_MAGIC = const(0x5057)   # layout 1: [magic, flags, stop_left_ms, reservoir_nl, alarms,
                               # patient-bolus block, guard block]
STATE_MAGIC = const(0x5058)    # layouts 2 and later
STATE_VERSION = const(2)
_READER = const(2)             # the oldest layout whose firmware can read what this one writes
_FLAGS = const(4)              # _F_* below
_PHASE = const(5)              # ms to the next stroke when delivery stopped (the phase kept)
_RES = const(6)                # reservoir account, nL (one reserve short after an unclean stop)
_ALARMS = const(7)             # active alarm bits (not dose_limit: re-derived from the account)
_SUSP = const(8)               # ms left of a timed stop at the save (-1: none)
_TS = const(9)                 # pump clock (s since 2024-01-01) at the save
_FILL_TS = const(10)           # pump clock at the last fill (-1: unknown)
_STABLE = const(11)            # stability of that fill, s (0: not given)
_FILLS = const(12)             # fills recorded since the pump was new
_BDAY = const(13)              # s into the current day of the bolus ring
_BOLUS = const(14)             # bolus nL per day, newest first, BOLUS_DAYS of them
HDR_LEN = const(21)
STATE_LEN = HDR_LEN + PB_SAVE_LEN + GUARD_SAVE_LEN
_LEGACY_LEN = 5 + PB_SAVE_LEN + GUARD_SAVE_LEN
_F_STOPPED = const(1)
_F_LOST = const(2)             # the dose account was lost: a reprogram states an assumption
_F_CLEAN = const(4)            # saved by an orderly shutdown (exact, no reserve)
_F_MEM_FLASH = const(8)        # memory_error was raised by failing saves, not a lost record
# The hot path inlines ticks.diff with these (see firmware/ticks.py) and tests alarm bits
# directly: a function call or a module attribute per stroke costs more than the arithmetic.
_HALF = const(1 << 29)
_MASK = const((1 << 30) - 1)
_DOSE_LIMIT_BIT = const(1 << 7)  # 1 << codes.AL_DOSE_LIMIT
_RES_LOW_BIT = const(1 << 2)     # 1 << codes.AL_RESERVOIR_LOW
_FLASH_BIT = const(1 << 17)      # 1 << codes.AL_FLASH_FAILING
_CRITICAL = const(858)           # codes.CRITICAL_MASK (checked in tests/firmware/test_alarms.py)
_R_LATE = const(18)              # codes.R_LATE
_R_UNSAVED = const(22)           # codes.R_UNSAVED


def state_reservoir_nl(state):
    """The reservoir account held by a saved state record (either layout), or 0."""
    if state is None or len(state) < 7:
        return 0
    if state[0] == LEGACY_MAGIC:
        return state[3]
    return state[_RES] if state[0] == STATE_MAGIC else 0


def _fields(src):
    """A stored record's fields in this firmware's terms, migrated from whichever layout wrote
    it: (layout, flags, phase, reservoir, alarms, susp, ts, fill_ts, stable, fills, bday,
    index of the bolus days or -1, index of the patient-bolus block), or None for a record no
    layout this firmware knows explains (memory_error)."""
    n = len(src)
    if n == _LEGACY_LEN and src[0] == LEGACY_MAGIC:
        # Layout 1 had no timed stops, clock, fill dates or bolus history: those start unknown
        # (a reservoir with drug in it was filled at least once).
        return (1, src[1] & _F_STOPPED, src[2], src[3], src[4], -1, -1, -1, 0,
                1 if src[3] > 0 else 0, 0, -1, 5)
    if n < 4 or src[0] != STATE_MAGIC or src[1] < 2 or src[2] > STATE_VERSION:
        return None
    h = src[3]
    if h < HDR_LEN or n < h + PB_SAVE_LEN + GUARD_SAVE_LEN:
        return None
    return (src[1], src[_FLAGS], src[_PHASE], src[_RES], src[_ALARMS], src[_SUSP], src[_TS],
            src[_FILL_TS], src[_STABLE], src[_FILLS], src[_BDAY], _BOLUS, h)


class Pump:
    def __init__(self, hal, log):
        self.hal = hal          # stroke(), save_state(buf) -> True; board constants as attributes
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
        self.ts0 = 0            # pump clock (s since 2024-01-01) at mono_s == 0
        self.step = 0
        self.change_at = 0      # ticks of the next rate change (a step start or a bolus end)
        self.stopped = False
        self.stop_left_ms = 0
        self.susp_s = -1        # a timed stop ends at mono time susp_s s + susp_ms ms (-1: none)
        self.susp_ms = 0
        self.pb_on = False
        self.pb_end = 0
        self.cb_on = False
        self.cb_end = 0
        self.cb_rate = 0
        self.al = AlarmState()  # active and acknowledged alarms, the buzzer's schedule
        # Mirrors of self.al.active and self.al.acked, renewed at every change the pump acts
        # on (_alarms_changed): what the protocol, the simulator and the tests read. Plain
        # attributes, not properties: a property on this class makes every attribute store of
        # the stroke path slower on MicroPython (2.5 us a stroke, measured).
        self.alarms = 0
        self.acked = 0
        self.mon = Monitor(hal)
        self.check_ms = hal.CHECK_MS
        self.check_at = 0       # ticks of the next periodic check
        self.stroke_at = -1     # ticks of the last stroke
        self.reservoir_min_nl = hal.RESERVOIR_MIN_NL
        self.stall_retries = hal.STALL_RETRIES
        self.reservoir_nl = 0   # the pump's own account of the reservoir
        self.kernel = Kernel(self.clock, self.al, self.guard, self.mon, self.stroke_nl,
                             self.reservoir_min_nl, self)
        self.params = None      # the prescription as programmed (for a concentration change)
        self.strokes = 0        # strokes delivered since boot
        self.uncertain = 0      # strokes that stalled partway since boot (counted as given)
        self.missed = 0         # strokes dropped since boot because the loop ran late
        self.missed_run = 0     # ... in this service call (logged as one EV_MISSED)
        self.refused = 0        # strokes the kernel refused since boot (late ones aside)
        self.refusing = 0       # reason of the run of refusals in progress (0: none)
        self.account_lost = False  # the dose account was lost: program states an assumption
        self.mem_flash = False  # memory_error came from failing saves (a good save ends it)
        self.save_fails = 0     # state saves that failed in a row
        self._saving = False
        self.fill_ts = -1       # pump clock at the last fill
        self.stable_s = 0       # its stability in the pump (0: not given)
        self.fills = 0
        self.bolus_nl = array("i", [0] * BOLUS_DAYS)  # bolus volume started per day, newest first
        self.bday_s = 0         # mono_s at which bolus_nl[0]'s day began
        self.refill_nl = -1     # reservoir level at which refill_due starts (-1: none)
        self.prime_id = 0       # a priming bolus waiting for its second step: its id,
        self.prime_nl = 0       # volume
        self.prime_s = -1       # and mono_s of the first step (-1: none waiting)
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

    def ts(self):
        """The pump clock now (s since 2024-01-01), as far as self.t."""
        self._sync()
        return self.ts0 + self.mono_s

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

    def _susp_left_ms(self, now):
        """ms from `now` to the end of a timed stop (only while one runs)."""
        return ((self.susp_s - self.mono_s) * 1000 + self.susp_ms - self.mono_ms
                - (((now - self.t_clock + _HALF) & _MASK) - _HALF))

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
                self._resume(now, True)  # the timed stop is over
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
            self.log.add(codes.EV_MISSED, now, self.missed_run, 0)
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

    # ---- the one path of a stroke ----------------------------------------------------------
    def _stroke(self, now):
        kernel = self.kernel
        reason = kernel.decide(now)
        self.clock.stroke_done()  # the next stroke is timed whatever happens to this one
        if reason:
            if reason == _R_UNSAVED and self.save(False, now):
                reason = kernel.guard_step()
            if reason:
                self._refused(now, reason)
                return
        if self.refusing:
            self._approved_again(now)
        r = self.hal.stroke()
        if r is not True and r != 1:  # (True is by far the most common answer: test it first)
            if not self._motor_trouble(now, r):
                return
        self.stroke_at = now
        self.strokes += 1
        self.reservoir_nl -= self.stroke_nl
        mon = self.mon
        if not mon.rise_ok(kernel.before_pa, mon.pressure_pa()):
            self.raise_alarm(codes.AL_SENSOR_FAULT, now)
        if mon.probe and not mon.probe_under_load():
            self.raise_alarm(codes.AL_BATTERY_SENSOR, now)
        if self.reservoir_nl <= self.rx.low_res_nl and not self.alarms & _RES_LOW_BIT:
            self.raise_alarm(codes.AL_RESERVOIR_LOW, now)
        if self.guard.unsaved >= SAVE_AT:
            self.save(False, now)

    def _refused(self, now, reason):
        """Act on the kernel's refusal: count it, log the first of a run, raise its alarm."""
        if reason == _R_LATE:
            self.missed += 1
            self.missed_run += 1
            return
        self.refused += 1
        if reason != self.refusing:
            self.refusing = reason
            self.log.add(codes.EV_STROKE_REFUSED, now, reason, 0)
        if reason == codes.R_DAILY_MAX:
            if not self.alarms & _DOSE_LIMIT_BIT:
                self.raise_alarm(codes.AL_DOSE_LIMIT, now)
        elif reason == codes.R_RESERVOIR:
            self.raise_alarm(codes.AL_RESERVOIR_EMPTY, now)
        elif reason == codes.R_SENSOR:
            self.raise_alarm(codes.AL_SENSOR_FAULT, now)
        elif reason == codes.R_OCCLUSION:
            self.raise_alarm(codes.AL_OCCLUSION, now)
        elif reason == _R_UNSAVED:
            # The failing flash persists: the reserve it could prove is used up.
            if not self.alarms & (1 << codes.AL_MEMORY_ERROR):
                self.mem_flash = True
                self.raise_alarm(codes.AL_MEMORY_ERROR, now)

    def _approved_again(self, now):
        self.refusing = 0
        if self.alarms & _DOSE_LIMIT_BIT:
            self.clear_alarm(codes.AL_DOSE_LIMIT, now)

    def _motor_trouble(self, now, r):
        """The motor did not report a whole stroke: retry what did not move, alarm what stalled.
        True when a whole stroke was given after all."""
        hal = self.hal
        tries = 0
        while not r:
            tries += 1
            if tries > self.stall_retries:
                self.guard.undo()  # the stroke did not happen: it is not counted
                self.raise_alarm(codes.AL_MOTOR_STALL, now)
                return False
            r = hal.stroke()
        if tries:
            self.log.add(codes.EV_MOTOR_RETRY, now, tries, 0)
        if r == 2:
            # Stalled partway: some of the stroke may have reached the patient. The guard keeps
            # it counted and the reservoir account takes all of it (never above the truth);
            # no retry, which could give more than one stroke in all.
            self.uncertain += 1
            self.reservoir_nl -= self.stroke_nl
            self.log.add(codes.EV_STROKE_UNCERTAIN, now, self.uncertain, 0)
            self.raise_alarm(codes.AL_MOTOR_STALL, now)
            return False
        return True

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

    # ---- alarms: the state is firmware/alarms.py; here the pump acts on what changed --------
    def _alarms_changed(self):
        self.alarms = self.al.active
        self.acked = self.al.acked

    def raise_alarm(self, code, now):
        bit = self.al.start(code, now)
        if not bit:
            return
        self._alarms_changed()
        self.log.add(codes.EV_ALARM, now, code, 0)
        if bit & _CRITICAL:
            # Delivery stops: running boluses end here and are not resumed later.
            self._end_boluses(now)
        if bit != _DOSE_LIMIT_BIT and bit != _FLASH_BIT:
            self.save(False, now)  # the alarm survives a restart
        self.check_at = now  # the periodic check runs at once and sounds the alarm

    def clear_alarm(self, code, now):
        bit = self.al.end(code)
        if not bit:
            return
        self._alarms_changed()
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
        bit = self.al.ack(code)
        if not bit:
            return False
        self._alarms_changed()
        self.log.add(codes.EV_ACK, now, code, 0)
        if self.al.is_event(bit):
            self.clear_alarm(code, now)
        return True

    def tone_due(self, now):
        """The buzzer pattern to sound now (0: none), see AlarmState.tone_due."""
        return self.al.tone_due(now)

    def _check(self, now):
        """Every CHECK_MS, stopped or not: battery, the occlusion's end, saves a timed stop or a
        failing flash needs, refill and expiry dates, the buzzer."""
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
        if (self.stopped and self.susp_s >= 0) or self.save_fails:
            # A timed stop keeps its remaining time on flash to within a check; a failed save
            # is tried again.
            self.save(False, now)
        self._dates(now)
        tone = self.al.tone_due(now)
        if tone:
            hal.tone(tone)

    def _dates(self, now):
        """The bolus history's day, refill_due and drug_expired (small ints, no allocation)."""
        self._sync()
        if self.mono_s - self.bday_s >= 86400:
            b = self.bolus_nl
            while self.mono_s - self.bday_s >= 86400:
                i = BOLUS_DAYS - 1
                while i:
                    b[i] = b[i - 1]
                    i -= 1
                b[0] = 0
                self.bday_s += 86400
            self._refill_level()
        if (self.refill_nl >= 0 and self.fills and self.reservoir_nl <= self.refill_nl
                and not self.alarms & (1 << codes.AL_REFILL_DUE)):
            self.raise_alarm(codes.AL_REFILL_DUE, now)
        if (self.stable_s and self.fill_ts >= 0 and self.ts0 + self.mono_s - self.fill_ts
                >= self.stable_s and not self.alarms & (1 << codes.AL_DRUG_EXPIRED)):
            self.raise_alarm(codes.AL_DRUG_EXPIRED, now)

    # ---- refill planning -------------------------------------------------------------------
    def projected_nl_day(self):
        """The volume a day the reservoir is expected to lose: the basal, and the boluses
        started in the last BOLUS_DAYS days spread over them. 0 without a prescription."""
        if self.rx is None:
            return 0
        b = self.bolus_nl
        total = 0
        for i in range(BOLUS_DAYS):
            total += b[i]
        return self.rx.basal_nl_day + total // BOLUS_DAYS

    def _refill_level(self):
        rx = self.rx
        if rx is None:
            self.refill_nl = -1
            return
        self.refill_nl = refill_level_nl(rx.low_res_nl, self.projected_nl_day(),
                                         rx.refill_notice_s)

    def _bolus_started(self, dose_nl):
        v = self.bolus_nl[0] + dose_nl
        self.bolus_nl[0] = v if v < _BOLUS_DAY_MAX else _BOLUS_DAY_MAX
        self._refill_level()

    def time_to_empty_s(self):
        """Seconds until the reservoir reaches its minimum at the projected rate (the basal and
        the last days' boluses). -1 without a prescription."""
        if self.rx is None:
            return -1
        left = self.reservoir_nl - self.reservoir_min_nl
        if left <= 0:
            return 0
        return left * 86400 // self.projected_nl_day()

    def low_in_s(self):
        """Seconds until the reservoir reaches the prescription's low level at the projected
        rate (0 if it is there), -1 without a prescription."""
        if self.rx is None:
            return -1
        left = self.reservoir_nl - self.rx.low_res_nl
        return left * 86400 // self.projected_nl_day() if left > 0 else 0

    def expires_ts(self):
        """Pump clock at which the drug in the reservoir expires (-1: not known)."""
        if not self.stable_s or self.fill_ts < 0:
            return -1
        return self.fill_ts + self.stable_s

    def catheter_nl(self):
        """The patient's catheter volume from the settings (0: none set)."""
        return self.rx.catheter_nl if self.rx is not None else 0

    # ---- commands (these may allocate; they are not the steady state) ----------------------
    def boot(self, now, tod_ms, params=None, state=None, cause=0, damaged=False, clock_ts=-1):
        """Start after power-up or reset, from stored settings and state (either may be None:
        a factory-fresh pump). Missed doses are not delivered: the stroke clock starts afresh.
        cause is BOOT_WATCHDOG after a watchdog reset. damaged says the store saw a damaged
        record: with state, the store fell back to the previous record (A/B), at most one save
        older, so RESERVE more strokes are counted as delivered; without state, or with a
        state record no layout explains, the dose account is lost: it is taken as full and
        memory_error raised, until a reprogram states what to assume (program()). Settings
        that do not make sense raise memory_error too (the account stays). clock_ts is the
        pump clock (s since 2024-01-01) if the shell trusts it, else -1: the time the pump
        was off then does not count towards a timed stop, nor towards a fill's age."""
        self.t = now
        self.t_guard = now
        self.t_clock = now
        self.check_at = now
        self.al.tone_at = now
        self.tod_ms = tod_ms % DAY_MS
        self.ts0 = clock_ts if clock_ts >= 0 else 0
        self.log.add(codes.EV_BOOT, now, cause, 0)
        lost = False
        resume = False
        if state is not None:
            got = self._load(state, now, clock_ts, damaged)
            if got < 0:
                lost = True
            else:
                resume = got == 1
                if damaged:
                    self.guard.assume_full(RESERVE)
                    # and the reservoir account, like the guard's, is one reserve short of the
                    # truth
                    left = self.reservoir_nl - RESERVE * self.stroke_nl
                    self.reservoir_nl = left if left > 0 else 0
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
            self.account_lost = True
        if lost or bad_settings:
            self.raise_alarm(codes.AL_MEMORY_ERROR, now)
        elif rx is not None:
            self.params = params
            self._install(now, rx)
        if resume:
            self._resume(now, True)
        if cause == BOOT_WATCHDOG:
            self.raise_alarm(codes.AL_WATCHDOG_RESET, now)

    def program(self, now, params, assume_ng=-1):
        """Install a new prescription (raises RxError and changes nothing if it is refused).
        After a lost dose account (account_lost) it also states what the last 24 hours are
        taken to have delivered: assume_ng of the new drug, by default the new basal of a day;
        the basal then flows at once and boluses get what the cap leaves above it."""
        self.service(now)
        rx = Rx(params, self.hal)
        strokes = self.assumed_strokes(rx, assume_ng)
        self.params = params
        self._install(now, rx)
        if strokes >= 0:
            self._assume(strokes)
            self.account_lost = False
            self.log.add(codes.EV_ASSUMED, now, strokes * self.stroke_nl, 0)
        self.log.add(codes.EV_PROGRAM, now, rx.basal_nl_day, rx.max_daily_nl)
        self.log.add(codes.EV_PROGRAM_BOLUS, now, rx.pb_dose_nl, rx.pb_dur_ms // 1000)
        if rx.pb_dose_nl:
            self.log.add(codes.EV_PROGRAM_BOLUS_LIMITS, now, rx.pb_lockout_s, rx.pb_max)
        self.mem_flash = False
        self.clear_alarm(codes.AL_MEMORY_ERROR, now)
        if self.refill_nl < 0 or self.reservoir_nl > self.refill_nl:
            self.clear_alarm(codes.AL_REFILL_DUE, now)
        self.save(False, now)
        return rx

    def _assume(self, strokes):
        """Put `strokes` into the lost account as the schedule would have delivered them over
        the last 24 hours: the minute j back weighs the basal rate at that time of day (so as
        the assumed strokes leave the window, the new basal's strokes take their place)."""
        self.guard.assume(strokes, self._basal_minutes_back)

    def _basal_minutes_back(self, j):
        rx = self.rx
        return rx.step_rate_nl_day[rx.step_at((self.tod_ms - j * 60000) % DAY_MS)]

    def assumed_strokes(self, rx, assume_ng=-1):
        """Strokes a reprogram with `rx` puts into a lost account (-1: the account is not
        lost). Raises RxError for an assumption that does not apply or does not fit."""
        if not self.account_lost:
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

    def _install(self, now, rx):
        self._sync()
        self.rx = rx
        self._end_boluses(now)  # a new prescription cuts short what the old one started
        self.prime_s = -1       # and a priming bolus waiting for confirmation
        self.guard.set_cap(rx.max_daily_strokes)
        self.step = rx.step_at(self.tod_ms)
        self.clock.start(now, rx.step_rate_nl_day[self.step])
        self._replan()
        if self.stopped:
            self.stop_left_ms = self.clock.left_ms(now)
        self._refill_level()

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
        old = self.pb_policy.record(self.mono_s + (1 if self.mono_ms else 0))
        if not self.save(False, now):
            # The start must be on record before a drop is delivered, or a restart would
            # forget the lockout: no save, no bolus.
            self.pb_policy.undo(old)
            self.log.add(codes.EV_PB_DENIED, now, codes.R_UNSAVED, 0)
            return codes.R_UNSAVED
        self._bolus_started(rx.pb_dose_nl)
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
        self._bolus_started(dose_nl)
        self.log.add(codes.EV_CB_START, now, dose_nl, dur_ms)
        return 0

    def arm_prime(self, now, dose_nl):
        """First step of a priming bolus: check it (at most the patient's catheter volume,
        from the settings) and hold it for PRIME_CONFIRM_S. 0 (then self.prime_id names it)
        or a refusal reason; nothing is delivered."""
        self.service(now)
        reason = self._common_refusal()
        if not reason and (type(dose_nl) is not int or dose_nl < self.stroke_nl):
            reason = codes.R_BAD_VALUE
        if not reason and dose_nl > self.rx.catheter_nl:
            reason = codes.R_CATHETER  # no catheter set, or more than it holds
        if reason:
            self.log.add(codes.EV_CB_DENIED, now, reason, 0)
            return reason
        self._sync()
        self.prime_id = (self.prime_id + now) % 9000 + 1000  # a fresh 4-digit id each time
        self.prime_nl = dose_nl
        self.prime_s = self.mono_s
        self.log.add(codes.EV_PRIME_ARMED, now, dose_nl, self.rx.catheter_nl)
        return 0

    def prime(self, now, dose_nl, prime_id, dur_ms=0):
        """Second step: the same volume and the id the first step gave, within
        PRIME_CONFIRM_S. Starts it as a clinician bolus (every limit applies again)."""
        self.service(now)
        self._sync()
        armed = self.prime_s >= 0 and self.mono_s - self.prime_s <= PRIME_CONFIRM_S
        if not armed or prime_id != self.prime_id or dose_nl != self.prime_nl:
            self.log.add(codes.EV_CB_DENIED, now, codes.R_PRIME_UNCONFIRMED, 0)
            return codes.R_PRIME_UNCONFIRMED
        self.prime_s = -1
        return self.clinician_bolus(now, dose_nl, dur_ms)

    def _common_refusal(self):
        if self.rx is None:
            return codes.R_NOT_PROGRAMMED
        if self.stopped:
            return codes.R_STOPPED
        if self.alarms & (_CRITICAL | _DOSE_LIMIT_BIT):
            return codes.R_ALARM
        return 0

    def stop(self, now, for_ms=0):
        """Suspend delivery, until resume() or (for_ms > 0) for that long; running boluses end
        here and are not resumed. A timed stop survives restarts (see boot())."""
        self.service(now)
        self._sync()
        if for_ms > 0:
            m = self.mono_ms + for_ms
            self.susp_s = self.mono_s + m // 1000
            self.susp_ms = m % 1000
        else:
            self.susp_s = -1
        if not self.stopped:
            if self.rx is not None:
                self._end_boluses(now)
                self.stop_left_ms = self.clock.left_ms(now)
            self.stopped = True
        self.save(False, now)
        self.log.add(codes.EV_STOP, now, for_ms // 1000, 0)

    def suspend_left_ms(self, now):
        """ms until a timed stop ends (0: not stopped, or stopped until resume)."""
        if not self.stopped or self.susp_s < 0:
            return 0
        d = self._susp_left_ms(now)
        return d if d > 0 else 0

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
        self._resume(now, False)

    def _resume(self, now, auto):
        """Delivery goes on (auto: a timed stop ended; latched faults stay as they are)."""
        self.susp_s = -1
        self.stopped = False
        self._sync()
        if self.rx is not None:
            # The phase is kept; the stopped time is not there. Re-time at today's basal rate.
            self.clock.resume_at(now, self.stop_left_ms)
            self.step = self.rx.step_at(self.tod_ms)
            self.clock.change_rate(now, self._total_rate(), 0)
            self._replan()
        self.save(False, now)
        self.log.add(codes.EV_RESUME, now, 1 if auto else 0, 0)

    def _end_boluses(self, now):
        if self.pb_on:
            self.pb_on = False
            self.log.add(codes.EV_BOLUS_END, now, 1, 1)
        if self.cb_on:
            self.cb_on = False
            self.log.add(codes.EV_BOLUS_END, now, 2, 1)

    def set_time_of_day(self, now, tod_ms, ts=-1):
        """The pump clock was set (ts: the new clock in s since 2024-01-01, if known): the
        schedule follows it from now on."""
        self.service(now)
        self._sync()
        self.tod_ms = tod_ms % DAY_MS
        if ts >= 0:
            self.ts0 = ts - self.mono_s
        if self._delivering():
            self.step = self.rx.step_at(self.tod_ms)
            self.clock.change_rate(now, self._total_rate(), 0)
            self._replan()

    def refill(self, now, volume_nl, conc_ng_ml=0, residual_nl=-1, bridge_nl=-1, stable_s=0):
        """The reservoir now holds volume_nl, a new fill. Optional: the new concentration (a
        change needs bridge_nl equal to the patient's catheter volume from the settings, which
        the host showed the clinician), the residual measured when the old drug was drawn out,
        and how long this fill stays stable in the pump (s; drug_expired after that). Returns 0
        or a refusal reason; a refused refill changes nothing."""
        self.service(now)
        hal = self.hal
        if type(volume_nl) is not int or not 0 <= volume_nl <= hal.RESERVOIR_NL:
            return self._refuse_refill(now, codes.R_BAD_VALUE)
        if type(stable_s) is not int or not 0 <= stable_s <= MAX_STABLE_S:
            return self._refuse_refill(now, codes.R_BAD_VALUE)
        rx = None
        params = None
        if conc_ng_ml and self.rx is not None and conc_ng_ml != self.rx.conc_ng_ml:
            if self.rx.catheter_nl <= 0:
                return self._refuse_refill(now, codes.R_CATHETER)
            if bridge_nl != self.rx.catheter_nl:
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
        self.fill_ts = self.ts()
        self.stable_s = stable_s
        if self.fills < 1 << 29:
            self.fills += 1
        self.log.add(codes.EV_REFILL, now, volume_nl // 1000, 0)
        self.log.add(codes.EV_FILL, now, (stable_s + 3599) // 3600, self.fills)
        self.clear_alarm(codes.AL_DRUG_EXPIRED, now)
        if volume_nl - self.stroke_nl >= self.reservoir_min_nl:
            self.clear_alarm(codes.AL_RESERVOIR_EMPTY, now)
        if self.rx is not None and volume_nl > self.rx.low_res_nl:
            self.clear_alarm(codes.AL_RESERVOIR_LOW, now)
        self._refill_level()
        if self.refill_nl < 0 or volume_nl > self.refill_nl:
            self.clear_alarm(codes.AL_REFILL_DUE, now)
        self.save(False, now)
        self.check_at = now  # refill_due and drug_expired are judged afresh at once
        return 0

    def _refuse_refill(self, now, reason):
        self.log.add(codes.EV_REFILL, now, -1, reason)
        return reason

    # ---- persistence -------------------------------------------------------------------
    def save(self, clean=False, now=-1):
        """Write the state that must survive a restart (limits, lockouts, stop, alarms, the
        reservoir and its fill) to flash. True when the flash confirmed it: only then does
        the guard's new reserve count. A failure raises memory_error as a warning; delivery
        goes on within what the last good record covers."""
        if self._saving:
            return False
        if now < 0:
            now = self.t
        self._sync()
        st = self.state
        st[0] = STATE_MAGIC
        st[1] = STATE_VERSION
        st[2] = _READER
        st[3] = HDR_LEN
        flags = _F_STOPPED if self.stopped else 0
        if self.account_lost:
            flags |= _F_LOST
        if clean:
            flags |= _F_CLEAN
        if self.mem_flash:
            flags |= _F_MEM_FLASH
        st[_FLAGS] = flags
        st[_PHASE] = self.stop_left_ms
        # After an unclean restart assume the reserved strokes were delivered, as the guard does.
        st[_RES] = self.reservoir_nl - (0 if clean else RESERVE * self.stroke_nl)
        # dose_limit is re-derived from the account, a failing flash from the next save
        st[_ALARMS] = self.alarms & ~(_DOSE_LIMIT_BIT | _FLASH_BIT)
        if self.stopped and self.susp_s >= 0:
            left = self._susp_left_ms(self.t)
            st[_SUSP] = left if left > 0 else 0  # a stop that is over ends at the next boot
        else:
            st[_SUSP] = -1
        st[_TS] = self.ts0 + self.mono_s
        st[_FILL_TS] = self.fill_ts
        st[_STABLE] = self.stable_s
        st[_FILLS] = self.fills
        st[_BDAY] = self.mono_s - self.bday_s
        b = self.bolus_nl
        for i in range(BOLUS_DAYS):
            st[_BOLUS + i] = b[i]
        self.pb_policy.save_into(st, HDR_LEN, self.mono_s)
        self.guard.save_into(st, HDR_LEN + PB_SAVE_LEN, clean)
        self._saving = True
        try:
            ok = self.hal.save_state(st) is True
        finally:
            self._saving = False
        if ok:
            self.guard.saved(clean)
            if self.save_fails:
                self.save_fails = 0
                self.clear_alarm(codes.AL_FLASH_FAILING, now)
            if self.mem_flash:
                self.mem_flash = False
                self.clear_alarm(codes.AL_MEMORY_ERROR, now)
            return True
        self.save_fails += 1
        if self.save_fails == 1:
            self.log.add(codes.EV_SAVE_FAILED, now, 1, 0)
        self.raise_alarm(codes.AL_FLASH_FAILING, now)
        return False

    def _load(self, src, now, clock_ts, damaged):
        """Restore from a stored record. -1 if no layout explains it (nothing changed), 1 if
        a timed stop it holds is already over (the caller resumes), else 0."""
        f = _fields(src)
        if f is None:
            return -1
        layout, flags, phase, res, alarms, susp, ts, fill_ts, stable, fills, bday, bolus_at, at \
            = f
        if layout != STATE_VERSION:
            self.log.add(codes.EV_MIGRATED, now, layout, STATE_VERSION)
        self.stopped = bool(flags & _F_STOPPED)
        self.account_lost = bool(flags & _F_LOST)
        self.mem_flash = bool(flags & _F_MEM_FLASH)
        self.stop_left_ms = phase
        self.reservoir_nl = res if res > 0 else 0
        self.al.active = alarms
        self._alarms_changed()
        # The clock tells how long the pump was off only if it did not go back since the save.
        counted = clock_ts >= 0 and ts >= 0 and clock_ts >= ts
        if clock_ts < 0:
            self.ts0 = ts if ts >= 0 else 0  # time off not counted: dates run late, never early
        self.fill_ts = fill_ts
        self.stable_s = stable if stable > 0 else 0
        self.fills = fills if fills > 0 else 0
        self.bday_s = -bday if 0 <= bday < 86400 else 0
        if bolus_at >= 0:
            for i in range(BOLUS_DAYS):
                v = src[bolus_at + i]
                self.bolus_nl[i] = v if 0 <= v <= _BOLUS_DAY_MAX else 0
        self.pb_policy.load_from(src, at, self.mono_s)
        self.guard.load_from(src, at + PB_SAVE_LEN)
        if not self.stopped or susp < 0:
            return 0
        # A timed stop: what is left of it counts from this boot. The time since the save is
        # known only if the clock can tell (whole seconds: one more for the second in
        # progress); otherwise an unclean save may be up to one check and a late wake-up old,
        # and a fallback to the older record one more such interval.
        if counted:
            left = susp - (clock_ts - ts + 1) * 1000
        else:
            left = susp
            if not flags & _F_CLEAN:
                left -= self.check_ms + _SUSPEND_SLACK_MS
            if damaged:
                left -= self.check_ms + _SUSPEND_SLACK_MS
        self.log.add(codes.EV_SUSPEND_RESTORED, now, left // 1000 if left > 0 else 0,
                     1 if counted else 0)
        if left <= 0:
            return 1
        self.susp_s = left // 1000
        self.susp_ms = left % 1000
        return 0
