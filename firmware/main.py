# The board's entry point: copied to the root of the Pico's flash as main.py by `make build`
# (MicroPython runs main.py after every reset). It starts the pump firmware on the board the
# bundle carries (`make build BOARD=pico|implant` puts exactly one there). When the firmware
# returns (after an authenticated `maintenance`), this script ends and MicroPython's REPL takes
# the USB serial line, so mpremote can copy a new build.
#
# Ctrl-C goes off first. MicroPython turns it on for the run of this file, and a 0x03 byte on
# the line (a terminal, `make flash` looking for the REPL, noise) would otherwise stop the
# imports below and leave the pump at the REPL: no delivery, no watchdog. A Ctrl-C that arrives
# before the switch is only raised at the next jump of the bytecode, which is the loop below,
# inside the try: it is caught and the switch is made again.
import micropython

while True:
    try:
        micropython.kbd_intr(-1)
        for _ in (0, 1):
            pass
        break
    except KeyboardInterrupt:
        pass

try:
    from boards.pico import Hal
except ImportError:
    from boards.implant import Hal

from firmware.app import main

main(Hal())

# The REPL is for a person or mpremote: Ctrl-C works again there.
micropython.kbd_intr(3)
