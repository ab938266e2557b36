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
# (hal.STROKE_NL), so firmware objects read board data from the hal they were given. It offers:
#
#   Hal()                    sets up pins, the step-pulse PIO program, ADCs, PWM and the serial
#                            line; does not start the watchdog.
#   ticks_ms()               time.ticks_ms(): milliseconds, wrapping at 2**30.
#   clock_ts()               the pump clock: seconds since 2024-01-01 00:00 (from the RTC).
#   set_clock_ts(ts)         sets the RTC to that pump-clock second.
#   reset_cause()            1 if the last reset was the watchdog's, else 0 (a reset the
#                            firmware asked for with reset() is not the watchdog's, even where
#                            the chip makes it one).
#   stroke()                 one whole stroke (STEPS_PER_STROKE steps made by the PIO); returns
#                            when it is done, with one of three outcomes:
#                              True or 1  done: the whole stroke was made;
#                              False or 0 not done: nothing moved (the driver was already in a
#                                         stall or fault, or cannot be trusted); the firmware
#                                         retries STALL_RETRIES times, then motor_stall;
#                              2          uncertain: it stalled partway (DIAG seen during or
#                                         right after the pulses, or the step machine hung),
#                                         so some drug may have moved. The firmware counts it
#                                         as given (dose guard and reservoir), does not retry,
#                                         and raises motor_stall.
#                            Anything else is taken as done only if truthy and not 2: return
#                            exactly these. Allocates nothing.
#   read_pressure()          raw 16-bit ADC reading of the outlet pressure sensor (read_u16);
#                            allocates nothing. Scaled by P_RAW_ZERO / P_RAW_PER_KPA.
#   read_battery()           raw 16-bit ADC reading of the battery divider; allocates nothing.
#                            mV = raw * B_MV_NUM // B_MV_DEN.
#   tone(pattern)            starts buzzer pattern firmware.codes.TONE_CRITICAL (1) or
#                            TONE_WARNING (2) and returns at once.
#   led(on)                  status LED (a no-op on a board without one).
#   start_watchdog(ms)       machine.WDT with that timeout (at most about 8300 ms).
#   feed()                   feeds the watchdog; a no-op before start_watchdog.
#   wait(ms)                 sleeps up to ms and returns early when a byte is waiting on the
#                            serial line. It may also return early for its own reasons: it never
#                            sleeps longer than half the watchdog timeout, so the loop always
#                            comes round to feed. Returns False when it slept its time out with
#                            nothing waiting (the loop then neither reads the line nor services
#                            the pump before its deadline: a cheap idle wake-up), anything else
#                            (True, None) when it woke for a byte or another event. Allocates
#                            nothing.
#   read_into(buf)           the bytes waiting on the serial line into the bytearray buf, at
#                            most len(buf); returns how many (0: none). Never blocks, allocates
#                            nothing. The loop reads the line through this.
#   read_byte()              the next byte from the serial line, or -1 if none is waiting;
#                            never blocks.
#   write(data)              bytes to the serial line.
#   uid()                    the pump id: machine.unique_id() as hex text.
#   storage()                an object with read(path) -> bytes or None and write(path, data)
#                            (firmware.store.FileDev on littlefs, under /data).
#   reset()                  a deliberate reset (machine.reset()); the clock carries over where
#                            the board can keep it.
#   button_held()            True while the provisioning button is pressed (the physical act
#                            that allows provisioning a pump again: docs/security.md). On a Pico
#                            rp2.bootsel_button(); with PIN_BUTTON in the board data, that GPIO
#                            at BUTTON_ACTIVE. Allocates nothing. The firmware looks at it for a
#                            minute after each boot only.
#
# The firmware attaches save_state itself; boards do not implement it. Creating a Hal also
# turns off Ctrl-C on the serial line (micropython.kbd_intr(-1)), so stray bytes cannot stop the
# control loop; whoever hands the REPL back (the maintenance command) turns it on again with
# micropython.kbd_intr(3).
