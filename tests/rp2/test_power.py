"""Power on the emulated Pico: cuts at any instant (the emulator killed, restarted from its
flash image, which holds exactly what was programmed), inside a flash write, with a stream of
Ctrl-C and Ctrl-D on the line from power-on, and the clock a Pico loses each time."""

import threading
import time
from pathlib import Path

from tests.rp2.pico import PARAMS, STROKE_NL


def check_after_restart(pico, settings, boots):
    """What the fault state machine (tests/firmware/test_fault_state_machine.py) requires of a
    restart: the same settings, no memory_error, therapy going on, the dose guard's account at
    least what really reached the patient, and the reservoir account never above the truth."""
    pico.answers()
    truth = pico.inject("truth")
    assert truth["boots"] == boots + 1
    st = pico.status()
    codes = {a["code"] for a in st["alarms"]}
    assert "memory_error" not in codes and st["delivering"] is True, st
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert st["delivered_24h_nl"] >= truth["delivered_nl"], (st, truth)
    assert st["reservoir_nl"] <= truth["reservoir_nl"], (st, truth)
    return truth


def cut_by_saves(pico, boots):
    """Run the pump until the armed cut struck: the dose account's saves (every 32 strokes) and
    the log's write the flash as the hours pass."""
    for _ in range(24):
        pico.inject("advance", "1h")
        if pico.inject("truth")["boots"] > boots:
            return
    raise AssertionError("no flash write in a day of delivery: the armed power cut never came")


def test_power_cuts_anywhere_keep_the_settings_and_the_dose_account(pico):
    pico.program()
    pico.inject("advance", "1h")
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    truth = pico.inject("truth")
    # A cut between two strokes: nothing is delivered while off, nothing is made up after.
    pico.inject("power_loss", "for=2h")
    after = check_after_restart(pico, settings, truth["boots"])
    assert after["delivered_nl"] - truth["delivered_nl"] <= STROKE_NL
    # Cuts inside flash writes: right after the Nth page programmed from now on, the first ones
    # land in the signed request's counter record, later ones in the dose account's and the
    # log's saves, and in littlefs's own metadata commits.
    for n in (1, 3, 8):
        boots = pico.inject("truth")["boots"]
        pico.inject("power_loss", "for=10min", f"at_program={n}")
        cut_by_saves(pico, boots)
        check_after_restart(pico, settings, boots)
    # The pump still delivers after all that, at its prescribed rate.
    before = pico.inject("truth")["strokes"]
    pico.inject("advance", "2h")
    assert pico.inject("truth")["strokes"] - before >= 5


def test_a_stop_cut_short_by_the_power_is_either_done_or_not(pico):
    """A cut inside the save of a `stop`: the pump comes back stopped (the save got through) or
    running (it did not, and the host never had the reply); never with a broken account."""
    pico.program()
    pico.inject("advance", "30 min")
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    boots = pico.inject("truth")["boots"]
    pico.inject("power_loss", "for=1min", "at_program=4")
    pico.send_signed("stop")   # its reply may never come
    pico.answers()
    truth = pico.inject("truth")
    assert truth["boots"] == boots + 1
    st = pico.status()
    assert "memory_error" not in {a["code"] for a in st["alarms"]}
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert st["delivered_24h_nl"] >= truth["delivered_nl"]
    assert st["reservoir_nl"] <= truth["reservoir_nl"]


def test_ctrl_c_and_ctrl_d_from_power_on_do_not_stop_the_pump(pico):
    """Regression: Ctrl-C was turned off only once the board's HAL was built; a 0x03 during
    main.py's imports left the pump at MicroPython's REPL, without delivery or watchdog."""
    pico.program()
    pico.inject("advance", "10 min")
    console = Path(pico.info["flash"]) / "console.log"
    seen = console.stat().st_size   # what the line carried before this power-on
    stop = threading.Event()

    def flood():
        # 16 bytes every 10 ms: at every instant of the boot some are waiting. The emulated
        # chip takes what piled up at its own pace once the pump runs (a real Pico reads USB
        # far faster), and every byte costs the test its chip time: no more than the point needs.
        while not stop.is_set():
            pico.port.write(b"\x03\x04" * 8)
            time.sleep(0.01)

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    try:
        pico.inject("power_loss", "for=1min")   # the new chip hears the stream from power-on
        end = time.monotonic() + 180
        booted = False
        while time.monotonic() < end and not booted:
            booted = pico.inject("truth")["boots"] == 2 and (
                b">>>" in console.read_bytes()[seen:] or pico.inject("truth")["tmc_writes"] == 4)
            time.sleep(0.5)
        time.sleep(2)   # and on through the first loop cycles
    finally:
        stop.set()
        flooding.join()
    since = console.read_bytes()[seen:]
    assert b">>>" not in since and b"KeyboardInterrupt" not in since, since[-2000:]
    pico.answers()
    st = pico.status()
    assert st["delivering"] is True and st["programmed"] is True
    before = pico.inject("truth")["strokes"]
    pico.inject("advance", "20 min")   # a stroke every 4.5 min
    assert pico.inject("truth")["strokes"] > before


def test_a_pico_that_lost_its_clock_says_so_and_keeps_its_schedule(pico):
    """Regression: after a hard reset the RTC reads 2021-01-01 00:00, and the pump took it: the
    schedule restarted at its 00:00 step and the log carried 2021 stamps."""
    pico.program()
    ten_am = pico.ask({"cmd": "clock"}, sign=True)["clock_ts"] // 86400 * 86400 + 10 * 3600
    assert pico.ask({"cmd": "clock", "args": {"set_ts": ten_am}}, sign=True)["clock_lost"] is False
    pico.inject("advance", "1h")
    before = pico.status()
    assert before["step"] == 1 and before["alarms"] == []   # 07:00 onwards: 3 mg/day
    pico.inject("power_loss", "for=3h")
    pico.answers()
    st = pico.status()
    assert {"code": "clock_lost", "priority": "warning", "acked": False} in st["alarms"]
    assert st["delivering"] is True
    # On from the clock of the last save (here the clock's own, at 10:00: the hour since held
    # fewer strokes than a save of the dose account takes), not from 2021-01-01 00:00; the
    # time the power was off is not known to it.
    assert ten_am <= st["clock_ts"] <= ten_am + 3600 + 600
    assert st["step"] == 1 and st["rate_nl_day"] == PARAMS["steps"][1][1] // 25
    log = pico.ask({"cmd": "log", "args": {"max": 50}}, sign=True)["entries"]
    assert all(e[1] >= 0 for e in log), "a log entry stamped before 2024"
    assert any(e[2] == "clock_lost" for e in log)
    # A clinician sets it: the alarm ends, the change is logged, and it stays set.
    now_ts = ten_am + 4 * 3600
    reply = pico.ask({"cmd": "clock", "args": {"set_ts": now_ts}}, sign=True)
    assert reply["clock_lost"] is False
    assert "clock_lost" not in pico.alarms()
    log = pico.ask({"cmd": "log", "args": {"max": 50}}, sign=True)["entries"]
    assert any(e[2] == "clock_set" for e in log)
