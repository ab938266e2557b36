"""The page's other changes, end to end on the virtual board, each as pumpctl makes it and each
read back: a catheter revision and a prime, both with the volume typed again; a stop until
resumed, its therapy_stopped reminder acknowledged on the page, and the resume; a refill with
another drug, which stops delivery until a program of that drug. These run after test_page.py
and test_security.py (file order) and leave the pump on baclofen."""

import re
from datetime import datetime

from host_tools.ui.server import rows
from tests.ui.conftest import facts, shot
from tests.ui.test_page import report, upload

BACLOFEN_RX = ('drug = "baclofen"\nconcentration = "500 mcg/mL"\n[basal]\nrate = "100 mcg/day"\n'
               '[limits]\nmax_daily_dose = "200 mcg"\nlow_reservoir = "2 mL"\n')


def read_back(pg) -> dict[str, str]:
    """The result page's read-back table: the pump's status lines after the change."""
    return facts(pg, "#read-back")


def confirm_with_volume(pg, volume: str | None = None) -> str:
    """Confirm a change that empties into the patient: the volume shown typed again."""
    label = pg.locator("#confirm-form label").inner_text()
    shown = re.search(r"again to confirm \(([\d.]+ mL)\)", label).group(1)
    pg.fill("#confirm-form input[name=typed]", volume or shown)
    pg.click("#confirm-form button.confirm")
    return shown


def test_a_catheter_revision_and_a_prime_each_take_the_volume_typed_again(ui, board, page):
    page.goto(ui.url)
    page.click("#catheter-form button[type=submit]")        # the box not ticked: nothing
    assert page.url.startswith(ui.url.split("?")[0]) and page.locator("#preview").count() == 0
    page.check("#catheter-form input[name=revised]")
    page.click("#catheter-form button[type=submit]")
    lines = page.locator("#preview pre.lines").inner_text()
    assert "Catheter: a new or revised catheter of 0.156 mL" in lines
    assert "Type the catheter's volume again" in page.inner_text("#confirm-form")
    shot(page, "catheter-preview")
    confirm_with_volume(page, "0.2 mL")                      # a wrong volume: nothing recorded
    assert "is not 0.156 mL" in page.inner_text("#failure-message")

    page.goto(ui.url)
    page.check("#catheter-form input[name=revised]")
    page.click("#catheter-form button[type=submit]")
    assert confirm_with_volume(page) == "0.156 mL"
    assert "catheter recorded as new: empty (0.156 mL)" in report(page)
    assert read_back(page)["catheter"].endswith("empty (a prime may fill it)")

    page.goto(ui.url)
    page.fill("#prime-form input[name=volume]", "0.156 mL")
    page.click("#prime-form button[type=submit]")
    assert "Priming bolus: 0.156 mL" in page.locator("#preview pre.lines").inner_text()
    shot(page, "prime-preview")
    confirm_with_volume(page)
    assert "priming bolus started: 0.156 mL" in report(page)
    assert "empty" not in read_back(page)["catheter"]
    cli = board.status()
    assert cli["catheter"] != "empty" and cli["bolus"]["clinician"] in (True, False)

    page.goto(ui.url)                    # the catheter is no longer empty: the pump refuses
    page.fill("#prime-form input[name=volume]", "0.1 mL")
    page.click("#prime-form button[type=submit]")
    assert page.locator("#result h2").first.inner_text() == "The pump refused"
    assert "catheter" in page.inner_text("#failure-message")
    assert read_back(page)["catheter"] == dict(_rows(board))["catheter"]


_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")


def _stamp(text: str) -> float:
    """The first date and minute in a status line, in seconds."""
    return datetime.strptime(_STAMP.search(text).group(0), "%Y-%m-%d %H:%M").timestamp()


def _minute_free(shown: dict[str, str]) -> dict[str, str]:
    """Status rows with their dates blanked (compared on their own, to the minute)."""
    return {k: _STAMP.sub("<date>", v) for k, v in shown.items()}


def _rows(board):
    rc, out, _ = board.ctl("status")
    assert rc == 0
    return rows(out.splitlines())


