# The pump checks itself (DESIGN.md; docs/alarms.md, "The self-test"). This room keeps what the
# power-on self-test found (firmware/post.py runs it at every boot, before the first stroke)
# and runs the periodic checks, from the supervisor's check every CHECK_MS, in slices that never
# hold the loop up:
#
#   DRV_STATUS    the over-temperature pre-warning: driver_hot (a warning, ends by itself);
#                 a shutdown, a short, an open coil (three checks running), or no answer
#                 three checks running: driver_fault (critical, latched until `resume`)
#   the die       the RP2040's own temperature (ADC channel 4) outside DIE_MIN_C..DIE_MAX_C:
#                 die_temperature (a warning; ends 2 degC inside the band)
#   the memory    a slice of the march (firmware/march.py), a whole pass every hour
#   the code      a slice of the files' hashes (firmware/codecheck.py), a whole pass a day
#
# The slices of the memory and the code are the long parts (opening a file through littlefs takes
# about 4 ms of the Pico's time, a slice of the march 2 to 3 ms): on a board, the control loop
# does each in a wake-up of its own when no stroke or other deadline is near (slice(),
# firmware/app.py), so neither lengthens the check's cycle nor ever delays a stroke.
#
# It also counts what the battery estimate needs (firmware/lifetime.py): tones played, wake-ups,
# samples every 6 hours, a day back. What `info` shows of it is firmware/testreport.py's, loaded per
# request: the Pico's heap is small.
#
# A failed part raises self_test_failed, named in the log and in `info`: critical
# (AL_SELF_TEST: delivery stops) when the pump cannot deliver safely without it (code, memory,
# driver, pressure sensor), else a warning (AL_SELF_TEST_WARN: battery sensor, buzzer,
# watchdog). A part fails until it passes again: the memory and the code at their next periodic
# pass, the others at the next boot's self-test. check() allocates nothing (the code's pass
# opens a file and its hash once per file).
from array import array

from firmware.codes import (AL_DIE_TEMP, AL_DRIVER_FAULT, AL_DRIVER_HOT, AL_SELF_TEST,
                            AL_SELF_TEST_WARN, EV_CHECK_FAIL, EV_CHECK_PASS, EV_DIE_TEMP,
                            EV_DRIVER)
from firmware.compat import TYPE_CHECKING, const
from firmware.march import FAILED, PASSED, March

if TYPE_CHECKING:
    from firmware.hal import Log, Mechanism
    from firmware.pump import Pump

PARTS = ("code", "memory", "driver", "pressure", "battery", "buzzer", "watchdog")
P_CODE = const(0)
P_MEMORY = const(1)
P_DRIVER = const(2)
P_PRESSURE = const(3)
P_BATTERY = const(4)
P_BUZZER = const(5)
P_WATCHDOG = const(6)
CRITICAL_PARTS = const(15)      # code, memory, driver, pressure: needed to deliver safely
PASS = const(1)
FAIL = const(2)
SKIP = const(3)
TMC2209_VERSION = const(0x21)
WDT_TEST_MS = const(100)        # the watchdog's timeout in its test
_MEM_PASS_S = const(3600)        # a memory pass an hour, in at most 10 checks
_ONE_CHECK = const(160)         # march visits (9 a cell) a region may take in a single check
SAMPLES = const(5)              # battery samples, every _SAMPLE_S (6 h): a day back and more
_SAMPLE_S = const(21600)
_OTPW = const(1)                # DRV_STATUS: the pre-warning,
_SHUTS = const(0x3E)            # ot and the shorts (to ground, to the supply, either phase),
_OPEN = const(0xC0)             # an open coil (trusted after three checks running)
_HOT_BIT = const(1 << 27)       # 1 << codes.AL_DRIVER_HOT
_FAULT_BIT = const(1 << 28)     # 1 << codes.AL_DRIVER_FAULT
_DIE_BIT = const(1 << 29)       # 1 << codes.AL_DIE_TEMP
_OWE_MEM = const(1)             # a slice of the memory's march
_OWE_CODE = const(2)            # a step of the code's hashes


