"""Power-loss-safe A/B record storage: a cut save never loses or mixes records."""

import hashlib
import struct
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.store import (SEQ_MASK, FileDev, RecordStore, decode, encode, newer, pack_ints,
                            unpack_ints)

MODES = ("truncate", "overlay", "erased", "garbage")


class PowerLoss(Exception):
    pass


class CutDev:
    """In-memory flash. Arm `cut` = (k, mode, garbage) and the next write keeps only its first k
    bytes (nothing at all is atomic), then power fails (PowerLoss). What follows the kept prefix
    depends on `mode`: nothing (truncate), the old file's bytes (overlay: written in place),
    erased flash 0xFF (erased), or `garbage`. k >= the record length completes the write."""

    def __init__(self):
        self.files = {}
        self.cut = None
        self.writes = 0

    def read(self, path):
        return self.files.get(path)

    def write(self, path, data):
        data = bytes(data)
        self.writes += 1
        if self.cut is None:
            self.files[path] = data
            return
        k, mode, garbage = self.cut
        self.cut = None
        if k >= len(data):
            self.files[path] = data
        elif mode == "truncate":
            self.files[path] = data[:k]
        elif mode == "overlay":
            self.files[path] = data[:k] + (self.files.get(path) or b"")[k:]
        elif mode == "erased":
            self.files[path] = data[:k] + b"\xff" * (len(data) - k)
        else:
            self.files[path] = data[:k] + garbage
        raise PowerLoss()


def saved(*payloads):
    dev = CutDev()
    store = RecordStore(dev, "st")
    for p in payloads:
        assert store.save(p)
    return dev


def cut_save(dev, payload, k, mode, garbage=b""):
    dev.cut = (k, mode, garbage)
    with pytest.raises(PowerLoss):
        RecordStore(dev, "st").save(payload)


# --- power cuts -----------------------------------------------------------------------------

