"""The loop hands the protocol what it read off the serial line in one go (Proto.feed_from, after
the board's read_into): the outcome is the byte-by-byte feed()'s, whatever the bytes and however
the line splits them into reads (ordinary runs, control bytes, line ends, overlong lines,
mpremote's raw-REPL request)."""

from hypothesis import example, given
from hypothesis import strategies as st

from firmware.proto import MAX_LINE
from tests.firmware.proto_bench import programmed

# Bytes that matter to the framing, mixed with ordinary ones.
SPECIAL = [0, 1, 2, 3, 4, 5, 9, 10, 13, 27, 127, ord("{"), ord("A"), 255]
BYTE = st.one_of(st.sampled_from(SPECIAL), st.integers(32, 126), st.integers(0, 255))


def replay(chunks: list[bytes], bulk: bool) -> tuple[bytes, tuple]:
    app, clin = programmed()
    hal = app.hal
    start = len(hal.out)
    buf = bytearray(64)
    for chunk in chunks:
        if bulk:
            for i in range(0, len(chunk), len(buf)):
                piece = chunk[i:i + len(buf)]
                buf[:len(piece)] = piece
                app.proto.feed_from(buf, len(piece), hal.ticks_ms())
        else:
            for b in chunk:
                app.proto.feed(b, hal.ticks_ms())
    p = app.proto
    state = (bytes(p.buf[:p.n]), p.n, p.overlong, p.after_cr, p.raw, p.raw_n, p.hinted,
             app.therapy.pump.stopped, app.keys.last[:])
    return bytes(hal.out[start:]), state


@given(st.lists(st.lists(BYTE, max_size=300).map(bytes), max_size=6))
@example([b"4 ping\r\n" + b"x" * (MAX_LINE + 5) + b"\n5 ping\r"])
@example([b"\r\x03\r\x01", b"\x05A\x01import os\r\x04", b"\r\x02", b"6 ping\n"])
@example([b"help\r", b"7 pi\x03ng\n"])
def test_feed_from_is_feed_byte_by_byte(chunks):
    assert replay(chunks, bulk=True) == replay(chunks, bulk=False)


def test_a_request_split_across_reads_is_one_request():
    line = b'{"id": 41, "cmd": "ping"}\n'
    out, _ = replay([line[:7], line[7:19], line[19:]], bulk=True)
    assert out.count(b'"pong":true') == 1
