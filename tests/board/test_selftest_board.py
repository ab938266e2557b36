"""The self-test on a live virtual Pico (the real firmware on the MicroPython VM): the power-on
self-test checks the code against its signed manifest, proves the watchdog once per install and
reports each part in `info`; the periodic checks raise driver_hot, driver_fault,
die_temperature and self_test_failed from the faults `pumpsim inject` puts on the board; a code
file damaged while the board was off is found at the next boot (docs/alarms.md, "The
self-test")."""

import shutil

from host_tools import bundle
from sim.runner import ROOT
from tests.board.vboard_fixture import LiveBoard


def alarms(board):
    return {a["code"] for a in board.ask({"cmd": "alarms"}, sign=True)["alarms"]}


def events(board):
    return [e[2] for e in board.ask({"cmd": "log", "args": {"max": 50}}, sign=True)["entries"]]


def self_test(board):
    return board.ask({"cmd": "info"})["self_test"]


def test_a_new_board_passes_its_self_test_and_its_checks_find_the_injected_faults(tmp_path):
    board = LiveBoard(tmp_path / "flash")
    try:
        st = self_test(board)
        assert st["passed"] is True, st
        outcome = {k: v["outcome"] for k, v in st["parts"].items()}
        assert outcome == {"code": "pass", "memory": "pass", "driver": "pass",
                           "pressure": "pass", "battery": "pass", "buzzer": "pass",
                           "watchdog": "pass"}, st
        # a new pump is provisioned (its update key too) after its first boot: that boot can
        # check only the hashes; the next one checks the signature as well
        assert st["parts"]["code"]["found"].startswith("manifest not signed: no update key")
        assert "watchdog_proved" in events(board)      # the first boot of this install
        board.inject("reboot")
        board.inject("advance", "1 min")
        st = self_test(board)
        assert st["passed"] is True, st
        assert st["parts"]["code"]["found"].startswith("manifest signed"), st
        assert st["parts"]["watchdog"]["found"] == "reset the chip after this install", st
        board.program()
        status = board.ask({"cmd": "status"}, sign=True)
        assert status["battery_eri_days"] > 0 and status["battery_eos_days"] > 0
        assert status["battery_eos_days"] > status["battery_eri_days"]

        board.inject("driver", "fault=otpw")
        board.inject("advance", "6 min")
        assert "driver_hot" in alarms(board)
        assert board.ask({"cmd": "status"}, sign=True)["delivering"] is True
        board.inject("driver", "fault=ok")
        board.inject("advance", "6 min")
        assert "driver_hot" not in alarms(board)

        board.inject("die_temperature", "celsius=80")
        board.inject("advance", "6 min")
        assert "die_temperature" in alarms(board)
        board.inject("die_temperature", "celsius=37")
        board.inject("advance", "6 min")
        assert "die_temperature" not in alarms(board)

        board.inject("driver", "fault=short")
        board.inject("advance", "6 min")
        assert "driver_fault" in alarms(board)
        assert board.ask({"cmd": "status"}, sign=True)["delivering"] is False
        board.inject("driver", "fault=ok")
        assert board.ask({"cmd": "resume"}, sign=True)["ok"]
        board.inject("advance", "6 min")
        assert "driver_fault" not in alarms(board)

        board.inject("memory_fault", "cell=2", "bit=9")
        board.inject("advance", "2h")
        assert "self_test_failed" in alarms(board)
        assert self_test(board)["failing"] == ["memory"]
    finally:
        assert board.close() == 0


def test_a_code_file_damaged_while_the_board_was_off_is_found_at_the_next_boot(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    # an installed base in the flash directory (as `make flash` leaves one), with its manifest
    for top in ("firmware", "boards"):
        shutil.copytree(ROOT / top, flash / top, ignore=shutil.ignore_patterns("__pycache__"))
    (flash / "fw" / "base").mkdir(parents=True)
    (flash / bundle.BASE_MANIFEST).write_bytes(bundle.base_record(flash, "virtual"))
    board = LiveBoard(flash)
    try:
        assert self_test(board)["passed"] is True
    finally:
        assert board.close() == 0
    with open(flash / "firmware" / "march.py", "a") as f:
        f.write("# a flipped bit would be worse\n")
    board = LiveBoard(flash)
    try:
        st = self_test(board)
        assert st["passed"] is False
        assert st["parts"]["code"]["outcome"] == "fail"
        assert st["parts"]["code"]["found"] == "firmware/march.py does not match"
        assert "self_test_failed" in alarms(board)
        assert {a["priority"] for a in board.ask({"cmd": "alarms"}, sign=True)["alarms"]
                if a["code"] == "self_test_failed"} == {"critical"}
    finally:
        assert board.close() == 0
