# The HAL contract: what the firmware asks of a board, as typing Protocols. A stub: no board
# and no firmware imports it at run time (the firmware names it only under TYPE_CHECKING, from
# firmware/compat.py), and pyright checks every HAL against it: the RP2040 boards under the rp2
# stubs (make typecheck), the simulator's and the tests' boards with the host's configuration
# (tests/typecheck/hal_conformance.py lists them all, and a test keeps the list whole).
#
# Three layers, because tests drive the pump's rooms without a whole board:
#
#   BoardData   the board's data, named with their units (boards/virtual.py has every one; the
#               RP2040 boards add pins and motor data that only boards/ reads)
#   Mechanism   what the pump's rooms touch (firmware/therapy.py and what it builds): the
#               stroke, the two sensors, the buzzer
#   Hal         the whole board the shell (firmware/app.py) runs on: time, clock, watchdog,
#               the serial line, storage, identity, resets, the button
#
# Everything on the stroke path and the control loop allocates nothing: stroke, read_pressure,
# read_battery, wait, read_byte, button_held touch only preallocated objects and small ints.
from array import array
from typing import Callable, Protocol

class BoardData(Protocol):
    # (each given "= ..." so that a board class that copies the constants in at run time may
    # name this as its base for the type checker and still be instantiated)
    NAME: str = ...
    STROKE_NL: int = ...              # volume one stroke moves
    MAX_STROKES_PER_MIN: int = ...    # the motor's limit
    MIN_RATE_NL_DAY: int = ...        # slowest basal rate accepted
    RESERVOIR_NL: int = ...
    RESERVOIR_MIN_NL: int = ...       # delivery stops with this much left
    P_RAW_ZERO: int = ...             # pressure sensor: raw reading at 0 kPa ...
    P_RAW_PER_KPA: int = ...          # ... counts per kPa ...
    P_RAW_MIN: int = ...              # ... and the readings that mean a broken sensor
    P_RAW_MAX: int = ...
    STROKE_RISE_PA: int = ...         # the pressure pulse of one stroke through an open catheter
    OCCLUSION_PA: int = ...           # residual pressure that means an occlusion
    REFILL_TOLERANCE_NL: int = ...    # a measured residual may differ from the account by this ...
    REFILL_TOLERANCE_PCT: int = ...   # ... plus this share of it
    CATHETER_NL: int = ...            # the board's catheter stand-in (the patient's is in the settings)
    STALL_RETRIES: int = ...          # a stroke that did not move is tried again this often
    B_MV_NUM: int = ...               # battery: mV = raw * B_MV_NUM // B_MV_DEN
    B_MV_DEN: int = ...
    B_MV_MIN: int = ...               # readings outside this range are a sensor fault
    B_MV_MAX: int = ...
    B_ERI_MV: int = ...               # elective replacement indicator
    B_EOS_MV: int = ...               # end of service
    B_SAG_MIN_MV: int = ...           # the least sag under the motor's load (0: not checked)
    B_NOISE_MV: int = ...
    CHECK_MS: int = ...               # the periodic check's interval
    WDT_TIMEOUT_MS: int = ...
    CLOCK_KEPT: bool = ...            # the clock survives resets and power cuts
    # the self-test (firmware/selftest.py)
    MEMTEST_CELLS: int = ...          # 16-bit cells in the RAM region kept for the memory test
    DIE_RAW_27C: int = ...            # the die's temperature sensor (ADC channel 4): raw at 27 C ...
    DIE_RAW_PER_100C: int = ...       # ... and how far the reading falls per 100 C
    DIE_MIN_C: int = ...              # a die outside DIE_MIN_C..DIE_MAX_C raises die_temperature
    DIE_MAX_C: int = ...
    # the battery's life (firmware/lifetime.py)
    B_CURVE_MV: tuple[int, ...] = ... # rest voltage at 100 %, 90 %, ... 0 % of the cell's charge
    B_CURVE_ERR_MV: int = ...         # how far the cell may sit off that curve (the estimate's band)
    B_CAPACITY_UAH: int = ...         # the cell's charge from 100 % to 0 %
    B_REST_NA: int = ...              # average draw between the events below
    B_STROKE_UAS: int = ...           # charge one stroke takes (uA s)
    B_TONE_UAS: int = ...             # one buzzer pattern
    B_WAKE_UAS: int = ...             # one wake-up of the control loop

class Cells(Protocol):
    """16-bit cells of RAM (an array("H") on a board; a model with faults in the simulator)."""
    def __len__(self) -> int: ...
    def __getitem__(self, i: int, /) -> int: ...
    def __setitem__(self, i: int, v: int, /) -> None: ...

