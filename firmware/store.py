# Power-loss-safe record storage: A/B slots, each holding one whole record.
#
# Nothing the flash offers is atomic: a write can stop after any byte and leave a short file, a
# mix of new bytes over the old ones, or garbage. So every save goes to the slot that does NOT
# hold the newest valid record, and a record only counts when its check passes. A cut save
# therefore leaves the previous record untouched in the other slot, and load() finds it.
#
# Record layout (little-endian), one file per slot, `name + ".a"` and `name + ".b"`:
#
#   offset  size  field
#   0       4     magic  b"PSR1"
#   4       4     sequence number, unsigned, 0 <= seq < 2**30, +1 per save (wraps to 0)
#   8       4     payload length n, unsigned
#   12      n     payload
#   12+n    4     check: the first 4 bytes of SHA-256(bytes 0 .. 12+n-1)
#
# A slot is valid only when the magic, the length (the file is exactly 16 + n bytes), the
# sequence range and the check all agree. SHA-256 comes from `hashlib`, present on the rp2 port,
# the unix port and CPython alike, so no CRC32 from `binascii` is needed.
#
# Runs unchanged on MicroPython and CPython.

import gc
import os
import struct
import sys
from array import array

from hashlib import sha256

from firmware.compat import const
from firmware.loader import Fs

MAGIC = b"PSR1"
HEAD_LEN = 12
_CHECK_LEN = const(4)
SEQ_MASK = 0x3FFFFFFF   # sequence numbers stay below 2**30 (small ints on a 32-bit VM)
_SEQ_HALF = const(0x20000000)   # a is newer than b when 0 < (a - b) mod 2**30 < 2**29
SLOTS = (".a", ".b")
CHUNK = 256             # bytes compared at a time when a save is read back
# int32 arrays are copied as their bytes where the machine is little-endian (the RP2040, x86,
# ARM hosts): one buffer the size of the record, where a struct call per int, or one call with
# every int as an argument, takes time or a second buffer as big (on the Pico, with its small
# heap, every record-sized buffer counts).
_LE = sys.byteorder == "little"


def newer(a, b):
    """True when sequence number a comes after b (serial-number order, survives the wrap)."""
    d = (a - b) & SEQ_MASK
    return 0 < d < _SEQ_HALF


def encode(seq, payload, tail=b""):
    """The bytes of one record (its payload: payload, then tail)."""
    m = len(payload)
    n = m + len(tail)
    buf = bytearray(HEAD_LEN + n + _CHECK_LEN)
    buf[0:4] = MAGIC
    struct.pack_into("<II", buf, 4, seq & SEQ_MASK, n)
    buf[HEAD_LEN:HEAD_LEN + m] = payload
    buf[HEAD_LEN + m:HEAD_LEN + n] = tail
    buf[HEAD_LEN + n:] = sha256(memoryview(buf)[:HEAD_LEN + n]).digest()[:_CHECK_LEN]
    return buf  # a bytearray: no copy (a record-sized buffer less on the Pico's heap)


def check(data):
    """The sequence number of a valid record, or None for anything else (short, torn,
    corrupt); nothing is copied."""
    if data is None or len(data) < HEAD_LEN + _CHECK_LEN:
        return None
    if data[0:4] != MAGIC:
        return None
    seq, n = struct.unpack_from("<II", data, 4)
    if seq > SEQ_MASK or len(data) != HEAD_LEN + n + _CHECK_LEN:
        return None
    end = HEAD_LEN + n
    if sha256(memoryview(data)[:end]).digest()[:_CHECK_LEN] != data[end:]:
        return None
    return seq


def decode(data):
    """(seq, payload) of a valid record, or None for anything else (short, torn, corrupt)."""
    seq = check(data)
    if seq is None or data is None:
        return None
    return seq, bytes(data[HEAD_LEN:len(data) - _CHECK_LEN])


