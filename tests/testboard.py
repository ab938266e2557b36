# The one test board the firmware's tests share, on CPython and inside the MicroPython VM
# alike: HealthyHal, the virtual board's constants (a board's stroke, motor and minimum rate
# when one is given), a catheter whose pressure pulse follows each stroke and is gone by the
# next reading, and a steady 3.1 V cell; MemBoard, a whole board in memory for firmware/app.py.
# Test boards add what they need (time, storage, serial, faults) by subclassing. save_state is
# the fake flash a test hands the pump as its save port (Therapy(hal, log, hal.save_state)).
from array import array

from boards import virtual
from firmware.codes import DONE
from firmware.compat import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.hal import BoardData as Board
else:
    Board = object  # the board's constants are copied in at run time


class HealthyHal(Board):
    def __init__(self, board=None):
        for name in dir(virtual):
            if name.isupper():
                setattr(self, name, getattr(virtual, name))
        if board is not None:
            self.STROKE_NL = board.STROKE_NL
            self.MAX_STROKES_PER_MIN = board.MAX_STROKES_PER_MIN
            self.MIN_RATE_NL_DAY = board.MIN_RATE_NL_DAY
        # No load model here, so the cell never sags under the motor: the sag check is off
        # (the simulator's plant exercises it).
        self.B_SAG_MIN_MV: int = 0
        self.strokes = 0
        self.saves = 0
        self.tones = 0
        self.pa = 0
        self.ram = array("H", [0] * self.MEMTEST_CELLS)

    def stroke(self):
        self.strokes += 1
        self.pa = self.STROKE_RISE_PA  # the stroke's pulse, read once, then gone
        return DONE

    def read_pressure(self):
        pa = self.pa
        self.pa = 0
        return self.P_RAW_ZERO + pa * self.P_RAW_PER_KPA // 1000

    def read_battery(self):
        return 3100 * self.B_MV_DEN // self.B_MV_NUM + 1

    def tone(self, pattern):
        self.tones += 1

    def driver_status(self):
        return 0

    def read_die_temp(self):
        return self.DIE_RAW_27C - 10 * self.DIE_RAW_PER_100C // 100   # 37 degC

    def test_ram(self):
        return self.ram

    def save_state(self, buf):
        self.saves += 1
        return True


class SelfTestParts:
    """What a whole board adds for the power-on self-test: a TMC2209 that took its
    configuration, a buzzer whose PWM works; a watchdog test is never asked of a board without
    files (no install to prove it for)."""

    def driver_version(self):
        return 0x21

    def buzzer_check(self):
        return True

    def watchdog_test(self, timeout_ms):
        raise RuntimeError("watchdog test on a board without an install")


class MemBoard(SelfTestParts, HealthyHal):
    """A whole board in memory for firmware/app.py: a clock that moves only when the test moves
    `t` (or the loop waits), records in a dict of files, a serial line that collects what is
    written. CPython and the MicroPython VM alike."""

    def __init__(self, dev=None, cause=0, t=5000, ts0=91500000, uid="mem0001"):
        HealthyHal.__init__(self)
        from firmware.store import MemDev

        self.dev = dev if dev is not None else MemDev()
        self.t = t
        self.ts0 = ts0
        self.out = bytearray()
        self.cause = cause
        self._uid = uid

    def ticks_ms(self):
        return self.t & 0x3FFFFFFF

    def clock_ts(self):
        return self.ts0 + self.t // 1000

    def set_clock_ts(self, ts):
        self.ts0 = ts - self.t // 1000

    def reset_cause(self):
        return self.cause

    def led(self, on):
        pass

    def start_watchdog(self, ms):
        pass

    def feed(self):
        pass

    def wait(self, ms):
        self.t += ms

    def read_byte(self):
        return -1

    def read_into(self, buf):
        return 0

    def write(self, data):
        self.out += data

    def uid(self):
        return self._uid

    def storage(self):
        return self.dev

    def reset(self):
        raise RuntimeError("reset")
