"""The real mpremote (pinned in requirements.lock) against a running production pump: it asks for
MicroPython's raw REPL, and the pump answers in the raw REPL's own framing with a refusal
(firmware/proto.py RAW_*), so `exec`, `ls`, `run` and `fs cp` stop at once with the pump's
reason and exit 1, instead of waiting for ever on the pseudo-terminal. The pump runs nothing it
was sent and keeps answering pumpctl. tests/rp2/test_device.py does the same on the emulated
Pico."""

import subprocess
import sys
from pathlib import Path

import pytest

from firmware.proto import RAW_REASON
from tests.board.vboard_fixture import programmed_board

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
REASON = RAW_REASON.decode().strip()
# A deadline for a hang, not a timing: mpremote waited for ever before (issue 21).
HANG_S = 60


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True,
                          timeout=HANG_S, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    with programmed_board(tmp_path_factory.mktemp("mpremote") / "flash") as b:
        yield b


def refused(board, *args: str, script: Path | None = None) -> str:
    out = mpremote(board.info["port"], *args, *([str(script)] if script else []))
    said = out.stdout + out.stderr
    assert out.returncode == 1, said
    assert REASON in said, said
    assert "42" not in said and "Traceback" not in said, said
    return said


@pytest.mark.parametrize("args", [("exec", "print(6 * 7)"), ("resume", "exec", "print(6 * 7)"),
                                  ("eval", "6 * 7"), ("ls",), ("df",)])
def test_mpremote_stops_at_once_with_the_pumps_reason(board, args):
    refused(board, *args)


def test_mpremote_run_and_cp_are_refused_and_nothing_is_written(board, tmp_path):
    script = tmp_path / "answer.py"
    script.write_text("open('answer.txt', 'w').write('42')\nprint(6 * 7)\n")
    refused(board, "run", script=script)
    said = refused(board, "fs", "cp", str(script), ":answer.py")
    assert "Error with transport" in said
    flash = Path(board.info["flash"])
    assert not list(flash.rglob("answer*"))


def test_the_pump_answers_pumpctl_and_delivers_after_mpremote(board):
    refused(board, "exec", "import machine; machine.reset()")
    assert board.ask({"cmd": "ping"})["pong"] is True
    st = board.ask({"cmd": "status"}, sign=True)
    assert st["delivering"] is True and st["alarms"] == []
