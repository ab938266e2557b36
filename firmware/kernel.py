# The safety kernel: whether the stroke the stroke clock proposes may happen now. One call,
# decide(now), answers 0 (go ahead: the dose guard has counted the stroke) or the reason it may
# not, checking in this order (docs/architecture.md lists the same):
#
#   0. therapy off      no prescription, or delivery is stopped      R_NOT_PROGRAMMED, R_STOPPED
#   1. late             the stroke is more than LATE_MS behind its time (the loop stalled): it is
#                       dropped, never given late                                     R_LATE
#   2. critical alarm   any critical alarm is active                                  R_ALARM
#   3. reservoir        the stroke would take the account below the board's minimum   R_RESERVOIR
#   4. pressure sensor  the outlet pressure reading is out of the sensor's range       R_SENSOR
#   5. occlusion        the pressure left from earlier strokes shows an occlusion      R_OCCLUSION
#   6. dose guard       the dose account cannot prove the stroke is covered by a saved
#                       record (R_UNSAVED: the caller saves and asks guard.step() again), or
#                       the stroke would break the rolling 24 h cap                    R_DAILY_MAX
#
# Deny by default: every path that is not an approval returns a reason. The scheduler does not
# propose strokes while therapy is off either; the kernel does not rely on it (`off` is set by
# the pump whenever a prescription is installed or delivery stops or resumes). It reads the
# reservoir room's account and keeps the pressure read before the stroke for the rise check
# after it. It moves nothing, logs nothing and raises no alarm: the pump acts on the reason. No
# allocation (the stroke path runs with the heap locked).
from firmware.codes import (R_ALARM, R_LATE, R_NOT_PROGRAMMED, R_OCCLUSION, R_RESERVOIR,
                            R_SENSOR)
from firmware.compat import const

LATE_MS = const(2000)          # a stroke this late is dropped rather than delivered late
_HALF = const(1 << 29)
_MASK = const((1 << 30) - 1)
_CRITICAL = const(301990746)  # codes.CRITICAL_MASK (checked in tests/firmware/test_alarms.py)
_BAD = const(-(1 << 29))         # monitor.BAD (idem)


class Kernel:
    def __init__(self, clock, alarms, guard, mon, reservoir):
        self.clock = clock          # .due: ticks the proposed stroke is due at
        self.alarms = alarms        # firmware.alarms.AlarmState
        self.guard = guard          # firmware.guard.DoseGuard
        self.mon = mon              # firmware.monitor.Monitor
        self.reservoir = reservoir  # firmware.reservoir.Reservoir: .nl, .floor_nl
        self.off = R_NOT_PROGRAMMED  # 0 while therapy runs, else R_NOT_PROGRAMMED or R_STOPPED
        self.before_pa = 0          # outlet pressure read by the last decision

    def decide(self, now):
        """0 if the stroke due at clock.due may be given at `now` (it is then counted by the
        dose guard), else the first reason, in the order above, why not."""
        if self.off:
            return self.off
        # a wrapping-tick difference (firmware/ticks.py diff), inline: one call per stroke
        # less (docs/benchmarks.md, "The stroke path")
        if ((now - self.clock.due + _HALF) & _MASK) - _HALF > LATE_MS:
            return R_LATE
        if self.alarms.active & _CRITICAL:
            return R_ALARM
        res = self.reservoir
        if res.nl < res.floor_nl:
            return R_RESERVOIR
        mon = self.mon
        p = mon.pressure_pa()
        self.before_pa = p
        if p == _BAD:
            return R_SENSOR
        if p >= mon.occlusion_pa:
            return R_OCCLUSION
        return self.guard.step()
