"""End-to-end fixtures: a real virtual board (`pumpsim board`, the firmware on the MicroPython
VM behind a pseudo-terminal), driven through pumpctl and plain pyserial.

Each test gets a factory-fresh board in its own temporary directory, which is also the board's
TMPDIR: it registers itself there, so pumpctl's discovery sees this board and no other that
happens to run on the machine.

With pytest --rp2 (make test-rp2) the board is the emulated Pico (`pumpsim board --runtime rp2`):
the same tests, unchanged, against the MicroPython rp2 port in an emulated RP2040.
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

from tests.session_client import Session, read_reply, reply_ok, split

ROOT = Path(__file__).resolve().parents[2]
PUMPSIM = [str(Path(sys.executable).parent / "pumpsim")]


class Board:
    def __init__(self, info: dict, proc: subprocess.Popen):
        self.info = info
        self.proc = proc
        self.port = info["port"]
        self.control = info["control"]
        self.clinician_key = info["clinician_key"]
        self.patient_key = info["patient_key"]

    def inject(self, action: str, *params: str) -> dict:
        out = subprocess.run([*PUMPSIM, "inject", "--control", self.control, action, *params],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr + out.stdout
        return json.loads(out.stdout)

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
                    return line, read_after(s, line, rid)[0]
                key, pump = self.key_of(role)
                sess = Session(s, key, role, pump)
                sess.hello()
                line, rid = sess.line(cmd, args, ctr)
            req = json.loads(split(line)[0])
            reply, raw = read_after(s, line, req["id"])
            if split(line)[1] is not None:
                assert reply_ok(self.key_of(req["role"])[0], line, raw), raw
            return line, reply

    def key_of(self, role: str) -> tuple[bytes, str]:
        data = json.loads(Path(getattr(self, f"{role}_key")).read_text())
        return bytes.fromhex(data["key"]), data["pump_id"]


def read_after(s, line: bytes, rid: int):
    s.write(line + b"\n")
    return read_reply(s, rid)


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
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    runtime = ["--runtime", "rp2"] if request.config.getoption("--rp2") else []
    proc = subprocess.Popen([*PUMPSIM, "board", *runtime, "--flash", str(tmp_path / "flash")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read().decode()
        b = Board(json.loads(first), proc)
        # pumpctl runs in this process: it must look for boards where this one registered,
        # and keep its titration record apart.
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        monkeypatch.setenv("PUMPCTL_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.delenv("PUMPCTL_KEY", raising=False)
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


@pytest.fixture
def pumpctl():
    """Run pumpctl's main() in this process: (exit status, stdout, stderr)."""
    from host_tools import pumpctl as cli

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main([str(a) for a in argv])
        return rc, out.getvalue(), err.getvalue()

    return run
