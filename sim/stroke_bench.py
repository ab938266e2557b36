# The firmware's stroke path alone, on whichever runtime runs this file (the MicroPython VM or
# CPython): the pump's rooms on a board that answers at once, programmed to a fast basal
# (60 mL/day: 240 000 strokes a day), serviced at every deadline it gives until N strokes are
# made. Prints one JSON line: {"runtime", "strokes", "us_per_stroke"}. No plant, no engine,
# no ideal: what is measured is service(), the stroke path, the guard, the stroke clock, the
# periodic check and a save every 32 strokes (to a port that only says yes).
#
#   micropython sim/stroke_bench.py [N]      (from the repository's root)
#   python -m sim.stroke_bench [N]
# make bench runs it on both (sim/bench.py); docs/benchmarks.md has the figures.
import sys
import time
from array import array

from boards import virtual
from firmware.codes import DONE
from firmware.compat import TYPE_CHECKING
from firmware.therapy import Therapy
from firmware.ticks import add

if TYPE_CHECKING:
    from firmware.hal import BoardData as _Data
else:
    _Data = object

PARAMS = {"conc_ng_ml": 1000000, "steps": [[0, 60000000]], "max_daily_ng": 80000000,
          "low_res_nl": 2000000}


class Board(_Data):
    """The virtual board's data; a stroke whose pressure pulse is gone by the next reading."""

    def __init__(self):
        for name in dir(virtual):
            if name.isupper():
                setattr(self, name, getattr(virtual, name))
        self.RESERVOIR_NL: int = 1 << 29
        self.B_SAG_MIN_MV: int = 0
        self.pa = 0
        self.ram = array("H", [0] * virtual.MEMTEST_CELLS)

    def stroke(self):
        self.pa = self.STROKE_RISE_PA
        return DONE

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


class Log:
    def add(self, code, now, a, b):
        pass


def _saved(buf):
    return True


def _us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return int(time.perf_counter() * 1000000)


def main(n):
    hal = Board()
    th = Therapy(hal, Log(), _saved)
    th.boot(0, 0, PARAMS, None)
    th.refill(0, 1 << 29)
    pump = th.pump
    now = 0
    t0 = _us()
    while pump.strokes < n:
        now = add(now, pump.next_in_ms(now))
        pump.service(now)
    spent = _us() - t0
    print('{"runtime": "%s", "strokes": %d, "us_per_stroke": %.3f}'
          % (sys.implementation.name, pump.strokes, spent / pump.strokes))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 200000)
