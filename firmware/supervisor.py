# The supervisor: what the pump does about alarms. firmware/alarms.py is the plain state
# (active, acknowledged, when the buzzer plays next); here each change is acted on:
#
#   raise   log it; a critical alarm ends the running boluses (delivery stops: the kernel
#           refuses every stroke while one is active); save, so it outlives a restart; run the
#           periodic check at once, so the buzzer sounds
#   clear   log it; when the last critical alarm ends, delivery starts again from now
#   ack     silence it; an alarm that only records an event is cleared
#
# and the kernel's refusal reasons become alarms through one table (refused()). The periodic
# check (every CHECK_MS, stopped or not, from the pump's service()) is here too: the battery,
# the end of an occlusion, the saves a timed stop or a failing flash needs, the refill and
# expiry dates, the buzzer.
#
# It is handed the timing core (`pump`) and the record's save port (`save`) from above, once
# they exist. No allocation on the paths the stroke and the check take.
from firmware.alarms import AlarmState
from firmware.codes import (AL_BATTERY_EOS, AL_BATTERY_ERI, AL_BATTERY_SENSOR, AL_DOSE_LIMIT,
                            AL_DRUG_EXPIRED, AL_MEMORY_ERROR, AL_OCCLUSION, AL_REFILL_DUE,
                            AL_RESERVOIR_EMPTY, AL_SENSOR_FAULT, AL_THERAPY_STOPPED, EV_ACK,
                            EV_ALARM,
                            EV_ALARM_CLEAR, R_DAILY_MAX, R_OCCLUSION, R_RESERVOIR, R_SENSOR,
                            R_UNSAVED)
from firmware.compat import TYPE_CHECKING, const
from firmware.monitor import BAD

if TYPE_CHECKING:
    from typing import Callable

    from firmware.hal import Log, Mechanism
    from firmware.monitor import Monitor
    from firmware.pump import Pump
    from firmware.reservoir import Reservoir
    from firmware.selftest import SelfTest

_CRITICAL = const(301990746)  # codes.CRITICAL_MASK (checked in tests/firmware/test_alarms.py)
_DOSE_LIMIT_BIT = const(1 << 7)  # 1 << codes.AL_DOSE_LIMIT
_FLASH_BIT = const(1 << 17)      # 1 << codes.AL_FLASH_FAILING
_MEMORY_BIT = const(1 << 8)      # 1 << codes.AL_MEMORY_ERROR
_OCCLUSION_BIT = const(1 << 1)   # 1 << codes.AL_OCCLUSION
_REFILL_DUE_BIT = const(1 << 15)  # 1 << codes.AL_REFILL_DUE
_EXPIRED_BIT = const(1 << 16)    # 1 << codes.AL_DRUG_EXPIRED
_STOPPED_BIT = const(1 << 24)    # 1 << codes.AL_THERAPY_STOPPED
_ERI_BIT = const(1 << 5)         # 1 << codes.AL_BATTERY_ERI
_EOS_BIT = const(1 << 6)         # 1 << codes.AL_BATTERY_EOS
_REMINDER_S = const(3600)        # rx.DEFAULT_REMINDER_S: a stop's reminder without a program


def _alarm_table():
    """The kernel's refusal reason -> the alarm it raises (0: none), indexed by reason."""
    t = bytearray(32)
    t[R_DAILY_MAX] = AL_DOSE_LIMIT        # a warning: the basal resumes when the window has room
    t[R_RESERVOIR] = AL_RESERVOIR_EMPTY
    t[R_SENSOR] = AL_SENSOR_FAULT
    t[R_OCCLUSION] = AL_OCCLUSION
    t[R_UNSAVED] = AL_MEMORY_ERROR        # the failing flash persists: the reserve is used up
    return bytes(t)


ALARM_OF = _alarm_table()


