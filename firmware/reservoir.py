# The reservoir room: the pump's own account of the drug in its reservoir, the fill that drug
# came from (when, how long it stays stable, how many fills so far), the boluses of the last
# days, and what follows from them: the volume a day the reservoir is expected to lose, the
# time to the low level and to empty, the level at which refill_due starts, the expiry.
#
# The account only ever errs low: a stroke the motor may have made counts as made, and after
# an unclean restart the reserve the dose guard kept unsaved comes off it too (a refill that
# follows finds a little more drug than the pump expected, never less).
#
# The fill is of one drug at one concentration (a program must name the same, or it is refused:
# firmware/therapy.py), and the catheter between the pump and the tip is part of the model:
# empty (a new pump, a revised catheter) until a prime fills it, then full; after a refill
# that changed the concentration it still holds the old solution until its volume has been
# pumped through, so the new one reaches the tip that much later (tip_left_nl()).
#
# Its blocks of the state record (firmware/record.py places them): the account, one int; the
# fill block of FILL_LEN ints, [fill_ts, stable_s, fills, age of the bolus day, the bolus
# volume of each of the last _BOLUS_DAYS days, newest first]; and the catheter block of CATH_LEN
# ints, [catheter state, fill concentration, old concentration, mark_nl (the account at which
# an empty catheter is full, or the new solution reaches the tip), the drug's name in
# _DRUG_INTS ints of 3 characters]. Small ints only, no allocation after construction on the
# paths the stroke and the periodic check take.
from array import array

from firmware.compat import const
from firmware.rx import refill_level_nl

_BOLUS_DAYS = const(7)          # refill planning counts the boluses of the last 7 days
MAX_STABLE_S = const(31536000)  # a fill's stability: at most a year
FILL_LEN = const(11)           # 4 + _BOLUS_DAYS
DRUG_MAX = const(24)           # characters of a drug's name
_DRUG_INTS = const(8)           # DRUG_MAX // 3
CATH_LEN = const(12)           # 4 + _DRUG_INTS
_EMPTY = const(0)               # the catheter holds nothing yet (a new pump, a revised catheter)
FULL = const(1)                # it is full of drug
_BOLUS_DAY_MAX = const(1 << 27)  # a day's bolus volume saturates here (7 of them stay small)
_DAY_S = const(86400)
_DAY_MS = const(86400000)


