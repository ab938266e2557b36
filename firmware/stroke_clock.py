# When the next stroke is due: a Bresenham clock with exact rate changes.
#
# At a total rate of R nL/day a stroke of S nL is due every S*DAY_MS/R ms, which is rarely a
# whole number. The clock keeps the ideal due time as `due - e/R` (due in ticks, 0 <= e < R)
# and steps it by q + r/R, carrying the remainder, so stroke n fires at the first millisecond
# at which the ideal volume reaches n strokes: delivery is never ahead of the ideal and never a
# whole stroke behind it, however long it runs.
#
# When the rate changes (a basal step, a bolus starting or ending), the part of a stroke already
# accumulated carries over exactly: the volume still owed, (due - b)*R_old - e, is re-timed at
# the new rate. Those products exceed 2**30, so _muldiv() forms them bit by bit with small
# integers only; nothing here allocates, so it may run with the heap locked.
from firmware.compat import const
from firmware.ticks import add, diff

DAY_MS = const(86400000)


class StrokeClock:
    def __init__(self, stroke_nl):
        self.stroke_nl = stroke_nl
        self.rate = 0      # nL/day; 0 while paused
        self.due = 0       # ticks of the next stroke
        self.e = 0         # the ideal due time is due - e/rate
        self.q = 0         # interval between strokes: q + r/rate ms
        self.r = 0
        self._mq = 0       # results of _muldiv
        self._mr = 0

    def _muldiv(self, x, y, d):
        """self._mq, self._mr = divmod(x*y, d) for 0 <= x < 2**30, 0 <= y, 0 < d < 2**28,
        with every intermediate below 2**30 (given that the quotient is)."""
        yq = y // d
        yr = y - yq * d
        q = 0
        rem = 0
        for bit in range(29, -1, -1):
            q += q
            rem += rem
            if rem >= d:
                rem -= d
                q += 1
            if (x >> bit) & 1:
                q += yq
                rem += yr
                if rem >= d:
                    rem -= d
                    q += 1
        self._mq = q
        self._mr = rem

    def _set_interval(self, rate):
        self._muldiv(self.stroke_nl, DAY_MS, rate)
        self.q = self._mq
        self.r = self._mr
        self.rate = rate

    def start(self, now, rate):
        """Begin from nothing accumulated (after boot or programming): the first stroke is one
        full interval away."""
        self._set_interval(rate)
        if self.r:
            self.due = add(now, self.q + 1)
            self.e = rate - self.r
        else:
            self.due = add(now, self.q)
            self.e = 0

    def change_rate(self, now, rate, lead):
        """Re-time the stroke in progress for a new rate from `now` (ticks, before `due`).
        `lead` (nL*ms/day, < 2**28) is volume credited at once: a bolus's rounding remainder."""
        old = self.rate
        self._muldiv(diff(self.due, now), old, rate)
        q = self._mq
        t = self._mr - self.e - lead
        q += t // rate
        t %= rate
        self._set_interval(rate)
        if q < 0 or (q == 0 and t == 0):
            # Less than the lead was owed: due at once (loses under 1 nL, never gains).
            self.due = now
            self.e = 0
        elif t:
            self.due = add(now, q + 1)
            self.e = rate - t
        else:
            self.due = add(now, q)
            self.e = 0

    def stroke_done(self):
        """The stroke due at self.due happened (or was refused): step to the next one."""
        e = self.e - self.r
        if e < 0:
            self.due = add(self.due, self.q + 1)
            self.e = e + self.rate
        else:
            self.due = add(self.due, self.q)
            self.e = e

    def left_ms(self, now):
        return diff(self.due, now)

    def resume_at(self, now, left_ms):
        """Re-anchor after a pause that kept left_ms to the next stroke (the phase is kept;
        the paused time is simply not there)."""
        self.due = add(now, left_ms)