class Mechanism(BoardData, Protocol):
    def stroke(self) -> int:
        """One whole stroke; returns when it is done, with firmware.codes DONE (the whole
        stroke was made), NOT_DONE (nothing moved: the firmware retries STALL_RETRIES times,
        then motor_stall) or UNCERTAIN (it stalled partway, so some drug may have moved: it
        counts as given, is not retried, and motor_stall is raised)."""
    def read_pressure(self) -> int:
        """Raw 16-bit reading of the outlet pressure sensor."""
    def read_battery(self) -> int:
        """Raw 16-bit reading of the battery divider."""
    def tone(self, pattern: int, /) -> None:
        """Start buzzer pattern firmware.codes.TONE_CRITICAL or TONE_WARNING; return at once."""
    def driver_status(self) -> int:
        """The motor driver's DRV_STATUS flags (bits 0..11: otpw, ot, s2ga, s2gb, s2vsa, s2vsb,
        ola, olb, t120, t143, t150, t157) read now, together with those it showed at the end of
        each stroke since the last call, while it was still enabled (a short or an open coil
        shows only then); -1 when it does not answer now. Allocates nothing."""
    def read_die_temp(self) -> int:
        """Raw 16-bit reading of the chip's own temperature sensor (RP2040: ADC channel 4)."""
    def test_ram(self) -> Cells:
        """The RAM region (MEMTEST_CELLS cells) the board keeps for the memory test; nobody
        else writes it. The same cells at every call; a simulated board may hand a view of them
        with a fault in it (the memory test asks again at each pass)."""

class Storage(Protocol):
    def read(self, path: str, /) -> bytes | None: ...
    def write(self, path: str, data: bytes, /) -> None: ...

class Hal(Mechanism, Protocol):
    def ticks_ms(self) -> int:
        """time.ticks_ms(): milliseconds, wrapping at 2**30."""
    def clock_ts(self) -> int:
        """The pump clock: seconds since 2024-01-01 00:00."""
    def set_clock_ts(self, ts: int, /) -> None: ...
    def reset_cause(self) -> int:
        """1 if the last reset was the watchdog's, else 0 (a reset() the firmware asked for is
        not the watchdog's, even where the chip makes it one); 2 when it was the watchdog's
        reset that watchdog_test() asked for."""
    def led(self, on: bool, /) -> None: ...
    def start_watchdog(self, timeout_ms: int, /) -> None: ...
    def feed(self) -> None:
        """Feed the watchdog; a no-op before start_watchdog."""
    def wait(self, ms: int, /) -> bool | None:
        """Sleep up to ms, returning early when a byte is waiting on the serial line; never
        longer than half the watchdog's timeout. False when it slept its time out with nothing
        waiting (the loop then only feeds the watchdog); anything else when something woke it."""
    def read_into(self, buf: bytearray, /) -> int:
        """The bytes waiting on the serial line into buf, at most len(buf); how many (0: none).
        Never blocks, allocates nothing."""
    def read_byte(self) -> int:
        """The next byte from the serial line, or -1 if none is waiting; never blocks."""
    def write(self, data: bytes, /) -> None: ...
    def uid(self) -> str:
        """The pump id: the chip's unique id as hex text."""
    def storage(self) -> Storage:
        """The files the records live in (firmware.store.FileDev on littlefs)."""
    def reset(self) -> None:
        """A deliberate reset; the clock carries over where the board can keep it."""
    # the power-on self-test's (firmware/selftest.py)
    def driver_version(self) -> int:
        """The motor driver's VERSION (IOIN bits 24..31; 0x21 for a TMC2209) when it answers
        with valid replies and took its configuration (every setup write counted, GCONF reads
        back as written); 0 when it answers but the configuration did not take; -1 when it
        does not answer."""
    def buzzer_check(self) -> bool:
        """The buzzer's PWM takes a frequency and a zero duty and reads them back (silent)."""
    def watchdog_test(self, timeout_ms: int, /) -> None:
        """Mark the test (a watchdog scratch register on the RP2040), start the watchdog with
        timeout_ms and never feed it: the chip resets, and reset_cause() says 2 at the next
        boot. Returns only when the watchdog did not bite within three timeouts."""

class Log(Protocol):
    def add(self, code: int, now: int, a: int, b: int, /) -> None: ...

# The shell's port that puts the state record on flash: True when the flash holds it.
SavePort = Callable[[array], bool]

class HistoryPort(Protocol):
    """The shell's side of the therapy history (firmware/history.py; the app is it): the files
    its pages live in, and the pump clock its entries are stamped with."""
    dev: Storage
    def clock_ts(self, now: int, /) -> int:
        """The pump clock (s since 2024-01-01) at ticks `now`."""