class SelfTest:
    def __init__(self, hal: "Mechanism", log: "Log", sup, pump: "Pump") -> None:
        # sup: firmware/supervisor.py's Supervisor (it calls check(); this raises its alarms)
        self.hal = hal
        self.log = log
        self.sup = sup
        self.pump = pump
        self.outcome = bytearray(7)     # the power-on self-test's, per part (0: not run)
        self.detail = array("i", [0] * 7)  # what it found, per part (firmware/testreport.py)
        self.failed = 0                 # parts failing now (self-test and periodic checks)
        self.post_ts = -1               # pump clock of the last self-test, and
        self.post_ms = 0                # how long it took
        self.mem = March(hal.test_ram())
        # a pass in at most 10 checks (the Pico's 128 cells: about 116 visits a check); a small
        # region (the virtual board's) in one check, which costs a simulated year less
        n9 = 9 * self.mem.n
        self.mem_slice = n9 if n9 <= _ONE_CHECK else (n9 + 9) // 10
        self.mem_due_s = 0              # mono s at which the next memory pass starts
        self.mem_on = False
        self.code = None                # firmware/codecheck.py's CodeCheck, from the self-test
        self.code_slice = 0             # bytes a check: a pass about once a day
        self.owed = 0                   # slices check() owes (_OWE_*), slice() does them
        self.defer = False              # True: the control loop calls slice() (firmware/app.py)
        self.passes = array("i", [0, 0])  # periodic passes of the code, of the memory
        self.silent = 0                 # checks running the driver did not answer
        self.opens = 0                  # ... it showed an open coil
        self.drv = 0                    # DRV_STATUS at the last check (-1: no answer)
        self.die_dc = 0                 # the die at the last check, 0.1 degC
        self.tones = 0                  # buzzer patterns played since the boot
        self.wakes = 0                  # control-loop wake-ups (firmware/app.py counts them)
        self.ring = array("i", [0] * (4 * SAMPLES))  # mono s, strokes, tones, wakes
        self.ring_n = 0
        self.ring_i = 0
        self.ring_s = 0                 # mono s of the next sample

    # ---- what failures raise -----------------------------------------------------------
    def alarms(self, now):
        sup = self.sup
        if self.failed & CRITICAL_PARTS:
            sup.raise_alarm(AL_SELF_TEST, now)
        else:
            sup.clear_alarm(AL_SELF_TEST, now)
        if self.failed & ~CRITICAL_PARTS:
            sup.raise_alarm(AL_SELF_TEST_WARN, now)
        else:
            sup.clear_alarm(AL_SELF_TEST_WARN, now)

    def _failed(self, now, p, detail):
        if not self.failed & (1 << p):
            self.failed |= 1 << p
            self.log.add(EV_CHECK_FAIL, now, p, detail)
            self.alarms(now)

    def _passed(self, now, p):
        if self.failed & (1 << p):
            self.failed &= ~(1 << p)
            self.log.add(EV_CHECK_PASS, now, p, 0)
            self.alarms(now)

    # ---- the periodic checks ---------------------------------------------------------------
    def check(self, now, tone):
        """Every CHECK_MS, from the supervisor's check once it brought the pump clock up to
        now; tone: the pattern it just played (0: none). With `defer` (the control loop's),
        the memory's and the code's slices are only owed here and done by slice(), each in a
        wake-up of its own; without it (the simulator, the tests), here."""
        hal = self.hal
        self._drv(now, hal.driver_status())
        self._die(now, hal.read_die_temp())
        pump = self.pump
        mono = pump.mono_s
        if self.mem_on or mono >= self.mem_due_s:
            self.owed |= _OWE_MEM
        if self.code is not None:
            self.owed |= _OWE_CODE
        if not self.defer:
            while self.owed:
                self.slice(now)
        if tone:
            self.tones += 1
        if mono >= self.ring_s:
            self._sample(mono, pump.strokes)

    def slice(self, now):
        """One owed slice: the memory's, else the code's (a file opened, or a slice of it
        hashed). True while more is owed."""
        owed = self.owed
        if owed & _OWE_MEM:
            self.owed = owed & ~_OWE_MEM
            self._mem(now, self.pump.mono_s)
        elif owed & _OWE_CODE:
            self.owed = owed & ~_OWE_CODE
            code = self.code
            if code is not None:
                r = code.step(self.code_slice)
                if r == PASSED:
                    self.passes[0] += 1
                    self._passed(now, P_CODE)
                elif r == FAILED:
                    # What runs was checked at boot; a file changed since: the next boot goes
                    # back to the firmware before this one, which the boot loader checks again.
                    code.fall_back()
                    self._failed(now, P_CODE, code.bad)
        return self.owed != 0

    def _drv(self, now, s):
        self.drv = s
        sup = self.sup
        active = sup.al.active
        if s < 0:
            self.silent += 1
            if self.silent >= 3 and not active & _FAULT_BIT:
                self.log.add(EV_DRIVER, now, -1, 0)
                sup.raise_alarm(AL_DRIVER_FAULT, now)
            return
        self.silent = 0
        self.opens = self.opens + 1 if s & _OPEN else 0
        if (s & _SHUTS or self.opens >= 3) and not active & _FAULT_BIT:
            self.log.add(EV_DRIVER, now, s, 0)
            sup.raise_alarm(AL_DRIVER_FAULT, now)
        if s & _OTPW:
            if not active & _HOT_BIT:
                self.log.add(EV_DRIVER, now, s, 0)
                sup.raise_alarm(AL_DRIVER_HOT, now)
        elif active & _HOT_BIT:
            sup.clear_alarm(AL_DRIVER_HOT, now)

    def _die(self, now, raw):
        hal = self.hal
        dc = 270 - (raw - hal.DIE_RAW_27C) * 1000 // hal.DIE_RAW_PER_100C
        self.die_dc = dc
        lo = hal.DIE_MIN_C * 10
        hi = hal.DIE_MAX_C * 10
        on = self.sup.al.active & _DIE_BIT
        if dc < lo or dc > hi:
            if not on:
                self.log.add(EV_DIE_TEMP, now, dc, 0)
                self.sup.raise_alarm(AL_DIE_TEMP, now)
        elif on and lo + 20 <= dc <= hi - 20:
            self.sup.clear_alarm(AL_DIE_TEMP, now)

    def _mem(self, now, mono):
        mem = self.mem
        if not self.mem_on:
            self.mem_on = True
            self.mem_due_s = mono + _MEM_PASS_S   # a pass starts every hour
            mem.cells = self.hal.test_ram()      # the same cells (a simulator's view may change)
            mem.restart()
        r = mem.step(self.mem_slice)
        if r:
            self.mem_on = False
            if r == PASSED:
                self.passes[1] += 1
                self._passed(now, P_MEMORY)
            else:
                self._failed(now, P_MEMORY, mem.bad_cell)

    def _sample(self, mono, strokes):
        self.ring_s = mono + _SAMPLE_S
        r = self.ring
        k = self.ring_i * 4
        r[k] = mono
        r[k + 1] = strokes
        r[k + 2] = self.tones
        r[k + 3] = self.wakes
        self.ring_i = (self.ring_i + 1) % SAMPLES
        if self.ring_n < SAMPLES:
            self.ring_n += 1
