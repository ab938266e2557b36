"""The client library: signing, key files, reply matching, resending a lost reply's line."""

import hashlib
import hmac
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_tools import link
from host_tools.errors import InputError
from host_tools.link import Key, Link, LinkError, PumpError

from serial_peer import body_of

SECRET = bytes(range(32))
CLINICIAN = Key("clinician", SECRET, "pump-1", "clinician.key")


# ---- signing -----------------------------------------------------------------------------------

def test_tag_matches_the_rfc_4231_vector():
    # RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
    assert link.tag(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


@given(secret=st.binary(min_size=32, max_size=32),
       obj=st.dictionaries(st.text(max_size=8), st.one_of(
           st.integers(-2**40, 2**40), st.text(max_size=20), st.booleans(), st.none()),
           max_size=6))
def test_a_signed_line_is_compact_json_a_space_and_the_hmac_of_exactly_those_bytes(secret, obj):
    line = link.request_line(obj, Key("patient", secret))
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    body, hexdigest = line[:-1].rsplit(b" ", 1)
    assert json.loads(body) == obj
    assert b", " not in body or ", " in json.dumps(obj)  # no separator spaces added
    assert body == json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(hexdigest) == 64 and hexdigest == hexdigest.lower()
    assert hexdigest.decode() == hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_an_unsigned_line_has_no_tag():
    assert link.request_line({"id": 1, "cmd": "info"}) == b'{"id":1,"cmd":"info"}\n'


# ---- key files ---------------------------------------------------------------------------------

def _keyfile(tmp_path, **data):
    p = tmp_path / "k.key"
    p.write_text(json.dumps(data))
    return p


def test_a_key_file_loads_and_never_shows_its_secret(tmp_path):
    k = link.load_key(_keyfile(tmp_path, role="patient", key=SECRET.hex(), pump_id="abc"))
    assert (k.role, k.secret, k.pump_id) == ("patient", SECRET, "abc")
    assert SECRET.hex() not in repr(k)


@pytest.mark.parametrize("data, named", [
    ({"role": "nurse", "key": SECRET.hex()}, "role"),
    ({"role": "clinician", "key": "00" * 31}, "key"),
    ({"role": "clinician", "key": SECRET.hex().upper()}, "key"),
    ({"role": "clinician", "key": "zz" * 32}, "key"),
])
def test_a_bad_key_file_is_refused_naming_what_is_wrong(tmp_path, data, named):
    with pytest.raises(InputError) as e:
        link.load_key(_keyfile(tmp_path, **data))
    assert named in e.value.key and "--key" in e.value.key
    assert SECRET.hex() not in str(e.value)


def test_a_missing_key_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="readable key file"):
        link.load_key(tmp_path / "nope.key")


# ---- the exchange over a pty -------------------------------------------------------------------

def info_reply(peer, line, ctr=(0, 0), pump_id="pump-1"):
    return peer.reply(line, ok=True, cmd="info", pump_id=pump_id,
                      ctr={"clinician": ctr[0], "patient": ctr[1]})


def answering(**by_cmd):
    """A script answering each command with the function given for it (default: ok)."""
    def script(peer, line):
        cmd = json.loads(body_of(line))["cmd"]
        f = by_cmd.get(cmd)
        return f(peer, line) if f else peer.reply(line, ok=True, cmd=cmd)
    return script


def test_stale_lines_echoes_and_other_ids_are_skipped(peer):
    def script(p, line):
        req = json.loads(body_of(line))
        return (b"garbage\r\n" + json.dumps({"id": req["id"] + 1, "ok": True}).encode()
                + b"\r\n" + line + b"\n"  # our own line echoed: same id but no "ok"
                + p.reply(line, ok=True, cmd="ping", pong=True))
    peer.script = script
    with Link.open(peer.path, timeout_s=1) as lk:
        assert lk.call("ping", signed=False)["pong"] is True
        assert lk.resent == 0


def test_input_waiting_before_the_link_opened_is_flushed(peer):
    stale = json.dumps({"id": 1, "ok": False, "error": "E_X", "message": "old"}).encode()
    peer.send(stale + b"\r\n")
    peer.script = answering()
    lk = Link(link.open_port(peer.path), None, timeout_s=1, rng=random.Random(0))
    lk._next_id = 1  # the stale reply carries the very id the first request will use
    try:
        assert lk.call("ping", signed=False)["ok"] is True
    finally:
        lk.close()
    assert peer.lines[0] == b""  # the flush ends any half line the pump held


