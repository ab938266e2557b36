"""A test bench for the firmware's timing core, with an oracle written from the rules alone.

Nothing here imports sim/ or borrows firmware internals for the oracle: the prescription rules,
the ideal delivery integral, the rolling-24-hour sums and the lockout checks are computed here
from the written rules, in exact integer / Fraction arithmetic. The firmware is only driven
through its public surface (boot, program, service, next_in_ms, the requests, save) and observed
through what it does to the plant (hal.stroke, hal.save_state) and what it writes to its log.

Time. The bench keeps its own unbounded virtual clock `v` (ms). The pump sees wrapping ticks:
tick(v) = (tick_base + v - v_base) mod 2**30, where the base is re-drawn at every boot, so ticks
can restart anywhere. The pump's time of day runs with v and never stops, also while it is off:
tod(v) = (tod0 + v) mod DAY.
"""

from bisect import bisect_right
from fractions import Fraction

from firmware import codes
from firmware.therapy import Therapy
from tests.testboard import HealthyHal

DAY = 86_400_000
MIN = 60_000
HOUR = 3_600_000
TICK_MASK = (1 << 30) - 1
SMALL = 1 << 30


class Board:
    def __init__(self, stroke_nl=250, max_strokes_per_min=600, min_rate_nl_day=48000):
        self.STROKE_NL = stroke_nl
        self.MAX_STROKES_PER_MIN = max_strokes_per_min
        self.MIN_RATE_NL_DAY = min_rate_nl_day

    @property
    def motor_nl_day(self):
        return self.MAX_STROKES_PER_MIN * self.STROKE_NL * 1440

    def __repr__(self):
        return "Board(%d, %d, %d)" % (self.STROKE_NL, self.MAX_STROKES_PER_MIN,
                                      self.MIN_RATE_NL_DAY)


