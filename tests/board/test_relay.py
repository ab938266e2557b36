"""The attacks of issue 12, each run against a live virtual board through a relay: a
pseudo-terminal between pumpctl and the pump that the test controls, line by line, in both
directions (hold, drop, replay, forge, alter). Each attack must be refused: pumpctl reports
nothing as done that the pump did not verifiably do, and the pump does nothing it was not
asked for in the current session. One board serves the whole module."""

import contextlib
import io
import json
import os
import select
import shutil
import threading
import time
import tty
from pathlib import Path

import pytest
import serial

from host_tools import pumpctl as cli
from tests.board.vboard_fixture import LiveBoard
from tests.session_client import Session, read_reply, split

MORPHINE = (Path(__file__).resolve().parents[2] / "examples" / "prescriptions"
            / "morphine_flex.toml").read_text()
REDUCED = MORPHINE.replace('"3 mg/day"', '"2.5 mg/day"')
OVERRIDE = ("--override-titration", "bench pump, water")


class Relay:
    """pumpctl opens `path`; every line goes through to_pump / to_host, which return the bytes
    to pass on (None drops the line). Everything seen is kept. The test's own checks go
    through a second, untouched line (`clean`): a pty has room for one reader only."""

    def __init__(self, pump_port: str):
        self.pump = serial.serial_for_url(pump_port, timeout=0)
        self.pump.reset_input_buffer()
        self.master, self.path, self._slave = self._pty()
        self.clean_master, self.clean_path, self._clean_slave = self._pty()
        self.to_pump = lambda line: line
        self.to_host = lambda line: line
        self.requests: list[bytes] = []
        self.replies: list[bytes] = []
        self._clean_ids: set = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _pty():
        master, slave = os.openpty()
        tty.setraw(slave)
        return master, os.ttyname(slave), slave

    def send_to_pump(self, line: bytes):
        self.pump.write(line + b"\n")

    def send_to_host(self, line: bytes):
        os.write(self.master, line + b"\r\n")

    def _lines(self, fd, buf, sep=b"\n"):
        try:
            buf[0] += os.read(fd, 4096)
        except OSError:
            return []
        out = []
        while sep in buf[0]:
            line, buf[0] = buf[0].split(sep, 1)
            out.append(line)
        return out

    def _run(self):
        up, clean, down = [b""], [b""], [b""]
        pump_fd = self.pump.fileno()
        while not self._stop.is_set():
            r, _, _ = select.select([self.master, self.clean_master, pump_fd], [], [], 0.02)
            if self.master in r:
                for line in self._lines(self.master, up):
                    self.requests.append(line)
                    out = self.to_pump(line)
                    if out is not None:
                        self.pump.write(out + b"\n")
            if self.clean_master in r:
                for line in self._lines(self.clean_master, clean):
                    try:
                        self._clean_ids.add(json.loads(split(line)[0]).get("id"))
                    except ValueError:
                        pass
                    self.pump.write(line + b"\n")
            if pump_fd in r:
                for line in self._lines(pump_fd, down, b"\r\n"):
                    try:
                        rid = json.loads(split(line)[0]).get("id")
                    except ValueError:
                        rid = None
                    if rid is not None and rid in self._clean_ids:
                        os.write(self.clean_master, line + b"\r\n")
                        continue
                    self.replies.append(line)
                    out = self.to_host(line)
                    if out is not None:
                        os.write(self.master, out + b"\r\n")

    def close(self):
        self._stop.set()
        self._thread.join(1)
        self.pump.close()
        for fd in (self.master, self._slave, self.clean_master, self._clean_slave):
            os.close(fd)


def cmd_of(line: bytes):
    try:
        return json.loads(split(line)[0]).get("cmd")
    except ValueError:
        return None


def unsigned(line: bytes, **change) -> bytes:
    """A reply with its tag dropped and fields changed: what a forger can make."""
    obj = json.loads(split(line)[0])
    obj.update(change)
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    b = LiveBoard(tmp_path_factory.mktemp("relay") / "flash")
    yield b
    assert b.close() == 0


