# Runs inside the MicroPython VM (see test_alloc.py): once a prescription is running, delivery
# cycles (strokes, basal step changes, bolus ends, saves of the dose account) must not allocate,
# nor the safety kernel's refusals (the "refusing" phase: the catheter occludes, the kernel
# refuses with the occlusion and then the critical alarm, the alarm ends when the pressure
# falls, and delivery starts again).
# Prints one line per phase, "OK <strokes>" or "FAIL <why>".
import sys

import micropython

from firmware.therapy import Therapy
from firmware.ticks import add
from tests.testboard import HealthyHal


class Hal(HealthyHal):
    """The virtual board's constants, a healthy catheter, battery and sensors."""

    occluded = False

    def read_pressure(self):
        if self.occluded:
            return self.P_RAW_ZERO + 3 * self.OCCLUSION_PA * self.P_RAW_PER_KPA // 1000
        return HealthyHal.read_pressure(self)


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
    th = Therapy(hal, Log(), hal.save_state)
    pump = th.pump
    params = {
        "conc_ng_ml": 2000000,
        "steps": [[0, 600000], [360, 900000], [720, 1000000], [1080, 700000]],
        "max_daily_ng": 1500000,
        "low_res_nl": 2000000,
        "pb": [50000, 900, 7200, 4],
    }
    now = start
    th.boot(now, 23 * 3600000, params, None)
    th.refill(now, 20000000)
    now = cycles(pump, now, 50)          # warm up outside the lock
    ok = True
    for phase in ("basal", "bolus", "refusing"):
        if phase == "bolus":
            reason = th.patient_bolus(now)  # a command: may allocate; its delivery may not
            th.clinician_bolus(now, 20000, 600000)
            if reason:
                print("FAIL patient bolus refused", reason)
                ok = False
        refused = pump.refused
        before = hal.strokes
        micropython.heap_lock()
        try:
            if phase == "refusing":
                hal.occluded = True
                now = cycles(pump, now, 2500)
                hal.occluded = False
            now = cycles(pump, now, 5000)
            micropython.heap_unlock()
        except MemoryError:
            micropython.heap_unlock()
            print("FAIL", phase, "allocated after", hal.strokes - before, "strokes")
            ok = False
            continue
        if phase == "refusing" and pump.refused - refused < 100:
            print("FAIL refusing: the kernel refused only", pump.refused - refused, "strokes")
            ok = False
        print("OK", phase, hal.strokes - before, "strokes", hal.saves, "saves",
              pump.refused - refused, "refused")
    if th.sup.alarms:
        print("FAIL alarms on a healthy board", th.sup.alarms)  # the checks ran and stayed quiet
        ok = False
    print("DONE" if ok else "FAILED")


main()
