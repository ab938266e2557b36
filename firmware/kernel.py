# The safety kernel: whether the stroke the stroke clock proposes may happen now. One call,
# decide(now), answers 0 (go ahead: the dose guard has counted the stroke) or the reason it may
# not, checking in this order (docs/architecture.md lists the same):
#
#   1. late             the stroke is more than LATE_MS behind its time (the loop stalled): it is
#                       dropped, never given late                                     R_LATE
#   2. critical alarm   any critical alarm is active                                  R_ALARM
#   3. reservoir        the stroke would take the account below the board's minimum   R_RESERVOIR
#   4. pressure sensor  the outlet pressure reading is out of the sensor's range       R_SENSOR
#   5. occlusion        the pressure left from earlier strokes shows an occlusion      R_OCCLUSION
#   6. dose guard       the dose account cannot prove the stroke is covered by a saved
#                       record (R_UNSAVED: the caller saves and asks guard_step() again), or
#                       the stroke would break the rolling 24 h cap                    R_DAILY_MAX
#
# Deny by default: every path that is not an approval returns a reason. It reads the reservoir
# account from `account` (the pump: account.reservoir_nl) and keeps the pressure read before
# the stroke for the rise check after it. It moves nothing, logs nothing
# and raises no alarm: the pump acts on the reason. No allocation (the stroke path runs with
# the heap locked).
from firmware.codes import (R_ALARM, R_DAILY_MAX, R_LATE, R_OCCLUSION, R_RESERVOIR, R_SENSOR,
                            R_UNSAVED)
from firmware.compat import const
from firmware.guard import RESERVE
from firmware.monitor import BAD

LATE_MS = const(2000)          # a stroke this late is dropped rather than delivered late
_HALF = const(1 << 29)
_MASK = const((1 << 30) - 1)
_CRITICAL = const(858)           # codes.CRITICAL_MASK (checked in tests/firmware/test_alarms.py)


class Kernel:
    def __init__(self, clock, alarms, guard, mon, stroke_nl, reservoir_min_nl, account):
        self.clock = clock          # .due: ticks the proposed stroke is due at
        self.alarms = alarms        # firmware.alarms.AlarmState
        self.guard = guard          # firmware.guard.DoseGuard
        self.mon = mon              # firmware.monitor.Monitor
        self.stroke_nl = stroke_nl
        self.reservoir_min_nl = reservoir_min_nl
        self.floor_nl = reservoir_min_nl + stroke_nl  # the account a stroke needs
        self.account = account      # .reservoir_nl: the pump's own account of the reservoir
        self.before_pa = 0          # outlet pressure read by the last decision

    def decide(self, now):
        """0 if the stroke due at clock.due may be given at `now` (it is then counted by the
        dose guard), else the first reason, in the order above, why not."""
        if ((now - self.clock.due + _HALF) & _MASK) - _HALF > LATE_MS:
            return R_LATE
        if self.alarms.active & _CRITICAL:
            return R_ALARM
        if self.account.reservoir_nl < self.floor_nl:
            return R_RESERVOIR
        mon = self.mon
        p = mon.pressure_pa()
        self.before_pa = p
        if p == BAD:
            return R_SENSOR
        if p >= mon.occlusion_pa:
            return R_OCCLUSION
        # guard_step(), inline: a call per stroke costs more than these two lines
        guard = self.guard
        if guard.unsaved >= RESERVE:
            return R_UNSAVED
        if not guard.approve():
            return R_DAILY_MAX
        return 0

    def guard_step(self):
        """The last check alone (after the caller saved for R_UNSAVED)."""
        guard = self.guard
        if guard.unsaved >= RESERVE:
            return R_UNSAVED
        if not guard.approve():
            return R_DAILY_MAX
        return 0