def test_a_lost_reply_is_asked_for_again_with_the_identical_line(peer):
    def script(p, line):
        if json.loads(body_of(line))["cmd"] == "info":
            return info_reply(p, line, ctr=(7, 0))
        bolus_lines = [x for x in p.lines if b'"bolus"' in x]
        return p.reply(line, ok=True, cmd="bolus", started=True) if len(bolus_lines) == 2 else None
    peer.script = script
    peer.ctr = 7
    with Link.open(peer.path, CLINICIAN, timeout_s=0.3) as lk:
        assert lk.call("bolus", {"dose_nl": 1000})["started"] is True
        assert lk.resent == 1
    sent = [x for x in peer.lines if b'"bolus"' in x]
    assert len(sent) == 2 and sent[0] == sent[1]
    assert json.loads(body_of(sent[0]))["ctr"] == 8


def test_no_reply_at_all_is_a_link_error_and_a_write_is_uncertain(peer):
    peer.script = answering(bolus=lambda p, line: None, info=lambda p, line: info_reply(p, line))
    with Link.open(peer.path, CLINICIAN, timeout_s=0.15, attempts=3) as lk:
        with pytest.raises(LinkError) as e:
            lk.call("bolus", {"dose_nl": 1000})
        assert e.value.uncertain and "may or may not" in str(e.value)
    assert len([x for x in peer.lines if b'"bolus"' in x]) == 3


def test_a_read_without_reply_is_not_uncertain():
    with Link.open("loop://", timeout_s=0.1, attempts=2) as lk:  # hears only itself
        with pytest.raises(LinkError) as e:
            lk.call("info", signed=False, changes=False)
        assert not e.value.uncertain


def test_a_port_whose_far_end_went_away_is_a_link_error():
    """pyserial's flush() is tcdrain(), which raises termios.error (not an OSError) on a pty
    whose pump has gone: that is a lost connection (exit 3; the page says the pump is not
    answering), never a crash."""
    import termios

    class Gone:
        in_waiting = 0

        def write(self, data):
            return len(data)

        def flush(self):
            raise termios.error(5, "Input/output error")

        def reset_input_buffer(self):
            pass

        def close(self):
            pass

    with pytest.raises(LinkError, match="Input/output error"):
        Link(Gone(), timeout_s=0.1, attempts=1)


def test_counters_start_from_the_sessions_and_rise_by_one(peer):
    peer.script = answering(info=lambda p, line: info_reply(p, line))
    peer.ctr = 41
    with Link.open(peer.path, CLINICIAN, timeout_s=1) as lk:
        lk.call("status")
        lk.call("stop")
    reqs = peer.requests()
    assert [r["cmd"] for r in reqs] == ["info", "hello", "status", "stop"]
    hello, status, stop = reqs[1:]
    assert "ctr" not in hello and len(hello["args"]["hn"]) == 32
    assert [(r["role"], r["ctr"], r["sn"], r["pump"]) for r in (status, stop)] == [
        ("clinician", 42, peer.sn, "pump-1"), ("clinician", 43, peer.sn, "pump-1")]
    tags_ok = [hmac.compare_digest(line.rsplit(b" ", 1)[1].decode(),
                                   link.tag(SECRET, body_of(line)))
               for line in peer.lines if line.strip() and not line.endswith(b"}")]
    assert tags_ok == [True, True, True]


def test_an_ended_session_is_opened_again_once(peer):
    sessions = iter([(5, "aaaa"), (9, "bbbb")])  # another host opened a session in between

    def hello(p, line):
        p.ctr, p.sn = next(sessions)
        return p.hello(line)

    def status(p, line):
        if json.loads(body_of(line))["sn"] != "bbbb":
            return p.reply(line, ok=False, error="E_SESSION", message="not the session")
        return p.reply(line, ok=True, cmd="status")
    peer.own_hello = False
    peer.script = answering(info=lambda p, line: info_reply(p, line), hello=hello,
                            status=status)
    with Link.open(peer.path, CLINICIAN, timeout_s=1) as lk:
        assert lk.call("status")["ok"] is True
    assert [(r["sn"], r["ctr"]) for r in peer.requests() if r["cmd"] == "status"] == [
        ("aaaa", 6), ("bbbb", 10)]


def _unsigned(fields):
    def forge(p, line):
        key, p.key = p.key, None
        try:
            return p.reply(line, **fields)
        finally:
            p.key = key
    return forge


def test_an_unsigned_reply_to_a_signed_request_is_never_believed(peer):
    """A relay that drops the request and answers it itself, success or refusal."""
    for fields in ({"ok": True, "cmd": "bolus", "started": True},
                   {"ok": False, "error": "E_REFUSED", "message": "no", "reason": "lockout"}):
        peer.script = answering(info=lambda p, line: info_reply(p, line),
                                bolus=_unsigned(fields))
        with Link.open(peer.path, CLINICIAN, timeout_s=1) as lk:
            with pytest.raises(link.ReplyUnverified) as e:
                lk.call("bolus", {"dose_nl": 1000})
        assert e.value.uncertain and "could not be verified" in str(e.value)
        assert "may or may not have acted" in str(e.value)


