# The board's entry point: copied to the root of the Pico's flash as main.py by `make build`
# (MicroPython runs main.py after every reset). It starts the pump firmware on the board the
# bundle carries (`make build BOARD=pico|implant` puts exactly one there). When the firmware
# returns (after an authenticated `maintenance`), this script ends and MicroPython's REPL takes
# the USB serial line, so mpremote can copy a new build.
try:
    from boards.pico import Hal
except ImportError:
    from boards.implant import Hal

from firmware.app import main

main(Hal())

# The REPL is for a person or mpremote: Ctrl-C works again there (the board's Hal turned it
# off so stray bytes could not stop delivery).
try:
    import micropython

    micropython.kbd_intr(3)
except (ImportError, AttributeError):
    pass
