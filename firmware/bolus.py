# Patient-bolus policy: lockout (start to start) and a maximum count in any rolling 24 hours.
#
# Start times are kept in the pump's monotonic seconds counter, rounded up, and compared with the
# current time rounded down, so the lockout can only ever be judged longer than it was. They are
# saved as ages and restored as if no time passed while the pump was off (worst case).
from array import array

from firmware import codes
from firmware.compat import const

DAY_S = const(86400)
SLOTS = const(24)          # >= the largest max_per_day a prescription may set
_NEVER = const(-(1 << 29))  # a start time older than any window
SAVE_LEN = const(25)       # [head, age_0 .. age_23]


class PatientBolusPolicy:
    def __init__(self):
        self.starts_s = array("i", [_NEVER] * SLOTS)  # ring of recent start times
        self.head = 0

    def reason_to_deny(self, now_s, lockout_s, max_per_day):
        """0 when a bolus may start at now_s (floor seconds), else a refusal reason."""
        last = self.starts_s[(self.head - 1) % SLOTS]
        if now_s - last < lockout_s:
            return codes.R_LOCKOUT
        n = 0
        for i in range(SLOTS):
            if now_s - self.starts_s[i] < DAY_S:
                n += 1
        if n >= max_per_day:
            return codes.R_MAX_PER_DAY
        return 0

    def record(self, start_s_ceil):
        """Note a start; returns what it replaced, for undo()."""
        old = self.starts_s[self.head]
        self.starts_s[self.head] = start_s_ceil
        self.head = (self.head + 1) % SLOTS
        return old

    def undo(self, old):
        """Take back the last record() (the bolus did not start after all)."""
        self.head = (self.head - 1) % SLOTS
        self.starts_s[self.head] = old

    def count_since(self, now_s, window_s):
        n = 0
        for i in range(SLOTS):
            if now_s - self.starts_s[i] < window_s:
                n += 1
        return n

    # Persistence: SAVE_LEN ints, [head, age_0 .. age_23], ages in seconds when saved.

    def save_into(self, out, at, now_s):
        out[at] = self.head
        for i in range(SLOTS):
            s = self.starts_s[i]
            # A start is rounded up, so a bolus saved in the second it began has age -1: keep
            # it (it only lengthens the lockout). DAY_S or more means "no bolus in the window".
            out[at + 1 + i] = now_s - s if s != _NEVER else DAY_S

    def load_from(self, src, at, now_s):
        self.head = src[at] % SLOTS
        for i in range(SLOTS):
            age = src[at + 1 + i]
            self.starts_s[i] = now_s - age if age < DAY_S else _NEVER
