"""Garbage on the serial line of a live virtual Pico (firmware on the MicroPython VM).

Whatever arrives (random bytes, overlong lines, invalid UTF-8 or JSON, wrong types, unknown
commands, Ctrl-C/Ctrl-D, properly signed requests with nonsense arguments), the pump keeps
answering, its settings and counters stay as they were, and its delivery, measured by the
plant, is exactly what the prescription gives.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.board.vboard_fixture import LiveBoard

# One continuous rate, so any hour of delivery is rate/24 within a stroke.
CONTINUOUS = {"conc_ng_ml": 10_000_000, "steps": [[0, 2_400_000]], "max_daily_ng": 6_000_000,
              "low_res_nl": 1_000_000, "pb": [100_000, 600, 7200, 4]}
RATE_NL_DAY = 240_000
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    b = LiveBoard(tmp_path_factory.mktemp("flash"))
    b.program(CONTINUOUS)
    yield b
    assert b.close() == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
COMMANDS = ["help", "info", "ping", "status", "program", "bolus", "refill", "stop", "fly", ""]
CONTROL = st.sampled_from([b"\x03", b"\x04", b"\x03\x04", b"\x1b[A", b"\x00", b"\r"])


@st.composite
def garbage(draw):
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return b"{" * draw(st.integers(1025, 3000)) + b"\n"
    if kind == 2:
        return draw(st.binary(min_size=1, max_size=20)).replace(b"\n", b"") + b"\xff\xfe\n"
    if kind == 3:  # JSON of the wrong shape or types, unsigned
        req = draw(st.dictionaries(st.sampled_from(["id", "cmd", "args", "role", "ctr"]),
                                   json_values, max_size=5))
        return json.dumps(req).encode() + b"\n"
    if kind == 4:
        return draw(CONTROL) + b"info" + draw(CONTROL) + b"\n"
    if kind == 5:  # an unknown or unauthenticated command
        cmd = draw(st.sampled_from(COMMANDS))
        return json.dumps({"id": draw(json_values), "cmd": cmd}).encode() + b"\n"
    return b"not json at all " + draw(st.text(max_size=30)).encode() + b"\n"


# Signed programs whose params never form a prescription (no steps): refused, never applied.
bad_params = st.dictionaries(
    st.sampled_from(["conc_ng_ml", "max_daily_ng", "low_res_nl", "pb", "meta", "stepz"]),
    json_values, max_size=5)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(chunks=st.lists(garbage(), min_size=1, max_size=6), params=bad_params)
def test_garbage_never_stops_delivery_or_changes_settings(board, chunks, params):
    before = board.ask({"cmd": "settings"}, sign=True)["settings"]
    for chunk in chunks:
        board.send(chunk)
    board.send(b"\n")
    assert board.ask({"cmd": "ping"})["pong"] is True  # and every garbage reply is read
    signed, rid = board.session.line("program", {"params": params})
    line = signed + b"\n"
    board.send(line)
    if len(line) > 1025:  # too long to be read at all: refused before it is parsed
        reply = board.read_reply(None)
        assert reply["error"] == "E_TOO_LONG", reply
        board.session.ctr -= 1   # never read, so its counter was never used
    else:
        reply = board.read_reply(rid)
        assert reply["ok"] is False and reply["error"] in ("E_ARGS", "E_RX"), reply
    assert board.ask({"cmd": "ping"})["pong"] is True
    assert board.ask({"cmd": "settings"}, sign=True)["settings"] == before
    status = board.ask({"cmd": "status"}, sign=True)
    assert status["delivering"] and status["alarms"] == [], status


def test_delivery_after_the_garbage_is_exactly_the_prescription(board):
    board.send(b"\x03\x04" * 50 + b"\xff" * 2000 + b"\n")
    start = board.inject("truth")["delivered_nl"]
    board.inject("advance", "1h")
    delivered = board.inject("truth")["delivered_nl"] - start
    ideal = RATE_NL_DAY * HOUR_MS // 86_400_000
    assert abs(delivered - ideal) <= 250, (delivered, ideal)
    assert board.ask({"cmd": "ping"})["pong"] is True
