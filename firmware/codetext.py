# The words for people that only some replies need: each event's name (the log's rows) and
# each refusal's sentence (an E_REFUSED reply). On the Pico this module is loaded for such a
# reply and let go after it (firmware/handlers.py, compat.unload): held for good, its strings
# and tables took about 4 KB of the heap (docs/benchmarks.md). The codes and the names that status
# replies use every time (alarms, refusal reasons) are in firmware/codes.py.
from firmware import codes as c

EVENT_NAMES = {
    c.EV_BOOT: "boot", c.EV_PROGRAM: "program", c.EV_PB_START: "patient_bolus",
    c.EV_PB_DENIED: "patient_bolus_denied", c.EV_CB_START: "clinician_bolus",
    c.EV_CB_DENIED: "clinician_bolus_denied", c.EV_BOLUS_END: "bolus_end", c.EV_ALARM: "alarm",
    c.EV_ALARM_CLEAR: "alarm_clear", c.EV_STROKE_REFUSED: "stroke_refused", c.EV_STOP: "stop",
    c.EV_RESUME: "resume", c.EV_REFILL: "refill", c.EV_MISSED: "missed_strokes", c.EV_STEP: "step",
    c.EV_ACK: "ack", c.EV_MOTOR_RETRY: "motor_retry", c.EV_REFILL_CHECK: "refill_check",
    c.EV_CONCENTRATION: "concentration_change", c.EV_LOG_LOST: "log_lost",
    c.EV_RECORD_FALLBACK: "record_fallback", c.EV_CLOCK_SET: "clock_set",
    c.EV_CLOCK_LOST: "clock_lost", c.EV_KEYS: "keys", c.EV_BUTTON: "button", c.EV_UPDATE: "update",
    c.EV_ROLLBACK: "rollback", c.EV_CRASH: "crash", c.EV_KEY_FALLBACK: "key_fallback",
    c.EV_STROKE_UNCERTAIN: "stroke_uncertain", c.EV_SAVE_FAILED: "save_failed",
    c.EV_ASSUMED: "account_assumed", c.EV_MIGRATED: "record_migrated",
    c.EV_PRIME_ARMED: "prime_armed", c.EV_FILL: "fill", c.EV_SUSPEND_RESTORED: "suspend_restored",
    c.EV_PROGRAM_BOLUS: "program_bolus", c.EV_PROGRAM_BOLUS_LIMITS: "program_bolus_limits",
    c.EV_CATHETER: "catheter_revised", c.EV_FILL_DRUG: "fill_drug_changed",
    c.EV_HISTORY_FAILED: "history_failed", c.EV_HISTORY_LOST: "history_lost",
    c.EV_SELF_TEST: "self_test", c.EV_SELF_TEST_FAIL: "self_test_failed",
    c.EV_CHECK_FAIL: "check_failed", c.EV_CHECK_PASS: "check_passed", c.EV_DRIVER: "driver_status",
    c.EV_DIE_TEMP: "die_temperature", c.EV_WATCHDOG_PROVED: "watchdog_proved",
}
REASON_TEXT = {
    c.R_LOCKOUT: "the lockout since the last patient bolus has not passed",
    c.R_MAX_PER_DAY: "the maximum number of patient boluses in 24 hours has been reached",
    c.R_ALARM: "an alarm is active",
    c.R_DAILY_MAX: "the dose would exceed the maximum daily dose",
    c.R_NOT_PROGRAMMED: "the pump has no prescription",
    c.R_STOPPED: "delivery is stopped",
    c.R_NO_PATIENT_BOLUS: "the prescription has no patient bolus",
    c.R_BOLUS_ACTIVE: "a bolus of this kind is already running",
    c.R_MOTOR_RATE: "the motor cannot deliver that fast",
    c.R_BAD_VALUE: "a value is out of range",
    c.R_BRIDGE_UNCONFIRMED: "a concentration change needs the bridge volume confirmed",
    c.R_PRODUCTION: "a production build never hands out the REPL: update it with make flash",
    c.R_LATE: "the stroke came too late to be given on time (dropped, never made up)",
    c.R_RESERVOIR: "the reservoir is at its minimum",
    c.R_SENSOR: "the pressure sensor cannot be trusted",
    c.R_OCCLUSION: "the outlet pressure shows an occlusion",
    c.R_UNSAVED: "the dose account could not be saved to flash",
    c.R_CATHETER: "the settings hold no catheter, or the volume is more than the catheter holds",
    c.R_PRIME_UNCONFIRMED: ("a priming bolus needs its second, confirming step (same volume, the "
                            "id the first step gave, within 2 minutes)"),
    c.R_ASSUMPTION: ("an assumption about the last 24 hours applies only after memory_error, and "
                     "must be within the daily maximum"),
    c.R_DRUG_MISMATCH: ("the program's drug or concentration is not the one in the reservoir: "
                        "refill with it first (a change of drug or concentration comes with a "
                        "refill)"),
    c.R_CATHETER_FULL: ("the catheter is already full: a prime would push a catheter's volume of "
                        "drug into the patient; record a new or revised catheter first (pumpctl "
                        "catheter --revised)"),
    c.R_CB_RUNNING: ("a clinician bolus is running: a patient bolus is not given on top of it; "
                     "ask again when it has ended"),
}
