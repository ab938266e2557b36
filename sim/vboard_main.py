# Entry point of the virtual Pico's firmware process (started by sim/board.py), on the
# MicroPython VM or CPython:  vboard_main.py CONFIG_JSON
#
# It plays the part of the chip and its boot loader around the firmware. First the loader
# (firmware/loader.py, imported as the top-level module a Pico has at the root of its flash)
# chooses the firmware from the flash directory and puts it first on the import path, before
# anything imports the firmware package. Then it runs the firmware's own main
# (firmware/app.py) on the simulated board. A reset (watchdog, power loss, reset button) asks
# the loader again: the same firmware starts again in this process with the plant untouched;
# another one (an update, a rollback) or an uncaught exception ends the process with
# EXIT_RESET, and sim/board.py starts a fresh one, as a Pico boots from nothing. A development
# build's `maintenance` hands the line to a REPL (EXIT_REPL); a harness `shutdown` saves and
# exits 0.
import json
import sys

EXIT_REPL = 3
EXIT_RESET = 4


def _loader():
    here = sys.argv[0]
    root = here[:here.rfind("/sim/")] if "/sim/" in here else "."
    sys.path.append(root + "/firmware")
    import loader
    sys.path.pop()
    return loader


def run(cfg):
    loader = _loader()
    fs = loader.Fs(cfg["flash"])
    slot = loader.choose(fs)
    loader.activate(fs, slot)

    from boards import virtual
    from sim.vboard import Reset, Shutdown, VirtualHal

    hal = VirtualHal(virtual, cfg["flash"], cfg["ser_fd"], cfg["ctl_in"], cfg["ctl_out"],
                     cfg["speed"], cfg["clock0_ts"], cfg["seed"])
    while True:
        hal.wdt_ms = 0   # a reset stops the watchdog until the firmware starts it again
        hal.app = None   # the harness reaches the running firmware through this
        try:
            from firmware.app import main as firmware_main
            if firmware_main(hal, hal.attach) == "maintenance" and hal.app is not None:
                hal.save_plant()
                return EXIT_REPL
        except Reset as r:
            app = hal.app
            if r.clean and app is not None:
                app.shutdown(hal.ticks_ms())
            hal.cause = r.cause
            hal.save_plant()
        except Shutdown:
            app = hal.app
            if app is not None and app.therapy.pump.t:
                app.shutdown(hal.ticks_ms())
            hal.save_plant()
            return 0
        except Exception as e:  # noqa: BLE001  a production firmware never stops: log, reset
            loader.crashed(fs, slot, e)
            hal.save_plant()
            return EXIT_RESET
        st = loader.load(fs)
        if (st["active"] if st is not None else loader.BASE) != slot \
                or loader.choose(fs) != slot:
            # Another firmware boots next: a fresh process imports it (and its loader takes
            # the try a firmware on trial spends on this boot).
            hal.save_plant()
            return EXIT_RESET


sys.exit(run(json.loads(sys.argv[1])))
