# A march test over the RAM region the board keeps for it (hal.test_ram(): 16-bit cells that
# nothing else writes). A march visits every cell in order, reading what the element before
# left there and writing the next value; the order (up, then down) is what finds a cell whose
# write disturbs its neighbour. March C- (van de Goor, 1991) finds stuck-at, transition and
# coupling faults between cells:
#
#   up w0; up r0 w1; up r1 w0; down r0 w1; down r1 w0; up r0      (0 = 0x0000, 1 = 0xFFFF)
#
# then a pass with 0x5555 and 0xAAAA finds bits of one cell that disturb each other. 15 visits
# a cell in all. It only proves the cells of this region, and the paths every access takes
# (the bus, the SRAM banks the region sits in); docs/alarms.md says what it does not prove.
#
# Resumable: step() does at most `budget` visits and keeps its place, so the periodic check
# can spread a pass over the hour without ever holding the loop up (firmware/selftest.py).
# Small ints only; allocates nothing.
from firmware.compat import const

_NONE = const(4)            # no read (or no write) in this element
# Per element: direction (0 up, 1 down), the value read (index into _PATTERN), the value written.
_PROGRAM = bytes((0, _NONE, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0, _NONE,
                  0, _NONE, 2, 0, 2, 3, 1, 3, 0))
_ELEMENTS = const(9)
_PATTERN = (0x0000, 0xFFFF, 0x5555, 0xAAAA)
RUNNING = const(0)
PASSED = const(1)
FAILED = const(-1)


class March:
    def __init__(self, cells):
        self.cells = cells
        self.n = len(cells)
        self.e = 0              # the element in progress
        self.i = 0              # visits made in it
        self.bad_cell = -1      # where the last failure was found
        self.bad_bits = 0       # which bits read wrong there

    def restart(self):
        self.e = 0
        self.i = 0

    def step(self, budget):
        """At most `budget` visits. PASSED when a whole pass ended clean (the next call starts
        another), FAILED when a cell read back wrong (bad_cell, bad_bits; the pass starts
        again at the next call), else RUNNING."""
        cells = self.cells
        n = self.n
        prog = _PROGRAM
        pat = _PATTERN
        e = self.e
        i = self.i
        while budget > 0:
            k = e * 3
            rd = prog[k + 1]
            wr = prog[k + 2]
            want = pat[rd] if rd != _NONE else 0
            put = pat[wr] if wr != _NONE else 0
            end = n if n - i <= budget else i + budget
            budget -= end - i
            # visit cells c from here to the element's `end`, up or down the region (no tuple:
            # a tuple would be a heap object)
            if prog[k]:
                c = n - 1 - i
                stop = n - 1 - end
                d = -1
            else:
                c = i
                stop = end
                d = 1
            if rd == _NONE:
                while c != stop:
                    cells[c] = put
                    c += d
            else:
                while c != stop:
                    v = cells[c]
                    if v != want:
                        self.bad_cell = c
                        self.bad_bits = v ^ want
                        self.e = 0
                        self.i = 0
                        return FAILED
                    if wr != _NONE:
                        cells[c] = put
                    c += d
            i = end
            if i == n:
                i = 0
                e += 1
                if e == _ELEMENTS:
                    self.e = 0
                    self.i = 0
                    return PASSED
        self.e = e
        self.i = i
        return RUNNING
