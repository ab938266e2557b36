# The dose guard: an independent account of the drug that reached the patient in the last 24
# hours.
#
# It knows nothing of schedules or boluses. It counts approved strokes in 1440 one-minute
# buckets plus one for the minute in progress (1441 in all), so the window it sums always covers
# at least the last 24 hours (up to one minute more): it can refuse a little early, never a little
# late. (With 1440 in all, the oldest minute would drop out up to a minute too soon: the property
# test found a 193rd stroke in a 24 h window capped at 192.) A stroke
# that would make the sum exceed the prescribed cap is refused.
#
# Drug mass. The account is kept in units of 1/UNITS of a stroke of the running prescription's
# drug at its concentration, so it is a mass: a stroke normally weighs UNITS. When a refill
# changes the concentration, what the window holds is converted to units of the new drug
# (rescale(), each minute rounded up to a unit: at most one unit a minute above the truth), so
# a change neither trips the cap nor lets more drug through. Two phases weigh strokes otherwise
# for a counted number of them (weigh()): after a change to a weaker solution the catheter still
# holds the stronger one, and its strokes weigh what the strong drug does (heavier); a prime
# fills an empty catheter and reaches no one, and its strokes weigh nothing.
#
# Power loss. The account lives in RAM and is saved to flash; strokes after the last save would
# be forgotten by an unclean restart. So every save records a reserve of RESERVE strokes as if
# already delivered, and the guard never approves a stroke beyond that reserve without a new
# save. The pump saves after SAVE_AT strokes (needs_save), and a save counts only once the
# flash confirmed it (saved()): a failing flash leaves the guard approving what the last good
# record covers (the remaining RESERVE - SAVE_AT strokes give the retries room), and no more.
# A restart after power loss therefore sees at least everything that was delivered, and counts
# the time the pump was off as not having passed: no restart can make room for extra drug.
from array import array

from firmware.codes import R_DAILY_MAX, R_UNSAVED
from firmware.compat import const

UNITS = const(128)        # account units in one stroke of the running drug
_BUCKETS = const(1441)
_BUCKET_MS = const(60000)
RESERVE = const(40)
SAVE_AT = const(32)       # the pump saves once this many strokes are unsaved: the last 8 of the
                          # reserve are the margin in which a failed save is retried
SAVE_LEN = const(1443)    # [idx, in_bucket_ms, bucket_0 .. bucket_1440]
# A rescaled minute saturates here: 4096 strokes' worth, far above the 600 a motor can make in a
# minute, and 1441 of them stay below 2**30 (small ints on the stroke path).
_BUCKET_MAX = const(1 << 19)


