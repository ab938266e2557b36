"""Stateful property test of the timing core: random prescriptions, requests, stops, reboots
and power losses, with an oracle written from the rules (tests/firmware/pump_harness.py).

Invariants, each checked online as the pump acts (the message of a failure names it):

rolling_24h  At every stroke at virtual time t, strokes in (t-24h, t] times STROKE_NL is at most
             max_daily_nl of the prescription in force at t. Rule for reprogramming: the window
             ending at a stroke is judged against the cap in force at that stroke, whatever was in
             force earlier in the window. That is the firmware's promise (its guard sums the whole
             window against the current cap) and it is the strict reading: it is never looser than
             "the largest cap in force during the window". Checking windows that end at strokes
             covers every window: a window's count is at most that of the window ending at its
             last stroke. Time is real virtual time, counting time powered off.
lockout      Patient-bolus starts (EV_PB_START) are at least the lockout apart, start to start,
             and no 24 h window holds more than max_per_day of them, across reboots and power
             losses (judged with the prescription in force at the later start).
stopped      The motor never moves while the pump is stopped (a stop persists across restarts,
             since stop() is saved) or powered off (the old HAL raises if it is used).
accuracy     In a stretch of delivery with no limit hit (no dose-limit alarm, no stop, no cut
             bolus, no reprogram, no restart), the commanded delivery D(t) since the stretch began
             and the ideal I(t) since then (the basal step rate by the pump's time of day, plus
             every accepted bolus spread evenly over its duration, exact Fractions) satisfy
             I - D < STROKE_NL one ms before each stroke and at every advance's end, and
             D - I <= STROKE_NL right after each stroke. Between strokes I - D only grows and D - I
             only shrinks, so these samples cover every millisecond of the stretch.
small_ints   Every int reachable from the pump (its attributes, sub-objects, lists and arrays;
             not hal or log) is below 2**30 in absolute value after every step.
log          Every event is stamped with the tick of the call that produced it (the core never
             lags the deadlines it gives), and next_in_ms is within 0..1 h.
prescription The firmware accepts exactly the prescriptions the rules accept; a refused one
             changes nothing (the accuracy stretch simply runs on across it).
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pump_harness import DAY, HOUR, MIN, Bench, Violation, big_ints
from strategies import advance_ms, boards, prescriptions, ticks


class TimingMachine(RuleBasedStateMachine):
    @initialize(data=st.data(), board=boards, tod0=st.integers(0, 1439).map(lambda m: m * MIN)
                | st.integers(0, DAY - 1), tick0=ticks)
    def start(self, data, board, tod0, tick0):
        self.data = data
        self.bench = Bench(board, tod0=tod0, tick0=tick0)
        self.bench.power_on(tick0, None, None)
        params = data.draw(prescriptions(board, valid_only=True), label="params")
        assert self.bench.program(params)

    @rule(data=st.data())
    def reprogram(self, data):
        params = data.draw(prescriptions(self.bench.board), label="params")
        self.bench.program(params)

    @rule(dt=advance_ms())
    def advance(self, dt):
        self.bench.advance(dt)

    @rule()
    def patient_bolus(self):
        self.bench.patient_bolus()

    @rule(delta=st.integers(-1500, 1500) | st.sampled_from([-1000, -1, 0, 1, 999, 1000]))
    def patient_bolus_at_lockout_edge(self, delta):
        """Ask again just before, at or just after the lockout of the last bolus ends."""
        b = self.bench
        if b.plan is None or b.plan.pb is None or not b.pb_starts:
            return
        target = b.pb_starts[-1] + b.plan.pb[2] + delta
        if target > b.v:
            b.advance(target - b.v)
        b.patient_bolus()

    @rule(n=st.integers(2, 30), slack=st.integers(0, 1500))
    def patient_bolus_spree(self, n, slack):
        """A patient pressing as soon as each lockout allows: the daily maximum gets tested."""
        b = self.bench
        for _ in range(n):
            if b.plan is None or b.plan.pb is None:
                return
            b.advance(b.plan.pb[2] + slack)
            b.patient_bolus()

    @rule(dur=st.integers(1, 3_600_000) | st.just(1000), after=st.integers(0, 26 * HOUR))
    def clinician_bolus_to_cap(self, dur, after):
        """A clinician bolus of the whole daily maximum: the dose guard must stop it at the cap,
        then let delivery go on as the window rolls."""
        b = self.bench
        if b.plan is None:
            return
        b.clinician_bolus(b.plan.max_daily_nl, dur)
        b.advance(dur + after)

    @rule(data=st.data())
    def clinician_bolus(self, data):
        b = self.bench
        S = b.S
        kind = data.draw(st.integers(0, 9), label="dose kind")
        if kind < 5:
            dose = data.draw(st.integers(1, 60), label="strokes") * S
        elif kind < 8:
            dose = data.draw(st.integers(S, 60 * S), label="dose_nl")
        elif kind == 8:
            dose = data.draw(st.integers(S, max(S, b.plan.max_daily_nl)), label="dose_nl")
        else:
            dose = data.draw(st.sampled_from([0, S - 1, b.plan.max_daily_nl + 1]), label="bad")
        dur = data.draw(st.sampled_from([0, 0, 1]) | st.integers(1, HOUR)
                        | st.integers(1, DAY) | st.just(DAY + 1), label="dur_ms")
        b.clinician_bolus(dose, dur)

    @rule(off=st.integers(0, 5000), tick0=ticks)
    def reboot(self, off, tick0):
        self.bench.reboot(off, tick0)

    @rule(off=st.one_of(st.integers(0, 2000), st.integers(0, 2 * HOUR), st.integers(0, 3 * DAY)),
          tick0=ticks)
    def power_loss(self, off, tick0):
        self.bench.power_loss(off, tick0)

    @rule()
    def stop(self):
        self.bench.stop()

    @rule()
    def resume(self):
        # Also while running: a resume then must change nothing.
        self.bench.resume()

    @invariant()
    def small_ints(self):
        bad = big_ints(self.bench.th)
        if bad:
            raise Violation("small_ints: values at or above 2**30 in the pump: %r" % bad[:5])


TimingMachine.TestCase.settings = settings(stateful_step_count=40)
TestTimingStateMachine = TimingMachine.TestCase
