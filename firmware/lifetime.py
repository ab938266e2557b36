# How long the battery lasts: days to ERI and to EOS (docs/alarms.md, "Battery life"). Loaded
# for a `status` request and let go after (the Pico's heap is small); the counts it rests on
# are the self-test room's (firmware/selftest.py), which the periodic check keeps.
#
# The charge left comes from the cell's rest voltage through its discharge curve (board data
# B_CURVE_MV: the voltage at 100 %, 90 %, ... 0 % of B_CAPACITY_UAH). What the pump spends a
# day comes from what it really did: the strokes it made, the buzzer patterns it played and the
# times the control loop woke up, counted since the oldest of the samples the periodic check
# takes every 6 hours (a day to a day and 6 hours back), each at its board cost, plus the draw
# at rest. Before an hour has been counted since a boot the day is
# projected: the prescription's basal strokes, the tones the active alarms will play, and the
# wake-ups the loop needs at least (every half watchdog timeout, each stroke, each check).
#
#   days = (charge at the reading - charge at the threshold) / charge spent a day
#
# The band: the same with the reading taken B_CURVE_ERR_MV plus half the spread of the
# averaged readings lower and higher (wide where the curve is flat). Integers only.
from firmware.codes import CRITICAL_MASK
from firmware.selftest import SAMPLES

DAY_S = 86400


def status(th):
    """The battery keys of `status` for Therapy th (time brought up to now): battery_eri_days
    and battery_eos_days (-1 before the first reading), and battery_life, the estimate with
    its band and what it rests on."""
    pump = th.pump
    mon = th.mon
    st = th.checks
    hal = st.hal
    pump.ts()       # mono_s up to now
    rx = pump.rx
    basal = rx.basal_nl_day // pump.stroke_nl if rx is not None and pump.delivering() else 0
    al = th.sup.al
    loud = al.active & ~al.acked
    tones = 144 if loud & CRITICAL_MASK else 24 if loud else 0   # the patterns' repeats a day
    day = per_day(st, pump.mono_s, pump.strokes, basal, tones)
    n = mon.mv_n
    if not n:
        return {"battery_eri_days": -1, "battery_eos_days": -1, "battery_life": None}
    seen = mon.mv[:n]
    mv = mon.mv_avg
    err = hal.B_CURVE_ERR_MV + (max(seen) - min(seen) + 1) // 2
    use = (hal.B_REST_NA * DAY_S // 1000 + day[0] * hal.B_STROKE_UAS + day[1] * hal.B_TONE_UAS
           + day[2] * hal.B_WAKE_UAS)
    out = {"charge_pct": ppm(hal.B_CURVE_MV, mv) // 10000, "uas_per_day": use,
           "strokes_per_day": day[0], "tones_per_day": day[1], "wakes_per_day": day[2],
           "counted_h": day[3], "band_mv": err}
    for name, at in (("eri", hal.B_ERI_MV), ("eos", hal.B_EOS_MV)):
        out[name + "_days"] = [days(hal, m, at, use) for m in (mv - err, mv, mv + err)]
    return {"battery_eri_days": out["eri_days"][1], "battery_eos_days": out["eos_days"][1],
            "battery_life": out}


def per_day(st, mono_s, strokes, basal_strokes, tones_day):
    """(strokes, tones, wake-ups a day, hours they were counted over: 0 when projected)."""
    if st.ring_n:
        k = ((st.ring_i - st.ring_n) % SAMPLES) * 4    # the oldest sample, a day or more back
        r = st.ring
        span = mono_s - r[k]
        if span >= 3600:
            return ((strokes - r[k + 1]) * DAY_S // span, (st.tones - r[k + 2]) * DAY_S // span,
                    (st.wakes - r[k + 3]) * DAY_S // span, span // 3600)
    hal = st.hal
    # the watchdog's wake-ups, a stroke's, a check's and its two slices (firmware/selftest.py)
    wakes = (DAY_S * 1000 // (hal.WDT_TIMEOUT_MS // 2) + basal_strokes
             + 3 * (DAY_S * 1000 // hal.CHECK_MS))
    return basal_strokes, tones_day, wakes, 0


def days(hal, mv, at_mv, use_uas):
    """Whole days from rest voltage mv down to at_mv at use_uas a day (0 when there already)."""
    curve = hal.B_CURVE_MV
    left = (ppm(curve, mv) - ppm(curve, at_mv)) * hal.B_CAPACITY_UAH * 3600 // 1000000
    return left // use_uas if left > 0 and use_uas > 0 else 0


def ppm(curve, mv):
    """The share of the cell's charge left at rest voltage mv, in parts per million: the curve
    holds the voltage at 100 %, 90 %, ... 0 %, falling; between its points a straight line."""
    last = len(curve) - 1
    if mv >= curve[0]:
        return 1000000
    if mv <= curve[last]:
        return 0
    i = 0
    while curve[i + 1] > mv:
        i += 1
    return ((last - i - 1) * 1000000 + (mv - curve[i + 1]) * 1000000 // (curve[i] - curve[i + 1])
            ) // last
