"""The line as terminals and programs use it (firmware/proto.py feed and the terminal form):
lone CR, LF and CRLF each end one line; a person's `help`/`info`/`ping` get readable lines; a
program's request gets one compact JSON object with sorted keys; Ctrl-C gets one hint."""

import json

from hypothesis import given
from hypothesis import strategies as st

from firmware.proto import HINT, RAW_BANNER
from tests.firmware.proto_bench import boot, feed, feed_raw, programmed, split_tag


def canonical(line: str) -> bool:
    """The JSON of a reply line (its tag, when signed, after one space) is compact and
    sorted."""
    body = split_tag(line)[0]
    return body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))


def test_a_lone_cr_ends_a_line_as_a_terminal_sends_it():
    app = boot()
    out = feed_raw(app, b"4 ping\r")
    assert json.loads(out.strip())["pong"] is True
    # and the next line is not spoiled by what came before
    assert json.loads(feed_raw(app, b"5 ping\r").strip())["id"] == 5


def test_crlf_counts_once_and_an_empty_line_gets_nothing():
    app = boot()
    assert [r["id"] for r in feed(app, b"1 ping\r\n2 ping\n3 ping\r\r\n\n")] == [1, 2, 3]


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n"]), min_size=1, max_size=6))
def test_any_line_ending_gives_one_reply_per_request(ends):
    app = boot()
    data = b"".join(b"%d ping" % (i + 1) + end for i, end in enumerate(ends))
    assert [r["id"] for r in feed(app, data)] == list(range(1, len(ends) + 1))


def test_help_typed_by_a_person_is_readable_lines():
    app = boot()
    out = feed_raw(app, b"help\r")
    lines = out.strip("\r\n").split("\r\n")
    assert len(lines) > 10 and max(len(x) for x in lines) <= 80
    assert lines[0].startswith("Intrathecal pump mem0001")
    assert any(x.split()[0] == "status" and "[patient key]" in x for x in lines[3:])
    assert any(x.split()[0] == "program" and "[clinician key]" in x for x in lines[3:])
    assert not out.lstrip().startswith("{")


def test_info_typed_by_a_person_shows_only_what_picks_a_key():
    """Without a key `info` names the pump (docs/security.md); the clock, counters and the
    board's limits come to a keyed caller (pumpctl info), readable there."""
    app = boot()
    out = feed_raw(app, b"info\r\n")
    lines = out.strip("\r\n").split("\r\n")
    assert lines[0] == "pump id      mem0001" and "board        virtual-pico" in lines
    assert "build        production" in lines and "keys         none yet (provision it)" in lines
    assert "clock" in lines[-1] and "pumpctl info" in lines[-1]
    assert "2026" not in out and "mL" not in out and max(len(x) for x in lines) <= 80


def test_a_typo_from_a_person_says_what_to_type():
    app = boot()
    out = feed_raw(app, b"hlep\r")
    assert "not a command here: hlep" in out and "type help" in out


def test_every_json_reply_is_compact_with_sorted_keys():
    app, clin = programmed()
    lines = [clin.line("status"), clin.line("settings"), clin.line("log"), "9 info",
             json.dumps({"id": 3, "cmd": "nope"}), clin.line("bolus", {"dose_nl": -1})]
    for line in lines:
        out = feed_raw(app, line.encode() + b"\n").strip()
        assert canonical(out), out
    # a repeat of the last accepted request too
    line = clin.line("stop")
    feed_raw(app, line.encode() + b"\n")
    again = feed_raw(app, line.encode() + b"\n").strip()
    assert canonical(again) and json.loads(split_tag(again)[0])["repeat"] is True


def test_ctrl_c_on_a_running_pump_answers_one_hint_per_line():
    app = boot()
    out = feed_raw(app, b"\x03\x03\x03\x03")
    assert out == HINT.decode() + "\r\n"
    # what mpremote sends: Ctrl-C gets the hint, Ctrl-A the raw REPL's refusal (RAW_ENTER,
    # tests/board/test_mpremote.py), which Ctrl-B ends
    out = feed_raw(app, b"\r\x03\r\x01")
    assert out.count(HINT.decode()) == 1 and out.endswith(RAW_BANNER.decode())
    assert feed_raw(app, b"\x02") == "\r\n"
    assert feed(app, b"6 ping\n")[0]["pong"] is True
    assert "make flash" in HINT.decode() and len(HINT) <= 80


def test_the_info_limits_are_the_boards_and_need_a_key():
    app, clin = programmed()
    assert "limits" not in feed(app, b"2 info\n")[0]
    lim = feed(app, clin.line("info").encode() + b"\n")[0]["limits"]
    hal = app.hal
    assert lim == {"stroke_nl": hal.STROKE_NL, "reservoir_nl": hal.RESERVOIR_NL,
                   "reservoir_min_nl": hal.RESERVOIR_MIN_NL,
                   "min_rate_nl_day": hal.MIN_RATE_NL_DAY,
                   "max_strokes_per_min": hal.MAX_STROKES_PER_MIN,
                   "max_rate_nl_day": hal.MAX_STROKES_PER_MIN * hal.STROKE_NL * 1440,
                   "catheter_nl": hal.CATHETER_NL}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=16)


@given(json_values)
def test_the_wire_encoding_round_trips_and_has_one_spelling(value):
    from firmware import wirejson

    text = wirejson.dumps(value)
    assert json.loads(text) == value
    assert text == json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_the_programming_log_entry_records_the_bolus_settings():
    from host_tools.views import explain
    from tests.firmware.proto_bench import PARAMS

    app, clin = programmed()
    rows = feed(app, clin.line("log").encode() + b"\n")[0]["entries"]
    events = {r[2]: (r[3], r[4]) for r in rows}
    dose_nl = PARAMS["pb"][0] * 1_000_000 // PARAMS["conc_ng_ml"]
    assert events["program_bolus"] == (dose_nl, PARAMS["pb"][1])
    assert events["program_bolus_limits"] == (PARAMS["pb"][2], PARAMS["pb"][3])
    assert explain("program_bolus", dose_nl, 600) == "patient bolus 0.008 mL over 10 min"
    assert explain("program_bolus_limits", 7200, 4) == "lockout 2 h, at most 4 a day"
