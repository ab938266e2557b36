"""A live virtual Pico used as people use it: a terminal on its pseudo-terminal (picocom, tio,
screen and mpremote send a lone CR for Enter and Ctrl-C to break in), and pumpctl while another
program has the port open.

Found by hand with picocom, tio and screen against `pumpsim board`: before the fix `help` and
Enter did nothing (the CR was dropped, the firmware waited for LF), and pumpctl timed out or
read the terminal's half of the conversation. Here a pty plays the terminal, so the tests need
none of those programs installed."""

import contextlib
import io
import json
import os
import subprocess
import sys
import termios
import time

import pytest
import serial

from host_tools import pumpctl
from tests.board.vboard_fixture import LiveBoard


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    b = LiveBoard(tmp_path_factory.mktemp("flash"))
    yield b
    b.close()


def terminal_says(board, keys: bytes, until: bytes, wait_s: float = 8.0) -> str:
    """Open the port as a terminal program does (raw, no locking), type, read the screen."""
    with serial.serial_for_url(board.info["port"], timeout=0.2) as t:
        t.reset_input_buffer()
        t.write(keys)
        seen = b""
        end = time.monotonic() + wait_s
        while until not in seen and time.monotonic() < end:
            seen += t.read(4096)
        return seen.decode(errors="replace")


def test_help_and_enter_from_a_terminal_answers_in_readable_lines(board):
    out = terminal_says(board, b"help\r", b"settings")
    lines = out.strip().split("\r\n")
    assert lines[0].startswith("Intrathecal pump ") and len(lines) > 10
    assert all(len(x) <= 80 for x in lines) and not out.lstrip().startswith("{")


def test_info_from_a_terminal_names_the_pump_and_where_the_rest_is(board):
    # Without a key info says only what picks the key (docs/security.md); the clock and the
    # board's limits, as a date and in mL, are pumpctl info's with a key.
    out = terminal_says(board, b"info\r\n", b"pumpctl info")
    assert "pump id      " in out and "firmware     " in out
    assert "board        virtual-pico" in out and "keys         yes" in out
    assert "clock_ts" not in out and "pump clock" not in out


def test_a_typo_then_a_good_line_each_get_their_own_answer(board):
    out = terminal_says(board, b"hlep\rping\r", b"pong")
    assert "not a command here: hlep" in out and "pong" in out and "E_PARSE" not in out


def test_a_persons_reply_starts_on_a_line_of_its_own(board):
    # With tio's local echo (or picocom --echo) the terminal shows what is typed, and Enter's
    # CR takes the cursor back to the start of that line: a reply that began there was written
    # over the command. A program's JSON reply is unchanged.
    for typed, until in ((b"ping\r", b"pong"), (b"help\r", b"settings"), (b"hlep\r", b"type")):
        out = terminal_says(board, typed, until)
        assert out.startswith("\r\n") and out[2:3].isalpha(), out
    assert terminal_says(board, b"7 ping\r", b"}").startswith('{"cmd":"ping"')


def test_ctrl_c_gets_one_line_that_says_the_pump_runs_and_how_to_flash(board):
    out = terminal_says(board, b"\x03\x03\x03", b"make flash")
    assert out.count("pump running") == 1 and "make flash" in out
    assert board.ask({"cmd": "ping"})["pong"] is True


def run_pumpctl(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = pumpctl.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_pumpctl_refuses_a_port_another_program_locked(board):
    # picocom and pumpctl itself take an exclusive lock (flock)
    with serial.serial_for_url(board.info["port"], exclusive=True):
        rc, out, err = run_pumpctl("--json", "--port", board.info["port"], "info")
    assert rc == 3 and "port in use by another program" in err
    assert json.loads(out)["error"] == "E_NO_CONNECTION"


def test_pumpctl_refuses_a_port_another_program_holds_open_without_a_lock(board):
    # screen and tio open the device and take no lock
    holder = subprocess.Popen([sys.executable, "-c",
                               "import os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
                               "print('open', flush=True); time.sleep(60)", board.info["port"]],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        rc, _, err = run_pumpctl("--port", board.info["port"], "--timeout", "1", "info")
        assert rc == 3 and "port in use by another program" in err and str(holder.pid) in err
    finally:
        holder.kill()
        holder.wait()
    rc, out, err = run_pumpctl("--port", board.info["port"], "info")
    assert rc == 0, err


def test_the_pty_is_raw_so_a_cr_reaches_the_pump_as_a_cr(board):
    # what a terminal program relies on: no CR->LF translation on the way
    fd = os.open(board.info["port"], os.O_RDWR | os.O_NOCTTY)
    try:
        attrs = termios.tcgetattr(fd)
        assert not attrs[0] & termios.ICRNL and not attrs[3] & termios.ICANON
    finally:
        os.close(fd)
