# Runs inside the MicroPython VM (see test_alloc.py): the firmware's whole control loop
# (firmware/app.py App.run: service, serial poll, clock anchor, watchdog feed, wait) allocates
# nothing once a prescription runs. Record writes to flash are the exception the design
# allows (a file write every 32 strokes); they are counted, not performed, while the heap is
# locked. Prints "OK <strokes> <saves> <cycles>", "HEAP <bytes>", "CYCLE_MAX_US <us>", "DONE".
import gc
import time

import micropython

from firmware.app import App
from firmware.store import MemDev
from tests.testboard import HealthyHal, SelfTestParts

LOCK_AT = 200
CYCLES = 6000


class Hal(SelfTestParts, HealthyHal):
    def __init__(self):
        HealthyHal.__init__(self)
        self.t = 1000
        self.cycles = 0
        self.feeds = 0
        self.max_wait = 0
        self.t_us = 0
        self.cycle_max_us = 0
        self.heap = 0
        self.dev = MemDev()
        self.app = None

    def ticks_ms(self):
        return self.t & 0x3FFFFFFF

    def clock_ts(self):
        return 91500000 + self.t // 1000

    def set_clock_ts(self, ts):
        pass

    def reset_cause(self):
        return 0

    def led(self, on):
        pass

    def start_watchdog(self, ms):
        pass

    def feed(self):
        self.feeds += 1

    def count_save(self, buf):
        self.saves += 1
        return True

    def wait(self, ms):
        now_us = time.ticks_us()
        if self.cycles > LOCK_AT:
            d = time.ticks_diff(now_us, self.t_us)
            if d > self.cycle_max_us:
                self.cycle_max_us = d
        if ms > self.max_wait:
            self.max_wait = ms
        self.cycles += 1
        if self.cycles == LOCK_AT:
            self.app.therapy.record.port = self.count_save
            self.app.therapy.record.journal_port = self.count_save  # (the journal too)
            gc.collect()
            self.heap = gc.mem_alloc()
            micropython.heap_lock()
            self.locked = True
        elif self.cycles == CYCLES:
            micropython.heap_unlock()
            self.locked = False
            self.app.quit = True
        self.t += ms if ms > 0 else 1
        self.t_us = time.ticks_us()

    def read_byte(self):
        return -1

    def read_into(self, buf):
        return 0

    def write(self, data):
        pass

    def uid(self):
        return "vm-loop"

    def storage(self):
        return self.dev

    def reset(self):
        pass


def main():
    hal = Hal()
    app = App(hal)
    hal.app = app
    app.boot()
    params = {"conc_ng_ml": 2000000, "steps": [[0, 3000000]], "max_daily_ng": 4000000,
              "low_res_nl": 2000000}
    app.save_settings(params)
    now = hal.ticks_ms()
    app.therapy.program(now, params)
    app.therapy.refill(now, 20000000)
    try:
        app.run()
    except MemoryError:
        micropython.heap_unlock()
        print("FAIL allocated in cycle", hal.cycles, "after", hal.strokes, "strokes")
        print("FAILED")
        return
    print("OK", hal.strokes, hal.saves, hal.cycles, "max_wait", hal.max_wait, "feeds",
          hal.feeds)
    print("HEAP", hal.heap)
    print("CYCLE_MAX_US", hal.cycle_max_us)
    if app.therapy.sup.alarms:
        print("FAIL alarms", app.therapy.sup.alarms)
        print("FAILED")
        return
    print("DONE")


main()
