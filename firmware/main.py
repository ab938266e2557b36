# The board's entry point: copied to the root of the Pico's flash as main.py by a first
# install (MicroPython runs main.py after every reset), next to the boot loader loader.mpy.
# Ctrl-C is switched off before anything else, so a stray byte on the line cannot stop the
# boot; the loader then chooses the firmware (the first install, or a signed update on trial
# or confirmed), runs it, and resets the board if it ever stops. Only a development build
# (make build DEV=1) gives MicroPython's REPL the line after `maintenance` or a crash.
#
# MicroPython turns Ctrl-C on for the run of this file. A Ctrl-C that arrives before the switch
# below is raised only at the next jump of the bytecode: the loop below, inside its try, where
# it is caught and the switch made again. (Raised after a try without a jump inside it, it
# would stop this file: the pump would sit at the REPL, with no delivery and no watchdog.)
import micropython

while True:
    try:
        micropython.kbd_intr(-1)
        for _ in (0, 1):
            pass
        break
    except KeyboardInterrupt:
        pass

import loader
import machine


def _run():
    # Called once the loader has put the chosen firmware first on the import path.
    from firmware import app
    try:
        from boards.pico import Hal
    except ImportError:
        from boards.implant import Hal
    return app.main(Hal())


loader.boot_board(_run, machine.reset)

# A development build returned: the REPL is for a person or mpremote, and Ctrl-C works again.
micropython.kbd_intr(3)
