"""TMC2209 UART datagrams: CRC, layout and the reply parser."""

from hypothesis import given
from hypothesis import strategies as st

from boards import tmc2209


def reference_crc(data: bytes) -> int:
    """CRC-8 (poly 0x07, init 0) over bit-reversed bytes: the datasheet CRC, said another way."""
    crc = 0
    for byte in data:
        byte = int(f"{byte:08b}"[::-1], 2)
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@given(st.binary(min_size=0, max_size=12))
def test_crc_matches_an_independent_formulation(data):
    assert tmc2209.crc8(data, len(data)) == reference_crc(data)


@given(addr=st.integers(0, 3), reg=st.integers(0, 0x7F), value=st.integers(0, 2**32 - 1))
def test_write_datagram_layout(addr, reg, value):
    d = tmc2209.write_datagram(addr, reg, value)
    assert len(d) == 8 and d[0] == 0x05 and d[1] == addr and d[2] == reg | 0x80
    assert int.from_bytes(d[3:7], "big") == value
    assert d[7] == reference_crc(d[:7])


@given(reg=st.integers(0, 0x7F), value=st.integers(0, 2**32 - 1), echo=st.booleans())
def test_a_reply_round_trips_and_a_corrupt_one_is_refused(reg, value, echo):
    body = bytes([0x05, 0xFF, reg]) + value.to_bytes(4, "big")
    reply = body + bytes([reference_crc(body)])
    data = (tmc2209.read_request(0, reg) if echo else b"") + reply
    assert tmc2209.parse_reply(data, reg) == value
    bad = bytearray(data)
    bad[-3] ^= 0x10
    assert tmc2209.parse_reply(bytes(bad), reg) is None
    assert tmc2209.parse_reply(data, (reg + 1) & 0x7F) is None
    assert tmc2209.parse_reply(None, reg) is None and tmc2209.parse_reply(reply[:7], reg) is None


def test_setup_turns_on_stall_detection():
    writes = dict(tmc2209.setup_writes(0, 60, 0, 16))
    assert writes[tmc2209.SGTHRS] == 60
    assert writes[tmc2209.TCOOLTHRS] == 0xFFFFF
    assert writes[tmc2209.GCONF] & (1 << 6)          # PDN_UART is the UART
    assert not writes[tmc2209.GCONF] & (1 << 7)      # microsteps from the MS pins
    assert writes[tmc2209.IHOLD_IRUN] == (1 << 16) | (16 << 8)
