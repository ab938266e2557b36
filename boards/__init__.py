# Board descriptions: pin maps and calibration constants. Firmware logic never names a pin.
#
# A board is one module here: boards/virtual.py (the simulated Pico), boards/pico.py (the
# Raspberry Pi Pico dev board) and boards/implant.py (the implant's own electronics). Each
# defines the same upper-case constants, named with their units (STROKE_NL, P_RAW_PER_KPA,
# WDT_TIMEOUT_MS, ...); tests/boards/test_board_data.py holds every board to the virtual one's
# list. The RP2040 boards add their pins (PIN_*) and motor data (STEPS_PER_STROKE, STEP_HZ, ...),
# which only boards/ reads.
#
# The hardware boards also define `Hal`, the one object the firmware's main loop talks to. Its
# constructor takes no arguments, and it carries every board constant as an attribute
# (hal.STROKE_NL), so firmware objects read board data from the hal they were given. What it
# offers is a checked contract: firmware/hal.pyi, as typing Protocols (BoardData, Mechanism,
# Hal), against which pyright checks boards/rp2_common.py (make typecheck) and every HAL of the
# simulator and the tests (tests/typecheck/hal_conformance.py). In short: ticks_ms, clock_ts,
# set_clock_ts, reset_cause, stroke (DONE, NOT_DONE or UNCERTAIN from firmware/codes.py),
# read_pressure, read_battery, tone, led, start_watchdog, feed, wait (False when it slept its
# time out with nothing waiting), read_into (the bytes waiting, at most a buffer's, never
# blocking), read_byte, write, uid, storage, reset; and, where a board has one, button_held()
# (the provisioning button: True while pressed; on a Pico rp2.bootsel_button(), or PIN_BUTTON
# at BUTTON_ACTIVE), which the firmware looks at for a minute after each boot only.
#
# The shell passes its own save port to the pump (firmware/app.py): nothing is attached to the
# HAL. Creating a Hal also turns off Ctrl-C on the serial line (micropython.kbd_intr(-1)), so
# stray bytes cannot stop the control loop; whoever hands the REPL back (the maintenance
# command) turns it on again with micropython.kbd_intr(3).
