# Runs on the Pico itself (the emulated one in make test-rp2 and make bench, or a real one), from
# the REPL that `maintenance` hands back:  mpremote connect PORT resume run device_loop.py
#
# It boots the firmware's App on the board's own HAL (real pins: the step PIO, the ADCs, the
# driver's UART) with its records in /bench, never the pump's own /data, programs a fast basal,
# and runs the control loop for at least _CYCLES cycles and until _LOCKED_STROKES strokes have been
# made with the heap locked (_CYCLES_MAX cycles at most: a pump that stops stroking still ends). From cycle _LOCK_AT on the heap is locked: the
# steady loop must allocate nothing on the rp2 port either (a record save, which the design lets
# allocate, is counted instead of written meanwhile, as tests/vm/loop_check.py does on the unix
# port). Prints:
#   HEAP_FREE_BOOT <bytes>   gc.mem_free() after boot and programming (collected), once every
#                            module the pump loads for a request and lets go (ON_REQUEST) has
#                            been loaded and let go: the names it interns stay for good, as they
#                            do on a pump after its first help, info, log or refusal
#   HEAP_FREE_RUN <bytes>    gc.mem_free() while delivering (collected at _LOCK_AT)
#   CYCLE_MAX_US <us>        the slowest cycle once locked, in the chip's own microseconds
#   STROKES <n>              strokes the loop made
#   STROKES_LOCKED <n>       of which with the heap locked
#   CHECK_MAX_US <us>        the slowest of the periodic checks (firmware/selftest.py check:
#                            DRV_STATUS, the die) run one after another once the loop ended:
#                            at least _CHECKS, and on until the code's hashes made a whole pass
#   CHECKS <n>               how many
#   CHECK_MEAN_US <us>       their mean
#   SLICE_MAX_US <us>        the slowest of the slices those checks owed (a slice of the memory
#                            march, a step of the code's hashes: a file opened or a slice of it
#                            hashed), each of which the control loop does in a wake-up of its own
#   SLICE_MEAN_US <us>       their mean
#   GC_US <us>               one garbage collection, with the pump's objects in the heap
#   CHECK_CODE <0|1>         1 when the checks included the code's slices (the running
#                            firmware has a manifest)
#   DONE
# The watchdog is not started: it could not be stopped when the script ends.
import gc
import json
import os
import time

import micropython

from boards.pico import Hal
from firmware.app import App
from firmware.compat import TYPE_CHECKING, const, unload
from firmware.loader import Fs
from firmware.store import FileDev

micropython.alloc_emergency_exception_buf(256)   # a traceback even with the heap locked
_LOCK_AT = const(40)
_CYCLES = const(400)
_CYCLES_MAX = const(4000)
_LOCKED_STROKES = const(60)
# What the firmware loads for a request or a boot and lets go again (firmware/compat.py unload).
ON_REQUEST = ("about", "codetext", "keying", "testreport", "lifetime", "histpages", "post",
              "start")
_CHECKS = const(24)   # more than a whole memory pass (at most 10 checks) ...
_CHECKS_MAX = const(600)  # ... and on to the end of a pass of the code's hashes (about 270 checks)
# 1 mg/mL at 60 mg/day: 60 mL/day, about 2.8 strokes a second.
PARAMS = {"conc_ng_ml": 1000000, "steps": [[0, 60000000]], "max_daily_ng": 80000000,
          "low_res_nl": 2000000}


