"""The self-test on a live virtual Pico (the real firmware on the MicroPython VM): the power-on
self-test checks the code against its signed manifest, proves the watchdog once per install and
reports each part in `info`; the periodic checks raise driver_hot, driver_fault,
die_temperature and self_test_failed from the faults `pumpsim inject` puts on the board; a code
file damaged while the board was off is found at the next boot (docs/alarms.md, "The
self-test")."""

import shutil

from host_tools import bundle
from sim.board import inject
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
    flash = _installed(tmp_path / "flash")
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


def _installed(flash):
    """A flash directory with an installed base (as `make flash` leaves one), with its
    manifest."""
    flash.mkdir()
    for top in ("firmware", "boards"):
        shutil.copytree(ROOT / top, flash / top, ignore=shutil.ignore_patterns("__pycache__"))
    (flash / "fw" / "base").mkdir(parents=True)
    (flash / bundle.BASE_MANIFEST).write_bytes(bundle.base_record(flash, "virtual"))
    return flash


def test_a_silent_driver_a_sensor_out_of_range_at_boot_and_corrupt_code(tmp_path):
    """The faults of tests/rp2/test_selftest.py's second test, the same way on this board."""
    board = LiveBoard(tmp_path / "repo-tree")
    try:                 # a board running the repository's tree: corrupt_code refuses
        got = inject(board.info["control"], "corrupt_code", [], timeout_s=60)
        assert got["ok"] is False and "no firmware in this board's flash" in got["error"]
    finally:
        assert board.close() == 0
    board = LiveBoard(_installed(tmp_path / "flash"))
    try:
        silent_driver_sensor_at_boot_and_damaged_code(
            board, lambda: board.inject("advance", "1 min"), "firmware/march.py")
    finally:
        assert board.close() == 0


def silent_driver_sensor_at_boot_and_damaged_code(board, back_up, code_file):
    """On a live board, programmed here (virtual, the emulated Pico in tests/rp2/test_selftest.py):
    a silent driver counts three checks, then driver_fault; a pressure sensor out of range at a
    reboot fails the self-test's pressure part (critical) and stops delivery; a code file
    changed while the power is off (`corrupt_code`: `code_file`) fails its code part. back_up()
    waits until the board answers after a restart."""
    def ask(cmd):
        return board.ask({"cmd": cmd}, sign=True)

    board.program()
    board.inject("driver", "fault=silent")
    board.inject("advance", "11 min")
    assert "driver_fault" not in alarms(board)       # two checks: not yet
    board.inject("advance", "5 min")
    assert "driver_fault" in alarms(board)
    assert ask("status")["delivering"] is False
    board.inject("driver", "fault=ok")

    board.inject("sensor_fault", "sensor=pressure", "mode=out_of_range")
    board.inject("reboot")
    back_up()
    st = self_test(board)
    assert st["passed"] is False and st["failing"] == ["pressure"], st
    assert st["parts"]["pressure"]["outcome"] == "fail", st
    prio = {a["code"]: a["priority"] for a in ask("alarms")["alarms"]}
    assert prio.get("self_test_failed") == "critical", prio
    assert ask("status")["delivering"] is False

    # the sensor mended, a code file changes while the power is off: it still runs, but it is
    # not what the manifest signed
    board.inject("sensor_fault", "sensor=pressure", "mode=ok")
    board.inject("corrupt_code")
    back_up()
    st = self_test(board)
    assert st["parts"]["pressure"]["outcome"] == "pass", st
    assert st["failing"] == ["code"], st
    assert st["parts"]["code"]["found"] == f"{code_file} does not match", st
    assert "self_test_failed" in alarms(board)
