# Stable numeric codes for events, alarms and refusals, with their names for people.
# Numbers go into the event log and over the wire; names are for humans and JSON.
from firmware.compat import const

# What hal.stroke() reports (boards/__init__.py, firmware/hal.pyi), and what the pump acts on:
NOT_DONE = const(0)    # nothing moved: retried, then motor_stall
DONE = const(1)        # the whole stroke was made
UNCERTAIN = const(2)   # it stalled partway: counted as given, not retried, motor_stall

# Events in the log.
EV_BOOT = const(1)
EV_PROGRAM = const(2)
EV_PB_START = const(3)        # a = dose_nl
EV_PB_DENIED = const(4)       # a = reason
EV_CB_START = const(5)        # a = dose_nl, b = duration_ms
EV_CB_DENIED = const(6)       # a = reason
EV_BOLUS_END = const(7)       # a = 1 patient / 2 clinician, b = 1 if cut short
EV_ALARM = const(8)           # a = alarm code
EV_ALARM_CLEAR = const(9)     # a = alarm code
EV_STROKE_REFUSED = const(10)  # a = reason (first refusal of a run)
EV_STOP = const(11)           # a = seconds until the automatic resume (0: until resume)
EV_RESUME = const(12)         # a = 1 when a timed stop ended by itself
EV_REFILL = const(13)         # a = reservoir volume in uL
EV_MISSED = const(14)         # a = strokes skipped because the loop ran late (never caught up)
EV_STEP = const(15)           # a = step index, b = rate in nL/day
EV_ACK = const(16)            # a = alarm code
EV_MOTOR_RETRY = const(17)    # a = failed attempts before the stroke went through
EV_REFILL_CHECK = const(18)   # a = expected residual uL (the pump's account), b = measured uL
EV_CONCENTRATION = const(19)  # a = new concentration in ug/mL, b = bridge volume in nL
EV_LOG_LOST = const(20)       # the stored event log was damaged and has been restarted
EV_RECORD_FALLBACK = const(21)  # the newest state record was damaged: the older one was used
EV_CLOCK_SET = const(22)      # the pump clock was set; a = new minus old, in s (clamped to 2**29)
EV_CLOCK_LOST = const(23)     # the board's clock read a = s before the clock the pump assumes
EV_KEYS = const(26)           # a = 1 provisioned (never had keys), 2 re-keyed, 3 provisioned
#                               after the button at the pump
EV_BUTTON = const(27)         # the button was held at boot: provisioning is open for a while
EV_UPDATE = const(28)         # a = 1 switched to a new firmware, 2 it confirmed; b = slot
#                               (1 a, 2 b)
EV_ROLLBACK = const(29)       # the loader went back: a = slot left, b = 1 trial ran out, 2 damaged
EV_CRASH = const(30)          # an uncaught exception reset the board: a = slot, b = 1 on trial
EV_KEY_FALLBACK = const(31)   # the newest key record was damaged; the older one (counters moved
#                               on) was used
EV_STROKE_UNCERTAIN = const(32)  # the motor stalled partway through a stroke: counted as given
EV_SAVE_FAILED = const(33)    # a = failed state saves in a row (the reserve is kept unsaved)
EV_ASSUMED = const(34)        # the lost dose account was rebuilt: a = nL assumed in the last 24 h
EV_MIGRATED = const(35)       # the state record was migrated: a = from layout, b = to layout
EV_PRIME_ARMED = const(36)    # a priming bolus awaits confirmation: a = dose nL, b = catheter nL
EV_FILL = const(37)           # a = stability of this fill in hours (0: not given), b = fills
EV_SUSPEND_RESTORED = const(38)  # a timed stop went on after a restart: a = s left, b = 1 if the
                                 # clock counted the time the pump was off


# Alarm codes (INTERFACES.md) and their priorities.
AL_OCCLUSION = const(1)
AL_RESERVOIR_LOW = const(2)
AL_RESERVOIR_EMPTY = const(3)
AL_MOTOR_STALL = const(4)
AL_BATTERY_ERI = const(5)
AL_BATTERY_EOS = const(6)
AL_DOSE_LIMIT = const(7)
AL_MEMORY_ERROR = const(8)
AL_SENSOR_FAULT = const(9)
AL_WATCHDOG_RESET = const(10)
AL_BATTERY_SENSOR = const(11)    # reported as sensor_fault, a warning: delivery goes on
AL_REFILL_DISCREPANCY = const(12)  # the measured residual disagrees with the pump's account
AL_CLOCK_LOST = const(13)        # the board's clock restarted (no kept clock): set it
# The key record does not verify. Delivery goes on as programmed, so by INTERFACES.md's
# definition it is a warning; what it locks (every change of therapy) is in docs/security.md.
AL_KEY_DAMAGED = const(14)
AL_REFILL_DUE = const(15)        # the projected low-reservoir date is within the refill notice
AL_DRUG_EXPIRED = const(16)      # the fill is older than the drug's stability in the pump
AL_FLASH_FAILING = const(17)     # reported as memory_error, a warning: a state save failed and
                                 # delivery goes on within the reserve saved before (internal)

