"""The page's figures come from pumpctl's formatter (host_tools/views.py), whatever the firmware
reports: the self-test in `info` and the battery's days to ERI and EOS in `status` are shown
when the pump gives them, in the words `pumpctl info` and `pumpctl status` print, and their
absence (an older firmware) changes nothing else. A scripted pump on a pty stands in for the
firmware (no board, no browser), so each shape is one request to the page's server."""

import json

import pytest

from host_tools import link, views
from host_tools.ui.pump import PumpView
from tests.host_tools.serial_peer import SECRET, Peer, body_of
from tests.ui.conftest import served
from tests.ui.test_security import LIMITS, request

INFO = {"pump_id": "pump-1", "firmware": "0.5.0", "board": "virtual-pico",
        "build": "production", "keys": "ok", "clock_ts": 92_000_000,
        "ctr": {"clinician": 3, "patient": 0}, "limits": LIMITS, "uptime_s": 60}
STATUS = {"programmed": True, "delivering": True, "rate_nl_day": 96_000,
          "basal_nl_day": 96_000, "max_daily_nl": 240_000, "reservoir_nl": 10_000_000,
          "low_reservoir_nl": 2_000_000, "refill_ts": -1, "delivered_24h_nl": 1000,
          "battery_mv": 3100, "clock_ts": 92_000_000, "step": 0, "alarms": [], "bolus": {}}
SETTINGS = {"conc_ng_ml": 25_000_000, "steps": [[0, 2_400_000]], "max_daily_ng": 6_000_000,
            "low_res_nl": 2_000_000, "meta": {"drug": "morphine"}}

# the self-test as the firmware's `info` reports it (firmware/testreport.py), a failed part
SELF_TEST = {"when_ts": 91_999_000, "ms": 840, "passed": False, "failing": ["buzzer"],
             "parts": {"code": {"outcome": "pass", "critical": True, "found": "manifest signed"},
                       "memory": {"outcome": "pass", "critical": True, "found": "all cells"},
                       "buzzer": {"outcome": "fail", "critical": False,
                                  "found": "the PWM did not take"},
                       "watchdog": {"outcome": "skipped", "critical": False, "found": ""}}}
BATTERY = {"battery_eri_days": 1234, "battery_eos_days": 1400}


def scripted(peer: Peer, info: dict, status: dict) -> PumpView:
    def script(p, line):
        cmd = json.loads(body_of(line))["cmd"]
        if cmd == "info":
            return p.reply(line, ok=True, cmd="info", **info)
        if cmd == "status":
            return p.reply(line, ok=True, cmd="status", **status)
        if cmd == "settings":
            return p.reply(line, ok=True, cmd="settings", settings=SETTINGS)
        if cmd == "log":
            return p.reply(line, ok=True, cmd="log", total=0, next=0, chain_ok=True, entries=[])
        return p.reply(line, ok=True, cmd=cmd)
    peer.script = script
    return PumpView(peer.path, link.Key("clinician", SECRET, "pump-1"), timeout_s=1)


