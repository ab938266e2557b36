# The board's entry point: copied to the root of the Pico's flash as main.py by a first
# install (MicroPython runs main.py after every reset), next to the boot loader loader.mpy.
# Ctrl-C is switched off before anything else, so a stray byte on the line cannot stop the
# boot; the loader then chooses the firmware (the first install, or a signed update on trial
# or confirmed), runs it, and resets the board if it ever stops. Only a development build
# (make build DEV=1) gives MicroPython's REPL the line after `maintenance` or a crash.
try:
    import micropython

    micropython.kbd_intr(-1)
except (ImportError, AttributeError):
    pass

import loader
import machine


def _hal():
    # Called once the loader has put the chosen firmware first on the import path.
    try:
        from boards.pico import Hal
    except ImportError:
        from boards.implant import Hal
    return Hal()


loader.boot_board(_hal, machine.reset)

# A development build returned: the REPL is for a person or mpremote, and Ctrl-C works again.
try:
    import micropython

    micropython.kbd_intr(3)
except (ImportError, AttributeError):
    pass
