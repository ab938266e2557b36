"""The clinician's page on the emulated Pico (the released MicroPython rp2 UF2 in rp2040js): a
refill visit in the page alone, in Debian's Chromium through Playwright. Read the pump, record
the refill (its drug, and the residual measured against the pump's account), program a lower
schedule, Confirm, see it read back and in the log; pumpctl then reads the same.

The page reads the pump only when it is loaded here (its refresh is slower than the test), so
the emulated chip's serial line carries the visit and nothing else."""

import pytest

from host_tools import fmt
from host_tools.ui.server import rows
from tests.ui.conftest import board_view, chromium, facts, running_board, rx_text, served, shot

LOWER_RX = rx_text("20 mg/mL", {"00:00": "1.5 mg/day", "08:00": "2.5 mg/day"}, catheter=True)
STEP_S = 240          # a generous deadline for one step on a loaded two-core machine


@pytest.fixture
def visit(tmp_path):
    """The emulated Pico as a clinic finds it (refilled, programmed), its page, a browser tab."""
    with running_board(tmp_path / "board", rp2=True) as board:
        with served(board_view(board, "clinician_key", True), refresh_s=600) as ui:
            with chromium() as browser:
                ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
                pg = ctx.new_page()
                pg.set_default_timeout(STEP_S * 1000)
                errors: list[str] = []
                pg.on("pageerror", lambda e: errors.append(str(e)))
                yield board, ui, pg
                ctx.close()
                assert not errors, errors


def result(pg) -> str:
    pg.wait_for_selector("#report, #failure-message")
    failed = pg.locator("#failure-message")
    assert failed.count() == 0, failed.inner_text()
    return pg.locator("#report").inner_text()


def test_a_refill_visit_in_the_page_alone_on_the_emulated_pico(visit, tmp_path):
    board, ui, pg = visit
    # read the pump: the page says what pumpctl says
    pg.goto(ui.url)
    shown = facts(pg, "#status-table")
    rc, out, _ = board.ctl("status")
    assert rc == 0
    cli = dict(rows(out.splitlines()))
    for label in ("therapy", "drug", "basal a day", "catheter", "alarms"):
        assert shown[label] == cli[label], label
    assert shown["drug"] == "morphine at 20 mg/mL" and shown["therapy"] == "delivering"
    assert facts(pg, "#pump")["board"].startswith("pico")
    shot(pg, "rp2-clinician")

    # the refill: the drug named, the residual drawn out as the pump counted it
    residual = fmt.vol(board.status()["reservoir_nl"])
    pg.fill("#refill-form input[name=volume]", "20 mL")
    pg.select_option("#refill-form select[name=drug]", "morphine")
    pg.fill("#refill-form input[name=residual]", residual)
    pg.click("#refill-form button[type=submit]")
    lines = pg.locator("#preview pre.lines").inner_text()
    assert "Refill: the reservoir will hold 20 mL of morphine." in lines
    pg.click("#confirm-form button.confirm")
    text = result(pg)
    assert "refill recorded: the reservoir holds 20 mL" in text and "within tolerance" in text
    assert facts(pg, "#read-back")["reservoir"].startswith("20 mL")

    # a lower schedule: old and new side by side, Confirm, read back
    pg.goto(ui.url)
    rx = tmp_path / "lower.toml"
    rx.write_text(LOWER_RX)
    pg.set_input_files("#program-form input[name=file]", str(rx))
    pg.click("#program-form button[type=submit]")
    changed = [r.locator("th").inner_text() for r in pg.locator("tr.changed").all()]
    assert "basal from 08:00" in changed and "basal a day" in changed
    shot(pg, "rp2-program-preview")
    pg.click("#confirm-form button.confirm")
    assert "written and read back: the pump holds exactly these settings" in result(pg)
    assert facts(pg, "#read-back")["basal a day"].startswith(fmt.mass(2_166_667, "mg"))

    # the visit in the pump's own record, and pumpctl reads the same
    pg.goto(ui.url)
    record = pg.inner_text("#history" if pg.locator("#history").count() else "#log")
    for event in ("program", "refill"):
        assert event in record, event
    shot(pg, "rp2-after-visit")
    st = board.status()
    assert abs(st["basal_ng_day"] - 2_166_667) <= 50 and st["delivering"] is True

