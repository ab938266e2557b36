# The chip-level faults the pump's self-test looks for (firmware/selftest.py), as the simulated
# boards model them: the RAM region kept for the memory test, with a bit that can stick; the
# motor driver's DRV_STATUS and its silence; the die's temperature sensor. The plant
# (sim/engine.py's Plant) owns one of each: a fault outlives a reset, as a broken part does.
# Runs on the MicroPython VM and CPython alike.
from array import array

# `driver fault=...` (pumpsim inject, scenario files) -> DRV_STATUS bits (TMC2209 datasheet,
# register 0x6F): otpw 0, ot 1, s2ga 2, s2gb 3, s2vsa 4, s2vsb 5, ola 6, olb 7, t120 8, t143 9,
# t150 10, t157 11. "silent": the driver does not answer its UART at all.
DRIVER_FAULTS = {"ok": 0, "otpw": 0x101, "ot": 0x703, "short": 0x4, "open": 0x40,
                 "silent": -1}
# With these the driver's bridges are off (a shutdown, a short) or cannot turn the rotor (an
# open coil): a stroke moves nothing, and DIAG says so (a stall, to the firmware).
DRIVER_STOPS = ("ot", "short", "open")
TMC2209_VERSION = 0x21
DIE_C = 37                      # a die in the body (or a warm bench)


class RamCells:
    """MEMTEST_CELLS 16-bit cells; stick(cell, bit, level) makes one bit read `level` whatever
    was written (a stuck-at fault), unstick() repairs it. Allocates nothing per access."""

    def __init__(self, cells):
        self.cells = array("H", [0] * cells)
        self.cell = -1
        self.set = 0             # bits forced to 1
        self.keep = 0xFFFF       # bits kept as written (0 where forced to 0)

    def stick(self, cell, bit, level):
        self.cell = cell % len(self.cells)
        self.set = (1 << bit) if level else 0
        self.keep = 0xFFFF & ~(1 << bit)

    def unstick(self):
        self.cell = -1

    def __len__(self):
        return len(self.cells)

    def __getitem__(self, i):
        v = self.cells[i]
        if i == self.cell:
            return (v & self.keep) | self.set
        return v

    def __setitem__(self, i, v):
        self.cells[i] = v


def die_raw(board, celsius):
    """The 16-bit reading of the die's temperature sensor at `celsius`."""
    raw = board.DIE_RAW_27C - (celsius - 27) * board.DIE_RAW_PER_100C // 100
    return 0 if raw < 0 else 65535 if raw > 65535 else raw
