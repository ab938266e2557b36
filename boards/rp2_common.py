# The HAL shared by every RP2040 board: what boards/__init__.py promises, built from one board
# file's data (pins, calibration, limits). boards/pico.py and boards/implant.py only pass their
# constants in; nothing here knows which board it runs on.
#
# Things a newcomer gets wrong on this chip, and how this file avoids them:
#
# - Step timing. A Python loop cannot toggle a pin at an even rate (the garbage collector and
#   USB interrupts stretch it), and a jittery step train makes a stepper lose steps: silent
#   under-delivery. A PIO state machine makes the pulses; Python only says how many.
# - Allocation. stroke(), read_pressure(), read_battery(), wait() and read_into() run with the
#   heap possibly locked. They touch only preallocated objects and small ints: the bound
#   methods they call are looked up into attributes once, in __init__.
# - The watchdog cannot be stopped once started and bites after at most about 8.3 s. wait()
#   therefore never sleeps longer than half the timeout, so the loop comes round to feed it.
# - Ctrl-C on the USB serial line would raise KeyboardInterrupt inside the control loop.
#   __init__ turns that off (micropython.kbd_intr(-1)); the maintenance command turns it back
#   on (micropython.kbd_intr(3)) before it hands the REPL over.
# - A deliberate reset is a watchdog reset on this chip: machine.reset() lets the watchdog bite
#   (MicroPython issue #19409), so machine.reset_cause() says WDT_RESET after every maintenance
#   or flash. reset() therefore writes a mark into a watchdog scratch register first (they
#   survive a watchdog reset, not a power cut), and start_watchdog() wipes it: from then on a
#   watchdog reset without the mark is the watchdog's own. The same register pair carries the
#   clock across the deliberate reset, which MicroPython otherwise restarts at 2021-01-01.
# - The pump head only ever turns forward: DIR is set once, here, and never changed. Turning
#   back would pull fluid (spinal fluid, through the catheter) into the pump.
# - The driver latches a short or an open coil in DRV_STATUS only while it is enabled: stroke()
#   reads it over the UART before it disables the driver, and driver_status() hands on what
#   the strokes saw with a fresh reading. A 32-bit register value would be a big integer (heap)
#   on this port: only its low 16 bits are ever built, from the reply's bytes in place.
# - The self-test's watchdog test marks the scratch register with its own value, so the reset
#   it causes is told apart from a hang (reset_cause() 2, not 1); the clock rides along as for
#   a deliberate reset. Scratch 3 holds the address of the memory test's region, for a
#   debugger (and the emulated bench's RAM fault).
import binascii
import os
import select
import sys
import time

import machine
import micropython
import rp2
import uctypes

from boards import tmc2209
from array import array

from firmware.codes import DONE, NOT_DONE, TONE_PATTERNS, UNCERTAIN
from firmware.store import FileDev

from firmware.compat import TYPE_CHECKING, unload

if TYPE_CHECKING:
    from rp2.asm_pio import *  # noqa: F403  the PIO assembler's names, for the type checker

    from firmware.hal import BoardData as _Data
    from firmware.hal import Hal as _Contract
else:
    _Data = object  # the board's constants are copied in at run time (see __init__)

_EPOCH_2024 = time.mktime((2024, 1, 1, 0, 0, 0, 0, 0))  # the pump clock counts from here
_WDT_MAX_MS = 8300
# Watchdog scratch registers 0 and 1 (pico-sdk's watchdog_reboot uses 4 to 7, the bootrom too).
_SCRATCH_MARK = 0x4005800C
_SCRATCH_CLOCK = 0x40058010
_SCRATCH_MEMTEST = 0x40058018
_DELIBERATE = 0x2BADC0DE     # below 2**30: a small int when read back
_WDT_TEST = 0x2BAD7E57       # the self-test's own watchdog reset
_DRV_WAIT_US = 3000          # a DRV_STATUS reply takes about 1.1 ms at 115200 baud


# One stroke: Python puts (steps - 1) into the TX FIFO; the machine sends that many + 1 pulses
# on the STEP pin, each exactly stepgen.CYCLES_PER_STEP cycles long, then pushes a 0 into the RX
# FIFO to say it is done. A small 0 is read back without allocating (a bigger number might not).
@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)
def step_pulses():
    pull(block)                 # noqa: F405
    mov(x, osr)                 # noqa: F405
    label("step")               # noqa: F405
    set(pins, 1)[15]            # noqa: F405  high for 16 cycles (stepgen.HIGH_CYCLES)
    set(pins, 0)[14]            # noqa: F405  low for 15 cycles ...
    jmp(x_dec, "step")          # noqa: F405  ... + 1 (stepgen.LOW_CYCLES)
    mov(isr, null)              # noqa: F405
    push(block)                 # noqa: F405


