"""Keys and identity on the emulated Pico: a damaged key record fails closed while therapy goes
on, and only BOOTSEL held at the pump (rp2.bootsel_button(), read from the flash's chip-select
line) opens provisioning again; each emulated flash has its own unique id, so a request recorded
on one pump is refused by another that shares its key."""

import json
import os
import shutil

import pytest

from host_tools.link import Link, PumpError, provision
from tests.rp2.pico import REPLY_S, Pico
from tests.session_client import Session, read_reply, sign

TONE_WARNING = 2   # firmware/codes.py


def hello_line(key: bytes, pump_id: str, rid: int) -> bytes:
    return sign(key, {"id": rid, "cmd": "hello", "role": "clinician", "pump": pump_id,
                      "args": {"hn": os.urandom(16).hex()}})


def test_damaged_keys_keep_delivering_and_take_new_keys_only_after_bootsel(pico, tmp_path):
    pico.program()
    pico.inject("advance", "30 min")
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    truth = pico.inject("truth")
    # The firmware looked at BOOTSEL after its boot and saw it released (the emulated chip read
    # it as pressed for ever before its chip-select line was modelled).
    assert truth["bootsel_reads"] > 0 and truth["bootsel_pressed"] == 0
    # Both copies of the key record damaged in littlefs while the power is off.
    pico.inject("corrupt_keys")
    pico.answers()
    assert pico.ask({"cmd": "info"})["keys"] == "damaged"
    line = hello_line(pico.key, pico.pump_id, 901)
    pico.send(line + b"\n")
    assert read_reply(pico.port, 901, REPLY_S)[0]["error"] == "E_KEYS"
    with Link.open(pico.info["port"], timeout_s=REPLY_S) as lk, \
            pytest.raises(PumpError) as refused:
        provision(lk)
    assert refused.value.code == "E_LOCKED"
    # Therapy goes on as programmed, and the warning tone says something is wrong.
    at_s = pico.inject("truth")["virtual_time_s"]
    strokes = pico.inject("truth")["strokes"]
    pico.inject("advance", "1h")
    truth = pico.inject("truth")
    assert truth["strokes"] > strokes
    assert TONE_WARNING in [p for t, p in truth["tone_trace"] if t >= at_s - 60]
    # A person power-cycles the pump and holds BOOTSEL: provisioning opens, for new keys.
    pico.inject("button")
    pico.answers()
    pico.inject("advance", "5s")    # on past the 2 s the firmware wants it held
    assert pico.inject("truth")["bootsel_pressed"] > 0
    with Link.open(pico.info["port"], timeout_s=REPLY_S) as lk:
        clinician, _ = provision(lk)
    session = Session(pico.port, clinician.secret, "clinician", pico.pump_id, REPLY_S)
    st = session.ask("status")
    assert st["ok"] is True and st["delivering"] is True
    assert "key_damaged" not in {a["code"] for a in st["alarms"]}
    assert session.ask("settings")["settings"] == settings
    log = session.ask("log", {"max": 50})["entries"]
    assert any(e[2] == "alarm" and e[3] == 14 for e in log)    # codes.AL_KEY_DAMAGED, raised
    assert any(e[2] == "button" for e in log) and any(e[2] == "keys" and e[3] == 3 for e in log)
    pico.send(hello_line(pico.key, pico.pump_id, 902) + b"\n")
    assert read_reply(pico.port, 902, REPLY_S)[0]["error"] == "E_AUTH"   # the old key is gone


def test_a_request_recorded_on_one_emulated_pico_is_refused_by_another(tmp_path):
    """Two emulated Picos with the same keys (one flash image copied to another board with its
    own unique id): what was recorded on the first does not act on the second."""
    a = Pico(tmp_path / "a" / "flash")
    try:
        pump_a = a.ask({"cmd": "info"})["pump_id"]
        assert pump_a == (tmp_path / "a" / "flash" / "unique_id").read_text().strip()
        assert pump_a != "0" * 16 and pump_a == a.pump_id
        a.program()
        recorder = Session(a.port, a.key, "clinician", pump_a, REPLY_S)
        hello = recorder.hello()      # both steps: the challenge, and the answer to it
        recorded = list(recorder.hello_lines)
        stop = sign(a.key, {"id": 912, "cmd": "stop", "role": "clinician", "pump": pump_a,
                            "sn": hello["sn"], "ctr": hello["ctr"] + 1})
        a.send(stop + b"\n")
        assert read_reply(a.port, 912, REPLY_S)[0]["ok"] is True
        recorded.append(stop)
        assert a.ask({"cmd": "resume"}, sign=True)["ok"] is True   # the copy starts running
    finally:
        assert a.close() == 0
    shutil.copytree(tmp_path / "a" / "flash", tmp_path / "b" / "flash")
    (tmp_path / "b" / "flash" / "unique_id").write_text("7717717717717717\n")
    (tmp_path / "b" / "flash" / "board.lock").unlink(missing_ok=True)
    b = Pico(tmp_path / "b" / "flash")
    try:
        assert b.ask({"cmd": "info"})["pump_id"] == "7717717717717717"
        for line in recorded:
            b.send(line + b"\n")
            reply = read_reply(b.port, json.loads(line.rsplit(b" ", 1)[0])["id"], REPLY_S)[0]
            assert reply["ok"] is False and reply["error"] in ("E_AUTH", "E_SESSION"), reply
        # The same key, naming this pump, is accepted: only the pump id told them apart.
        b.session = Session(b.port, b.key, "clinician", "7717717717717717", REPLY_S)
        st = b.session.ask("status")
        assert st["ok"] is True and st["stopped"] is False
        assert json.loads((tmp_path / "b" / "flash" / "clinician.key").read_text())["key"] == \
            json.loads((tmp_path / "a" / "flash" / "clinician.key").read_text())["key"]
    finally:
        assert b.close() == 0