def test_a_stop_is_reminded_acknowledged_and_resumed_on_the_page(ui, board, page):
    page.goto(ui.url)
    page.click("#stop-form button[type=submit]:not([formaction])")   # no end: until resumed
    lines = page.locator("#preview pre.lines").inner_text()
    assert "until `pumpctl resume`" in lines and "Withdrawal risk" in lines
    page.click("#confirm-form button.confirm")
    assert "delivery stopped" in report(page)
    assert read_back(page)["therapy"].startswith("STOPPED")
    assert board.status()["stopped"] is True

    board.inject("advance", "70 min")            # past the stop reminder (1 h by default)
    page.goto(ui.url)
    # one pump clock on the page, though `info` was read before the jump
    assert facts(page, "#pump")["pump clock"] == facts(page, "#status-table")["pump clock"]
    row = page.locator("#alarms tr", has_text="therapy_stopped")
    assert row.locator("td").nth(1).inner_text() == "warning"
    assert "therapy_stopped (warning)" in page.inner_text("#status-table")
    shot(page, "therapy-stopped")
    row.locator("button").click()
    assert "therapy_stopped acknowledged" in report(page)
    assert "therapy_stopped (warning, acknowledged)" in read_back(page)["alarms"]

    page.goto(ui.url)
    page.click("#stop-form button[formaction]")
    assert "Resume: the basal starts again" in page.locator("#preview pre.lines").inner_text()
    page.click("#confirm-form button.confirm")
    assert "delivery resumed" in report(page)
    back = read_back(page)
    assert back["therapy"] == "delivering" and "therapy_stopped" not in back["alarms"]
    st = board.status()
    assert st["stopped"] is False and st["delivering"] is True


def test_a_refill_with_another_drug_stops_delivery_until_its_program(ui, board, page,
                                                                      tmp_path):
    page.goto(ui.url)
    page.fill("#refill-form input[name=volume]", "18 mL")
    page.select_option("#refill-form select[name=drug]", "baclofen")
    page.fill("#refill-form input[name=concentration]", "500 mcg/mL")
    page.click("#refill-form button[type=submit]")
    lines = page.locator("#preview pre.lines").inner_text()
    assert "Refill: the reservoir will hold 18 mL of baclofen at 500 mcg/mL." in lines
    assert "CHANGE OF DRUG: the pump runs morphine" in lines
    shot(page, "drug-change-preview")
    page.click("#confirm-form button.confirm")
    done = report(page)
    assert "refill recorded: the reservoir holds 18 mL" in done
    assert "delivery is stopped: program a prescription of baclofen, then resume" in done
    back = read_back(page)
    assert back["therapy"].startswith("STOPPED: the reservoir holds baclofen, not the program's")
    assert back["reservoir of"] == ("baclofen at 500 mcg/mL: NOT the program's: delivery waits "
                                    "for a program of it")
    page.goto(ui.url)
    shown = facts(page, "#status-table")
    cli = dict(_rows(board))
    assert shown["therapy"] == cli["therapy"] == back["therapy"]
    # every row as pumpctl status prints it (the clock, the time stopped and the lockout
    # left move on)
    moving = ("pump clock", "stopped for", "patient")
    assert _minute_free({k: v for k, v in shown.items() if k not in moving}) == \
        _minute_free({k: v for k, v in cli.items() if k not in moving})
    # the low level and the refill date are counted from the clock too: the two reads may
    # fall either side of a minute, never further apart
    for row in ("reservoir", "refill due"):
        assert abs(_stamp(shown[row]) - _stamp(cli[row])) <= 60, (shown[row], cli[row])
    shot(page, "drug-change")

    upload(page, tmp_path, BACLOFEN_RX.replace("500 mcg", "1000 mcg", 1), "wrong.toml")
    assert "refill first: the reservoir holds baclofen at 500 mcg/mL" in \
        page.inner_text("#refusal")
    assert page.locator("#confirm-form").count() == 0

    page.goto(ui.url)
    upload(page, tmp_path, BACLOFEN_RX, "baclofen.toml")       # a start without its trial
    assert "screening" in page.inner_text("#refusal")
    page.goto(ui.url)                     # the screening bolus that worked, as pumpctl takes it
    page.fill("#program-form input[name=trial_dose]", "50 mcg")
    page.fill("#program-form input[name=trial_effect]", "6 h")
    upload(page, tmp_path, BACLOFEN_RX, "baclofen.toml")
    lines = page.locator("#preview pre.lines").inner_text()
    assert "start rule: baclofen after a screening trial" in lines
    assert "this prescription starts there" in lines
    page.click("#confirm-form button.confirm")
    assert "written and read back" in report(page)
    assert "delivery is stopped" in page.inner_text("#result")
    assert read_back(page)["drug"] == "baclofen at 500 mcg/mL"

    page.goto(ui.url)
    page.click("#stop-form button[formaction]")
    page.click("#confirm-form button.confirm")
    assert "delivery resumed" in report(page)
    st = board.status()
    assert st["drug"] == "baclofen" and st["delivering"] is True
    page.goto(ui.url)
    assert "fill_drug_changed" in page.inner_text("#log")
