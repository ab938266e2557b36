"""Hypothesis strategies for prescriptions and boards, shared by the firmware tests."""

from hypothesis import strategies as st

from pump_harness import DAY, MIN, Board, board_for_stroke, compile_rx, nl_of_ng

boards = st.one_of(
    st.just(Board(250, 600, 48000)),       # the virtual board
    st.just(Board(250, 600, 48000)),
    st.sampled_from([board_for_stroke(100), board_for_stroke(1000), board_for_stroke(500)]),
    st.integers(100, 1000).map(board_for_stroke),
)

CONCS = [1_000_000, 1_000_000, 500_000, 2_000_000, 10_000_000, 25_000_000, 100_000, 1000]

# Fastest basal step we generate: 20000 strokes/day keeps runs affordable (that is 5 mL/day on
# the virtual board, more than any intrathecal prescription) while still crossing the clock.
MAX_BASAL_STROKES_DAY = 20000


@st.composite
def rate_targets(draw, board):
    """A basal rate in nL/day: round numbers (strokes land on whole minutes), arbitrary ones,
    and the edges of the allowed range."""
    S = board.STROKE_NL
    lo = board.MIN_RATE_NL_DAY
    hi = min(board.motor_nl_day, S * MAX_BASAL_STROKES_DAY)
    kind = draw(st.integers(0, 9))
    if kind <= 2:
        # k strokes per hour or per minute: exact stroke intervals
        per = draw(st.sampled_from([24, 24, 1440]))
        k = draw(st.integers(1, max(1, hi // (S * per))))
        r = S * per * k
        return max(r, S * per * (-(-lo // (S * per))))
    if kind == 3:
        return lo
    if kind == 4:
        return hi
    return draw(st.integers(lo, hi))


@st.composite
def prescriptions(draw, board, valid_only=False):
    """Mostly valid params; when valid_only is False, sometimes one rule is broken on purpose."""
    S = board.STROKE_NL
    conc = draw(st.sampled_from(CONCS) | st.integers(1000, 50_000_000))
    n = draw(st.integers(1, 4) | st.integers(1, 13))
    minutes = sorted(draw(st.lists(st.integers(1, 1439), unique=True, min_size=n - 1,
                                   max_size=n - 1)))
    if draw(st.booleans()):
        minutes = sorted({m - m % 60 for m in minutes if m >= 60})  # whole hours
    starts = [0] + minutes
    steps = []
    for s in starts:
        r_nl = draw(rate_targets(board))
        r_ng = max(1, (r_nl * conc + 500_000) // 10**6)
        steps.append([s, r_ng])
    params = {"conc_ng_ml": conc, "steps": steps, "low_res_nl": draw(st.integers(0, 5_000_000))}

    rates_nl = [nl_of_ng(r, conc) for _, r in steps]
    ends = [m * MIN for m in starts[1:]] + [DAY]
    basal_x = sum(r * (e - s * MIN) for r, s, e in zip(rates_nl, starts, ends))
    basal_day = -(-basal_x // DAY)
    # the daily maximum: tight (the guard gets to work), roomy, or as high as allowed
    kind = draw(st.integers(0, 19))
    if kind < 8:
        md_nl = basal_day + draw(st.integers(0, 40)) * S
    elif kind < 18:
        md_nl = basal_day * draw(st.integers(11, 40)) // 10
    elif kind == 18:
        md_nl = board.MAX_STROKES_PER_MIN * 1440 * S  # the most strokes the firmware takes
    else:
        md_nl = basal_day - draw(st.integers(1, 10)) * S  # below the basal: refused
    md_ng = max(1, -(-md_nl * conc // 10**6))
    params["max_daily_ng"] = md_ng

    if draw(st.integers(0, 9)) < 7:
        lock_s = draw(st.sampled_from([600, 900, 1800, 3600, 7200, 14400]) |
                      st.integers(600, 86400))
        dur_s = draw(st.integers(1, min(lock_s, 3600)) | st.integers(1, lock_s))
        dose_nl = draw(st.integers(1, 40)) * S + draw(st.sampled_from([0, 0, 0, 1, S // 2]))
        dose_ng = max(1, (dose_nl * conc + 500_000) // 10**6)
        per_day = draw(st.integers(1, 24))
        params["pb"] = [dose_ng, dur_s, lock_s, per_day]
    else:
        params["pb"] = None

    if not valid_only and draw(st.integers(0, 9)) == 0:
        # break one rule on purpose
        what = draw(st.integers(0, 5))
        if what == 0:
            params["steps"][0][1] = max(1, (board.MIN_RATE_NL_DAY - 1) * conc // 10**6)
        elif what == 1 and params["pb"]:
            params["pb"][1] = params["pb"][2] + 1
        elif what == 2 and params["pb"]:
            params["pb"][2] = 599
        elif what == 3 and params["pb"]:
            params["pb"][3] = draw(st.sampled_from([0, 25]))
        elif what == 4 and params["pb"]:
            params["pb"][0] = max(1, (S - 1) * conc // 10**6)
        elif what == 5 and len(params["steps"]) > 1:
            params["steps"][1][0] = params["steps"][0][0]
    if valid_only:
        plan = compile_rx(params, board)
        if isinstance(plan, str):
            # fall back to something certainly valid: one step at the slowest rate, roomy cap
            r_ng = -(-board.MIN_RATE_NL_DAY * conc // 10**6)
            params = {"conc_ng_ml": conc, "steps": [[0, r_ng]],
                      "max_daily_ng": 10 * r_ng + S * conc // 10**6 * 10 + 1,
                      "low_res_nl": 0, "pb": None}
            plan = compile_rx(params, board)
            assert not isinstance(plan, str), (plan, params)
    return params


def advance_ms():
    return st.one_of(
        st.integers(1, 2000),
        st.integers(1, 10 * MIN),
        st.integers(1, 6 * 3_600_000),
        st.integers(1, 3 * DAY),
    )


ticks = st.one_of(st.integers(0, (1 << 30) - 1),
                  st.integers(1, 4_000_000).map(lambda k: (1 << 30) - k),
                  st.integers(0, 2000).map(lambda k: (1 << 29) - 1000 + k))