ALARM_NAMES = {
    AL_OCCLUSION: "occlusion", AL_RESERVOIR_LOW: "reservoir_low",
    AL_RESERVOIR_EMPTY: "reservoir_empty", AL_MOTOR_STALL: "motor_stall",
    AL_BATTERY_ERI: "battery_eri", AL_BATTERY_EOS: "battery_eos", AL_DOSE_LIMIT: "dose_limit",
    AL_MEMORY_ERROR: "memory_error", AL_SENSOR_FAULT: "sensor_fault",
    AL_WATCHDOG_RESET: "watchdog_reset", AL_BATTERY_SENSOR: "sensor_fault",
    AL_REFILL_DISCREPANCY: "refill_discrepancy", AL_CLOCK_LOST: "clock_lost",
    AL_KEY_DAMAGED: "key_damaged", AL_REFILL_DUE: "refill_due",
    AL_DRUG_EXPIRED: "drug_expired", AL_FLASH_FAILING: "memory_error",
}
# Alarms that record something that happened rather than a condition that persists: an
# acknowledgement clears them.
EVENT_ALARMS_MASK = (1 << AL_WATCHDOG_RESET) | (1 << AL_REFILL_DISCREPANCY)
# Critical alarms stop delivery; warnings let it go on.
CRITICAL = (AL_OCCLUSION, AL_RESERVOIR_EMPTY, AL_MOTOR_STALL, AL_BATTERY_EOS,
            AL_MEMORY_ERROR, AL_SENSOR_FAULT)
CRITICAL_MASK = 0
for _code in CRITICAL:
    CRITICAL_MASK |= 1 << _code


def priority(alarm):
    return "critical" if alarm in CRITICAL else "warning"


# Why a request or a stroke was refused.
R_LOCKOUT = const(1)
R_MAX_PER_DAY = const(2)
R_ALARM = const(3)
R_DAILY_MAX = const(4)
R_NOT_PROGRAMMED = const(5)
R_STOPPED = const(6)
R_NO_PATIENT_BOLUS = const(7)
R_BOLUS_ACTIVE = const(8)
R_MOTOR_RATE = const(9)
R_BAD_VALUE = const(10)
R_BRIDGE_UNCONFIRMED = const(11)
R_PRODUCTION = const(14)
# Why the safety kernel (firmware/kernel.py) refused a stroke, and the priming/assumption checks.
R_LATE = const(18)
R_RESERVOIR = const(19)
R_SENSOR = const(20)
R_OCCLUSION = const(21)
R_UNSAVED = const(22)
R_CATHETER = const(23)
R_PRIME_UNCONFIRMED = const(24)
R_ASSUMPTION = const(25)

REASON_NAMES = {
    R_LOCKOUT: "lockout", R_MAX_PER_DAY: "max_per_day", R_ALARM: "alarm",
    R_DAILY_MAX: "daily_max", R_NOT_PROGRAMMED: "not_programmed", R_STOPPED: "stopped",
    R_NO_PATIENT_BOLUS: "no_patient_bolus", R_BOLUS_ACTIVE: "bolus_active",
    R_MOTOR_RATE: "motor_rate", R_BAD_VALUE: "bad_value",
    R_BRIDGE_UNCONFIRMED: "bridge_unconfirmed", R_PRODUCTION: "production_build",
    R_LATE: "late", R_RESERVOIR: "reservoir",
    R_SENSOR: "pressure_sensor", R_OCCLUSION: "occlusion", R_UNSAVED: "unsaved",
    R_CATHETER: "catheter", R_PRIME_UNCONFIRMED: "prime_unconfirmed",
    R_ASSUMPTION: "assumption",
}