def facts(html: str, section: str) -> dict[str, str]:
    """A section's table rows as {label: value} (the page's HTML, entities as sent)."""
    import re

    part = html.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    return dict(re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", part))


@pytest.mark.parametrize("given", ["reported", "not reported", "not yet known"])
def test_self_test_and_battery_life_are_shown_when_the_pump_gives_them(given):
    info, status = dict(INFO), dict(STATUS)
    if given == "reported":
        info["self_test"] = SELF_TEST
        status.update(BATTERY)
    elif given == "not yet known":            # a new pump: no test run, no reading yet
        info["self_test"] = {"when_ts": -1, "passed": None, "parts": {}}
        status.update(battery_eri_days=-1, battery_eos_days=-1)
    peer = Peer()
    try:
        with served(scripted(peer, info, status)) as s:
            code, _, html = request(s, "GET", s.app.url("/"))
    finally:
        peer.close()
    assert code == 200
    pump, therapy = facts(html, "pump"), facts(html, "therapy")
    assert pump["pump id"] == "pump-1" and therapy["therapy"] == "delivering"
    # the same words as `pumpctl info` and `pumpctl status` (one formatter)
    assert therapy["battery"] == views.battery_text(status)
    if "self_test" in info:
        assert pump["self-test"] == views.self_test_lines(info["self_test"])[0][13:]
    if given == "reported":
        assert therapy["battery"] == "3100 mV, about 1234 d to ERI, about 1400 d to EOS"
        assert pump["self-test"] == ("FAILED at 2026-11-30 19:16:40 (code ok, memory ok, "
                                     "buzzer FAILED: the PWM did not take, watchdog skipped)")
    elif given == "not yet known":
        assert therapy["battery"] == "3100 mV, ERI not yet known, EOS not yet known"
        assert pump["self-test"] == "not run yet"
    else:
        assert therapy["battery"] == "3100 mV" and "self-test" not in pump


def test_the_self_test_reads_the_same_in_each_shape_the_firmware_may_give():
    """A part's outcome as a word, a bool, or a list of parts: one line, the same words."""
    shapes = [{"code": "pass", "buzzer": "fail"}, {"code": True, "buzzer": False},
              [{"part": "code", "outcome": "pass"}, {"part": "buzzer", "passed": False}]]
    for parts in shapes:
        line = views.self_test_lines({"when": 0, "passed": False, "parts": parts})
        assert line == ["self-test    FAILED at 2024-01-01 00:00:00 (code ok, buzzer FAILED)"]
    assert views.self_test_lines(None) == [] and views.self_test_lines("garbage") == []


def test_a_fill_of_another_drug_reads_in_its_own_unit_and_says_why_delivery_waits():
    from host_tools.ui.server import rows

    st = {**STATUS, "stopped": True, "delivering": False, "fills": 2, "fill_drug": "baclofen",
          "fill_conc_ng_ml": 500_000}
    view = views.status_view(st, SETTINGS)
    shown = dict(rows(views.status_lines(st, SETTINGS, view)))
    assert shown["therapy"] == ("STOPPED: the reservoir holds baclofen, not the program's; "
                                "delivery waits for a program of it, then a resume")
    assert shown["reservoir of"] == ("baclofen at 500 mcg/mL: NOT the program's: delivery "
                                     "waits for a program of it")
    same = {**st, "fill_drug": "morphine", "fill_conc_ng_ml": SETTINGS["conc_ng_ml"]}
    shown = dict(rows(views.status_lines(same, SETTINGS, views.status_view(same, SETTINGS))))
    assert shown["therapy"] == "STOPPED, until `pumpctl resume`"
    assert shown["reservoir of"] == "morphine at 25 mg/mL"


def test_every_status_row_on_the_page_is_pumpctl_status_s_line():
    """A pump with a bit of everything (a fill, a catheter full of the old solution still at its
    tip, a stop reminded by therapy_stopped, a patient bolus running, the battery's days): the
    page's table is `pumpctl status`'s lines, row for row."""
    from host_tools.ui.server import rows

    settings = {**SETTINGS, "catheter": {"model": "Prometra 11823", "length_mm": 600,
                                         "nl_per_cm": 2600}}
    status = {**STATUS, **BATTERY, "stopped": True, "delivering": False, "stopped_s": 5400,
              "stop_left_s": 0, "fills": 3, "fill_drug": "morphine", "fill_ts": 91_990_000,
              "fill_conc_ng_ml": 25_000_000, "expiry_ts": 99_000_000, "catheter": "full",
              "catheter_nl": 156_000, "new_drug_at_tip_s": 30_000, "tip_conc_ng_ml": 20_000_000,
              "refill_notice_s": 604_800, "projected_nl_day": 96_000,
              "refill_ts": 94_000_000, "bolus": {"patient": True, "clinician": False},
              "patient_bolus": {"count_24h": 1, "max_per_day": 4, "lockout_left_s": 3000},
              "alarms": [{"code": "therapy_stopped", "priority": "warning", "acked": False}]}

    def script(p, line):
        cmd = json.loads(body_of(line))["cmd"]
        if cmd == "settings":
            return p.reply(line, ok=True, cmd="settings", settings=settings)
        return None

    peer = Peer()
    try:
        pump = scripted(peer, INFO, status)
        plain = peer.script
        peer.script = lambda p, line: script(p, line) or plain(p, line)
        with served(pump) as s:
            html = request(s, "GET", s.app.url("/"))[2]
    finally:
        peer.close()
    lines = views.status_lines(status, settings, views.status_view(status, settings))
    from markupsafe import escape

    assert facts(html, "therapy") == {k: str(escape(v)) for k, v in rows(lines)}
    shown = dict(rows(lines))
    assert shown["at the tip"] == ("the solution before the refill, 20 mg/mL, for about 8 h "
                                   "20 min more at the basal rate (then the new one)")
    assert shown["catheter"].endswith("0.156 mL, full")
    assert shown["alarms"] == "therapy_stopped (warning)" and "therapy_stopped" in html
    assert shown["boluses"] == "patient running"