PAIRS = [
    (b"old", b"new"),                          # same length
    (b"", b"x" * 37),                          # empty -> longer
    (bytes(range(60)), b"short"),              # longer -> shorter
    (pack_ints(array("i", range(10))), pack_ints(array("i", range(1, 11)))),  # state-like
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("old,new", PAIRS)
def test_every_cut_point_leaves_exactly_the_old_or_the_new_record(old, new, mode):
    size = len(encode(0, new))
    for k in range(size + 1):
        # Three saves so the slot about to be written holds an older record (for overlay).
        dev = saved(b"older record, gone soon", b"previous", old)
        cut_save(dev, new, k, mode, garbage=bytes((k * 37 + i) & 0xFF for i in range(k % 23)))
        store = RecordStore(dev, "st")
        got = store.load()
        assert got == (new if k == size else old), (k, got)
        if k < size and mode != "overlay":
            assert store.corrupt, k
        # The store keeps working after the cut.
        assert store.save(b"later")
        again = RecordStore(dev, "st")
        assert again.load() == b"later"
        assert again.save(b"and later")
        assert RecordStore(dev, "st").load() == b"and later"


@st.composite
def histories(draw):
    """A list of saves, some of them cut by a power loss at a random byte."""
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        payload = draw(st.binary(max_size=48))
        size = len(encode(0, payload))
        if draw(st.booleans()):
            k = draw(st.integers(0, size))
            mode = draw(st.sampled_from(MODES))
            garbage = draw(st.binary(max_size=size + 8))
            steps.append((payload, (k, mode, garbage)))
        else:
            steps.append((payload, None))
    return steps


@given(histories())
def test_after_any_power_cut_load_returns_the_last_completed_save(steps):
    dev = CutDev()
    committed = None
    store = RecordStore(dev, "st")
    assert store.load() is None and not store.corrupt
    for payload, cut in steps:
        if cut is None:
            assert store.save(payload)
            committed = payload
            continue
        dev.cut = cut
        k = cut[0]
        try:
            store.save(payload)
        except PowerLoss:
            pass
        if k >= len(encode(0, payload)):
            committed = payload
        # Reboot: a fresh store sees only what the flash holds.
        store = RecordStore(dev, "st")
        assert store.load() == committed
        if committed is None:
            assert store.seq is None


def test_a_cut_first_save_on_fresh_flash_loads_nothing_and_reports_corruption():
    dev = CutDev()
    cut_save(dev, b"first", 5, "truncate")
    store = RecordStore(dev, "st")
    assert store.load() is None
    assert store.corrupt
    assert store.save(b"second")
    assert RecordStore(dev, "st").load() == b"second"


# --- corruption -----------------------------------------------------------------------------

def test_fresh_flash_loads_nothing_and_is_not_corrupt():
    store = RecordStore(CutDev(), "st")
    assert store.load() is None
    assert store.corrupt is False
    assert store.seq is None and store.slot is None


def test_both_slots_corrupt_loads_nothing_and_is_corrupt():
    dev = saved(b"one", b"two")
    for path in ("st.a", "st.b"):
        raw = bytearray(dev.files[path])
        raw[14] ^= 0x10
        dev.files[path] = bytes(raw)
    store = RecordStore(dev, "st")
    assert store.load() is None
    assert store.corrupt is True


def test_one_corrupt_slot_falls_back_to_the_other_and_reports_it():
    dev = saved(b"one", b"two")            # "two" is the newest, in slot b
    dev.files["st.b"] = dev.files["st.b"][:-1] + b"\x00"
    store = RecordStore(dev, "st")
    assert store.load() == b"one"
    assert store.corrupt is True
    # A later save goes to the damaged slot, never over the survivor.
    assert store.save(b"three")
    assert dev.files["st.a"] == encode(1, b"one")
    assert RecordStore(dev, "st").load() == b"three"


def test_one_valid_slot_and_one_missing_is_not_corrupt():
    dev = saved(b"only")
    assert set(dev.files) == {"st.a"}
    store = RecordStore(dev, "st")
    assert store.load() == b"only"
    assert store.corrupt is False


@pytest.mark.parametrize("flip", [0x01, 0x80])
def test_any_changed_byte_invalidates_a_record(flip):
    dev = saved(b"older", b"newest payload")
    good = dev.files["st.b"]
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= flip
        dev.files["st.b"] = bytes(bad)
        store = RecordStore(dev, "st")
        assert store.load() == b"older", i
        assert store.corrupt, i


def test_trailing_or_missing_bytes_invalidate_a_record():
    rec = encode(4, b"payload")
    assert decode(rec) == (4, b"payload")
    assert decode(rec + b"\x00") is None
    assert decode(rec[:-1]) is None
    assert decode(b"") is None
    assert decode(None) is None


def test_sequence_numbers_above_the_range_are_rejected():
    body = b"PSR1" + struct.pack("<II", SEQ_MASK + 1, 0)
    assert decode(body + hashlib.sha256(body).digest()[:4]) is None
    body = b"PSR1" + struct.pack("<II", SEQ_MASK, 0)
    assert decode(body + hashlib.sha256(body).digest()[:4]) == (SEQ_MASK, b"")


def test_save_reports_a_write_that_does_not_read_back():
    class FlippingDev(CutDev):
        def write(self, path, data):
            data = bytearray(data)
            data[-1] ^= 1
            self.files[path] = bytes(data)

    assert RecordStore(FlippingDev(), "st").save(b"x") is False


def test_failed_saves_never_overwrite_the_last_good_record():
    """Regression (issue 13, item 3): a save whose write did not read back used to move the
    store on to the other slot, so the next save (failing or not) overwrote the only good
    record. A failing flash must leave the last good record where it is, however many saves
    fail after it."""
    class FailingDev(CutDev):
        failing = False

        def write(self, path, data):
            if self.failing:
                data = bytes(data[:-1]) + bytes([data[-1] ^ 1])
            self.files[path] = bytes(data)

    dev = FailingDev()
    st = RecordStore(dev, "st")
    assert st.save(b"good")
    dev.failing = True
    for _ in range(3):
        assert st.save(b"bad") is False
    assert RecordStore(dev, "st").load() == b"good"
    dev.failing = False
    assert st.save(b"newer") and RecordStore(dev, "st").load() == b"newer"


# --- sequence numbers -----------------------------------------------------------------------

def test_sequence_numbers_wrap_and_the_newest_still_wins():
    assert newer(1, 0) and not newer(0, 1)
    assert newer(0, SEQ_MASK) and not newer(SEQ_MASK, 0)
    assert not newer(5, 5)
    dev = CutDev()
    dev.files["st.a"] = encode(SEQ_MASK - 1, b"old")
    dev.files["st.b"] = encode(SEQ_MASK, b"new")
    store = RecordStore(dev, "st")
    assert store.load() == b"new"
    assert store.save(b"newer")
    assert store.seq == 0 and store.slot == 0
    assert dev.files["st.a"] == encode(0, b"newer")
    store = RecordStore(dev, "st")
    assert store.load() == b"newer"
    assert store.save(b"newest") and store.seq == 1
    assert RecordStore(dev, "st").load() == b"newest"


def test_saves_alternate_slots_with_rising_sequence_numbers():
    dev = CutDev()
    store = RecordStore(dev, "st")
    for i in range(6):
        assert store.save(bytes([i]))
        assert store.seq == i + 1
        assert store.slot == i % 2
        assert dev.files[("st.a", "st.b")[i % 2]] == encode(i + 1, bytes([i]))
    assert dev.writes == 6


# --- int arrays -----------------------------------------------------------------------------

@given(st.lists(st.integers(-(2 ** 31), 2 ** 31 - 1), max_size=64))
def test_int_arrays_round_trip(values):
    arr = array("i", values)
    data = pack_ints(arr)
    assert len(data) == 4 * len(values)
    assert data == struct.pack("<%di" % len(values), *values)
    assert list(unpack_ints(data)) == values
    into = array("i", [0] * len(values))
    assert unpack_ints(data, into) is into
    assert list(into) == values


def test_int_arrays_are_little_endian():
    assert pack_ints(array("i", [1, -1, 0x01020304])) == \
        b"\x01\x00\x00\x00\xff\xff\xff\xff\x04\x03\x02\x01"


def test_unpack_rejects_bad_lengths():
    with pytest.raises(ValueError):
        unpack_ints(b"\x00" * 5)
    with pytest.raises(ValueError):
        unpack_ints(b"\x00" * 8, array("i", [0] * 3))


# --- files ----------------------------------------------------------------------------------

def test_file_dev_persists_records_across_instances(tmp_path):
    dev = FileDev(str(tmp_path) + "/")
    assert dev.read("nothing") is None
    store = RecordStore(dev, "state")
    assert store.load() is None and not store.corrupt
    for i in range(3):
        assert store.save(pack_ints(array("i", [i, -i])))
    again = RecordStore(FileDev(str(tmp_path)), "state")
    assert list(unpack_ints(again.load())) == [2, -2]
    assert again.seq == 3
    assert (tmp_path / "state.a").read_bytes() == encode(3, pack_ints(array("i", [2, -2])))
    (tmp_path / "state.a").write_bytes(b"PSR1\x03")     # torn on the real filesystem
    torn = RecordStore(FileDev(str(tmp_path)), "state")
    assert list(unpack_ints(torn.load())) == [1, -1]
    assert torn.corrupt


def test_file_dev_reads_a_save_back_piece_by_piece_and_finds_any_difference(tmp_path):
    # The read-back of a save compares CHUNK bytes at a time (no second record-sized buffer on
    # the Pico): a byte changed in any chunk, or a file one byte short or long, is not the record.
    from firmware.store import CHUNK
    dev = FileDev(str(tmp_path))
    rec = bytes(range(256)) * (3 * CHUNK // 256) + b"tail"
    dev.write("r", rec)
    assert dev.same("r", rec)
    for at in (0, CHUNK - 1, CHUNK, 2 * CHUNK + 5, len(rec) - 1):
        bad = bytearray(rec)
        bad[at] ^= 0x40
        assert not dev.same("r", bytes(bad)), at
    assert not dev.same("r", rec[:-1]) and not dev.same("r", rec + b"x")
    assert not dev.same("missing", rec)
    store = RecordStore(dev, "st")
    assert store.save(b"payload") and store.load() == b"payload"


class NoMemoryOnce:
    """A store whose save raises MemoryError `fails` times, then saves (a fragmented heap that
    a collection mends)."""

    def __init__(self, fails):
        self.fails = fails
        self.saves = 0
        self.corrupt = False

    def save(self, payload, tail=b""):
        if self.fails:
            self.fails -= 1
            raise MemoryError("memory allocation failed, allocating 5981 bytes")
        self.saves += 1
        return True


def test_a_save_that_runs_out_of_memory_is_tried_again_then_reported_failed_never_raised():
    from firmware.app import _save
    once = NoMemoryOnce(1)
    assert _save(once, b"x") is True and once.saves == 1
    twice = NoMemoryOnce(2)
    assert _save(twice, b"x") is False and twice.saves == 0
