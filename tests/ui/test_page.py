"""The clinician's page in headless Chromium, against a virtual board: what it shows is what
pumpctl shows, and a refill visit (read the pump, refill with a stronger solution and its bridge
bolus, program a change, confirm, see the log) is done in the page alone, each change read back
by pumpctl. A change the drug library refuses shows its reason and changes nothing."""

import re

from host_tools import fmt
from host_tools.ui.server import rows
from tests.ui.conftest import facts, rx_text, shot

LOWER_RX = rx_text("25 mg/mL", {"00:00": "1.5 mg/day", "08:00": "2.5 mg/day"})


def report(pg) -> str:
    """The result page's report; a failure there fails the test with its message."""
    pg.wait_for_selector("#report, #failure-message")
    failed = pg.locator("#failure-message")
    assert failed.count() == 0, failed.inner_text()
    return pg.locator("#report").inner_text()


def upload(pg, tmp_path, text: str, name: str = "rx.toml"):
    f = tmp_path / name
    f.write_text(text)
    pg.set_input_files("#program-form input[name=file]", str(f))
    pg.click("#program-form button[type=submit]")


def test_the_page_shows_what_pumpctl_status_shows(ui, board, page):
    page.goto(ui.url)
    rc, out, _ = board.ctl("status")
    assert rc == 0
    cli = dict(rows(out.splitlines()))
    shown = {r.locator("th").inner_text(): r.locator("td").inner_text()
             for r in page.locator("#status-table tr").all()}
    assert set(shown) == set(cli), page.inner_text("#live")
    for label in ("therapy", "drug", "basal now", "basal a day", "catheter", "boluses",
                  "alarms"):
        assert shown[label] == cli[label], label
    assert shown["drug"] == "morphine at 20 mg/mL" and shown["therapy"] == "delivering"
    assert page.locator("#therapy svg.chart title").first.text_content().startswith("The basal")
    assert page.locator("#reservoir svg.chart").count() == 1
    info = {r.locator("th").inner_text(): r.locator("td").inner_text()
            for r in page.locator("#pump tr").all()}
    assert info["pump id"] == board.key_pump_id()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot(page, "clinician")


def test_a_refill_visit_in_the_page_alone(ui, board, page, tmp_path):
    """Read, refill with a stronger solution (25 mg/mL after 20), give the bridge bolus in two
    steps, program a lower schedule, confirm, and find it all in the log and in pumpctl."""
    page.goto(ui.url)
    page.fill("#refill-form input[name=volume]", "20 mL")
    page.fill("#refill-form input[name=concentration]", "25 mg/mL")
    page.fill("#refill-form input[name=residual]", "1.5 mL")
    page.click("#refill-form button[type=submit]")
    lines = page.locator("#preview pre.lines").inner_text()
    assert "Refill: the reservoir will hold 20 mL at 25 mg/mL." in lines
    assert "concentration changes from 20 mg/mL to 25 mg/mL" in lines
    assert "Bridge bolus:" in lines
    shot(page, "refill-preview")
    assert board.status()["concentration_ng_per_ml"] == 20_000_000   # nothing sent yet
    page.click("#confirm-form button.confirm")
    assert "refill recorded: the reservoir holds 20 mL" in report(page)
    assert board.status()["concentration_ng_per_ml"] == 25_000_000
    # read back in pumpctl status's words (the catheter is empty: no old solution at its tip)
    back = facts(page, "#read-back")
    assert back["reservoir of"] == "morphine at 25 mg/mL" and "at the tip" not in back
    assert back["catheter"].endswith(", empty (a prime may fill it)")
    # the bridge bolus: its volume typed again, as pumpctl asks for it
    question = page.locator("#follow-up p").first.inner_text()
    volume = re.search(r"bridge bolus of ([\d.]+ mL)", question).group(1)
    page.fill("#follow-up input[name=typed]", "1 mL")          # a wrong volume first
    page.click("#follow-up button.confirm")
    assert "is not " + volume in page.locator("#failure-message").inner_text()
    assert board.status()["bolus"]["clinician"] is False      # nothing was given
    page.goto(ui.url)                   # the page's own bridge form gives it after all
    page.fill("#bridge-form input[name=old_concentration]", "20 mg/mL")
    page.click("#bridge-form button[type=submit]")
    lines = page.locator("#preview pre.lines").inner_text()
    # the basal's volume rate follows the new concentration now, so the bridge is worked out
    # again from it
    volume = re.search(r"Bridge bolus: ([\d.]+ mL) over", lines).group(1)
    page.fill("#confirm-form input[name=typed]", volume)
    shot(page, "bridge-preview")
    page.click("#confirm-form button.confirm")
    assert "bridge bolus started: " + volume in report(page)

    page.goto(ui.url)
    upload(page, tmp_path, LOWER_RX, "lower.toml")
    assert page.locator("#preview figure svg.chart").count() == 1
    changed = [r.locator("th").inner_text() for r in page.locator("tr.changed").all()]
    assert "basal from 08:00" in changed and "basal a day" in changed
    shot(page, "program-preview")
    page.click("#confirm-form button.confirm")
    assert "written and read back: the pump holds exactly these settings" in report(page)
    shot(page, "program-done")
    st = board.status()
    # 1.5 mg/day for 8 h, 2.5 mg/day for 16 h: 2.1667 mg, as the pump's nL a day hold it
    assert abs(st["basal_ng_day"] - 2_166_667) <= 50
    assert st["text"]["basal_a_day"].startswith(fmt.mass(2_166_667, "mg"))

    page.goto(ui.url)
    log = page.locator("#log pre").inner_text()
    for event in ("program", "concentration_change", "refill_check", "clinician_bolus"):
        assert event in log, event
    shot(page, "after-visit")


def test_a_change_the_library_refuses_shows_its_reason_and_changes_nothing(ui, board, page,
                                                                           tmp_path):
    before = board.status()
    page.goto(ui.url)
    upload(page, tmp_path, LOWER_RX.replace("25 mg/mL", "40 mg/mL"), "strong.toml")
    msg = page.locator("#failure-message").inner_text()
    assert "concentration" in msg and "hard limit" in msg and "25 mg/mL" in msg
    assert "Nothing that changes the pump was sent" in page.locator("#result").inner_text()
    shot(page, "refused")
    after = board.status()
    assert after["basal_nl_day"] == before["basal_nl_day"]
    assert after["concentration_ng_per_ml"] == before["concentration_ng_per_ml"]


def test_the_titration_guard_takes_the_override_reason_on_the_page(ui, board, page, tmp_path):
    page.goto(ui.url)
    upload(page, tmp_path, LOWER_RX.replace('"2.5 mg/day"', '"5 mg/day"'), "up.toml")
    refusal = page.locator("#refusal").inner_text()
    assert "titration" in refusal and "--override-titration" in refusal
    assert page.locator("#confirm-form").count() == 0
    shot(page, "titration")
    page.fill("#override-form input[name=override]", "pain not controlled <b>at night</b>")
    page.click("#override-form button[type=submit]")
    assert "titration guard overridden" in page.locator("#preview pre.lines").inner_text()
    page.click("#confirm-form button.confirm")
    assert "written and read back" in report(page)
    st = board.status()
    assert st["basal_ng_day"] > 3_000_000
