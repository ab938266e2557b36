"""Alarm tones as an observable: what the buzzer plays and when (docs/alarms.md, Tones).

The pump runs on a healthy board whose battery voltage the test sets: a falling cell raises
battery_eri (a warning) and then battery_eos (critical), a recovering one clears them. The
board records each hal.tone(pattern) with its time, the trace the simulator and the virtual
board report as `tone_trace`."""

from firmware import codes
from firmware.therapy import Therapy
from tests.testboard import HealthyHal

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
PARAMS = {"conc_ng_ml": 1_000_000, "steps": [[0, 100_000]], "max_daily_ng": 200_000,
          "low_res_nl": 0, "pb": None}


class Hal(HealthyHal):
    def __init__(self):
        HealthyHal.__init__(self)
        self.mv = 3100
        self.now = 0
        self.trace = []

    def read_battery(self):
        return self.mv * self.B_MV_DEN // self.B_MV_NUM + 1

    def tone(self, pattern):
        self.trace.append((self.now, pattern))

    def save_state(self, buf):
        return True


class Log:
    def add(self, code, now, a, b):
        pass


def running(params=PARAMS):
    hal = Hal()
    th = Therapy(hal, Log(), hal.save_state)
    th.boot(0, 0, params, None)
    th.refill(0, 20_000_000)
    return hal, th


def run(hal, th, ms):
    """As the main loop does: service at each deadline the pump gives (0: at once, again)."""
    pump = th.pump
    end = hal.now + ms
    zeros = 0
    while hal.now < end:
        d = pump.next_in_ms(hal.now)
        zeros = zeros + 1 if d == 0 else 0
        assert zeros < 5, "the pump keeps asking to be serviced at once"
        hal.now = min(end, hal.now + d)
        pump.service(hal.now)


def tones(hal, since=0):
    return [(t, p) for t, p in hal.trace if t >= since]


def test_the_critical_and_warning_patterns_sound_different():
    crit = codes.TONE_PATTERNS[codes.TONE_CRITICAL]
    warn = codes.TONE_PATTERNS[codes.TONE_WARNING]
    assert crit != warn
    # told apart by ear: two alternating pitches against one, and a different length
    assert len({hz for hz, _ in crit}) == 2 and len({hz for hz, _ in warn}) == 1
    assert sum(ms for _, ms in crit) != sum(ms for _, ms in warn)


def test_a_warning_plays_the_warning_pattern_hourly_and_a_critical_one_every_ten_minutes():
    hal, th = running()
    hal.mv = 2800                               # below ERI, above EOS: a warning
    run(hal, th, 3 * HOUR)
    assert th.sup.alarms & (1 << codes.AL_BATTERY_ERI)
    warn = tones(hal)
    assert warn and {p for _, p in warn} == {codes.TONE_WARNING}
    assert [b - a for (a, _), (b, _) in zip(warn, warn[1:])] == [HOUR] * (len(warn) - 1)
    assert len(warn) >= 3
    start = hal.now
    hal.mv = 2700                               # below EOS too: critical
    run(hal, th, HOUR)
    crit = tones(hal, start)
    assert th.sup.alarms & (1 << codes.AL_BATTERY_EOS)
    assert {p for _, p in crit} == {codes.TONE_CRITICAL}  # the louder one wins
    assert [b - a for (a, _), (b, _) in zip(crit, crit[1:])] == [10 * MIN] * (len(crit) - 1)
    assert len(crit) >= 5


def test_an_acknowledgement_silences_and_a_returning_condition_sounds_again():
    hal, th = running()
    hal.mv = 2800
    run(hal, th, HOUR)
    assert th.sup.alarms & (1 << codes.AL_BATTERY_ERI) and tones(hal)
    assert th.ack(hal.now, codes.AL_BATTERY_ERI)
    acked_at = hal.now
    run(hal, th, 6 * HOUR)
    assert th.sup.alarms & (1 << codes.AL_BATTERY_ERI)    # the condition persists ...
    assert tones(hal, acked_at + 1) == []               # ... but the buzzer is silent
    hal.mv = 3100                                       # a new cell: the alarm ends
    run(hal, th, HOUR)
    assert not th.sup.alarms & (1 << codes.AL_BATTERY_ERI)
    back = hal.now
    hal.mv = 2800                                       # and comes back: it sounds again
    run(hal, th, 2 * HOUR)
    again = tones(hal, back)
    assert again and again[0][1] == codes.TONE_WARNING
    assert len(again) >= 2                              # and keeps repeating, unacknowledged


def test_acknowledging_the_critical_alarm_leaves_the_warning_sounding_on_its_own_schedule():
    hal, th = running()
    hal.mv = 2700
    run(hal, th, HOUR)
    assert th.sup.alarms & (1 << codes.AL_BATTERY_EOS)
    th.ack(hal.now, codes.AL_BATTERY_EOS)
    t = hal.now
    run(hal, th, 50 * MIN)                        # within the hour of silence
    later = tones(hal, t + 1)
    assert later and {p for _, p in later} == {codes.TONE_WARNING}  # ERI is still unacked


def test_an_acknowledged_critical_alarm_sounds_again_after_the_silence():
    """Regression (issue 19, item 7): one acknowledgement silenced an occlusion for as long as
    it lasted (6.5 hours in the report). A critical alarm sounds again after alarm_silence (an
    hour by default), and every 10 minutes from then, for as long as it lasts."""
    hal, th = running()
    hal.mv = 2700
    run(hal, th, HOUR)
    th.ack(hal.now, codes.AL_BATTERY_EOS)
    th.ack(hal.now, codes.AL_BATTERY_ERI)
    t = hal.now
    run(hal, th, 3 * HOUR)
    crit = [v for v, p in tones(hal, t + 1) if p == codes.TONE_CRITICAL]
    assert crit and HOUR <= crit[0] - t <= HOUR + 5 * MIN     # at the next check after the hour
    assert [b - a for a, b in zip(crit, crit[1:])] == [10 * MIN] * (len(crit) - 1)


def test_an_acknowledged_warning_sounds_again_after_a_day():
    hal, th = running()
    hal.mv = 2800
    run(hal, th, HOUR)
    th.ack(hal.now, codes.AL_BATTERY_ERI)
    t = hal.now
    run(hal, th, 23 * HOUR)
    assert tones(hal, t + 1) == []
    run(hal, th, 2 * HOUR)
    back = tones(hal, t + 1)
    assert back and back[0][1] == codes.TONE_WARNING and back[0][0] - t <= DAY + 5 * MIN


def test_the_silence_is_the_prescriptions_alarm_silence():
    hal, th = running(dict(PARAMS, alarm_silence_s=15 * 60))
    hal.mv = 2700
    run(hal, th, HOUR)
    th.ack(hal.now, codes.AL_BATTERY_EOS)
    th.ack(hal.now, codes.AL_BATTERY_ERI)
    t = hal.now
    run(hal, th, HOUR)
    crit = [v for v, p in tones(hal, t + 1) if p == codes.TONE_CRITICAL]
    assert crit and 15 * MIN <= crit[0] - t <= 20 * MIN