class BenchHal(Hal):
    def __init__(self):
        Hal.__init__(self)
        self.cycles = 0
        self.t_us = time.ticks_us()
        self.cycle_max_us = 0
        self.heap_run = 0
        self.counted = 0
        self.locked = False
        self.strokes_at_lock = 0
        self.app: "App | None" = None

    def storage(self):
        try:
            os.mkdir("/bench")
        except OSError:
            pass
        return FileDev("/bench")

    def start_watchdog(self, timeout_ms):
        self._wait_cap_ms = timeout_ms // 2

    def feed(self):
        pass

    def unlock(self):
        if self.locked:
            self.locked = False
            micropython.heap_unlock()

    def count_save(self, buf):
        self.counted += 1
        return True    # as a save the flash confirmed (the pump acts on a failed one)

    def wait(self, ms):
        if self.cycles > _LOCK_AT:
            d = time.ticks_diff(time.ticks_us(), self.t_us)
            if d > self.cycle_max_us:
                self.cycle_max_us = d
        self.cycles += 1
        if self.cycles == _LOCK_AT:
            self.app.therapy.record.port = self.count_save
            self.app.therapy.record.journal_port = self.count_save  # (the journal too)
            gc.collect()
            self.heap_run = gc.mem_free()
            self.strokes_at_lock = self.app.therapy.pump.strokes
            micropython.heap_lock()
            self.locked = True
        elif self.cycles >= _CYCLES and self.locked and (
                self.app.therapy.pump.strokes - self.strokes_at_lock >= _LOCKED_STROKES
                or self.cycles >= _CYCLES_MAX):
            self.unlock()
            self.app.quit = True
        woke = Hal.wait(self, ms)
        self.t_us = time.ticks_us()
        return woke


def _active():
    """The slot the boot loader runs (fw/boot's "active"), else the base."""
    try:
        with open("/fw/boot") as f:
            return json.loads(f.read()).get("active", "base")
    except (OSError, ValueError):
        return "base"


def main():
    hal = BenchHal()
    app = App(hal)
    hal.app = app
    app.boot()
    now = hal.ticks_ms()
    app.save_settings(PARAMS)
    app.therapy.program(now, PARAMS)
    app.therapy.refill(now, 20000000)
    for name in ON_REQUEST:
        __import__("firmware." + name)
        unload("firmware." + name)
    gc.collect()
    heap_boot = gc.mem_free()
    try:
        app.run()
        checks = app.therapy.checks
        # The bench's records are not the pump's filesystem, so the boot above had no code to
        # check: the running firmware's files, as the pump's own self-test loads them.
        from firmware import post      # (after the heap's figures: the pump lets it go)
        code, found = post.load(Fs(""), _active(), None, hal.NAME)
        post._code(checks, code, found)
        checks.mem_due_s = 0            # a memory pass starts at the first of these checks
        gc.collect()
        t0 = time.ticks_us()
        gc.collect()                    # what a collection costs (the code's opens allocate)
        gc_us = time.ticks_diff(time.ticks_us(), t0)
        worst = 0
        total = 0
        s_worst = 0
        s_total = 0
        s_n = 0
        n = 0
        pass0 = checks.passes[0]
        # at least _CHECKS, and on until a whole pass of the code (every file opened once)
        while n < _CHECKS or code is not None and checks.passes[0] == pass0 and n < _CHECKS_MAX:
            n += 1
            t0 = time.ticks_us()
            checks.check(hal.ticks_ms(), 0)
            d = time.ticks_diff(time.ticks_us(), t0)
            total += d
            if d > worst:
                worst = d
            while checks.owed:          # the loop does these in wake-ups of their own
                t0 = time.ticks_us()
                checks.slice(hal.ticks_ms())
                d = time.ticks_diff(time.ticks_us(), t0)
                s_total += d
                s_n += 1
                if d > s_worst:
                    s_worst = d
    finally:
        hal.unlock()
        micropython.kbd_intr(3)   # the REPL is mpremote's again
        for name in os.listdir("/bench"):
            os.remove("/bench/" + name)
    print("HEAP_FREE_BOOT", heap_boot)
    print("HEAP_FREE_RUN", hal.heap_run)
    print("CYCLE_MAX_US", hal.cycle_max_us)
    print("STROKES", app.therapy.pump.strokes)
    print("STROKES_LOCKED", app.therapy.pump.strokes - hal.strokes_at_lock)
    print("CHECK_MAX_US", worst)
    print("CHECK_MEAN_US", total // n)
    print("CHECKS", n)
    print("SLICE_MAX_US", s_worst)
    print("SLICE_MEAN_US", s_total // (s_n or 1))
    print("GC_US", gc_us)
    print("CHECK_CODE", 1 if code is not None else 0)
    print("DONE")


if TYPE_CHECKING:
    from firmware.hal import Hal as _Contract

    _conforms: "type[_Contract]" = BenchHal  # the bench's board keeps the contract too

main()
