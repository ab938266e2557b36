# A prescription, converted once at programming time into the integers the delivery path uses.
#
# The host sends masses and rates in nanograms (exact integers); here they become volumes in
# nanolitres through the concentration, and rates in nL/day. All the big arithmetic (products
# above 2**30) happens in this module, once; the per-stroke path only sees the results, each
# checked to be a small integer. The firmware checks its own hard limits again, whatever the
# host checked: a refused prescription raises RxError and changes nothing.
from firmware.compat import const
from firmware.guard import UNITS

DAY_MS = const(86400000)
MAX_STEPS = const(13)
_MAX_PB_PER_DAY = const(24)
SMALL = const(1 << 30)          # every value used per stroke stays below this
_MAX_RATE_NL_DAY = const(1 << 28)  # keeps StrokeClock's carried remainders small
_DEFAULT_NOTICE_S = const(604800)  # refill_due a week before the low-reservoir date (the issue's)
DEFAULT_REMINDER_S = const(3600)  # an open-ended stop raises therapy_stopped after an hour ...
DEFAULT_SILENCE_S = const(3600)   # ... and an acknowledged critical alarm sounds again after one
_MAX_NOTICE_S = const(7776000)     # at most 90 days of notice
_MAX_MODEL = const(32)             # characters of a catheter's model name
_MAX_CATHETER_MM = const(3000)     # 3 m: longer than any intrathecal catheter
_MAX_NL_PER_CM = const(20000)      # 0.02 mL/cm: wider than any intrathecal catheter


class RxError(Exception):
    def __init__(self, key, message):
        super().__init__(key + ": " + message)
        self.key = key
        self.message = message