def test_a_reply_signed_with_another_key_or_for_another_request_is_refused(peer):
    genuine = []

    def bolus(p, line):
        if not genuine:
            genuine.append(p.reply(line, ok=True, cmd="bolus", started=True).rstrip())
            key, p.key = p.key, bytes(32)       # signed, but not with the pump's key
            try:
                return p.reply(line, ok=True, cmd="bolus", started=True)
            finally:
                p.key = key
        # a genuine reply to an earlier request, given the new request's id
        body, tag = link.split_reply(genuine[0])
        old = json.loads(body)
        old["id"] = json.loads(body_of(line))["id"]
        return json.dumps(old).encode() + b" " + tag.encode() + b"\r\n"
    peer.script = answering(info=lambda p, line: info_reply(p, line), bolus=bolus)
    with Link.open(peer.path, CLINICIAN, timeout_s=1) as lk:
        for _ in range(2):
            with pytest.raises(link.ReplyUnverified, match="tag is wrong"):
                lk.call("bolus", {"dose_nl": 1000})


def test_control_characters_from_the_pump_are_shown_escaped(peer):
    evil = "\x1b[2J\x1b[HFAKE: dose OK\x07\r\u202e"
    peer.script = answering(info=lambda p, line: info_reply(p, line),
                            status=lambda p, line: p.reply(line, ok=False, error="E_X",
                                                           message=evil, reason=evil))
    with Link.open(peer.path, CLINICIAN, timeout_s=1) as lk:
        with pytest.raises(PumpError) as e:
            lk.call("status")
    text = str(e.value)
    assert not any(ord(c) < 32 or c == "\u202e" for c in text)
    assert "\\x1b[2J" in text and "\\x07" in text and "\\u202e" in text


@given(st.text())
def test_printable_leaves_no_control_character(text):
    out = link.printable(text)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in out)
    if all(32 <= ord(c) < 0x7F for c in text):
        assert out == text


def test_a_refusal_is_a_pump_error_with_code_message_and_reason(peer):
    peer.script = answering(
        info=lambda p, line: info_reply(p, line),
        patient_bolus=lambda p, line: p.reply(line, ok=False, error="E_REFUSED",
                                              message="lockout not over", reason="lockout"))
    with Link.open(peer.path, CLINICIAN, timeout_s=1) as lk:
        with pytest.raises(PumpError) as e:
            lk.call("patient_bolus")
    assert (e.value.code, e.value.reason) == ("E_REFUSED", "lockout")
    assert "lockout not over" in str(e.value)


def test_a_key_for_another_pump_is_refused_before_anything_is_signed(peer):
    peer.script = answering(info=lambda p, line: info_reply(p, line, pump_id="other"))
    with Link.open(peer.path, CLINICIAN, timeout_s=1) as lk:
        with pytest.raises(InputError, match="other"):
            lk.call("stop")
    assert [r["cmd"] for r in peer.requests()] == ["info"]


def test_a_signed_command_without_a_key_names_the_option(peer):
    with Link.open(peer.path, None, timeout_s=1) as lk:
        with pytest.raises(InputError, match="--key"):
            lk.call("status")
    assert peer.requests() == []


def test_an_unopenable_port_is_a_link_error():
    with pytest.raises(LinkError, match="cannot open"):
        Link.open("/dev/this-port-does-not-exist")


# ---- discovery ---------------------------------------------------------------------------------

def test_virtual_boards_are_found_only_while_their_process_lives(tmp_path):
    import os
    (tmp_path / "1.json").write_text(json.dumps({"port": "/dev/pts/99", "pid": os.getpid()}))
    (tmp_path / "2.json").write_text(json.dumps({"port": "/dev/pts/98", "pid": 2**22 + 7}))
    (tmp_path / "3.json").write_text("not json")
    found = link.virtual_boards(tmp_path)
    assert [f.port for f in found] == ["/dev/pts/99"]
    assert found[0].kind == "virtual"


def test_picos_are_found_by_usb_vendor_id(monkeypatch):
    from serial.tools import list_ports
    from serial.tools.list_ports_common import ListPortInfo

    pico, other = ListPortInfo("/dev/ttyACM0"), ListPortInfo("/dev/ttyUSB0")
    pico.vid, other.vid = 0x2E8A, 0x0403
    monkeypatch.setattr(list_ports, "comports", lambda: [other, pico])
    assert [p.port for p in link.picos()] == ["/dev/ttyACM0"]
