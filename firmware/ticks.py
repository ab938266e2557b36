# Wrapping millisecond ticks, the same arithmetic as MicroPython's time.ticks_diff/ticks_add.
# The core never reads a clock: callers pass `now` in ticks. A Pico's ticks_ms wraps every
# 2**30 ms (about 12.4 days), and a difference is only meaningful within half of that, so the
# core is serviced at least every MAX_SLEEP_MS and keeps long horizons in its own counters.
from firmware.compat import const

_PERIOD = const(1 << 30)
MASK = const((1 << 30) - 1)
_HALF = const(1 << 29)


def diff(a, b):
    """Signed a - b on the wrapping tick circle."""
    return ((a - b + _HALF) & MASK) - _HALF


def add(a, delta):
    return (a + delta) & MASK
