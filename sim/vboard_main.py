# Entry point of the virtual Pico's firmware process (started by sim/board.py), on the
# MicroPython VM or CPython:  vboard_main.py CONFIG_JSON
#
# It runs the firmware's own main (firmware/app.py) on the simulated board, and plays the part
# of the chip around it: a reset (watchdog, power loss, reset button) starts the firmware again
# with the plant untouched; `maintenance` hands the line to a REPL (exit status 3 tells
# sim/board.py to start one); a harness `shutdown` saves and exits 0.
import json
import sys

from boards import virtual
from firmware.app import main as firmware_main
from sim.vboard import Reset, Shutdown, VirtualHal

EXIT_REPL = 3


def run(cfg):
    hal = VirtualHal(virtual, cfg["flash"], cfg["ser_fd"], cfg["ctl_in"], cfg["ctl_out"],
                     cfg["speed"], cfg["clock0_ts"], cfg["seed"])
    while True:
        hal.wdt_ms = 0   # a reset stops the watchdog until the firmware starts it again
        hal.app = None
        try:
            if firmware_main(hal) == "maintenance" and hal.app is not None:
                hal.save_plant()
                return EXIT_REPL
        except Reset as r:
            app = hal.app
            if r.clean and app is not None:
                now = hal.ticks_ms()
                app.pump.service(now)
                app.pump.save(True)
                app.save_log()
            hal.cause = r.cause
            hal.save_plant()
        except Shutdown:
            app = hal.app
            if app is not None and app.pump.t:
                app.pump.service(hal.ticks_ms())
                app.pump.save(True)
                app.save_log()
            hal.save_plant()
            return 0


sys.exit(run(json.loads(sys.argv[1])))