class Supervisor:
    def __init__(self, hal: "Mechanism", log: "Log", mon: "Monitor",
                 reservoir: "Reservoir") -> None:
        self.hal = hal
        self.log = log
        self.mon = mon
        self.res = reservoir
        self.al = AlarmState()  # active and acknowledged alarms, the buzzer's schedule
        self.pump: "Pump | None" = None  # handed in: the timing core
        self.save: "Callable[..., bool] | None" = None  # handed in: the record's save()
        self.mem_flash = False  # memory_error came from failing saves (a good save ends it)
        self.checks: "SelfTest | None" = None  # handed in: the self-test's periodic checks

    @property
    def alarms(self):
        """Active alarm bits (1 << code)."""
        return self.al.active

    @property
    def acked(self):
        return self.al.acked

    def raise_alarm(self, code, now):
        bit = self.al.start(code, now)
        if not bit:
            return
        self.log.add(EV_ALARM, now, code, 0)
        if bit & _CRITICAL:
            # Delivery stops: running boluses end here and are not resumed later.
            self.pump.end_boluses(now)
        if bit != _DOSE_LIMIT_BIT and bit != _FLASH_BIT:
            self.save(False, now)  # the alarm survives a restart
        self.pump.check_at = now  # the periodic check runs at once and sounds the alarm

    def clear_alarm(self, code, now):
        bit = self.al.end(code)
        if not bit:
            return
        self.log.add(EV_ALARM_CLEAR, now, code, 0)
        if bit & _CRITICAL and not self.al.active & _CRITICAL:
            self.pump.restart(now)

    def ack(self, now, code):
        """Silence an alarm. A condition that persists stays active (and stops delivery if it
        is critical); an alarm that only records an event is cleared. False if not active."""
        bit = self.al.ack(code, now)
        if not bit:
            return False
        self.log.add(EV_ACK, now, code, 0)
        if self.al.is_event(bit):
            self.clear_alarm(code, now)
        return True

    def refused(self, now, reason):
        """The kernel refused a stroke for `reason`: raise the alarm that goes with it."""
        code = ALARM_OF[reason] if reason < 32 else 0
        if not code or self.al.active & (1 << code):
            return
        if code == AL_MEMORY_ERROR:
            self.mem_flash = True
        self.raise_alarm(code, now)

    def tone_due(self, now):
        """The buzzer pattern to sound now (0: none), see AlarmState.tone_due."""
        return self.al.tone_due(now)

    # ---- the periodic check ------------------------------------------------------------------
    def check(self, now):
        """Every CHECK_MS, stopped or not: battery, the occlusion's end, saves a timed stop or a
        failing flash needs, refill and expiry dates, the buzzer."""
        pump = self.pump
        mon = self.mon
        hal = self.hal
        # The battery is read at rest: not in the millisecond of a stroke (the cell sags then).
        mv = mon.check_battery() if pump.stroke_at != now else 0
        if mv == BAD:
            self.raise_alarm(AL_BATTERY_SENSOR, now)
        elif mv and mon.mv_n >= 4:
            # (a clear only when the alarm is on: a call less at almost every check)
            if mv <= hal.B_EOS_MV:
                self.raise_alarm(AL_BATTERY_EOS, now)
            elif self.al.active & _EOS_BIT and mv > hal.B_EOS_MV + 20:
                self.clear_alarm(AL_BATTERY_EOS, now)
            if mv <= hal.B_ERI_MV:
                self.raise_alarm(AL_BATTERY_ERI, now)
            elif self.al.active & _ERI_BIT and mv > hal.B_ERI_MV + 20:
                self.clear_alarm(AL_BATTERY_ERI, now)
        if self.al.active & _OCCLUSION_BIT:
            p = mon.pressure_pa()
            if p == BAD:
                self.raise_alarm(AL_SENSOR_FAULT, now)
            elif p < mon.occlusion_pa // 2:
                self.clear_alarm(AL_OCCLUSION, now)
        if (pump.stopped and pump.susp_s >= 0) or self.al.active & _FLASH_BIT:
            # A timed stop keeps its remaining time on flash to within a check; a failed save
            # is tried again.
            self.save(False, now)
        self._dates(now)
        self._stop_reminder(now)
        tone = self.al.tone_due(now)
        if tone:
            hal.tone(tone)
        checks = self.checks
        if checks is not None:
            checks.check(now, tone)  # the driver, the die, slices of the memory and the code

    def _stop_reminder(self, now):
        """therapy_stopped: a stop without an end that has lasted the prescription's
        stop_reminder (an hour by default); it ends when delivery goes on."""
        pump = self.pump
        if pump.stopped and pump.susp_s < 0:
            rx = pump.rx
            if (not self.al.active & _STOPPED_BIT and pump.stopped_s()
                    >= (rx.stop_reminder_s if rx is not None else _REMINDER_S)):
                self.raise_alarm(AL_THERAPY_STOPPED, now)
        elif self.al.active & _STOPPED_BIT:
            self.clear_alarm(AL_THERAPY_STOPPED, now)

    def _dates(self, now):
        """The bolus history's day, refill_due and drug_expired (small ints, no allocation)."""
        pump = self.pump
        res = self.res
        ts = pump.ts()
        res.new_day(pump.mono_s)
        if res.refill_due() and not self.al.active & _REFILL_DUE_BIT:
            self.raise_alarm(AL_REFILL_DUE, now)
        if res.expired(ts) and not self.al.active & _EXPIRED_BIT:
            self.raise_alarm(AL_DRUG_EXPIRED, now)
