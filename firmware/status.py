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


def patient_bolus(th):
    """The patient bolus as the patient sees it: the lockout left, the count in the last 24 h
    and the most allowed (None without one)."""
    pump = th.pump
    rx = pump.rx
    if rx is None or not rx.pb_dose_nl:
        return None
    pol = th.pb_policy
    now_s = pump.mono_s
    last = pol.starts_s[(pol.head - 1) % len(pol.starts_s)]
    left = rx.pb_lockout_s - (now_s - last)
    return {"dose_nl": rx.pb_dose_nl, "lockout_left_s": left if left > 0 else 0,
            "count_24h": pol.count_since(now_s, 86400), "max_per_day": rx.pb_max}


def snapshot(th, now, clock_ts):
    """The status of Therapy `th` at ticks `now` (time brought up to it), with the shell's
    pump clock clock_ts (s since 2024-01-01) for the dates."""
    pump = th.pump
    pump.service(now)
    pump._sync()
    rx = pump.rx
    res = th.reservoir
    sup = th.sup
    stroke_nl = pump.stroke_nl
    tod = pump.tod_ms
    low_in = res.low_in_s(tod)
    tip = res.tip_left_nl()
    rate = rx.step_rate_nl_day[pump.step] if rx else 0
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
        "time_to_empty_s": res.time_to_empty_s(tod),
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
        "delivered_24h_ng": th.guard.given_nl(stroke_nl) * (rx.conc_ng_ml if rx else 0)
        // 1000000,
        "fill_drug": res.drug,
        "fill_conc_ng_ml": res.conc_ng_ml,
        "catheter": "full" if res.catheter else "empty",
        "tip_conc_ng_ml": res.old_conc_ng_ml if tip else res.conc_ng_ml,
        "new_drug_at_tip_s": -1 if not tip or not rate else tip * 86400 // rate,
        "stopped_s": pump.stopped_s() if pump.stopped else 0,
        "patient_bolus": patient_bolus(th),
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
