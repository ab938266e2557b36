# The alarm state: which alarms are active, which were acknowledged, and when the buzzer plays
# next. A plain object: it never logs, saves or stops delivery itself. Each change returns what
# changed (the alarm's bit, or 0 when nothing did), and the pump acts on that (firmware/pump.py
# raise_alarm / clear_alarm): a log entry, a save, boluses ended, the stroke clock restarted.
# No allocation: the stroke path and the periodic check call it with the heap locked.
#
# An acknowledgement silences an alarm for a while, not for good: a critical one sounds again
# after `silence_ms` (the prescription's alarm_silence, an hour by default), a warning after a
# day, for as long as the condition lasts.
from array import array

from firmware import codes
from firmware.compat import const
from firmware.ticks import add, diff

_CRITICAL = const(301990746)  # codes.CRITICAL_MASK (checked in tests/firmware/test_alarms.py)
_EVENTS = const(5120)        # codes.EVENT_ALARMS_MASK (idem)
_CRIT_EVERY_MS = const(600000)   # codes.TONE_EVERY_MS[TONE_CRITICAL]
_WARN_EVERY_MS = const(3600000)  # codes.TONE_EVERY_MS[TONE_WARNING]
_WARN_SILENCE_MS = const(86400000)  # an acknowledged warning sounds again after a day
_CODES = const(30)               # alarm codes are bits of a small int


class AlarmState:
    def __init__(self):
        self.active = 0      # bit (1 << code) per active alarm
        self.acked = 0       # active alarms silenced by an acknowledgement
        self.tone_at = 0     # ticks at which the buzzer next plays (if anything is loud)
        self.silence_ms = 3600000  # how long an acknowledgement silences a critical alarm
        self.ack_at = array("i", [0] * _CODES)  # ticks of each alarm's acknowledgement

    def start(self, code, now):
        """The condition behind `code` is present. Returns its bit if the alarm starts now (it
        then sounds at once, acknowledged or not before), 0 if it was already active."""
        bit = 1 << code
        if self.active & bit:
            return 0
        self.active |= bit
        self.acked &= ~bit
        self.tone_at = now
        return bit

    def end(self, code):
        """The condition is gone. Returns the bit if the alarm ended now, else 0."""
        bit = 1 << code
        if not self.active & bit:
            return 0
        self.active &= ~bit
        self.acked &= ~bit
        return bit

    def ack(self, code, now):
        """Silence an active alarm (for a while: see the top). Returns its bit (0 if it was not
        active). An alarm that only records an event (codes.EVENT_ALARMS_MASK) is for the caller
        to end."""
        bit = 1 << code
        if not self.active & bit:
            return 0
        self.acked |= bit
        self.ack_at[code] = now
        return bit

    def _silence_over(self, now):
        """Acknowledgements whose silence has run out end: those alarms are loud again."""
        acked = self.acked & self.active
        code = 0
        while acked:
            bit = 1 << code
            if acked & bit:
                acked &= ~bit
                quiet = self.silence_ms if bit & _CRITICAL else _WARN_SILENCE_MS
                if diff(now, self.ack_at[code]) >= quiet:
                    self.acked &= ~bit
                    self.tone_at = now
            code += 1

    def is_event(self, bit):
        return bit & _EVENTS

    def critical(self):
        return self.active & _CRITICAL

    def tone_due(self, now):
        """The buzzer pattern to play now (0: none): the critical pattern every 10 minutes while
        an unacknowledged critical alarm is active, else the warning pattern every hour while an
        unacknowledged warning is."""
        if self.acked:
            self._silence_over(now)
        loud = self.active & ~self.acked
        if not loud or diff(now, self.tone_at) < 0:
            return 0
        if loud & _CRITICAL:
            self.tone_at = add(now, _CRIT_EVERY_MS)
            return codes.TONE_CRITICAL
        self.tone_at = add(now, _WARN_EVERY_MS)
        return codes.TONE_WARNING
