"""End-to-end fixtures: a real virtual board (`pumpsim board`, the firmware on the MicroPython
VM behind a pseudo-terminal), driven through pumpctl and plain pyserial.

Each test gets a factory-fresh board in its own temporary directory, which is also the board's
TMPDIR: it registers itself there, so pumpctl's discovery sees this board and no other that
happens to run on the machine.

With pytest --rp2 (make test-rp2) the board is the emulated Pico (`pumpsim board --runtime rp2`):
the same tests, unchanged, against the MicroPython rp2 port in an emulated RP2040. There the
tests that need no harness share one pump per worker, as `make test-hw` runs them on one real
pump; the others (faults, virtual time, discovery) each get a new one.
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import serial

from sim.board import inject
from tests.session_client import Session, read_reply, reply_ok, split

ROOT = Path(__file__).resolve().parents[2]
PUMPSIM = [str(Path(sys.executable).parent / "pumpsim")]
# pumpctl waits 3 s for a reply by default; the emulated Pico runs at about half a real one's
# speed, and far less on a machine other work loads: its replies get longer (a lost line costs
# that long, and none is lost on a pseudo-terminal).
EMULATED_REPLY_S = "30"


class Board:
    reply_s = 8.0   # how long raw() waits for a reply (the emulated Pico gets longer)

    def __init__(self, info: dict, proc: subprocess.Popen):
        self.info = info
        self.proc = proc
        self.port = info["port"]
        self.control = info["control"]
        self.clinician_key = info["clinician_key"]
        self.patient_key = info["patient_key"]

    def inject(self, action: str, *params: str) -> dict:
        """`pumpsim inject` from this process (sim/board.inject: the same request on the same
        harness channel, without a Python start-up and Pint's import per call)."""
        out = inject(self.control, action, list(params), timeout_s=600)
        assert out.get("ok"), out
        return out

    def raw(self, cmd: str, args: dict | None = None, role: str | None = "clinician",
            ctr: int | None = None, line: bytes | None = None) -> tuple[bytes, dict]:
        """One request written by hand with pyserial and hmac (not through host_tools.link),
        so the protocol is checked independently of pumpctl's client library: a new session
        (hello), the request in it, and the reply's tag checked. `line` sends a line again as
        it was (in the session it was made for)."""
        with serial.serial_for_url(self.port, timeout=5) as s:
            s.reset_input_buffer()
            if line is None:
                if not role:
                    rid = 4242
                    line = json.dumps({"id": rid, "cmd": cmd, **({"args": args} if args else {})},
                                      separators=(",", ":")).encode()
                    return line, read_after(s, line, rid, self.reply_s)[0]
                key, pump = self.key_of(role)
                sess = Session(s, key, role, pump, self.reply_s)
                sess.hello()
                line, rid = sess.line(cmd, args, ctr)
            req = json.loads(split(line)[0])
            reply, raw = read_after(s, line, req["id"], self.reply_s)
            if split(line)[1] is not None:
                assert reply_ok(self.key_of(req["role"])[0], line, raw), raw
            return line, reply

    def key_of(self, role: str) -> tuple[bytes, str]:
        data = json.loads(Path(getattr(self, f"{role}_key")).read_text())
        return bytes.fromhex(data["key"]), data["pump_id"]


def read_after(s, line: bytes, rid: int, timeout_s: float = 8.0):
    s.write(line + b"\n")
    return read_reply(s, rid, timeout_s)


class HardwareBoard(Board):
    """A flashed pump on a real serial port (pytest --port, make test-hw): no harness."""

    def __init__(self, port: str, clinician_key: str, patient_key: str | None):
        self.info = {"port": port}
        self.proc = None
        self.port = port
        self.control = None
        self.clinician_key = clinician_key
        self.patient_key = patient_key

    def inject(self, action: str, *params: str) -> dict:
        raise AssertionError("a real pump has no harness: mark this test @pytest.mark.harness")


@contextlib.contextmanager
def running_board(where: Path, rp2: bool):
    """A factory-fresh `pumpsim board` in `where` (its flash directory and its TMPDIR, where it
    registers itself: pumpctl's discovery sees this board and no other)."""
    tmp = where / "tmp"
    tmp.mkdir(parents=True)
    env = dict(os.environ, TMPDIR=str(tmp))
    runtime = ["--runtime", "rp2"] if rp2 else []
    proc = subprocess.Popen([*PUMPSIM, "board", *runtime, "--flash", str(where / "flash")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read().decode()
        b = Board(json.loads(first), proc)
        b.tmp = tmp
        if rp2:
            b.reply_s = float(EMULATED_REPLY_S)
        yield b
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture(scope="session")
def shared_pico(tmp_path_factory):
    """With --rp2, one emulated Pico per worker for the tests that need no harness: they are the
    ones `make test-hw` runs one after another on one real pump (tests/board/test_hw_mode.py
    runs them so), and a new emulated pump costs seconds of emulation each."""
    with running_board(tmp_path_factory.mktemp("shared-pico"), rp2=True) as b:
        yield b


@pytest.fixture
def board(tmp_path, monkeypatch, request):
    port = request.config.getoption("--port")
    if port:
        key = request.config.getoption("--key")
        assert key, "--port needs --key (the pump's clinician key file)"
        monkeypatch.setenv("PUMPCTL_PORT", port)
        monkeypatch.setenv("PUMPCTL_KEY", key)
        monkeypatch.setenv("PUMPCTL_STATE_DIR", str(tmp_path / "state"))
        yield HardwareBoard(port, key, request.config.getoption("--patient-key"))
        return
    rp2 = request.config.getoption("--rp2")
    with contextlib.ExitStack() as stack:
        if rp2 and request.node.get_closest_marker("harness") is None:
            b = request.getfixturevalue("shared_pico")
        else:
            b = stack.enter_context(running_board(tmp_path, rp2))
        # pumpctl runs in this process: it must look for boards where this one registered,
        # and keep its titration record apart.
        monkeypatch.setattr(tempfile, "tempdir", str(b.tmp))
        monkeypatch.setenv("PUMPCTL_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.delenv("PUMPCTL_KEY", raising=False)
        yield b


@pytest.fixture
def pumpctl(request):
    """Run pumpctl's main() in this process: (exit status, stdout, stderr)."""
    from host_tools import pumpctl as cli

    slow = ["--timeout", EMULATED_REPLY_S] if request.config.getoption("--rp2") else []

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main([*slow, *(str(a) for a in argv)])
        return rc, out.getvalue(), err.getvalue()

    return run