@pytest.fixture
def relay(board):
    r = Relay(board.info["port"])
    own = board.port
    board.port = serial.serial_for_url(r.clean_path, timeout=5)
    board.session.port = board.port
    yield r
    board.port.close()
    board.port = board.session.port = own
    r.close()


def pumpctl(relay, board, *argv, key=None):
    out, err = io.StringIO(), io.StringIO()
    args = ["--port", relay.path, "--key", str(key or board.info["clinician_key"]), "--timeout", "1",
            *map(str, argv)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(args)
    return rc, out.getvalue(), err.getvalue()


def status(board):
    return board.ask({"cmd": "status"}, sign=True)


def log_events(board):
    return [e[2] for e in board.ask({"cmd": "log", "args": {"max": 50}}, sign=True)["entries"]]


def test_setup_programs_through_the_relay(board, relay, tmp_path):
    (tmp_path / "rx.toml").write_text(MORPHINE)
    assert pumpctl(relay, board, "refill", "--volume", "20 mL", "--yes")[0] == 0
    rc, out, err = pumpctl(relay, board, "program", tmp_path / "rx.toml", "--yes", *OVERRIDE)
    assert rc == 0 and "read back" in out, out + err


def test_1_a_dropped_program_answered_with_old_replies_is_never_reported_written(board, relay,
                                                                                tmp_path):
    """Attack 1: the relay drops a dose reduction and answers it, and the read-back, with
    replies the pump gave earlier (genuine, signed ones)."""
    (tmp_path / "a.toml").write_text(MORPHINE)
    assert pumpctl(relay, board, "program", tmp_path / "a.toml", "--yes", *OVERRIDE)[0] == 0
    before = board.ask({"cmd": "settings"}, sign=True)["settings"]
    old = {cmd_of(x): x for x in relay.replies if cmd_of(x) in ("program", "settings")}
    (tmp_path / "b.toml").write_text(REDUCED)
    dropping = []

    def drop_and_answer(line):
        cmd = cmd_of(line)
        if cmd == "program" or (cmd == "settings" and dropping):
            dropping.append(cmd)
            body, tag = split(old[cmd])
            obj = json.loads(body)
            obj["id"] = json.loads(split(line)[0])["id"]
            relay.send_to_host(json.dumps(obj).encode() + b" " + tag.encode())
            return None
        return line
    relay.to_pump = drop_and_answer
    rc, out, err = pumpctl(relay, board, "program", tmp_path / "b.toml", "--yes", *OVERRIDE)
    assert dropping == ["program"], dropping
    assert rc == 3, out + err
    assert "could not be verified" in err and "may or may not have acted" in err
    assert "read back" not in out
    assert board.ask({"cmd": "settings"}, sign=True)["settings"] == before


def test_2_a_held_bolus_faked_as_given_and_fired_later_is_refused(board, relay):
    """Attack 2: the relay holds a bolus, fakes success, and fires it after honest sessions,
    or after the pump sat idle for longer than a session lasts."""
    for later in ("three honest sessions", "idle"):
        held = []

        def hold(line):
            if cmd_of(line) == "bolus" and not held:
                held.append(line)
                relay.send_to_host(unsigned(b'{"id": %d, "ok": true, "cmd": "bolus", '
                                            b'"started": true}'
                                            % json.loads(split(line)[0])["id"]))
                return None
            return line
        relay.to_pump = hold
        rc, out, err = pumpctl(relay, board, "bolus", "--dose", "0.1 mg", "--yes")
        assert rc == 3 and "could not be verified" in err and "started" not in out, out + err
        relay.to_pump = lambda line: line
        if later == "idle":
            board.inject("advance", "6min")
        else:
            for _ in range(3):
                assert pumpctl(relay, board, "status")[0] == 0
        given = log_events(board).count("clinician_bolus")
        relay.send_to_pump(held[0])
        rid = json.loads(split(held[0])[0])["id"]
        deadline = time.monotonic() + 5
        while not any(json.loads(split(x)[0]).get("id") == rid for x in relay.replies
                      if x.startswith(b"{")):
            assert time.monotonic() < deadline, "no reply to the fired line"
            time.sleep(0.05)
        reply = next(json.loads(split(x)[0]) for x in relay.replies if x.startswith(b"{")
                     and json.loads(split(x)[0]).get("id") == rid)
        assert reply["error"] == "E_SESSION", (later, reply)
        assert log_events(board).count("clinician_bolus") == given
        assert status(board)["bolus"]["clinician"] is False


def test_2_forged_counters_neither_run_the_host_ahead_nor_exhaust_the_pump(board, relay):
    """Attack 2: a forged counter in the answer that gives the host its counter (now the
    signed hello), near the end of the range or far ahead."""
    last = board.ask({"cmd": "info"}, sign=True)["ctr"]["clinician"]
    for forged in (last + 1000, (1 << 30) - 2):
        def forge(line, forged=forged):
            if cmd_of(line) == "hello":
                body, tag = split(line)
                obj = json.loads(body)
                obj["ctr"] = forged
                return json.dumps(obj, separators=(",", ":")).encode() + b" " + tag.encode()
            return line
        relay.to_host = forge
        rc, out, err = pumpctl(relay, board, "stop", "--yes")
        assert rc in (1, 3) and "could not be verified" in err, out + err
        assert status(board)["stopped"] is False
    relay.to_host = lambda line: line
    after = board.ask({"cmd": "info"}, sign=True)["ctr"]["clinician"]
    assert after - last < 16
    assert pumpctl(relay, board, "status")[0] == 0


def test_7_a_replayed_or_stale_hello_never_ends_the_honest_session(board, relay):
    """Attack 7: hello lines recorded from the cable (both steps) are replayed while an honest
    session runs, and a hello the relay held back is fired late. Each is refused (or answered
    with a challenge only), and the honest session goes on without a new hello."""
    relay.requests.clear()
    assert pumpctl(relay, board, "status")[0] == 0
    recorded = [x for x in relay.requests if cmd_of(x) == "hello"]
    assert len(recorded) == 2     # the challenge, then the answer to it
    held = []

    def hold_second_step(line):
        if cmd_of(line) == "hello" and b'"pn"' in line:
            held.append(line)
            return None
        return line
    relay.to_pump = hold_second_step
    rc, out, err = pumpctl(relay, board, "status")
    relay.to_pump = lambda line: line
    assert rc == 3 and held, out + err
    assert board.ask({"cmd": "status"}, sign=True)["ok"] is True     # the honest session
    sn = board.session.sn
    for line in recorded + held[:1]:
        rid = json.loads(split(line)[0])["id"]
        relay.replies.clear()     # the first time round, this id got its honest answer
        relay.send_to_pump(line)
        deadline = time.monotonic() + 10
        while not [x for x in relay.replies if x.startswith(b"{")
                   and json.loads(split(x)[0]).get("id") == rid]:
            assert time.monotonic() < deadline, "no reply to the replayed hello"
            time.sleep(0.05)
        reply = next(json.loads(split(x)[0]) for x in relay.replies if x.startswith(b"{")
                     and json.loads(split(x)[0]).get("id") == rid)
        assert "sn" not in reply, reply
        assert reply["ok"] is True or reply["error"] == "E_REPLAY", reply
        r = board.ask({"cmd": "status"}, sign=True)
        assert r["ok"] is True and board.session.sn == sn, (line, r)


def test_alterations_either_way_are_caught(board, relay):
    """A changed byte in a request is refused by the pump (unsigned, so pumpctl cannot take
    even the refusal as proof); a changed byte in a reply is refused by pumpctl."""
    relay.to_pump = lambda line: line.replace(b'"for_s":600', b'"for_s":6000')
    rc, out, err = pumpctl(relay, board, "stop", "--for", "10 min", "--yes")
    assert rc == 3 and "could not be verified" in err, out + err
    assert status(board)["stopped"] is False
    relay.to_pump = lambda line: line
    relay.to_host = lambda line: line.replace(b'"delivering":true', b'"delivering":false')
    rc, out, err = pumpctl(relay, board, "status")
    assert rc == 3 and "could not be verified" in err, out + err


def test_4_maintenance_never_opens_a_repl(board, relay):
    """Attack 4: a production build refuses maintenance; the line never reaches a REPL."""
    rc, out, err = pumpctl(relay, board, "maintenance", "--yes")
    assert rc == 2 and "production build" in err, out + err
    r = board.ask({"cmd": "maintenance"}, sign=True)
    assert r["error"] == "E_REFUSED" and r["reason"] == "production_build"
    board.send(b"\x03\x03import os\r\nos.system('touch /tmp/pwned')\r\n")
    assert board.ask({"cmd": "ping"})["pong"] is True and status(board)["stopped"] is False


def test_6_control_characters_from_the_pump_are_shown_escaped(board, relay):
    """Attack 6: escape sequences in a stored settings field (the catheter's model: the drug's
    name must be the fill's, which the pump keeps to letters and digits) and in a forged error
    message."""
    settings = board.ask({"cmd": "settings"}, sign=True)["settings"]
    evil = dict(settings, catheter={"model": "\x1b[2J\x1b[HFAKE: dose OK\x07",
                                    "length_mm": 600, "nl_per_cm": 2600})
    assert board.ask({"cmd": "program", "args": {"params": evil}}, sign=True)["ok"]
    rc, out, err = pumpctl(relay, board, "status")
    assert rc == 0 and "\x1b" not in out + err and "\x07" not in out + err
    assert "\\x1b[2J" in out
    relay.to_host = lambda line: (unsigned(line, ok=False, error="E_X",
                                           message="\x1b[2J\rFAKE: dose OK")
                                  if cmd_of(line) == "hello" else line)
    rc, out, err = pumpctl(relay, board, "status", key=board.info["patient_key"])
    assert rc == 1 and "E_X" in err and "unsigned" in err, (out, err)
    assert "\x1b" not in out + err and "\r" not in out + err, (out, err)
    assert "\\x1b[2J\\x0dFAKE" in err
    relay.to_host = lambda line: line
    assert board.ask({"cmd": "program", "args": {"params": settings}}, sign=True)["ok"]


def test_6_error_codes_and_reasons_of_forged_refusals_are_shown_escaped(board, relay):
    """Attack 6, the code and the reason too: a forged, unsigned refusal of `hello` (which
    pumpctl shows, marked unsigned, since opening a session changes nothing) carries terminal
    escapes in its error code, message and reason. Nothing of it may reach the terminal raw, in
    the text or the JSON form."""
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m"
    relay.to_host = lambda line: (unsigned(line, ok=False, error="E_" + evil, message=evil,
                                           reason=evil)
                                  if cmd_of(line) == "hello" else line)
    try:
        for argv in (("status",), ("--json", "status"), ("alarms",)):
            rc, out, err = pumpctl(relay, board, *argv, key=board.info["patient_key"])
            seen = out + err
            assert rc == 1 and "unsigned" in seen, (argv, out, err)
            assert not any(c in seen for c in "\x1b\x07\x9b"), (argv, seen)
            assert ("\\x1b]0;owned" in seen or "\\u001b]0;owned" in seen), (argv, seen)
        rc, out, err = pumpctl(relay, board, "--json", "status", key=board.info["patient_key"])
        reply = json.loads(out)
        assert reply["error"].startswith("E_\\x1b]0;owned") and "\x1b" not in reply["error"]
    finally:
        relay.to_host = lambda line: line


def test_5_a_session_recorded_on_one_pump_does_not_replay_on_another_with_the_same_key(
        board, relay, tmp_path):
    """Attack 5: two pumps share a key (a copied flash); a recorded session replays whole."""
    assert pumpctl(relay, board, "stop", "--for", "10 min", "--yes")[0] == 0
    assert pumpctl(relay, board, "resume", "--yes")[0] == 0
    recorded = [x for x in relay.requests if x.strip()]
    twin_flash = tmp_path / "twin"
    shutil.copytree(board.info["flash"], twin_flash)
    (twin_flash / "data" / "uid").write_text("7717717717717717")
    twin = LiveBoard(twin_flash)
    twin.session = Session(twin.port, twin.key, "clinician", "7717717717717717")
    try:
        stops = log_events(twin).count("stop")
        for line in recorded:
            twin.send(line + b"\n")
            rid = json.loads(split(line)[0]).get("id")
            reply, raw = read_reply(twin.port, rid)
            if split(line)[1] is not None:
                assert reply["ok"] is False and reply["error"] in ("E_AUTH", "E_SESSION"), reply
        assert twin.ask({"cmd": "status"}, sign=True)["stopped"] is False
        assert log_events(twin).count("stop") == stops
    finally:
        assert twin.close() == 0


def test_rekey_replaces_both_keys_even_when_its_reply_is_lost(board, relay, tmp_path):
    """pumpctl rekey: new keys on both sides, nothing secret on the line; a lost reply is
    settled by trying the new key, and the key files follow what the pump holds."""
    for name in ("clinician.key", "patient.key"):
        shutil.copy(Path(board.info["flash"]) / name, tmp_path / name)
    old_clin = (tmp_path / "clinician.key").read_text()
    lost = []

    def drop_rekey_reply(line):
        if cmd_of(line) == "rekey" and not lost:
            lost.append(line)
            return None
        return line
    relay.to_host = drop_rekey_reply
    rc, out, err = pumpctl(relay, board, "rekey", "--yes", key=tmp_path / "clinician.key")
    assert rc == 0 and lost, out + err
    new_clin = json.loads((tmp_path / "clinician.key").read_text())
    assert new_clin["key"] != json.loads(old_clin)["key"]
    assert not any(new_clin["key"].encode() in x for x in relay.requests + relay.replies)
    relay.to_host = lambda line: line
    for key in ("clinician.key", "patient.key"):
        rc, out, err = pumpctl(relay, board, "--json", "status", key=tmp_path / key)
        assert rc == 0, (key, out, err)
    rc, out, err = pumpctl(relay, board, "status", key=board.info["clinician_key"])
    assert rc == 1 and "E_AUTH" in err     # the old key no longer opens a session


def test_3_damaged_keys_lock_therapy_changes_until_the_button(board, relay, tmp_path):
    """Attack 3: both key copies unreadable. Therapy goes on, nothing that changes it is
    accepted, provisioning needs the button at the pump. (Last: it gives the board new keys.)"""
    start = board.inject("truth")["delivered_nl"]
    board.inject("corrupt_keys")
    time.sleep(1)
    rc, out, err = pumpctl(relay, board, "--json", "info")
    assert rc == 0 and json.loads(out)["keys"] == "damaged"
    for argv, key in ((("patient-bolus", "--yes"), board.info["patient_key"]),
                      (("stop", "--yes"), board.info["clinician_key"])):
        rc, out, err = pumpctl(relay, board, *argv, key=key)
        assert rc == 1 and "E_KEYS" in err, out + err
    rc, out, err = pumpctl(relay, board, "provision", "--yes", "--out", tmp_path / "k1")
    assert rc == 1 and "E_LOCKED" in err and "button" in err, out + err
    board.inject("advance", "1h")
    assert board.inject("truth")["delivered_nl"] > start      # delivery went on
    board.inject("button")
    board.inject("advance", "10s")
    rc, out, err = pumpctl(relay, board, "provision", "--yes", "--out", tmp_path / "k2")
    assert rc == 0, out + err
    rc, out, err = pumpctl(relay, board, "--json", "status", key=tmp_path / "k2" / "clinician.key")
    assert rc == 0 and "key_damaged" not in out and json.loads(out)["delivering"] is True
    old = pumpctl(relay, board, "status", key=board.info["clinician_key"])
    assert old[0] == 1 and "E_AUTH" in old[2]
