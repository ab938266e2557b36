# What the pump is doing, as one snapshot for the protocol's `status` (firmware/handlers.py):
# the only place that reads across the rooms for a report. It decides nothing; the figures
# are the rooms' own (nL, ms, s on the pump clock), named as docs/protocol.md names them.
from firmware import codes


def alarms(sup):
    """The active alarms: [{code, priority, acked}], in code order."""
    out = []
    for code in codes.ALARM_NAMES:
        bit = 1 << code
        if sup.al.active & bit:
            out.append({"code": codes.ALARM_NAMES[code], "priority": codes.priority(code),
                        "acked": bool(sup.al.acked & bit)})
    return out


def snapshot(th, now, clock_ts):
    """The status of Therapy `th` at ticks `now` (time brought up to it), with the shell's
    pump clock clock_ts (s since 2024-01-01) for the dates."""
    pump = th.pump
    pump.service(now)
    rx = pump.rx
    res = th.reservoir
    sup = th.sup
    stroke_nl = pump.stroke_nl
    low_in = res.low_in_s()
    return {
        "programmed": rx is not None,
        "stopped": pump.stopped,
        "delivering": pump.delivering() and not sup.al.active & codes.CRITICAL_MASK
        and res.nl - stroke_nl >= res.min_nl,
        "stop_left_s": (pump.suspend_left_ms(now) + 999) // 1000,
        "rate_nl_day": rx.step_rate_nl_day[pump.step] if rx else 0,
        "step": pump.step,
        "basal_nl_day": rx.basal_nl_day if rx else 0,
        "max_daily_nl": rx.max_daily_nl if rx else 0,
        "low_reservoir_nl": rx.low_res_nl if rx else 0,
        "reservoir_nl": res.nl,
        "time_to_empty_s": res.time_to_empty_s(),
        "refill_ts": -1 if low_in < 0 else clock_ts + low_in,
        "projected_nl_day": res.projected_nl_day(),
        "refill_notice_s": rx.refill_notice_s if rx else 0,
        "fill_ts": res.fill_ts,
        "fills": res.fills,
        "expiry_ts": res.expires_ts(),
        "catheter_nl": th.catheter_nl(),
        "alarms": alarms(sup),
        "battery_mv": th.mon.mv_avg,
        "delivered_24h_nl": th.guard.given_nl(stroke_nl),
        "dose_account": "lost" if th.guard.lost else "kept",
        "bolus": {"patient": pump.pb_on, "clinician": pump.cb_on},
        "strokes": pump.strokes,
        "strokes_uncertain": pump.uncertain,
        "strokes_missed": pump.missed,
        "strokes_refused": pump.refused,
        "refusing": codes.REASON_NAMES.get(pump.refusing) if pump.refusing else None,
        "clock_ts": clock_ts,
    }


def uptime_s(th, now):
    """Seconds since the boot, brought up to `now`."""
    pump = th.pump
    pump.service(now)
    pump._sync()
    return pump.mono_s