def ng_to_nl(mass_ng, conc_ng_ml):
    """Volume in nL holding mass_ng at conc_ng_ml (1 mL = 1e6 nL), to the nearest nL."""
    return (mass_ng * 1000000 + conc_ng_ml // 2) // conc_ng_ml


def _int(params, key, lo, hi):
    v = params.get(key)
    if type(v) is not int or v < lo or v > hi:
        raise RxError(key, "must be an integer from %d to %d, got %r" % (lo, hi, v))
    return v


class Rx:
    """Compiled prescription. Attribute names carry their units."""

    def __init__(self, params, board):
        stroke_nl = board.STROKE_NL
        max_motor_nl_day = board.MAX_STROKES_PER_MIN * stroke_nl * 1440
        min_rate = board.MIN_RATE_NL_DAY
        if (max_motor_nl_day >= _MAX_RATE_NL_DAY or stroke_nl * DAY_MS // min_rate >= SMALL // 2
                or board.MAX_STROKES_PER_MIN * 1440 * UNITS >= SMALL):
            # A board whose numbers would push the stroke clock past its small-integer range.
            raise RxError("board", "stroke volume, motor speed or minimum rate out of range")
        self.stroke_nl = stroke_nl
        self.conc_ng_ml = _int(params, "conc_ng_ml", 1, 1000000000)
        conc = self.conc_ng_ml
        steps = params.get("steps")
        if type(steps) is not list or not 1 <= len(steps) <= MAX_STEPS:
            raise RxError("steps", "must be a list of 1 to 13 [start_min, rate_ng_day] pairs")
        self.step_start_ms = []
        self.step_rate_nl_day = []
        prev = -1
        for i in range(len(steps)):
            s = steps[i]
            if type(s) is not list or len(s) != 2 or type(s[0]) is not int or type(s[1]) is not int:
                raise RxError("steps[%d]" % i, "must be [start_min, rate_ng_day] integers")
            start_min, rate_ng = s
            if (i == 0 and start_min != 0) or start_min <= prev or start_min >= 1440:
                raise RxError("steps[%d]" % i, "starts must begin at 00:00 and ascend within the day")
            rate = ng_to_nl(rate_ng, conc)
            if rate < min_rate or rate > max_motor_nl_day:
                raise RxError("steps[%d]" % i, "rate %d nL/day is outside %d..%d nL/day"
                              % (rate, min_rate, max_motor_nl_day))
            prev = start_min
            self.step_start_ms.append(start_min * 60000)
            self.step_rate_nl_day.append(rate)
        # Daily basal volume, exact in nL*ms/day units, then rounded up (conservative).
        total = 0
        n = len(steps)
        for i in range(n):
            end = self.step_start_ms[i + 1] if i + 1 < n else DAY_MS
            total += self.step_rate_nl_day[i] * (end - self.step_start_ms[i])
        self.basal_nl_day = (total + DAY_MS - 1) // DAY_MS

        max_daily_ng = _int(params, "max_daily_ng", 1, 10 ** 12)
        # The cap in whole strokes, rounded down: the guard never lets a stroke break it.
        self.max_daily_nl = max_daily_ng * 1000000 // conc
        self.max_daily_strokes = self.max_daily_nl // stroke_nl
        # ... and in the dose guard's units (firmware/guard.py: 1/UNITS of a stroke of this drug),
        # rounded down: the cap in drug mass. (The guard approves whole strokes of UNITS, so it
        # allows max_daily_strokes of them.)
        self.max_daily_units = max_daily_ng * 1000000 * UNITS // (conc * stroke_nl)
        # A cap the motor could never reach cannot protect anyone and usually means a slip of
        # units; refusing it also keeps every count in the guard below 2**28.
        motor_strokes_day = board.MAX_STROKES_PER_MIN * 1440
        if self.max_daily_strokes < 1 or self.max_daily_strokes > motor_strokes_day:
            raise RxError("max_daily_ng", "gives %d strokes a day; must be from 1 to %d (what the "
                          "motor can pump in a day)" % (self.max_daily_strokes, motor_strokes_day))
        # Any 24 hours of the basal hold the same exact volume; delivered in whole strokes, a
        # window can hold that volume rounded up to a stroke. The cap must allow that much, or
        # the basal alone would run into the dose limit every day.
        basal_strokes = (total + DAY_MS * stroke_nl - 1) // (DAY_MS * stroke_nl)
        if basal_strokes > self.max_daily_strokes:
            raise RxError("steps", "basal delivery of %d nL/day needs %d strokes a day; the maximum"
                          " daily dose of %d nL allows %d" % (self.basal_nl_day, basal_strokes,
                                                             self.max_daily_nl,
                                                             self.max_daily_strokes))
        self.basal_strokes = basal_strokes
        self.low_res_nl = _int(params, "low_res_nl", 0, SMALL - 1)
        notice = params.get("refill_notice_s", _DEFAULT_NOTICE_S)
        self.refill_notice_s = _int({"refill_notice_s": notice}, "refill_notice_s", 0,
                                    _MAX_NOTICE_S)
        self.catheter_nl = catheter_nl(params)
        self.stop_reminder_s = _int({"stop_reminder_s": params.get(
            "stop_reminder_s", DEFAULT_REMINDER_S)}, "stop_reminder_s", 60, 86400)
        self.alarm_silence_s = _int({"alarm_silence_s": params.get(
            "alarm_silence_s", DEFAULT_SILENCE_S)}, "alarm_silence_s", 60, 86400)
        meta = params.get("meta")
        drug = meta.get("drug") if type(meta) is dict else None
        # the drug the prescription names (None: it names none), as the fill keeps names
        self.drug = drug.lower() if type(drug) is str and drug else None

        pb = params.get("pb")
        self.pb_dose_nl = 0
        self.pb_dur_ms = 0
        self.pb_lockout_s = 0
        self.pb_max = 0
        self.pb_rate_nl_day = 0
        self.pb_lead = 0
        if pb is not None:
            if type(pb) is not list or len(pb) != 4:
                raise RxError("pb", "must be [dose_ng, duration_s, lockout_s, max_per_day]")
            p = {"pb.dose_ng": pb[0], "pb.duration_s": pb[1], "pb.lockout_s": pb[2],
                 "pb.max_per_day": pb[3]}
            dose_ng = _int(p, "pb.dose_ng", 1, 10 ** 12)
            dur_s = _int(p, "pb.duration_s", 1, 86400)
            self.pb_lockout_s = _int(p, "pb.lockout_s", 600, 86400)
            self.pb_max = _int(p, "pb.max_per_day", 1, _MAX_PB_PER_DAY)
            if dur_s > self.pb_lockout_s:
                raise RxError("pb.duration_s", "a patient bolus must end before its lockout does")
            self.pb_dose_nl = ng_to_nl(dose_ng, conc)
            if self.pb_dose_nl < stroke_nl or self.pb_dose_nl > self.max_daily_nl:
                raise RxError("pb.dose_ng", "dose of %d nL must be at least one stroke (%d nL) "
                              "and at most the daily maximum" % (self.pb_dose_nl, stroke_nl))
            self.pb_dur_ms = dur_s * 1000
            self.pb_rate_nl_day, self.pb_lead = bolus_rate(self.pb_dose_nl, self.pb_dur_ms)
        top = max(self.step_rate_nl_day) + self.pb_rate_nl_day
        if top > max_motor_nl_day:
            raise RxError("pb", "basal plus patient bolus needs %d nL/day; the motor gives at most"
                          " %d nL/day" % (top, max_motor_nl_day))
        self.max_motor_nl_day = max_motor_nl_day

    def step_at(self, tod_ms):
        """Index of the basal step running at a time of day."""
        starts = self.step_start_ms
        i = len(starts) - 1
        while starts[i] > tod_ms:
            i -= 1
        return i


def catheter_nl(params):
    """The patient's catheter volume (nL) from the settings' `catheter` entry, 0 when there is
    none. Raises RxError for an entry that does not make sense. The volume is its length
    after trimming times its volume per cm, to the nearest nL."""
    cat = params.get("catheter")
    if cat is None:
        return 0
    if type(cat) is not dict:
        raise RxError("catheter", "must be {\"model\": text, \"length_mm\": n, \"nl_per_cm\": n}")
    for k in cat:
        if k not in ("model", "length_mm", "nl_per_cm"):
            raise RxError("catheter." + k, "is not a catheter key (model, length_mm, nl_per_cm)")
    model = cat.get("model")
    if type(model) is not str or not 0 < len(model) <= _MAX_MODEL:
        raise RxError("catheter.model", "must be a name of 1 to %d characters" % _MAX_MODEL)
    length = _int(cat, "length_mm", 10, _MAX_CATHETER_MM)
    per_cm = _int(cat, "nl_per_cm", 100, _MAX_NL_PER_CM)
    return (length * per_cm + 5) // 10


def refill_level_nl(low_nl, rate_nl_day, notice_s):
    """The reservoir level at which the projected time to `low_nl`, at rate_nl_day, falls under
    notice_s: low_nl + rate * notice. Hours of notice, rounded up; every intermediate stays a
    small int (a level beyond any reservoir comes back as SMALL - 1)."""
    hours = (notice_s + 3599) // 3600
    if hours == 0 or rate_nl_day <= 0:
        return low_nl
    if rate_nl_day >= (SMALL - 1) // hours:
        return SMALL - 1     # more than 44 mL of notice: beyond any reservoir
    level = low_nl + rate_nl_day * hours // 24
    return level if level < SMALL else SMALL - 1


def bolus_rate(dose_nl, dur_ms):
    """A bolus as an integer rate in nL/day plus a lead: the sub-nL remainder the rounding drops,
    in nL*ms/day units, which the stroke clock credits when the bolus starts. Delivery then never
    lags the evenly spread dose and never runs ahead of it by a nanolitre."""
    num = dose_nl * DAY_MS
    rate = num // dur_ms
    return rate, num - rate * dur_ms
