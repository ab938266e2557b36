# Runs inside the MicroPython VM (see test_alloc.py): once a prescription is running, delivery
# cycles (strokes, basal step changes, bolus ends, saves of the dose account) must not allocate.
# Prints one line per phase, "OK <strokes>" or "FAIL <why>".
import sys

import micropython

from boards import virtual
from firmware.pump import Pump
from firmware.ticks import add


class Hal:
    """The virtual board's constants, a healthy catheter, battery and sensors."""

    def __init__(self):
        for name in dir(virtual):
            if name.isupper():
                setattr(self, name, getattr(virtual, name))
        self.B_SAG_MIN_MV = 0
        self.strokes = 0
        self.saves = 0
        self.pa = 0
        self.tones = 0

    def stroke(self):
        self.strokes += 1
        self.pa = self.STROKE_RISE_PA
        return True

    def read_pressure(self):
        pa = self.pa
        self.pa = 0
        return self.P_RAW_ZERO + pa * self.P_RAW_PER_KPA // 1000

    def read_battery(self):
        # 3.1 V at rest, sagging under load right after a stroke
        # A steady 3.1 V: this fake has no clock to tell rest from load, so its sag check is off
        # (B_SAG_MIN_MV = 0); the simulator's plant exercises it.
        return 3100 * self.B_MV_DEN // self.B_MV_NUM + 1

    def tone(self, pattern):
        self.tones += 1

    def save_state(self, buf):
        self.saves += 1


class Log:
    def __init__(self):
        self.n = 0

    def add(self, code, now, a, b):
        self.n += 1


def cycles(pump, now, n):
    """n service cycles, each jumping to the next deadline, as the main loop does."""
    for _ in range(n):
        now = add(now, pump.next_in_ms(now))
        pump.service(now)
    return now


def main():
    start = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    hal = Hal()
    pump = Pump(hal, Log())
    params = {
        "conc_ng_ml": 2000000,
        "steps": [[0, 600000], [360, 900000], [720, 1000000], [1080, 700000]],
        "max_daily_ng": 1500000,
        "low_res_nl": 2000000,
        "pb": [50000, 900, 7200, 4],
    }
    now = start
    pump.boot(now, 23 * 3600000, params, None)
    pump.refill(now, 20000000)
    now = cycles(pump, now, 50)          # warm up outside the lock
    ok = True
    for phase in ("basal", "bolus"):
        if phase == "bolus":
            reason = pump.patient_bolus(now)  # a command: may allocate; its delivery may not
            pump.clinician_bolus(now, 20000, 600000)
            if reason:
                print("FAIL patient bolus refused", reason)
                ok = False
        before = hal.strokes
        micropython.heap_lock()
        try:
            now = cycles(pump, now, 5000)
            micropython.heap_unlock()
        except MemoryError:
            micropython.heap_unlock()
            print("FAIL", phase, "allocated after", hal.strokes - before, "strokes")
            ok = False
            continue
        print("OK", phase, hal.strokes - before, "strokes", hal.saves, "saves")
    if pump.alarms:
        print("FAIL alarms on a healthy board", pump.alarms)  # the checks ran and stayed quiet
        ok = False
    print("DONE" if ok else "FAILED")


main()
