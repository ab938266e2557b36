"""The stroke path and the alarm state test alarm bits against constants inlined in
firmware/pump.py, firmware/kernel.py and firmware/alarms.py; they must match the codes they
stand for. And the alarm state's own rules: what each change returns."""

from firmware import alarms, codes, kernel, pump


def test_inlined_alarm_masks_match_the_codes():
    assert pump._CRITICAL == kernel._CRITICAL == alarms._CRITICAL == codes.CRITICAL_MASK
    assert pump._DOSE_LIMIT_BIT == 1 << codes.AL_DOSE_LIMIT
    assert pump._RES_LOW_BIT == 1 << codes.AL_RESERVOIR_LOW
    assert pump._FLASH_BIT == 1 << codes.AL_FLASH_FAILING
    assert alarms._EVENTS == codes.EVENT_ALARMS_MASK
    assert pump._R_LATE == codes.R_LATE and pump._R_UNSAVED == codes.R_UNSAVED


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
    assert a.critical() and a.ack(codes.AL_OCCLUSION) == bit and a.acked == bit
    assert a.tone_due(300) == 0                                         # silenced
    assert a.end(codes.AL_OCCLUSION) == bit and a.end(codes.AL_OCCLUSION) == 0
    assert a.ack(codes.AL_OCCLUSION) == 0                               # not active
    assert a.start(codes.AL_OCCLUSION, 400) == bit and a.acked == 0     # loud again
    assert a.tone_due(400) == codes.TONE_CRITICAL
