"""`pumpsim inject` on a live virtual Pico: the harness's resets and faults reach the real
firmware on the VM, and the pump reports them as alarms over its serial line."""

import json
import subprocess

from tests.board.vboard_fixture import INJECT, LiveBoard


def alarms(board):
    return {a["code"] for a in board.ask({"cmd": "alarms"}, sign=True)["alarms"]}


def test_watchdog_power_loss_and_battery_through_the_harness(tmp_path):
    board = LiveBoard(tmp_path / "flash")
    try:
        board.program()
        board.inject("advance", "1h")
        before = board.inject("truth")
        board.inject("hang")                      # the loop stops; the watchdog resets the board
        board.inject("advance", "1 min")
        assert "watchdog_reset" in alarms(board)
        assert board.ask({"cmd": "ack", "args": {"code": "watchdog_reset"}}, sign=True)["ok"]
        board.inject("power_loss", "for=2h")      # off for two hours: nothing delivered, no catch-up
        board.inject("advance", "1 min")
        after = board.inject("truth")
        assert after["virtual_time_s"] >= before["virtual_time_s"] + 2 * 3600
        missed_ideal = 2 * 3600 * 120_000 // 86400   # what two hours would have held at 120 uL/day
        assert after["delivered_nl"] - before["delivered_nl"] < missed_ideal // 2
        # the command itself (the tests use the same request from Python: sim/board.inject)
        out = subprocess.run([*INJECT, "--control", board.info["control"], "battery",
                              "level=5%"], capture_output=True, text=True)
        assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True, out.stderr
        board.inject("advance", "1h")
        assert {"battery_eri", "battery_eos"} <= alarms(board)
        assert board.ask({"cmd": "status"}, sign=True)["delivering"] is False
    finally:
        assert board.close() == 0


def test_inject_refuses_what_the_harness_cannot_do(tmp_path):
    board = LiveBoard(tmp_path / "flash")
    try:
        out = subprocess.run([*INJECT, "--control", board.info["control"], "clinician_bolus",
                              "dose=1 mg"], capture_output=True, text=True)
        assert out.returncode == 2 and "use pumpctl" in out.stderr
        out = subprocess.run([*INJECT, "--control", board.info["control"], "battery"],
                             capture_output=True, text=True)
        assert out.returncode == 2 and "level" in out.stderr
        # What only the emulated Pico's bench can do is refused here, not silently ignored.
        out = subprocess.run([*INJECT, "--control", board.info["control"], "motor_stall",
                              "at_step=25"], capture_output=True, text=True)
        assert out.returncode == 1 and "only the emulated Pico" in out.stdout
        out = subprocess.run([*INJECT, "--control", board.info["control"], "power_loss",
                              "for=1h", "at_program=0"], capture_output=True, text=True)
        assert out.returncode == 2 and "at_program" in out.stderr
        assert board.ask({"cmd": "ping"})["pong"] is True
    finally:
        assert board.close() == 0