def board_for_stroke(stroke_nl):
    """A board with the given stroke volume and the fastest motor the stroke clock can time
    (600 strokes/min at most; big strokes get a slower motor so the rate stays under 2**28)."""
    spm = min(600, ((1 << 28) - 1) // (stroke_nl * 1440))
    return Board(stroke_nl, spm, 48000)


# ---- the prescription rules, written out independently -------------------------------------

def nl_of_ng(mass_ng, conc):
    """Round half up to whole nL: (m*1e6 + conc//2) // conc."""
    return (mass_ng * 10**6 + conc // 2) // conc


class Plan:
    """What a prescription means, computed from the rules (None from compile_rx if refused)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def rate_at(self, tod):
        i = bisect_right(self.starts_ms, tod) - 1
        return self.rates[i]


def compile_rx(params, board):
    """Return a Plan if the rules accept params on this board, else a string saying why not."""
    S = board.STROKE_NL
    motor = board.motor_nl_day
    conc = params.get("conc_ng_ml")
    if type(conc) is not int or not 1 <= conc <= 10**9:
        return "conc"
    steps = params.get("steps")
    if type(steps) is not list or not 1 <= len(steps) <= 13:
        return "steps count"
    starts, rates = [], []
    for i, s in enumerate(steps):
        start_min, rate_ng = s
        if (i == 0 and start_min != 0) or (starts and start_min * MIN <= starts[-1]) \
                or start_min >= 1440:
            return "steps order"
        r = nl_of_ng(rate_ng, conc)
        if r < board.MIN_RATE_NL_DAY or r > motor:
            return "rate out of range"
        starts.append(start_min * MIN)
        rates.append(r)
    # basal volume of one day, in nL*ms/day units (exact)
    ends = starts[1:] + [DAY]
    basal_x = sum(r * (e - s) for r, s, e in zip(rates, starts, ends))
    mdng = params.get("max_daily_ng")
    if type(mdng) is not int or not 1 <= mdng <= 10**12:
        return "max_daily_ng"
    max_daily_nl = mdng * 10**6 // conc
    cap = max_daily_nl // S
    if cap < 1 or cap > board.MAX_STROKES_PER_MIN * 1440:
        return "cap"
    if basal_x > cap * S * DAY:
        return "basal above daily max"
    low = params.get("low_res_nl")
    if type(low) is not int or not 0 <= low < SMALL:
        return "low_res"
    pb = params.get("pb")
    plan = Plan(stroke=S, conc=conc, starts_ms=starts, rates=rates, basal_x=basal_x,
                max_daily_nl=max_daily_nl, cap=cap, pb=None)
    if pb is not None:
        dose_ng, dur_s, lock_s, per_day = pb
        if not 1 <= dur_s <= 86400:
            return "pb duration"
        if not 600 <= lock_s <= 86400:
            return "pb lockout"
        if not 1 <= per_day <= 24:
            return "pb max_per_day"
        if dur_s > lock_s:
            return "pb duration > lockout"
        if not 1 <= dose_ng <= 10**12:
            return "pb dose_ng"
        dose_nl = nl_of_ng(dose_ng, conc)
        if dose_nl < S or dose_nl > max_daily_nl:
            return "pb dose"
        # The motor must keep up with the fastest basal step plus the bolus spread evenly.
        if max(rates) * dur_s * 1000 + dose_nl * DAY > motor * dur_s * 1000 + (dur_s * 1000 - 1):
            return "pb too fast"
        plan.pb = (dose_nl, dur_s * 1000, lock_s * 1000, per_day)
    return plan


# ---- the ideal delivery of one stretch ----------------------------------------------------

class Stretch:
    """A span of delivery with no limit hit, no stop and no restart, begun at t0 (virtual ms)
    with an arbitrary part of a stroke already accumulated (somewhere in [0, S)). Inside it the
    commanded delivery must stay within one stroke of the ideal since t0."""

    def __init__(self, t0, plan, tod0, why):
        self.t0 = t0
        self.plan = plan
        self.tod0 = tod0
        self.why = why
        self.boluses = []  # (start v, dose nL, duration ms)
        self._folded = 0   # boluses[:_folded] have ended; their part of the ideal is _done
        self._done = Fraction(0)
        self.slack = 0     # nL of rounding allowed for boluses begun before t0
        self.times = []    # strokes delivered in the stretch
        # Cumulative basal over one day, at each step start, in nL*ms/day.
        acc = [0]
        ends = plan.starts_ms[1:] + [DAY]
        for r, s, e in zip(plan.rates, plan.starts_ms, ends):
            acc.append(acc[-1] + r * (e - s))
        self._acc = acc

    def _basal_x(self, u):
        """Integral of the basal rate from tod-time 0 to tod-time u (u may span many days)."""
        days, x = divmod(u, DAY)
        i = bisect_right(self.plan.starts_ms, x) - 1
        return days * self._acc[-1] + self._acc[i] + self.plan.rates[i] * (x - self.plan.starts_ms[i])

    def ideal(self, t):
        """Ideal volume (nL, exact) from t0 to t."""
        if t <= self.t0:
            return Fraction(0)
        x = self._basal_x(self.tod0 + t) - self._basal_x(self.tod0 + self.t0)
        total = Fraction(x, DAY) + self._done
        # Boluses are appended as they start and t only moves forward (by at most a
        # millisecond backwards, see on_stroke), so one that ended before t - 1 contributes a
        # constant from now on: fold it into _done instead of summing it at every stroke.
        keep = 0
        for tb, dose, dur in self.boluses[self._folded:]:
            # the part of the bolus spread over [t0, t] (it may have begun before the stretch)
            el = min(max(t - tb, 0), dur) - min(max(self.t0 - tb, 0), dur)
            if el:
                total += Fraction(dose * el, dur)
            if tb + dur <= t - 2 and keep == 0:
                self._done += Fraction(dose * el, dur)
                self._folded += 1
            else:
                keep += 1
        return total

    def delivered(self, t):
        return bisect_right(self.times, t) * self.plan.stroke


# ---- the bench --------------------------------------------------------------------------

class Dead(AssertionError):
    pass


class Hal(HealthyHal):
    def __init__(self, bench, board):
        HealthyHal.__init__(self, board)
        self.bench = bench
        self.alive = True
        self.RESERVOIR_MIN_NL: int = 0
        self.RESERVOIR_NL: int = 1 << 29  # never runs dry here

    def stroke(self):
        if not self.alive:
            raise Dead("a pump that is powered off moved its motor")
        self.bench.on_stroke()
        return HealthyHal.stroke(self)

    def save_state(self, buf):
        if not self.alive:
            raise Dead("a pump that is powered off wrote flash")
        self.bench.flash = list(buf)
        self.bench.saves += 1
        return True


class Log:
    def __init__(self, bench):
        self.bench = bench

    def add(self, code, now, a, b):
        self.bench.on_event(code, now, a, b)


class Violation(AssertionError):
    pass


class Bench:
    """Drives one pump (and its successors after restarts) and checks the invariants online.

    Invariant checks raise Violation with a message naming the invariant."""

    def __init__(self, board, tod0=0, tick0=0, check=True):
        self.board = board
        self.S = board.STROKE_NL
        self.check = check
        self.v = 0
        self.tod0 = tod0 % DAY
        self.tick_base = tick0 & TICK_MASK
        self.v_base = 0
        self.pump = None
        self.hal = None
        self.flash = None
        self.saves = 0
        self.params = None       # prescription in force (params as last accepted)
        self.plan = None
        self.stopped = False     # what the pump has been told (stop persists across restarts)
        self.limit_alarm = False
        self.clear_pending = False
        self.stretch = None
        self.stretches_checked = 0
        self.strokes = []        # every stroke the plant made, virtual ms
        self.pb_starts = []      # virtual ms of every EV_PB_START
        self.events = []         # (v, code, a, b)
        self.requested_cb = None  # (dose, dur) of the clinician-bolus call in progress
        self.running = {}        # kind (1 patient, 2 clinician) -> (start v, dose nL, dur ms)
        self.boots = 0
        self.fill_conc = 0   # the concentration the reservoir holds, as far as the pump knows

    # -- time ---------------------------------------------------------------------------
    def tick(self, v=None):
        return (self.tick_base + (self.v if v is None else v) - self.v_base) & TICK_MASK

    def tod(self, v=None):
        return (self.tod0 + (self.v if v is None else v)) % DAY

    # -- life cycle ---------------------------------------------------------------------
    def power_on(self, tick0, params, state):
        """A new Pump on the same plant, booted at the current virtual time."""
        self.tick_base = tick0 & TICK_MASK
        self.v_base = self.v
        self.hal = Hal(self, self.board)
        self.th = Therapy(self.hal, Log(self), self.hal.save_state)
        self.pump = self.th.pump
        self.limit_alarm = False
        self.clear_pending = False
        self.boots += 1
        if state is None:
            self.fill_conc = 0   # a new pump: the first program names the fill's
        self.th.boot(self.tick(), self.tod(), params, state)
        if state is None:
            assert self.th.refill(self.tick(), self.hal.RESERVOIR_NL) == 0
        if params is not None:
            self.plan = compile_rx(params, self.board)
        self._begin_stretch("boot")

    def power_off(self):
        if self.hal is not None:
            self.hal.alive = False
        self.running = {}  # a restart ends every bolus
        self._end_stretch()

    def reboot(self, off_ms, tick0):
        self.th.save(clean=True)
        self.power_off()
        self.v += off_ms
        self.power_on(tick0, self.params, self.flash)

    def power_loss(self, off_ms, tick0):
        self.power_off()
        self.v += off_ms
        self.power_on(tick0, self.params, self.flash)

    # -- stretches ----------------------------------------------------------------------
    def _begin_stretch(self, why):
        self._end_stretch()
        if self.check and self.plan is not None and not self.stopped and not self.limit_alarm:
            self.stretch = Stretch(self.v, self.plan, self.tod0, why)
            # Boluses that keep running across the start (say, through a dose-limit alarm)
            # go on adding to the ideal from here.
            self.stretch.boluses = [b for b in self.running.values() if b[0] + b[2] > self.v]
            # The firmware runs a bolus at a whole nL/day rate and credits the sub-nL remainder
            # when the bolus starts; measured from the middle of one, its delivery trails the
            # exact even spread by under 1 nL. Allow that much per bolus already running.
            self.stretch.slack = len(self.stretch.boluses)

    def _end_stretch(self, limit_hit=False):
        """End the stretch, checking the lag at its end. When it ends because a limit was hit
        (the stroke due now was refused), the last instant without the limit is one ms earlier."""
        st = self.stretch
        if st is not None:
            self._check_behind(st, self.v - 1 if limit_hit else self.v)
            self.stretches_checked += 1
        self.stretch = None

    def _check_behind(self, st, t):
        ideal = st.ideal(t)
        have = st.delivered(t)
        if ideal - have >= self.S + st.slack:
            raise Violation(
                "accuracy: delivery fell a whole stroke behind the ideal at v=%d: ideal %s nL, "
                "delivered %d nL since the %s at v=%d (boluses %r)"
                % (t, float(ideal), have, st.why, st.t0, st.boluses))

    # -- what the pump does to the plant -------------------------------------------------
    def on_stroke(self):
        t = self.v
        if self.stopped:
            raise Violation("stopped: the motor moved at v=%d while the pump was stopped" % t)
        self.strokes.append(t)
        if not self.check:
            return
        # rolling 24 h: the window (t-24h, t] ending at this stroke, against the cap in force.
        n = len(self.strokes) - bisect_right(self.strokes, t - DAY)
        if n * self.S > self.plan.max_daily_nl:
            raise Violation(
                "rolling_24h: %d strokes (%d nL) in the 24 h ending at v=%d, the cap is %d nL "
                "(%d strokes); boots so far %d" % (n, n * self.S, t, self.plan.max_daily_nl,
                                                   self.plan.cap, self.boots))
        if self.clear_pending:
            # The stroke that clears a dose-limit alarm opens a new stretch right after it.
            self.clear_pending = False
            self._begin_stretch("dose-limit clear")
            return
        st = self.stretch
        if st is not None:
            self._check_behind(st, t - 1)
            st.times.append(t)
            ideal = st.ideal(t)
            have = st.delivered(t)
            if have - ideal > self.S:
                raise Violation(
                    "accuracy: delivery ran more than a stroke ahead of the ideal at v=%d: "
                    "ideal %s nL, delivered %d nL since the %s at v=%d (boluses %r)"
                    % (t, float(ideal), have, st.why, st.t0, st.boluses))

    def on_event(self, code, now, a, b):
        v = self.v
        self.events.append((v, code, a, b))
        if self.check and now != self.tick(v):
            raise Violation("log: event %d stamped tick %d at v=%d, expected tick %d (the core "
                            "lagged behind the deadline it gave)" % (code, now, v, self.tick(v)))
        if code == codes.EV_ALARM:
            self._end_stretch(limit_hit=True)
            if a == codes.AL_DOSE_LIMIT:
                self.limit_alarm = True
        elif code == codes.EV_ALARM_CLEAR:
            if a == codes.AL_DOSE_LIMIT:
                self.limit_alarm = False
                self.clear_pending = True
        elif code == codes.EV_BOLUS_END:
            self.running.pop(a, None)
            if b:
                self._end_stretch(limit_hit=True)  # cut short
        elif code == codes.EV_PB_START:
            self._on_pb_start(v, a)
        elif code == codes.EV_CB_START:
            dose, dur = self.requested_cb
            if self.check:
                if a != dose or (dur and b != dur) or not 0 < b <= DAY:
                    raise Violation("clinician bolus: asked %r, log says dose %d over %d ms"
                                    % (self.requested_cb, a, b))
            self.running[2] = (v, a, b)
            if self.stretch is not None:
                self.stretch.boluses.append((v, a, b))

    def _on_pb_start(self, v, dose_nl):
        plan = self.plan
        if self.check:
            if self.stopped:
                raise Violation("stopped: a patient bolus started while stopped")
            if plan.pb is None or dose_nl != plan.pb[0]:
                raise Violation("patient bolus: log dose %d nL, the prescription gives %r"
                                % (dose_nl, plan.pb))
            _, _, lock_ms, per_day = plan.pb
            if self.pb_starts and v - self.pb_starts[-1] < lock_ms:
                raise Violation("lockout: patient boluses started at v=%d and v=%d, %d ms apart; "
                                "the lockout is %d ms (boots so far %d)"
                                % (self.pb_starts[-1], v, v - self.pb_starts[-1], lock_ms,
                                   self.boots))
            n = 1 + len(self.pb_starts) - bisect_right(self.pb_starts, v - DAY)
            if n > per_day:
                raise Violation("max_per_day: %d patient boluses in the 24 h ending at v=%d, "
                                "at most %d allowed" % (n, v, per_day))
        self.pb_starts.append(v)
        self.running[1] = (v, dose_nl, plan.pb[1])
        if self.stretch is not None:
            self.stretch.boluses.append((v, dose_nl, plan.pb[1]))

    # -- driving ------------------------------------------------------------------------
    def advance(self, dt):
        """Walk time forward by dt ms, calling service at every deadline next_in_ms gives."""
        target = self.v + dt
        zeros = 0
        while self.v < target:
            d = self.pump.next_in_ms(self.tick())
            if self.check and not 0 <= d <= HOUR:
                raise Violation("next_in_ms returned %d (must be 0..1 h)" % d)
            if d == 0:
                zeros += 1
                if zeros > 3:
                    raise Violation("next_in_ms keeps answering 0 at v=%d" % self.v)
            else:
                zeros = 0
            self.v = min(self.v + d, target)
            self.pump.service(self.tick())
        if self.stretch is not None:
            self._check_behind(self.stretch, self.v)

    def program(self, params):
        """Returns True if accepted. Checks the firmware agrees with the rules: among them, a
        program must be for the concentration in the reservoir (the first program's, since the
        bench refills without saying)."""
        from firmware.rx import RxError
        plan = compile_rx(params, self.board)
        if not isinstance(plan, str) and self.fill_conc and params["conc_ng_ml"] != self.fill_conc:
            plan = "drug_mismatch"
        try:
            self.th.program(self.tick(), params)
        except RxError as e:
            if self.check and not isinstance(plan, str):
                raise Violation("prescription: the firmware refused one the rules accept: %s; %r"
                                % (e, params))
            if self.check and plan == "drug_mismatch" and e.key != "drug_mismatch":
                raise Violation("fill: a program for another concentration than the fill's was "
                                "refused, but not as drug_mismatch: %s" % e)
            return False
        self.fill_conc = params["conc_ng_ml"]
        if self.check and isinstance(plan, str):
            raise Violation("prescription: the firmware accepted one the rules refuse (%s): %r"
                            % (plan, params))
        self.params = params
        self.plan = plan
        self._begin_stretch("program")
        return True

    def patient_bolus(self):
        r = self.th.patient_bolus(self.tick())
        if self.check and r == 0 and self.stopped:
            raise Violation("stopped: patient bolus accepted while stopped")
        return r

    def clinician_bolus(self, dose, dur):
        self.requested_cb = (dose, dur)
        r = self.th.clinician_bolus(self.tick(), dose, dur)
        if self.check and r == 0:
            if self.stopped:
                raise Violation("stopped: clinician bolus accepted while stopped")
            if dose < self.S or dose > self.plan.max_daily_nl or dur > DAY:
                raise Violation("clinician bolus: accepted out-of-range %r" % ((dose, dur),))
        self.requested_cb = None
        return r

    def stop(self):
        self.th.stop(self.tick())
        self.stopped = True
        self._end_stretch()

    def resume(self):
        was = self.stopped
        self.th.resume(self.tick())
        self.stopped = False
        if was:
            self._begin_stretch("resume")


def walk_ints(obj, path="th", seen=None, skip=("hal", "log", "params", "port")):
    """Yield (path, value) for every int reachable (in flat runs of ints, only those at or
    above 2**30 in size) from obj's attributes, lists and arrays (from a Therapy: every room)
    (never through a hal, a log or the save port, the outside world, nor the programmed params:
    the host's input, kept only to convert again at a concentration change, never used per
    stroke)."""
    if seen is None:
        seen = set()
    if isinstance(obj, bool):
        return
    if isinstance(obj, int):
        yield path, obj
        return
    if isinstance(obj, (str, bytes, float)) or obj is None:
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, x in obj.items():
            yield from walk_ints(x, "%s[%r]" % (path, k), seen, ())
    elif isinstance(obj, (list, tuple)) or type(obj).__name__ == "array":
        if type(obj).__name__ == "array" or all(type(x) is int for x in obj):
            # A flat run of ints (the guard's buckets, the state record): name only the ones
            # out of range. Building a path for each of ~3000 ints per step made this check
            # the slowest part of the state machines.
            if obj and not (-SMALL < min(obj) and max(obj) < SMALL):
                for i, x in enumerate(obj):
                    if not -SMALL < x < SMALL:
                        yield "%s[%d]" % (path, i), x
            return
        for i, x in enumerate(obj):
            yield from walk_ints(x, "%s[%d]" % (path, i), seen, ())
    elif hasattr(obj, "__dict__"):
        for k, x in vars(obj).items():
            if k in skip:
                continue
            yield from walk_ints(x, "%s.%s" % (path, k), seen, skip)


def big_ints(th):
    return [(p, x) for p, x in walk_ints(th) if not -SMALL < x < SMALL]
