"""The safety kernel on its own (firmware/kernel.py): Hypothesis drives its inputs (whether
therapy runs, lateness, alarms, the reservoir account, the pressure sensor, the dose guard's
time, cap and saves) and checks every decision against the documented order, written out again
here.

Invariants (a failure's message starts with the name):

every_refusal_has_a_reason   decide() answers 0 or a code in codes.REASON_NAMES, and a refusal
                             leaves the dose account as it was.
first_reason_in_order        the answer is the first failing check in the order of
                             docs/architecture.md: therapy off (not programmed, stopped), late,
                             critical alarm, reservoir, pressure sensor, occlusion, dose guard
                             (unsaved, then the cap).
no_approval_over_the_cap     approvals in any 24 h (exact, from their times) never exceed the cap.
no_approval_past_the_reserve approvals since the last confirmed save never exceed RESERVE.
"""

from bisect import bisect_right

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from boards import virtual
from firmware import codes
from firmware.alarms import AlarmState
from firmware.guard import RESERVE, SAVE_LEN, UNITS, DoseGuard
from firmware.kernel import LATE_MS, Kernel
from firmware.monitor import Monitor
from firmware.reservoir import Reservoir

DAY = 86_400_000
STROKE = virtual.STROKE_NL
FLOOR = virtual.RESERVOIR_MIN_NL


class Clock:
    due = 0


class Sensor:
    """The board as the monitor reads it: a raw pressure the test sets."""

    def __init__(self):
        for name in dir(virtual):
            if name.isupper():
                setattr(self, name, getattr(virtual, name))
        self.raw = virtual.P_RAW_ZERO

    def read_pressure(self):
        return self.raw


def raw_for_pa(pa):
    return virtual.P_RAW_ZERO + pa * virtual.P_RAW_PER_KPA // 1000


class KernelMachine(RuleBasedStateMachine):
    @initialize(cap=st.integers(1, 60) | st.integers(1, 3000), tick0=st.integers(0, (1 << 30) - 1))
    def start(self, cap, tick0):
        self.clock = Clock()
        self.alarms = AlarmState()
        self.guard = DoseGuard()
        self.guard.set_cap(cap * UNITS)
        self.sensor = Sensor()
        self.mon = Monitor(self.sensor)
        self.account = Reservoir(STROKE, FLOOR)
        self.account.nl = 20_000_000
        self.kernel = Kernel(self.clock, self.alarms, self.guard, self.mon, self.account)
        self.kernel.off = 0
        self.cap = cap
        self.v = 0                  # virtual ms (the guard's time)
        self.tick0 = tick0
        self.late = 0
        self.approved = []          # v of each approval
        self.unsaved = self.guard.unsaved  # 0: a fresh account
        self.out = [0] * SAVE_LEN

    def now(self):
        return (self.tick0 + self.v) & ((1 << 30) - 1)

    # -- the inputs
    @rule(dt=st.integers(0, 90_000) | st.integers(0, DAY + 120_000))
    def time_passes(self, dt):
        self.v += dt
        self.guard.advance(dt)

    @rule(off=st.sampled_from([0, codes.R_NOT_PROGRAMMED, codes.R_STOPPED]))
    def therapy(self, off):
        self.kernel.off = off

    @rule(late=st.sampled_from([0, LATE_MS, LATE_MS + 1]) | st.integers(-5000, 60_000))
    def lateness(self, late):
        self.late = late

    @rule(code=st.sampled_from(sorted(codes.ALARM_NAMES)), on=st.booleans())
    def alarm(self, code, on):
        if on:
            self.alarms.start(code, self.now())
        else:
            self.alarms.end(code)

    @rule(left=st.sampled_from([FLOOR + STROKE, FLOOR + STROKE - 1, FLOOR, 0])
          | st.integers(0, 20_000_000))
    def reservoir(self, left):
        self.account.nl = left

    @rule(pa=st.sampled_from([0, virtual.OCCLUSION_PA - 1, virtual.OCCLUSION_PA])
          | st.integers(-5000, 300_000), bad=st.booleans())
    def pressure(self, pa, bad):
        self.sensor.raw = virtual.P_RAW_MAX + 1 if bad else raw_for_pa(pa)

    @rule(confirmed=st.booleans())
    def save(self, confirmed):
        self.guard.save_into(self.out, 0)
        if confirmed:
            self.guard.saved()
            self.unsaved = 0

    # -- the decision
    @rule()
    def decide(self):
        now = self.now()
        self.clock.due = (now - self.late) & ((1 << 30) - 1)
        total = self.guard.total
        expected = self.oracle()
        got = self.kernel.decide(now)
        assert got == 0 or got in codes.REASON_NAMES, \
            "every_refusal_has_a_reason: decide() returned %r" % (got,)
        assert got == expected, "first_reason_in_order: got %s, expected %s" % (
            codes.REASON_NAMES.get(got, got), codes.REASON_NAMES.get(expected, expected))
        if got:
            assert self.guard.total == total, "every_refusal_has_a_reason: a refusal counted"
        else:
            assert self.guard.total == total + UNITS
            self.approved.append(self.v)
            self.unsaved += 1

    def oracle(self):
        """The documented order, from the inputs as the test set them."""
        if self.kernel.off:
            return self.kernel.off
        if self.late > LATE_MS:
            return codes.R_LATE
        if self.alarms.active & codes.CRITICAL_MASK:
            return codes.R_ALARM
        if self.account.nl - STROKE < FLOOR:
            return codes.R_RESERVOIR
        raw = self.sensor.raw
        if raw < virtual.P_RAW_MIN or raw > virtual.P_RAW_MAX:
            return codes.R_SENSOR
        if (raw - virtual.P_RAW_ZERO) * 1000 // virtual.P_RAW_PER_KPA >= virtual.OCCLUSION_PA:
            return codes.R_OCCLUSION
        if self.unsaved >= RESERVE:
            return codes.R_UNSAVED
        if self.guard.total + UNITS > self.cap * UNITS:
            return codes.R_DAILY_MAX
        return 0

    @invariant()
    def no_approval_over_the_cap(self):
        if not self.approved:
            return
        last = self.approved[-1]
        n = len(self.approved) - bisect_right(self.approved, last - DAY)
        assert n <= self.cap, "no_approval_over_the_cap: %d approvals in 24 h, cap %d" % (
            n, self.cap)

    @invariant()
    def no_approval_past_the_reserve(self):
        assert self.unsaved <= RESERVE or not self.approved, \
            "no_approval_past_the_reserve: %d approved since the last save" % self.unsaved


TestKernel = KernelMachine.TestCase


def test_the_kernel_checks_in_the_order_the_docs_list():
    """docs/architecture.md and firmware/kernel.py list the same seven checks in the same
    order."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "architecture.md").read_text()
    src = (root / "firmware" / "kernel.py").read_text()
    words = ["therapy off", "late", "critical alarm", "reservoir", "pressure sensor",
             "occlusion", "dose guard"]
    section = doc[doc.index("## The safety kernel"):]
    pos_doc = [section.index(w) for w in words]
    pos_src = [src.index("#   %d. %s" % (i, w)) for i, w in enumerate(words)]
    assert pos_doc == sorted(pos_doc) and pos_src == sorted(pos_src)