class Reservoir:
    def __init__(self, stroke_nl, min_nl):
        self.stroke_nl = stroke_nl
        self.min_nl = min_nl        # delivery stops with this much left (board data)
        self.floor_nl = min_nl + stroke_nl  # the account one stroke needs
        self.nl = 0                 # the account
        self.rx = None              # the prescription it plans with (None: not programmed)
        self.fill_ts = -1           # pump clock at the last fill (-1: unknown)
        self.stable_s = 0           # its stability in the pump (0: not given)
        self.fills = 0              # fills recorded since the pump was new
        self.bolus_nl = array("i", [0] * _BOLUS_DAYS)  # bolus volume started per day, newest first
        self.bday_s = 0             # uptime (s) at which bolus_nl[0]'s day began
        self.refill_nl = -1         # level at which refill_due starts (-1: none)
        self.drug = None            # the fill's drug (None: not known yet)
        self.conc_ng_ml = 0         # its concentration (0: not known yet)
        self.catheter = _EMPTY       # a new pump's catheter is empty
        self.old_conc_ng_ml = 0     # the solution the catheter still holds after a change (0: none)
        self.mark_nl = 0            # the account at which the old solution is out of the catheter
                                    # (old_conc_ng_ml), or at which the catheter was empty (_EMPTY)

    # ---- the account -----------------------------------------------------------------------
    def fill(self, volume_nl, ts, stable_s):
        """The reservoir now holds volume_nl of a new fill, made at pump clock ts."""
        if self.catheter == _EMPTY and not self.fills:
            self.mark_nl = volume_nl    # a new pump: its catheter fills from its first fill on
        elif self.old_conc_ng_ml or self.catheter == _EMPTY:
            self.mark_nl += volume_nl - self.nl  # as much pumped (or still to pump) as before
        self.nl = volume_nl
        self.fill_ts = ts
        self.stable_s = stable_s
        if self.fills < 1 << 29:
            self.fills += 1

    def fill_is(self, drug, conc_ng_ml):
        """Whether a program of `drug` (None: unnamed) at conc_ng_ml may run on this fill: the
        same drug and concentration, or what the fill does not say yet."""
        if drug is not None and self.drug is not None and drug != self.drug:
            return False
        return not self.conc_ng_ml or conc_ng_ml == self.conc_ng_ml

    def adopt(self, drug, conc_ng_ml):
        """A fill recorded without its drug (or concentration) takes the first program's."""
        if self.drug is None and drug is not None:
            self.drug = drug
        if not self.conc_ng_ml:
            self.conc_ng_ml = conc_ng_ml

    def changed_to(self, volume_nl, conc_ng_ml, catheter_nl):
        """A refill of volume_nl changed the concentration: the catheter keeps the old solution
        until its volume has been pumped through."""
        if self.catheter == FULL and self.conc_ng_ml and catheter_nl > 0:
            self.old_conc_ng_ml = self.conc_ng_ml
            self.mark_nl = volume_nl - catheter_nl
        self.conc_ng_ml = conc_ng_ml

    def emptied(self):
        """A new or revised catheter: empty, until its volume has been pumped into it."""
        self.catheter = _EMPTY
        self.old_conc_ng_ml = 0
        self.mark_nl = self.nl

    def room_nl(self, catheter_nl):
        """How much an empty catheter of catheter_nl still takes before it is full (0: it is
        full: the basal may have filled it)."""
        if self.catheter != _EMPTY:
            return 0
        left = catheter_nl - (self.mark_nl - self.nl)
        if left <= 0:
            self.catheter = FULL
            return 0
        return left

    def tip_left_nl(self):
        """How much more must be pumped before the fill's solution is at the catheter's tip
        (0: it is there)."""
        if not self.old_conc_ng_ml:
            return 0
        left = self.nl - self.mark_nl
        if left <= 0:
            self.old_conc_ng_ml = 0
            return 0
        return left

    def take_worst_case(self, strokes):
        """After an unclean restart: `strokes` more may have left than the record says."""
        left = self.nl - strokes * self.stroke_nl
        self.nl = left if left > 0 else 0

    # ---- planning ----------------------------------------------------------------------------
    def plan(self, rx):
        """Plan with a new prescription (None: none)."""
        self.rx = rx
        self.replan()

    def bolus_started(self, dose_nl):
        v = self.bolus_nl[0] + dose_nl
        self.bolus_nl[0] = v if v < _BOLUS_DAY_MAX else _BOLUS_DAY_MAX
        self.replan()

    def new_day(self, mono_s):
        """Move the bolus days on to uptime mono_s (small ints, no allocation)."""
        if mono_s - self.bday_s < _DAY_S:
            return
        b = self.bolus_nl
        while mono_s - self.bday_s >= _DAY_S:
            i = _BOLUS_DAYS - 1
            while i:
                b[i] = b[i - 1]
                i -= 1
            b[0] = 0
            self.bday_s += _DAY_S
        self.replan()

    def projected_nl_day(self):
        """The volume a day the reservoir is expected to lose: the basal, and the boluses
        started in the last _BOLUS_DAYS days spread over them. 0 without a prescription."""
        if self.rx is None:
            return 0
        b = self.bolus_nl
        total = 0
        for i in range(_BOLUS_DAYS):
            total += b[i]
        return self.rx.basal_nl_day + total // _BOLUS_DAYS

    def replan(self):
        rx = self.rx
        if rx is None:
            self.refill_nl = -1
            return
        self.refill_nl = refill_level_nl(rx.low_res_nl, self.projected_nl_day(),
                                         rx.refill_notice_s)

    def refill_due(self):
        """The projected low-reservoir date is within the refill notice."""
        return self.refill_nl >= 0 and self.fills > 0 and self.nl <= self.refill_nl

    def is_low(self):
        return self.rx is not None and self.nl <= self.rx.low_res_nl

    def time_to_empty_s(self, tod_ms=-1):
        """Seconds until the account reaches the board's minimum (see time_to()). -1 without a
        prescription."""
        if self.rx is None:
            return -1
        return self.time_to(self.nl - self.min_nl, tod_ms)

    def low_in_s(self, tod_ms=-1):
        """Seconds until the account reaches the prescription's low level (0 if it is there),
        -1 without a prescription."""
        if self.rx is None:
            return -1
        return self.time_to(self.nl - self.rx.low_res_nl, tod_ms)

    def time_to(self, left_nl, tod_ms):
        """Seconds until left_nl more has been pumped, from time of day tod_ms: the schedule's
        steps as they come, each with the boluses of the last days spread evenly on top (the
        projected rate), to within a second. tod_ms -1: at the daily mean. Not on the stroke
        path (big products allowed)."""
        if left_nl <= 0:
            return 0
        rx = self.rx
        extra = self.projected_nl_day() - rx.basal_nl_day   # the boluses, nL/day
        starts = rx.step_start_ms
        rates = rx.step_rate_nl_day
        if tod_ms < 0 or len(starts) == 1:
            rate = self.projected_nl_day() if tod_ms < 0 else rates[0] + extra
            return left_nl * 86400 // rate if rate > 0 else -1
        day = self.projected_nl_day()   # a whole day's volume, rounded as the basal is
        ms = 0
        if left_nl > 2 * day:           # whole days first (each holds the same volume)
            days = left_nl // day - 1
            ms = days * _DAY_MS
            left_nl -= days * day
        left = left_nl * _DAY_MS        # in nL*ms/day, exact
        i = rx.step_at(tod_ms)
        t = tod_ms
        while True:
            end = starts[i + 1] if i + 1 < len(starts) else _DAY_MS
            rate = rates[i] + extra
            seg = (end - t) * rate
            if seg >= left:
                return (ms + left // rate) // 1000 if rate > 0 else -1
            left -= seg
            ms += end - t
            t = end
            i += 1
            if i == len(starts):
                i = 0
                t = 0

    def expires_ts(self):
        """Pump clock at which the drug in the reservoir expires (-1: not known)."""
        if not self.stable_s or self.fill_ts < 0:
            return -1
        return self.fill_ts + self.stable_s

    def expired(self, ts):
        return self.stable_s > 0 and self.fill_ts >= 0 and ts - self.fill_ts >= self.stable_s

    # ---- its blocks of the state record -------------------------------------------------------
    def save_into(self, out, res_at, fill_at, mono_s, reserve_nl):
        """The account, less reserve_nl (the strokes the dose guard has not saved yet, which
        an unclean restart must assume were given), at out[res_at]; the fill block at
        out[fill_at:]."""
        out[res_at] = self.nl - reserve_nl
        out[fill_at] = self.fill_ts
        out[fill_at + 1] = self.stable_s
        out[fill_at + 2] = self.fills
        out[fill_at + 3] = mono_s - self.bday_s
        b = self.bolus_nl
        for i in range(_BOLUS_DAYS):
            out[fill_at + 4 + i] = b[i]

    def save_cath(self, out, at):
        out[at] = self.catheter
        out[at + 1] = self.conc_ng_ml
        out[at + 2] = self.old_conc_ng_ml
        out[at + 3] = self.mark_nl
        pack_name(self.drug, out, at + 4)

    def load_cath(self, src, at):
        """From a record's catheter block; at -1: a record from before it (a running pump's
        catheter is full, its drug and concentration not known)."""
        if at < 0:
            self.catheter = FULL
            self.conc_ng_ml = 0
            self.old_conc_ng_ml = 0
            self.mark_nl = 0
            self.drug = None
            return
        self.catheter = FULL if src[at] == FULL else _EMPTY
        self.conc_ng_ml = src[at + 1] if src[at + 1] > 0 else 0
        self.old_conc_ng_ml = src[at + 2] if src[at + 2] > 0 else 0
        self.mark_nl = src[at + 3]
        self.drug = unpack_name(src, at + 4)

    def load_from(self, src, res_at, fill_at, mono_s):
        """Restore from a record; fill_at -1: the record has no fill block (layout 1): the
        fill is unknown, and a reservoir with drug in it was filled at least once."""
        res = src[res_at]
        self.nl = res if res > 0 else 0
        if fill_at < 0:
            self.fill_ts = -1
            self.stable_s = 0
            self.fills = 1 if res > 0 else 0
            self.bday_s = 0
            return
        self.fill_ts = src[fill_at]
        stable = src[fill_at + 1]
        self.stable_s = stable if stable > 0 else 0
        fills = src[fill_at + 2]
        self.fills = fills if fills > 0 else 0
        bday = src[fill_at + 3]
        self.bday_s = mono_s - bday if 0 <= bday < _DAY_S else 0
        for i in range(_BOLUS_DAYS):
            v = src[fill_at + 4 + i]
            self.bolus_nl[i] = v if 0 <= v <= _BOLUS_DAY_MAX else 0


def pack_name(name, out, at):
    """A drug's name (at most DRUG_MAX characters of ASCII; None: not known) into _DRUG_INTS ints
    of three characters each, zero-padded."""
    raw = name.encode() if name is not None else b""
    for i in range(_DRUG_INTS):
        v = 0
        for j in range(3):
            k = i * 3 + j
            v = v * 256 + (raw[k] if k < len(raw) else 0)
        out[at + i] = v


def unpack_name(src, at):
    raw = bytearray()
    for i in range(_DRUG_INTS):
        v = src[at + i]
        for shift in (16, 8, 0):
            c = (v >> shift) & 255
            if c:
                raw.append(c)
    try:
        return raw.decode() if raw else None
    except UnicodeError:
        return None


def valid_name(name):
    """A drug's name as the pump keeps it: 1 to DRUG_MAX lower-case letters, digits, - or _."""
    if type(name) is not str or not 0 < len(name) <= DRUG_MAX:
        return False
    for c in name:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-" or c == "_"):
            return False
    return True