class DoseGuard:
    def __init__(self):
        self.buckets = array("i", [0] * _BUCKETS)  # units given in each past minute
        self.idx = 0          # the bucket of the minute in progress
        self.in_bucket_ms = 0
        self.total = 0        # sum of all buckets
        self.cap = 0          # units allowed in any 24 h; 0 refuses everything
        self.w = UNITS        # what the next stroke weighs
        self.left = 0         # strokes left at that weight before it is UNITS again (0: none)
        self.last_w = UNITS   # what the last approved stroke weighed (undo())
        self.unsaved = 0      # strokes approved since the last save
        self.lost = False     # the account was lost (memory_error): a reprogram states what
                              # to assume (assume())
        self.saved_idx = 0    # bucket in progress at the last save
        self.rotated = _BUCKETS  # buckets moved since then (_BUCKETS: rewrite them all)

    def set_cap(self, units):
        self.cap = units

    def weigh(self, strokes, w):
        """The next `strokes` strokes weigh w units each (0: a prime's; more than UNITS: the
        stronger drug still in the catheter), then UNITS again."""
        self.left = strokes if w != UNITS else 0
        self.w = w if strokes > 0 else UNITS

    def assume_full(self, strokes):
        """Nothing is known of the last 24 hours (a lost account): count `strokes`, more than
        any cap allows, as delivered this minute. Delivery can start again a day from now."""
        self.buckets[self.idx] += strokes * UNITS
        self.total += strokes * UNITS
        self.rotated = _BUCKETS

    def assume(self, strokes, weight=None):
        """Replace a lost account with a stated one: `strokes` delivered over the last 24
        hours, the bucket j minutes back (j = 0 the minute in progress) getting a share in
        proportion to weight(j) (evenly without it). Each assumed stroke then leaves the
        window no earlier than a stroke really given in that minute would, so the cap holds
        under the assumption. Not on the stroke path (big products allowed; the weights are
        asked for twice rather than held in a 1440-entry list)."""
        b = self.buckets
        for i in range(_BUCKETS):
            b[i] = 0
        total = 0
        for j in range(1440):
            total += weight(j) if weight is not None else 1
        i = self.idx
        done = 0
        cum = 0
        for j in range(1440):
            cum += weight(j) if weight is not None else 1
            upto = strokes * cum // total
            b[i] = (upto - done) * UNITS
            done = upto
            i = i - 1 if i else _BUCKETS - 1
        self.total = strokes * UNITS
        self.rotated = _BUCKETS

    def rescale(self, num, den):
        """The concentration changed from num to den (ng/mL): express what the window holds in
        units of the new drug, each minute rounded up to a unit, so the cap (set in the new
        drug's units) still bounds the drug that reached the patient: a change to a stronger
        solution does not trip it, a change to a weaker one does not let more through. A phase
        of strokes weighed otherwise keeps its weight in drug. Not on the stroke path."""
        b = self.buckets
        total = 0
        for i in range(_BUCKETS):
            v = b[i]
            if v:
                v = (v * num + den - 1) // den
                if v > _BUCKET_MAX:
                    v = _BUCKET_MAX
                b[i] = v
                total += v
        self.total = total
        if self.left:
            self.w = (self.w * num + den - 1) // den
        self.rotated = _BUCKETS

    def advance(self, dt_ms):
        """Let dt_ms pass: whole minutes drop out of the far end of the window."""
        t = self.in_bucket_ms + dt_ms
        if t < _BUCKET_MS:
            self.in_bucket_ms = t
            return
        steps = t // _BUCKET_MS
        self.in_bucket_ms = t - steps * _BUCKET_MS
        if steps > _BUCKETS:
            steps = _BUCKETS
        self.rotated += steps
        b = self.buckets
        i = self.idx
        while steps:
            i += 1
            if i == _BUCKETS:
                i = 0
            self.total -= b[i]
            b[i] = 0
            steps -= 1
        self.idx = i

    def needs_save(self):
        return self.unsaved >= SAVE_AT

    def step(self):
        """Ask to deliver one stroke now: 0 means it has been counted as delivered; R_UNSAVED
        that the strokes since the last confirmed save used up the reserve on flash (the
        caller saves and asks again); R_DAILY_MAX that it would break the cap. This is the
        one place the reserve is checked. No allocation (the stroke path calls it)."""
        if self.unsaved >= RESERVE:
            return R_UNSAVED
        w = self.w
        if self.total + w > self.cap:
            return R_DAILY_MAX
        self.total += w
        self.buckets[self.idx] += w
        self.unsaved += 1
        self.last_w = w
        if self.left:
            self.left -= 1
            if not self.left:
                self.w = UNITS
        return 0

    def approve(self):
        """step() as a yes or no."""
        return self.step() == 0

    def undo(self):
        """The motor did not move after all: take the stroke back out of the account (and
        back into its phase, if it was one's)."""
        w = self.last_w
        self.total -= w
        self.buckets[self.idx] -= w
        if w != UNITS:
            self.left += 1
            self.w = w

    def room(self):
        """Units still allowed now."""
        return self.cap - self.total

    def room_nl(self, stroke_nl):
        """The volume of the running drug still allowed now (nL)."""
        room = self.cap - self.total
        return room * stroke_nl // UNITS if room > 0 else 0

    def given_nl(self, stroke_nl):
        """What the window holds, as a volume of the running drug (nL, rounded up)."""
        return (self.total * stroke_nl + UNITS - 1) // UNITS

    # Persistence: SAVE_LEN ints. The saved copy includes the reserve (see the top).
    def save_into(self, out, at, clean=False):
        """Update the saved account at out[at:] (out keeps the previous save, so only the
        buckets that changed since are written). A clean save (before an orderly restart)
        records the account exactly and approves nothing more until the next save."""
        out[at] = self.idx
        out[at + 1] = self.in_bucket_ms
        b = self.buckets
        n = self.rotated + 1
        if n > _BUCKETS:
            n = _BUCKETS
        i = self.saved_idx if n < _BUCKETS else 0
        while n:
            out[at + 2 + i] = b[i]
            i += 1
            if i == _BUCKETS:
                i = 0
            n -= 1
        self.saved_idx = self.idx
        self.rotated = 0
        if not clean:
            out[at + 2 + self.idx] = b[self.idx] + RESERVE * self.reserve_w()

    def reserve_w(self):
        """What each stroke of the reserve is counted at: a stroke's weight, at least UNITS."""
        return self.w if self.w > UNITS else UNITS

    def saved(self, clean=False):
        """The record save_into() filled is confirmed on flash. Only now does the reserve it
        holds cover new strokes: until then they still count as unsaved, so with a flash that
        fails the guard goes on approving only what the last confirmed record covers."""
        self.unsaved = RESERVE if clean else 0

    def in_units(self):
        """The buckets just loaded were whole strokes (a record from before the account was
        kept in drug mass): each is UNITS units."""
        b = self.buckets
        for i in range(_BUCKETS):
            b[i] *= UNITS
        self.total *= UNITS

    def forget(self, units):
        """Take units back out of the minute in progress (what the reserve assumed and the
        journal shows was never given)."""
        v = self.buckets[self.idx]
        if units > v:
            units = v
        self.buckets[self.idx] = v - units
        self.total -= units
        self.rotated = _BUCKETS

    def load_from(self, src, at):
        self.idx = src[at]
        self.in_bucket_ms = src[at + 1]
        b = self.buckets
        total = 0
        for i in range(_BUCKETS):
            b[i] = src[at + 2 + i]
            total += b[i]
        self.total = total
        # The record may be a clean one, saved without the reserve: approve nothing until a
        # save has put the reserve on flash (otherwise a power loss before the next save would
        # forget up to RESERVE strokes, and a record lost to damage twice that).
        self.unsaved = RESERVE
        self.saved_idx = self.idx
        self.rotated = _BUCKETS
