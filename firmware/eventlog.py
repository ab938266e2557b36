# A bounded, hash-chained ring of events: (time, code, a, b).
#
# Each entry carries a chain value: the first 30 bits of SHA-256 over the previous chain value
# and the entry itself. Changing, removing or reordering entries breaks the chain, and verify()
# says so. When the ring is full, add() drops the oldest entry and keeps its chain value as the
# `anchor` the remaining entries chain from, so a full ring still verifies. The newest chain
# value is kept as `head`, so dropping the newest entries from a saved log is caught too.
#
# The chain is unkeyed: it finds corruption and careless tampering, not a forger who recomputes
# every value (that would need a per-pump key).
#
# Saved form (little-endian int32 words), see to_bytes():
#   magic b"EVL1", capacity, count n, total (adds ever, mod 2**30), anchor, head,
#   then n entries oldest -> newest, each: time, code, a, b, chain.
#
# Runs unchanged on MicroPython and CPython; add() only allocates the hash object and digest.

import struct

from firmware.compat import const
from array import array

from hashlib import sha256

MAGIC = b"EVL1"
HEAD_FMT = "<iiiii"          # after the magic: capacity, n, total, anchor, head
HEAD_LEN = 4 + 20
ENTRY_FMT = "<iiiii"         # time, code, a, b, chain
ENTRY_LEN = 20
_MASK30 = const(0x3FFFFFFF)
INT_MAX = 0x7FFFFFFF
INT_MIN = -0x7FFFFFFF - 1
_SEED = const(0x1EC0106)             # chain value before the first entry ever logged


def _clamp(v):
    # array('i') wraps out-of-range values on MicroPython and raises on CPython: saturate instead
    # so both runtimes log the same thing.
    if v > INT_MAX:
        return INT_MAX
    if v < INT_MIN:
        return INT_MIN
    return v


def _link(buf, prev, t, code, a, b):
    """Chain value of entry (t, code, a, b) after chain value prev; buf is 20 scratch bytes."""
    struct.pack_into("<iiiii", buf, 0, prev, t, code, a, b)
    d = sha256(buf).digest()
    # Built from single bytes so every intermediate stays a small int on a 32-bit VM.
    return d[0] | (d[1] << 8) | (d[2] << 16) | ((d[3] & 0x3F) << 24)


class EventLog:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity")
        self.capacity = capacity
        self.t = array("i", [0] * capacity)
        self.code = array("i", [0] * capacity)
        self.a = array("i", [0] * capacity)
        self.b = array("i", [0] * capacity)
        self.chain = array("i", [0] * capacity)
        self._buf = bytearray(20)
        self.start = 0        # ring index of the oldest entry
        self.n = 0            # entries held
        self.total = 0        # entries ever added, mod 2**30
        self.anchor = _SEED    # chain value just before the oldest entry held
        self.head = _SEED      # chain value of the newest entry (anchor when empty)

    def __len__(self):
        return self.n

    def add(self, code, now, a, b):
        """Log event `code` at time `now` with two int arguments (saturated to int32)."""
        cap = self.capacity
        if self.n < cap:
            i = self.start + self.n
            if i >= cap:
                i -= cap
            self.n += 1
        else:
            i = self.start
            self.anchor = self.chain[i]
            self.start = i + 1 if i + 1 < cap else 0
        a = _clamp(a)
        b = _clamp(b)
        now = _clamp(now)
        code = _clamp(code)
        self.t[i] = now
        self.code[i] = code
        self.a[i] = a
        self.b[i] = b
        h = _link(self._buf, self.head, now, code, a, b)
        self.chain[i] = h
        self.head = h
        self.total = (self.total + 1) & _MASK30

    def _index(self, k):
        i = self.start + k
        return i - self.capacity if i >= self.capacity else i

    def entries(self):
        """[(time, code, a, b), ...] oldest -> newest."""
        out = []
        for k in range(self.n):
            i = self._index(k)
            out.append((self.t[i], self.code[i], self.a[i], self.b[i]))
        return out

    def first_bad(self):
        """-1 when the chain holds; else the position (0 = oldest) of the first entry that breaks
        it, or n when only the head disagrees (entries missing at the newest end)."""
        prev = self.anchor
        for k in range(self.n):
            i = self._index(k)
            h = _link(self._buf, prev, self.t[i], self.code[i], self.a[i], self.b[i])
            if h != self.chain[i]:
                return k
            prev = h
        if prev != self.head:
            return self.n
        return -1

    def verify(self):
        return self.first_bad() < 0

    def to_bytes(self):
        out = bytearray(HEAD_LEN + ENTRY_LEN * self.n)
        out[0:4] = MAGIC
        struct.pack_into(HEAD_FMT, out, 4, self.capacity, self.n, self.total, self.anchor,
                         self.head)
        off = HEAD_LEN
        for k in range(self.n):
            i = self._index(k)
            struct.pack_into(ENTRY_FMT, out, off, self.t[i], self.code[i], self.a[i], self.b[i],
                             self.chain[i])
            off += ENTRY_LEN
        return bytes(out)

    @classmethod
    def from_bytes(cls, data, capacity=None):
        """An EventLog from to_bytes() output; raises ValueError when the layout is malformed.

        The chain is not checked here (call verify()), so a damaged log can still be read.
        With a `capacity` smaller than the saved count, the oldest entries are dropped and the
        anchor moves up to the chain value of the last one dropped, as add() would have done.
        """
        if len(data) < HEAD_LEN or data[0:4] != MAGIC:
            raise ValueError("not an event log")
        cap, n, total, anchor, head = struct.unpack_from(HEAD_FMT, data, 4)
        if cap < 1 or n < 0 or n > cap or len(data) != HEAD_LEN + ENTRY_LEN * n:
            raise ValueError("event log layout")
        if capacity is None:
            capacity = cap
        log = cls(capacity)
        skip = n - capacity if n > capacity else 0
        off = HEAD_LEN
        for k in range(n):
            t, code, a, b, h = struct.unpack_from(ENTRY_FMT, data, off)
            off += ENTRY_LEN
            if k < skip:
                anchor = h
                continue
            j = k - skip
            log.t[j] = t
            log.code[j] = code
            log.a[j] = a
            log.b[j] = b
            log.chain[j] = h
        log.n = n - skip
        log.total = total & _MASK30
        log.anchor = anchor
        log.head = head
        return log

    def save(self, store):
        """Write the log through a RecordStore; True when it reads back intact."""
        return store.save(self.to_bytes())

    @classmethod
    def load(cls, store, capacity):
        """The log saved in `store`, or None when there is none or it cannot be parsed (check
        store.corrupt to tell the two apart)."""
        data = store.load()
        if data is None:
            return None
        try:
            return cls.from_bytes(data, capacity)
        except ValueError:
            return None