def _pin_out(num, value):
    return machine.Pin(num, machine.Pin.OUT, value=value)


class Rp2Hal(_Data):
    """The HAL of an RP2040 board described by `cfg`, a board file's globals() (the contract:
    firmware/hal.pyi)."""

    def __init__(self, cfg):
        # Board data, readable as hal.NAME by the firmware (monitor, pump) as on the virtual board.
        for name in cfg:
            if name.isupper():
                setattr(self, name, cfg[name])
        micropython.kbd_intr(-1)
        from boards import stepgen  # the board's step arithmetic, needed here only: let go after
        self._steps_m1 = cfg["STEPS_PER_STROKE"] - 1
        self._stroke_limit_ms = 2 * stepgen.stroke_ms(cfg["STEPS_PER_STROKE"], cfg["STEP_HZ"]) + 20
        self._wait_cap_ms = _WDT_MAX_MS // 2
        self._en_on = cfg["EN_ACTIVE"]
        self._en_off = 1 - self._en_on
        # Motor: driver disabled until a stroke, direction fixed forward.
        self._en = _pin_out(cfg["PIN_ENABLE"], self._en_off)
        _pin_out(cfg["PIN_DIR"], cfg["DIR_FORWARD"])
        self._diag = machine.Pin(cfg["PIN_DIAG"], machine.Pin.IN, machine.Pin.PULL_DOWN)
        self._sm_id = cfg["STEP_SM"]
        self._sm_hz = stepgen.sm_freq_hz(cfg["STEP_HZ"])
        unload("boards.stepgen")
        self._step_pin = machine.Pin(cfg["PIN_STEP"], machine.Pin.OUT, value=0)
        self._sm = rp2.StateMachine(self._sm_id)
        self._start_sm()
        self._uart = None
        self._drv_addr = cfg["DRIVER_ADDR"]
        self._drv_req = tmc2209.read_request(self._drv_addr, tmc2209.DRV_STATUS)
        self._drv_buf = bytearray(16)
        self._drv_seen = 0      # DRV_STATUS flags the strokes saw since driver_status()
        self._ticks_us = time.ticks_us
        self._driver_ok = self._setup_driver(cfg)
        # Sensors.
        if cfg["PIN_SMPS_PWM"] is not None:
            _pin_out(cfg["PIN_SMPS_PWM"], 1)  # quieter 3.3 V rail: less ADC noise
        self._adc_p = machine.ADC(machine.Pin(cfg["PIN_PRESSURE_ADC"]))
        self._adc_b = machine.ADC(machine.Pin(cfg["PIN_BATTERY_ADC"]))
        self._adc_t = machine.ADC(4)   # the die's temperature sensor
        self._read_p = self._adc_p.read_u16
        self._read_b = self._adc_b.read_u16
        self._read_t = self._adc_t.read_u16
        # The memory test's region: kept for it alone, for as long as the HAL lives.
        self._ram = array("H", bytes(2 * cfg["MEMTEST_CELLS"]))
        machine.mem32[_SCRATCH_MEMTEST] = uctypes.addressof(self._ram)
        # Buzzer and LED.
        self._pwm = machine.PWM(machine.Pin(cfg["PIN_BUZZER"]))
        self._pwm.duty_u16(0)
        self._tone_steps = ()
        self._tone_i = 0
        self._timer = machine.Timer(-1)  # a software timer: its callback may allocate
        self._tone_cb = self._tone_next
        self._led = None if cfg["PIN_LED"] is None else _pin_out(cfg["PIN_LED"], 0)
        # Clock, watchdog, serial line.
        self._rtc = machine.RTC()
        self._wdt = None
        self._cause = self._read_reset()
        self._stdin = sys.stdin.buffer
        self._readinto = self._stdin.readinto
        self._stdout = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._ipoll = self._poll.ipoll
        self._byte = bytearray(1)
        self._ticks = time.ticks_ms
        self._ticks_diff = time.ticks_diff
        # The provisioning button (docs/security.md): a GPIO from the board data, or BOOTSEL.
        btn = cfg.get("PIN_BUTTON")
        self._button = None if btn is None else machine.Pin(btn, machine.Pin.IN,
                                                            machine.Pin.PULL_UP)
        self._button_on = cfg.get("BUTTON_ACTIVE", 0)

    # ---- motor ----------------------------------------------------------------------------
    def _start_sm(self):
        self._sm.init(step_pulses, freq=self._sm_hz, set_base=self._step_pin)
        self._sm.active(1)

    def _setup_driver(self, cfg):
        """Switch on the driver's stall detection over its UART; True when the driver counted
        every write. Without it a stall would go unseen, so stroke() then refuses to run."""
        uart = machine.UART(cfg["DRIVER_UART"], baudrate=115200, tx=machine.Pin(cfg["PIN_UART_TX"]),
                            rx=machine.Pin(cfg["PIN_UART_RX"]), timeout=20)
        self._uart = uart
        addr = cfg["DRIVER_ADDR"]
        before = self._driver_read(uart, addr, tmc2209.IFCNT)
        if before is None:
            return False
        writes = tmc2209.setup_writes(addr, cfg["STALL_SGTHRS"], cfg["MOTOR_IHOLD"],
                                      cfg["MOTOR_IRUN"])
        for reg, value in writes:
            uart.write(tmc2209.write_datagram(addr, reg, value))
            time.sleep_ms(2)
        uart.read()  # drop the echo of our own writes
        after = self._driver_read(uart, addr, tmc2209.IFCNT)
        return after is not None and (after - before) & 0xFF == len(writes)

    def _driver_read(self, uart, addr, reg):
        uart.read()
        uart.write(tmc2209.read_request(addr, reg))
        time.sleep_ms(5)
        return tmc2209.parse_reply(uart.read(12), reg)

    def stroke(self):
        """One whole stroke: DONE, NOT_DONE (the driver never answered, or signalled a stall
        before the first pulse: nothing moved), or UNCERTAIN (a stall partway, or the step
        machine hung). Busy-waits the few ms the pulses take: no allocation."""
        if not self._driver_ok:
            return NOT_DONE
        sm = self._sm
        diag = self._diag
        en = self._en
        ticks = self._ticks
        en.value(self._en_on)   # enabling also clears a latched driver error
        if diag.value():
            en.value(self._en_off)
            return NOT_DONE     # stalled before a single pulse: nothing moved
        ok = True
        t0 = ticks()
        sm.put(self._steps_m1)
        while sm.rx_fifo() == 0:
            if diag.value():
                # Stop driving the motor at once; the machine finishes its pulses into a
                # disabled driver, so the FIFOs stay in step for the next stroke.
                en.value(self._en_off)
                ok = False
            if self._ticks_diff(ticks(), t0) > self._stroke_limit_ms:
                en.value(self._en_off)
                self._sm.active(0)
                self._start_sm()   # the machine hung: start it afresh (allocates; rare)
                return UNCERTAIN   # how many pulses went out is unknown
        # Once more after the last pulse, while the driver is still enabled (disabling it clears
        # DIAG): a stall signalled after the loop's last look would otherwise count as delivered.
        if diag.value():
            ok = False
        sm.get()
        s = self._drv_read()    # latched shorts and open coils show only while enabled
        if s > 0:
            self._drv_seen |= s
        en.value(self._en_off)
        return DONE if ok else UNCERTAIN   # a stall seen while the pulses ran: partway

    def _drv_read(self):
        """DRV_STATUS bits 0..15 now, or -1 without a valid reply. Allocates nothing."""
        uart = self._uart
        if uart is None:
            return -1
        buf = self._drv_buf
        n = uart.any()
        while n:                        # what is left on the line from before
            uart.readinto(buf, n if n < 16 else 16)
            n = uart.any()
        uart.write(self._drv_req)
        t0 = self._ticks_us()
        while uart.any() < 12 and self._ticks_diff(self._ticks_us(), t0) < _DRV_WAIT_US:
            pass
        n = uart.any()
        # a count: never more than is there, so the UART's read never waits for its timeout
        n = uart.readinto(buf, n if n < 16 else 16) if n else 0
        return tmc2209.status_flags(buf, n or 0, tmc2209.DRV_STATUS)

    def driver_status(self):
        s = self._drv_read()
        seen = self._drv_seen
        self._drv_seen = 0
        return s if s < 0 else s | seen

    def driver_version(self):
        uart = self._uart
        if uart is None:
            return -1
        ioin = self._driver_read(uart, self._drv_addr, tmc2209.IOIN)
        if ioin is None:
            return -1
        gconf = self._driver_read(uart, self._drv_addr, tmc2209.GCONF)
        if not self._driver_ok or gconf is None or gconf & 0x3FF != tmc2209.GCONF_VALUE:
            return 0
        return ioin >> 24

    # ---- sensors --------------------------------------------------------------------------
    def read_pressure(self):
        return self._read_p()

    def read_battery(self):
        return self._read_b()

    def read_die_temp(self):
        return self._read_t()

    def test_ram(self):
        return self._ram

    # ---- buzzer and LED -------------------------------------------------------------------
    def tone(self, pattern):
        """Start a buzzer pattern (firmware/codes.py TONE_*) and return at once; a timer plays
        the rest. A new pattern replaces one still playing."""
        steps = TONE_PATTERNS.get(pattern)
        if not steps:
            return
        self._timer.deinit()
        self._tone_steps = steps
        self._tone_i = 0
        self._tone_next(None)

    def _tone_next(self, _timer):
        i = self._tone_i
        if i >= len(self._tone_steps):
            self._pwm.duty_u16(0)
            return
        hz, ms = self._tone_steps[i]
        self._tone_i = i + 1
        self._pwm.freq(hz)
        self._pwm.duty_u16(32768)
        self._timer.init(mode=machine.Timer.ONE_SHOT, period=ms, callback=self._tone_cb,
                         hard=False)

    def buzzer_check(self):
        """The buzzer's PWM slice takes a frequency and a zero duty (silent) and reads them
        back from its registers. Says nothing of the piezo itself."""
        pwm = self._pwm
        try:
            pwm.freq(1000)
            pwm.duty_u16(0)
            return abs(pwm.freq() - 1000) <= 20 and pwm.duty_u16() == 0
        except (ValueError, OSError):
            return False

    def led(self, on):
        if self._led is not None:
            self._led.value(1 if on else 0)

    # ---- time -----------------------------------------------------------------------------
    def ticks_ms(self) -> int:
        # (the stubs' ticks are opaque; the firmware does its own wrapping arithmetic on them)
        return self._ticks()  # pyright: ignore[reportReturnType]

    def clock_ts(self):
        return time.time() - _EPOCH_2024

    def set_clock_ts(self, ts):
        t = time.gmtime(_EPOCH_2024 + ts)  # (year, month, day, h, min, s, weekday, yearday)
        self._rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def _read_reset(self):
        """1 when the watchdog bit, 0 after a power-up or a deliberate reset (whose clock is put
        back: the clock then, plus the time since the chip started)."""
        if machine.reset_cause() != machine.WDT_RESET:
            return 0
        mark = machine.mem32[_SCRATCH_MARK]
        if mark != _DELIBERATE and mark != _WDT_TEST:
            return 1
        ts = machine.mem32[_SCRATCH_CLOCK]
        if ts >= 0x80000000:
            ts -= 0x100000000
        self.set_clock_ts(ts + time.ticks_diff(time.ticks_ms(), 0) // 1000)  # + the uptime
        return 2 if mark == _WDT_TEST else 0

    def reset_cause(self):
        return self._cause

    def start_watchdog(self, timeout_ms):
        timeout_ms = min(timeout_ms, _WDT_MAX_MS)
        self._wait_cap_ms = timeout_ms // 2
        machine.mem32[_SCRATCH_MARK] = 0   # from here on, a watchdog reset is the watchdog's
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self):
        machine.mem32[_SCRATCH_CLOCK] = self.clock_ts() & 0xFFFFFFFF
        machine.mem32[_SCRATCH_MARK] = _DELIBERATE
        machine.reset()

    def watchdog_test(self, timeout_ms):
        machine.mem32[_SCRATCH_CLOCK] = self.clock_ts() & 0xFFFFFFFF
        machine.mem32[_SCRATCH_MARK] = _WDT_TEST
        machine.WDT(timeout=timeout_ms)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 3 * timeout_ms:
            pass
        machine.mem32[_SCRATCH_MARK] = 0   # it did not bite: whatever resets next is not it

    def button_held(self):
        """True while the provisioning button is pressed. BOOTSEL is read through the QSPI
        chip-select line (rp2.bootsel_button()); a GPIO button through its pin. Allocates
        nothing."""
        if self._button is None:
            return rp2.bootsel_button() == 1
        return self._button.value() == self._button_on

    # ---- serial line ----------------------------------------------------------------------
    def wait(self, ms):
        """Sleep up to ms (never more than half the watchdog timeout); return early, True, when
        a byte is waiting on the serial line; False when the time ran out."""
        if ms > self._wait_cap_ms:
            ms = self._wait_cap_ms
        if ms < 0:
            ms = 0
        for _ in self._ipoll(ms):
            return True
        return False

    def read_byte(self):
        for _ in self._ipoll(0):
            if self._stdin.readinto(self._byte, 1) == 1:
                return self._byte[0]
            break
        return -1

    def read_into(self, buf):
        """The bytes waiting on the serial line into buf (up to its length); how many. Never
        blocks, allocates nothing. USB CDC's stdin only reads whole buffers (readinto waits until
        it is full), so each byte is asked for once `poll` says one is there: on the emulated
        chip about 36 us a byte, a third of the old read_byte loop's (docs/benchmarks.md)."""
        n = 0
        size = len(buf)
        one = self._byte
        readinto = self._readinto
        ipoll = self._ipoll
        while n < size:
            for _ in ipoll(0):
                break
            else:
                return n
            readinto(one, 1)
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        self._stdout.write(data)

    # ---- identity and storage ---------------------------------------------------------------
    def uid(self):
        return binascii.hexlify(machine.unique_id()).decode()

    def storage(self):
        try:
            os.mkdir("/data")
        except OSError:
            pass  # it exists already
        return FileDev("/data")


if TYPE_CHECKING:
    _conforms: "type[_Contract]" = Rp2Hal  # pyright holds the HAL to the contract
