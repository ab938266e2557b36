"""The hash-chained event ring: bounded, verifiable, saved and reloaded byte for byte."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.eventlog import HEAD_LEN, INT_MAX, INT_MIN, EventLog
from firmware.store import RecordStore

INT32 = st.integers(INT_MIN, INT_MAX)


@st.composite
def events(draw, min_size=0, max_size=60):
    """(code, now, a, b) tuples with strictly rising times, so no two entries are equal."""
    n = draw(st.integers(min_size, max_size))
    now = draw(st.integers(0, 1000))
    out = []
    for _ in range(n):
        now += draw(st.integers(1, 100000))
        out.append((draw(st.integers(0, 40)), now & 0x3FFFFFFF, draw(INT32), draw(INT32)))
    return out


def build(capacity, evs):
    log = EventLog(capacity)
    for code, now, a, b in evs:
        log.add(code, now, a, b)
    return log


def split(data):
    """(header words, [entry words]) of to_bytes() output."""
    head = list(struct.unpack_from("<iiiii", data, 4))
    n = head[1]
    ents = [list(struct.unpack_from("<iiiii", data, HEAD_LEN + 20 * k)) for k in range(n)]
    return head, ents


def join(head, ents):
    head = list(head)
    head[1] = len(ents)
    out = b"EVL1" + struct.pack("<iiiii", *head)
    for e in ents:
        out += struct.pack("<iiiii", *e)
    return out


def tampered_log_verifies(head, ents):
    return EventLog.from_bytes(join(head, ents)).verify()


# --- the ring and its chain -----------------------------------------------------------------

@given(st.integers(1, 12), events(max_size=50))
def test_chain_verifies_after_every_add_and_keeps_the_newest_entries(capacity, evs):
    log = EventLog(capacity)
    assert log.verify() and log.entries() == []
    for i, (code, now, a, b) in enumerate(evs):
        log.add(code, now, a, b)
        assert log.verify(), i
        assert len(log) == min(i + 1, capacity)
    want = [(now, code, a, b) for code, now, a, b in evs][-capacity:]
    assert log.entries() == want
    assert log.total == len(evs)


def test_a_ring_overwritten_many_times_still_verifies():
    log = EventLog(16)
    for i in range(1000):
        log.add(i % 13, 1000 * i, i, -i)
    assert log.verify()
    assert log.entries()[0] == (984000, 984 % 13, 984, -984)
    assert log.entries()[-1] == (999000, 999 % 13, 999, -999)


def test_out_of_range_arguments_saturate_alike_on_every_runtime():
    log = EventLog(2)
    log.add(3, 5, 2 ** 40, -(2 ** 40))
    assert log.entries() == [(5, 3, INT_MAX, INT_MIN)]
    assert log.verify()


def test_the_chain_depends_on_history_not_only_on_the_entries_held():
    """Two logs holding the same entries but with different dropped pasts chain differently."""
    one = build(2, [(1, 10, 0, 0), (2, 20, 0, 0), (3, 30, 0, 0)])
    two = build(2, [(9, 10, 0, 0), (2, 20, 0, 0), (3, 30, 0, 0)])
    assert one.entries() == two.entries()
    assert one.head != two.head and one.anchor != two.anchor


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        EventLog(0)


# --- tampering ------------------------------------------------------------------------------

@given(st.integers(2, 10), events(min_size=2, max_size=30), st.data())
def test_changing_any_field_of_any_entry_breaks_the_chain(capacity, evs, data):
    log = build(capacity, evs)
    head, ents = split(log.to_bytes())
    assert tampered_log_verifies(head, ents)
    k = data.draw(st.integers(0, len(ents) - 1))
    field = data.draw(st.integers(0, 4))          # time, code, a, b, chain
    bit = data.draw(st.integers(0, 30))
    ents[k][field] ^= 1 << bit
    assert not tampered_log_verifies(head, ents)


def test_every_single_field_change_is_caught_exhaustively():
    log = build(6, [(i % 5, 100 * i, i * 7, -3 * i) for i in range(14)])
    head, ents = split(log.to_bytes())
    for k in range(len(ents)):
        for field in range(5):
            for bit in (0, 17, 30):
                bad = [list(e) for e in ents]
                bad[k][field] ^= 1 << bit
                assert not tampered_log_verifies(head, bad), (k, field, bit)
    # In memory too: change a value in the ring arrays.
    for arr in ("t", "code", "a", "b", "chain"):
        mem = build(6, [(i % 5, 100 * i, i * 7, -3 * i) for i in range(14)])
        getattr(mem, arr)[3] += 1
        assert not mem.verify(), arr


@given(st.integers(2, 10), events(min_size=2, max_size=30), st.data())
def test_removing_any_entry_breaks_the_chain(capacity, evs, data):
    head, ents = split(build(capacity, evs).to_bytes())
    k = data.draw(st.integers(0, len(ents) - 1))
    del ents[k]
    assert not tampered_log_verifies(head, ents)


@given(st.integers(2, 10), events(min_size=2, max_size=30), st.data())
def test_swapping_any_two_entries_breaks_the_chain(capacity, evs, data):
    head, ents = split(build(capacity, evs).to_bytes())
    i = data.draw(st.integers(0, len(ents) - 2))
    j = data.draw(st.integers(i + 1, len(ents) - 1))
    ents[i], ents[j] = ents[j], ents[i]
    assert not tampered_log_verifies(head, ents)


def test_removals_and_swaps_are_caught_at_every_position():
    head, ents = split(build(5, [(i, 10 * i, i, i) for i in range(12)]).to_bytes())
    assert len(ents) == 5
    for k in range(5):
        assert not tampered_log_verifies(head, ents[:k] + ents[k + 1:]), ("remove", k)
    for k in range(4):
        sw = ents[:k] + [ents[k + 1], ents[k]] + ents[k + 2:]
        assert not tampered_log_verifies(head, sw), ("swap", k)
    # Swapping only the event data while leaving each chain value in place is caught too.
    sw = [list(e) for e in ents]
    sw[1][:4], sw[2][:4] = sw[2][:4], sw[1][:4]
    assert not tampered_log_verifies(head, sw)


def test_changing_the_anchor_or_head_breaks_the_chain():
    head, ents = split(build(4, [(i, i, i, i) for i in range(9)]).to_bytes())
    for w in (3, 4):                               # anchor, head
        bad = list(head)
        bad[w] ^= 1
        assert not tampered_log_verifies(bad, ents), w


def test_first_bad_points_at_the_damage():
    log = build(8, [(i, i, i, i) for i in range(20)])
    assert log.first_bad() == -1
    log.a[log._index(5)] += 1
    assert log.first_bad() == 5
    log = build(8, [(i, i, i, i) for i in range(20)])
    log.n -= 1                                     # newest entry gone, head kept
    assert log.first_bad() == 7


# --- bytes and storage ----------------------------------------------------------------------

@given(st.integers(1, 12), events(max_size=40), events(max_size=10))
def test_round_trip_through_bytes_then_logging_goes_on_identically(capacity, evs, more):
    log = build(capacity, evs)
    data = log.to_bytes()
    again = EventLog.from_bytes(data)
    assert again.to_bytes() == data
    assert again.entries() == log.entries()
    assert again.verify()
    assert again.total == log.total
    for code, now, a, b in more:
        log.add(code, now, a, b)
        again.add(code, now, a, b)
    assert again.to_bytes() == log.to_bytes()
    assert again.verify()


def test_reloading_into_a_smaller_ring_keeps_the_newest_entries_and_verifies():
    log = build(10, [(i, 100 * i, i, i) for i in range(10)])
    small = EventLog.from_bytes(log.to_bytes(), capacity=4)
    assert small.capacity == 4
    assert small.entries() == log.entries()[-4:]
    assert small.verify()
    small.add(99, 5000, 0, 0)
    assert small.verify() and small.entries()[0] == log.entries()[-3]
    big = EventLog.from_bytes(log.to_bytes(), capacity=20)
    assert big.entries() == log.entries() and big.verify()


def test_malformed_bytes_are_rejected():
    data = build(4, [(1, 2, 3, 4), (5, 6, 7, 8)]).to_bytes()
    for bad in (b"", b"XXXX" + data[4:], data[:-1], data + b"\x00" * 20):
        with pytest.raises(ValueError):
            EventLog.from_bytes(bad)
    head, ents = split(data)
    head[0] = 1                                    # capacity below the count
    with pytest.raises(ValueError):
        EventLog.from_bytes(join(head, ents))


class Dev:
    def __init__(self):
        self.files = {}
        self.cut_at = None

    def read(self, path):
        return self.files.get(path)

    def write(self, path, data):
        if self.cut_at is not None:
            self.files[path] = bytes(data[:self.cut_at])
            self.cut_at = None
            raise OSError("power lost")
        self.files[path] = bytes(data)


def test_saved_log_survives_a_cut_save_and_reloads_verified():
    dev = Dev()
    log = build(8, [(i, 10 * i, i, i) for i in range(11)])
    assert log.save(RecordStore(dev, "log"))
    before = log.entries()
    log.add(50, 500, 1, 2)
    dev.cut_at = 40
    with pytest.raises(OSError):
        log.save(RecordStore(dev, "log"))
    store = RecordStore(dev, "log")
    back = EventLog.load(store, 8)
    assert store.corrupt
    assert back is not None and back.verify()
    assert back.entries() == before
    assert EventLog.load(RecordStore(Dev(), "log"), 8) is None