class RecordStore:
    """Two-slot record store over `dev` (read(path) -> bytes or None; write(path, data)).

    After load() (save() runs it first if needed):
      seq      sequence number of the newest valid record, or None
      slot     index (0 = ".a", 1 = ".b") of the slot holding it, or None
      corrupt  True when a slot exists (read gave bytes) but holds no valid record. After a
               power cut during a save this is expected while the other slot is still good;
               it means lost data only when load() also returned None.
    """

    def __init__(self, dev, name):
        self.dev = dev
        self.paths = (name + SLOTS[0], name + SLOTS[1])
        self.seq = None
        self.slot = None
        self.corrupt = False
        self.loaded = False

    def load(self):
        """Payload of the newest valid record, or None when neither slot holds one.

        The slots are checked one at a time and the newest is read again for its payload: no
        more than one record and its payload are in RAM at once (on the Pico's heap a third
        record-sized buffer can be one too many at boot: a reset loop after every power cut on
        the emulated Pico)."""
        best = None
        best_slot = None
        corrupt = False
        for i in (0, 1):
            raw = self.dev.read(self.paths[i])
            if raw is None:
                continue
            seq = check(raw)
            raw = None
            if seq is None:
                corrupt = True
            elif best is None or newer(seq, best):
                best = seq
                best_slot = i
        rec = None
        if best_slot is not None:
            gc.collect()    # what the checks left, freed before the one buffer kept
            rec = decode(self.dev.read(self.paths[best_slot]))
        if rec is None or rec[0] != best:
            rec = None
            corrupt = corrupt or best_slot is not None   # (it changed under us: damaged)
        self.corrupt = corrupt
        self.loaded = True
        if rec is None:
            self.seq = None
            self.slot = None
            return None
        self.seq = rec[0]
        self.slot = best_slot
        return rec[1]

    def save(self, payload, tail=b""):
        """Write payload (then tail, one record with both: no buffer to join them) as the next
        record into the other slot; True when it reads back intact.

        If the power fails during the write, the slot written is the one that did not hold the
        newest record, so that record survives.
        """
        if not self.loaded:
            self.load()
        if self.seq is None:
            seq = 1
            target = 0
        else:
            seq = (self.seq + 1) & SEQ_MASK
            target = 1 - self.slot  # pyright: ignore[reportOperatorIssue]  (slot is set with seq)
        rec = encode(seq, payload, tail)
        self.dev.write(self.paths[target], rec)
        if not _holds(self.dev, self.paths[target], rec):
            # The write did not take. The newest good record is still in the other slot: the
            # next save goes to this one again, never over that record.
            return False
        self.seq = seq
        self.slot = target
        return True


def _holds(dev, path, rec):
    """True when the slot reads back as rec. A dev with same() compares piece by piece (no
    second record-sized buffer: on the Pico's fragmented heap a save could fail for want of it);
    any other dev is read whole."""
    same = getattr(dev, "same", None)
    if same is not None:
        return same(path, rec)
    return dev.read(path) == rec


# The pump clock at the moment of each state save rides behind the pump's state record, so a
# board that loses its clock (a Pico: no battery-backed RTC) carries on from it. Older records
# have no trailer; the state record itself (firmware/record.py) is not changed by it.
CLOCK_TAG = b"CLK1"
_CLOCK_TRAILER_LEN = const(8)


def clock_trailer(ts):
    return CLOCK_TAG + struct.pack("<i", ts)


def split_clock(payload):
    """(the state record's bytes, the clock saved with them or None)."""
    n = len(payload) - _CLOCK_TRAILER_LEN
    if n >= 0 and payload[n:n + 4] == CLOCK_TAG:
        # a view, not a copy: on the Pico a record-sized buffer counts
        return memoryview(payload)[:n], struct.unpack_from("<i", payload, n + 4)[0]
    return payload, None


def pack_ints(values):
    """Little-endian int32 bytes of an array('i') (or any sequence of ints)."""
    if _LE and isinstance(values, array):
        b = bytes(values)
        if len(b) == 4 * len(values):
            return b
    return struct.pack("<%di" % len(values), *values)


def unpack_ints(data, into=None):
    """array('i') from pack_ints() bytes; fills `into` in place when given (lengths must match)."""
    if len(data) % 4:
        raise ValueError("int32 data length")
    n = len(data) // 4
    if into is None:
        if _LE:
            # from a bytearray both runtimes copy the bytes as they are (from bytes,
            # MicroPython would take each byte as an int)
            return array("i", bytearray(data))
        into = array("i", [0] * n)
    elif len(into) != n:
        raise ValueError("int32 count")
    for i in range(n):
        into[i] = struct.unpack_from("<i", data, 4 * i)[0]
    return into


class MemDev:
    """The `dev` interface in RAM: files in a dict (simulations and tests; nothing survives a
    real power cut)."""

    def __init__(self):
        self.files = {}

    def read(self, path):
        return self.files.get(path)

    def write(self, path, data):
        self.files[path] = bytes(data)


class FileDev(Fs):
    """The `dev` interface on a real filesystem (littlefs on the Pico, any directory on a host):
    read(path) and write(path, data) under a root, from the boot loader's Fs (which uses only
    open() and what MicroPython's os has on every port)."""

    def read(self, name):
        # The file's size first: read() without one grows its buffer in steps, which on the
        # Pico needs up to two record-sized blocks at once and leaves holes in the heap.
        p = self.path(name)
        try:
            size = os.stat(p)[6]
            f = open(p, "rb")
        except OSError:
            return None
        try:
            try:
                return f.read(size)
            except MemoryError:
                # a fragmented heap: collected, one more try (the caller sees the record or,
                # on a second failure, the MemoryError)
                gc.collect()
                return f.read(size)
        finally:
            f.close()

    def same(self, name, data):
        """True when the file holds exactly data, read back CHUNK bytes at a time."""
        p = self.path(name)
        try:
            if os.stat(p)[6] != len(data):
                return False
            f = open(p, "rb")
        except OSError:
            return False
        chunk = bytearray(CHUNK)
        off = 0
        try:
            while off < len(data):
                n = f.readinto(chunk)
                if not n:
                    return False
                if chunk[:n] != data[off:off + n]:
                    return False
                off += n
            return True
        finally:
            f.close()
