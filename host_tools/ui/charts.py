"""The page's figures as SVG written here: the day's schedule (old and new on one chart, the
present moment marked), the reservoir running down to its low level, the last 24 hours against
the cap. Numbers only go in as coordinates; every label goes through markupsafe.escape and the
words are host_tools/fmt.py's, as pumpctl prints them."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from host_tools import fmt
from host_tools.clinical import DAY_MIN, DAY_S

W, H = 640, 220          # the drawing's own units; the page scales it to its column
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 30


def _svg(title: str, body: list[str], h: int = H) -> Markup:
    return Markup(f'<svg viewBox="0 0 {W} {h}" role="img" class="chart" '
                  f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
                  + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, cls: str = "", anchor: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">'
            f"{escape(text)}</text>")


def _steps_path(steps: Sequence[Sequence[int]], x, y) -> str:
    """A step line through the day: each rate from its start to the next step's."""
    pts = []
    for i, (start, rate) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else DAY_MIN
        pts += [f"{x(start):.1f},{y(rate):.1f}", f"{x(end):.1f},{y(rate):.1f}"]
    return "M" + " L".join(pts)


def schedule(now_steps: Sequence[Sequence[int]] | None, unit: str | None,
             new_steps: Sequence[Sequence[int]] | None = None,
             now_minute: int | None = None) -> Markup:
    """The basal schedule over 24 hours, in the drug's mass a day: the pump's now (solid), a
    new one (dashed) beside it, the present moment as a vertical line."""
    rates = [r for s in (now_steps or [], new_steps or []) for _, r in s]
    top = max(rates + [1]) * 1.15
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(minute):
        return LEFT + plot_w * minute / DAY_MIN

    def y(rate):
        return TOP + plot_h * (1 - rate / top)

    body = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>']
    for hour in range(0, 25, 3):
        body.append(f'<line x1="{x(hour * 60):.1f}" y1="{TOP}" x2="{x(hour * 60):.1f}" '
                    f'y2="{TOP + plot_h}" class="grid"/>')
        body.append(_text(x(hour * 60), H - 10, f"{hour:02d}:00", "tick", "middle"))
    for frac in (0.5, 1.0):
        rate = top / 1.15 * frac
        body.append(_text(LEFT - 6, y(rate) + 4, fmt.mass(round(rate), unit), "tick", "end"))
    if now_steps:
        body.append(f'<path d="{_steps_path(now_steps, x, y)}" class="now-line"/>')
    if new_steps:
        body.append(f'<path d="{_steps_path(new_steps, x, y)}" class="new-line"/>')
    if now_minute is not None:
        body.append(f'<line x1="{x(now_minute):.1f}" y1="{TOP}" x2="{x(now_minute):.1f}" '
                    f'y2="{TOP + plot_h}" class="present"/>')
        late = x(now_minute) > W - RIGHT - 70      # the label goes left of the line there
        body.append(_text(x(now_minute) + (-4 if late else 4), TOP + 12,
                          "now " + fmt.hhmm(now_minute), "present-label",
                          "end" if late else "start"))
    what = "The basal schedule over the day (a day's rate)" + (
        ": now on the pump solid, new dashed" if new_steps else "")
    return _svg(what, body)


def reservoir(reservoir_nl: int, low_nl: int, projected_nl_day: int, clock_ts: int,
              refill_ts: int | None = None, expiry_ts: int | None = None) -> Markup:
    """The reservoir from now down to its low level at the projected use a day, with the
    refill date (the low level) and the fill's expiry marked."""
    days = 14.0
    if projected_nl_day > 0 and reservoir_nl > low_nl:
        days = min(max((reservoir_nl - low_nl) / projected_nl_day * 1.25, 2.0), 400.0)
    if expiry_ts is not None and expiry_ts > clock_ts:
        days = max(days, min((expiry_ts - clock_ts) / DAY_S * 1.1, 400.0))
    top = max(reservoir_nl, low_nl, 1) * 1.1
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(d):
        return LEFT + plot_w * min(d, days) / days

    def y(nl):
        return TOP + plot_h * (1 - max(nl, 0) / top)

    body = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>',
            f'<line x1="{LEFT}" y1="{y(low_nl):.1f}" x2="{W - RIGHT}" y2="{y(low_nl):.1f}" '
            'class="low"/>',
            _text(W - RIGHT - 4, y(low_nl) - 4, f"low level {fmt.vol(low_nl)}", "tick", "end"),
            _text(LEFT - 6, y(reservoir_nl) + 4, fmt.vol(reservoir_nl), "tick", "end")]
    end_d = days if projected_nl_day <= 0 else min(reservoir_nl / projected_nl_day, days)
    end_nl = reservoir_nl - projected_nl_day * end_d
    body.append(f'<path d="M{x(0):.1f},{y(reservoir_nl):.1f} L{x(end_d):.1f},{y(end_nl):.1f}" '
                'class="now-line"/>')
    step = max(1, round(days / 7))
    for d in range(0, int(days) + 1, step):
        if x(d) <= W - RIGHT - 20:      # a label at the right edge would be cut
            body.append(_text(x(d), H - 10, f"+{d} d", "tick", "middle"))
    for ts, label, cls in ((refill_ts, "refill", "present"), (expiry_ts, "expires", "expiry")):
        if ts is not None and ts >= 0:
            d = max(ts - clock_ts, 0) / DAY_S
            body.append(f'<line x1="{x(d):.1f}" y1="{TOP}" x2="{x(d):.1f}" '
                        f'y2="{TOP + plot_h}" class="{cls}"/>')
            body.append(_text(x(d) - 4, TOP + 12, f"{label} {fmt.pump_time(ts)[:10]}",
                              "present-label", "end"))
    return _svg("The reservoir running down to its low level at the projected use a day", body)


def against_cap(delivered_nl: int, cap_nl: int, text: str) -> Markup:
    """The last 24 hours as a bar against the maximum daily dose."""
    h = 46
    plot_w = W - LEFT - RIGHT
    share = min(delivered_nl / cap_nl, 1.0) if cap_nl > 0 else 0.0
    cls = "bar-high" if share >= 0.9 else "bar"
    body = [f'<rect x="{LEFT}" y="8" width="{plot_w}" height="18" class="frame"/>',
            f'<rect x="{LEFT}" y="8" width="{plot_w * share:.1f}" height="18" class="{cls}"/>',
            _text(LEFT, 42, text, "tick")]
    return _svg("The last 24 hours against the maximum daily dose", body, h)