# Buzzer patterns (played by the board: hal.tone(pattern)). Critical alarms sound two
# alternating tones every 10 minutes until acknowledged; warnings a single tone once an hour.
TONE_CRITICAL = const(1)
TONE_WARNING = const(2)
TONE_EVERY_MS = {TONE_CRITICAL: 600000, TONE_WARNING: 3600000}
# (frequency Hz, duration ms) pairs, in order.
TONE_PATTERNS = {
    TONE_CRITICAL: ((880, 200), (660, 200), (880, 200), (660, 200)),
    TONE_WARNING: ((1000, 300),),
}

# Issue 14's events (40-45): the patient-bolus settings a program installed, logged right after
# EV_PROGRAM so the log shows the whole prescription's limits.
EV_PROGRAM_BOLUS = const(40)         # a = patient bolus dose nL (0: none), b = duration s
EV_PROGRAM_BOLUS_LIMITS = const(41)  # a = lockout s, b = at most this many in 24 h

# Issue 19 (what a dose means): the fill's drug, the catheter, a stop that is not forgotten.
EV_CATHETER = const(50)        # a new or revised catheter was recorded: it is empty
EV_FILL_DRUG = const(51)       # the fill is of another drug than the program's: a = 1 (delivery
#                                stops until a program of that drug)
AL_THERAPY_STOPPED = const(24)  # a stop without an end has lasted the prescription's stop_reminder
ALARM_NAMES[AL_THERAPY_STOPPED] = "therapy_stopped"
R_DRUG_MISMATCH = const(30)
R_CATHETER_FULL = const(31)
R_CB_RUNNING = const(32)
REASON_NAMES[R_DRUG_MISMATCH] = "drug_mismatch"
REASON_NAMES[R_CATHETER_FULL] = "catheter_full"
REASON_NAMES[R_CB_RUNNING] = "clinician_bolus_running"

# The therapy history's events (firmware/history.py, firmware/histpages.py; issue 19).
EV_HISTORY_FAILED = const(52)  # a history entry could not be written: a = entries waiting in
#                                RAM (retried), b = entries lost because too many waited
EV_HISTORY_LOST = const(53)    # the history's open page was damaged: a = the page begun anew,
#                                b = entries it held (-1: not known)

# ---- Issue 20: the pump checks itself (firmware/selftest.py) ---------------------------------
# Alarm codes 25..29 (18..24 are left for other work; an alarm's bit must stay a small int, so
# 29 is the last code there is). self_test_failed has two priorities, as sensor_fault has: a
# part the pump needs to deliver safely (code, memory, motor driver, pressure sensor) is
# critical, any other (battery sensor, buzzer, watchdog) a warning.
AL_SELF_TEST = const(25)         # a self-test part needed to deliver safely failed
AL_SELF_TEST_WARN = const(26)    # reported as self_test_failed, a warning: another part failed
AL_DRIVER_HOT = const(27)        # the motor driver's over-temperature pre-warning (DRV_STATUS otpw)
AL_DRIVER_FAULT = const(28)      # the driver shut down (ot), a short, an open coil, or silent
AL_DIE_TEMP = const(29)          # the RP2040's die temperature is outside its band (a warning)
ALARM_NAMES[AL_SELF_TEST] = "self_test_failed"
ALARM_NAMES[AL_SELF_TEST_WARN] = "self_test_failed"
ALARM_NAMES[AL_DRIVER_HOT] = "driver_hot"
ALARM_NAMES[AL_DRIVER_FAULT] = "driver_fault"
ALARM_NAMES[AL_DIE_TEMP] = "die_temperature"
CRITICAL += (AL_SELF_TEST, AL_DRIVER_FAULT)
CRITICAL_MASK |= (1 << AL_SELF_TEST) | (1 << AL_DRIVER_FAULT)

# Events 60..69: the self-test and the periodic checks.
EV_SELF_TEST = const(60)         # the power-on self-test ran: a = parts passed, b = parts failed
#                                  (bit masks, firmware/selftest.py PARTS)
EV_SELF_TEST_FAIL = const(61)    # a part failed: a = part, b = what was found (per part)
EV_CHECK_FAIL = const(62)        # a periodic check failed: a = part, b = what was found
EV_CHECK_PASS = const(63)        # a periodic check passed again after a failure: a = part
EV_DRIVER = const(64)            # DRV_STATUS showed a = its flag bits (-1: no answer)
EV_DIE_TEMP = const(65)          # the die left its band: a = temperature in 0.1 degC
EV_WATCHDOG_PROVED = const(66)   # the watchdog reset the chip as the self-test asked
