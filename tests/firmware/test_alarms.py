"""The stroke path, the supervisor and the alarm state test alarm bits against constants
inlined in the firmware's modules (const() costs no RAM and no lookup); they must match the
codes they stand for. And the alarm state's own rules: what each change returns."""

import importlib
from pathlib import Path

from firmware import alarms, codes, guard, monitor, rx

# name of an inlined constant -> the value it stands for
INLINED = {
    "_CRITICAL": codes.CRITICAL_MASK,
    "_EVENTS": codes.EVENT_ALARMS_MASK,
    "_DOSE_LIMIT_BIT": 1 << codes.AL_DOSE_LIMIT,
    "_RES_LOW_BIT": 1 << codes.AL_RESERVOIR_LOW,
    "_FLASH_BIT": 1 << codes.AL_FLASH_FAILING,
    "_MEMORY_BIT": 1 << codes.AL_MEMORY_ERROR,
    "_OCCLUSION_BIT": 1 << codes.AL_OCCLUSION,
    "_REFILL_DUE_BIT": 1 << codes.AL_REFILL_DUE,
    "_EXPIRED_BIT": 1 << codes.AL_DRUG_EXPIRED,
    "_STOPPED_BIT": 1 << codes.AL_THERAPY_STOPPED,
    "_ERI_BIT": 1 << codes.AL_BATTERY_ERI,
    "_EOS_BIT": 1 << codes.AL_BATTERY_EOS,
    "_REMINDER_S": rx.DEFAULT_REMINDER_S,
    "_R_LATE": codes.R_LATE,
    "_R_UNSAVED": codes.R_UNSAVED,
    "_DONE": codes.DONE,
    "_SAVE_AT": guard.SAVE_AT,
    "_BAD": monitor.BAD,
}


def test_inlined_alarm_masks_match_the_codes():
    seen = 0
    for path in sorted(Path(codes.__file__).parent.glob("*.py")):
        if path.stem == "main":
            continue   # the device's entry: imports the board
        mod = importlib.import_module("firmware." + path.stem)
        for name, value in INLINED.items():
            if hasattr(mod, name):
                seen += 1
                assert getattr(mod, name) == value, "%s.%s" % (path.stem, name)
    assert seen >= 12   # the check looked where the constants are


def test_inlined_tone_intervals_match_the_codes():
    assert alarms._CRIT_EVERY_MS == codes.TONE_EVERY_MS[codes.TONE_CRITICAL]
    assert alarms._WARN_EVERY_MS == codes.TONE_EVERY_MS[codes.TONE_WARNING]


def test_new_alarm_codes_have_their_interface_names_and_priorities():
    assert codes.ALARM_NAMES[codes.AL_REFILL_DUE] == "refill_due"
    assert codes.ALARM_NAMES[codes.AL_DRUG_EXPIRED] == "drug_expired"
    assert codes.ALARM_NAMES[codes.AL_FLASH_FAILING] == "memory_error"
    for code in (codes.AL_REFILL_DUE, codes.AL_DRUG_EXPIRED, codes.AL_FLASH_FAILING):
        assert codes.priority(code) == "warning"
    assert codes.priority(codes.AL_MEMORY_ERROR) == "critical"


def test_the_alarm_state_returns_what_changed():
    a = alarms.AlarmState()
    bit = 1 << codes.AL_OCCLUSION
    assert a.start(codes.AL_OCCLUSION, 100) == bit and a.tone_at == 100
    assert a.start(codes.AL_OCCLUSION, 200) == 0 and a.tone_at == 100  # already on
    assert a.critical() and a.ack(codes.AL_OCCLUSION, 250) == bit and a.acked == bit
    assert a.tone_due(300) == 0                                         # silenced
    assert a.end(codes.AL_OCCLUSION) == bit and a.end(codes.AL_OCCLUSION) == 0
    assert a.ack(codes.AL_OCCLUSION, 350) == 0                          # not active
    assert a.start(codes.AL_OCCLUSION, 400) == bit and a.acked == 0     # loud again
    assert a.tone_due(400) == codes.TONE_CRITICAL
