"""The stroke path tests alarm bits against constants inlined in firmware/pump.py; they must
match the codes they stand for."""

from firmware import codes, pump


def test_inlined_alarm_masks_match_the_codes():
    assert pump._CRITICAL == codes.CRITICAL_MASK
    assert pump._DOSE_LIMIT_BIT == 1 << codes.AL_DOSE_LIMIT
    assert pump._RES_LOW_BIT == 1 << codes.AL_RESERVOIR_LOW
