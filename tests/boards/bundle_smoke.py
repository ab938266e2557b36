# Runs inside the MicroPython VM with only the built bundle on its path (see test_build.py):
# the compiled firmware boots a pump on the virtual board's constants and delivers.
import json
import sys
from array import array

from boards import stepgen, tmc2209
from firmware.compat import TYPE_CHECKING
from firmware.therapy import Therapy
from firmware.ticks import add

if TYPE_CHECKING:
    from firmware.hal import BoardData as _Data
else:
    _Data = object


class Hal(_Data):
    def __init__(self, consts):
        for name in consts:
            setattr(self, name, consts[name])
        self.B_SAG_MIN_MV: int = 0
        self.strokes = 0
        self.pa = 0
        self.ram = array("H", [0] * self.MEMTEST_CELLS)

    def stroke(self):
        self.strokes += 1
        self.pa = self.STROKE_RISE_PA
        return self.STROKE_DONE   # codes.DONE, from test_build.py

    def read_pressure(self):
        pa = self.pa
        self.pa = 0
        return self.P_RAW_ZERO + pa * self.P_RAW_PER_KPA // 1000

    def read_battery(self):
        return 3100 * self.B_MV_DEN // self.B_MV_NUM + 1

    def tone(self, pattern):
        pass

    def driver_status(self):
        return 0

    def read_die_temp(self):
        return self.DIE_RAW_27C

    def test_ram(self):
        return self.ram

    def save_state(self, buf):
        return True


class Log:
    def add(self, code, now, a, b):
        pass


def main():
    with open(sys.argv[1]) as f:
        hal = Hal(json.load(f))
    th = Therapy(hal, Log(), hal.save_state)
    pump = th.pump
    params = {"conc_ng_ml": 2000000, "steps": [[0, 1000000]], "max_daily_ng": 3000000,
              "low_res_nl": 2000000, "pb": [50000, 900, 7200, 4]}
    now = 0
    th.boot(now, 8 * 3600000, params, None)
    th.refill(now, 20000000)
    for _ in range(300):
        now = add(now, pump.next_in_ms(now))
        pump.service(now)
    print("strokes", hal.strokes, "alarms", th.sup.alarms)
    print("stepgen", stepgen.sm_freq_hz(2000), tmc2209.crc8(b"\x05\x00\x02", 3))
    print("DONE")


main()
