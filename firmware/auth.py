# Request authentication: HMAC-SHA256 with a per-pump key per role, and a counter per role that
# only goes up, stored before a command acts (docs/protocol.md, "Authentication").
#
# MicroPython has hashlib.sha256 but no hmac module, so the construction (RFC 2104) is written
# out here: H((K ^ opad) || H((K ^ ipad) || message)) with a 64-byte block.
import struct
from hashlib import sha256

from firmware.compat import const

NONE = const(0)
PATIENT = const(1)
CLINICIAN = const(2)
ROLES = {"patient": PATIENT, "clinician": CLINICIAN}
KEY_LEN = const(32)
_BLOCK = const(64)
_MAGIC = b"KEY1"
CTR_MAX = const((1 << 30) - 1)


def _pads(key):
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    return bytes(ipad), bytes(opad)


def hmac_sha256(key, msg):
    """The 32-byte HMAC-SHA256 tag of msg under key (a key of at most 64 bytes)."""
    ipad, opad = _pads(key)
    inner = sha256(ipad)
    inner.update(msg)
    outer = sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def same(a, b):
    """Compare two byte strings in time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    acc = 0
    for i in range(len(a)):
        acc |= a[i] ^ b[i]
    return acc == 0


def unhex(text):
    """bytes from lower- or upper-case hex digits, or None if text is not hex of even length."""
    if len(text) % 2:
        return None
    out = bytearray(len(text) // 2)
    for i in range(len(out)):
        hi = _digit(text[2 * i])
        lo = _digit(text[2 * i + 1])
        if hi < 0 or lo < 0:
            return None
        out[i] = hi * 16 + lo
    return bytes(out)


def _digit(c):
    o = ord(c)
    if 48 <= o <= 57:
        return o - 48
    if 97 <= o <= 102:
        return o - 87
    if 65 <= o <= 70:
        return o - 55
    return -1


class Keys:
    """The two role keys and their counters, kept in one power-loss-safe record."""

    def __init__(self, store):
        self.store = store
        self.key = [None, None, None]  # type: list  # by role: NONE, PATIENT, CLINICIAN
        self.ctr = [0, 0, 0]
        self.damaged = False
        data = store.load()
        self.damaged = store.corrupt and data is None
        if data is not None and len(data) == 4 + 2 * KEY_LEN + 8 and data[:4] == _MAGIC:
            self.key[CLINICIAN] = bytes(data[4:4 + KEY_LEN])
            self.key[PATIENT] = bytes(data[4 + KEY_LEN:4 + 2 * KEY_LEN])
            c, p = struct.unpack_from("<ii", data, 4 + 2 * KEY_LEN)
            self.ctr[CLINICIAN] = c
            self.ctr[PATIENT] = p

    def provisioned(self):
        return self.key[CLINICIAN] is not None

    def _save(self):
        buf = bytearray(4 + 2 * KEY_LEN + 8)
        buf[:4] = _MAGIC
        buf[4:4 + KEY_LEN] = self.key[CLINICIAN]
        buf[4 + KEY_LEN:4 + 2 * KEY_LEN] = self.key[PATIENT]
        struct.pack_into("<ii", buf, 4 + 2 * KEY_LEN, self.ctr[CLINICIAN], self.ctr[PATIENT])
        return self.store.save(bytes(buf))

    def provision(self, clinician_key, patient_key):
        self.key[CLINICIAN] = clinician_key
        self.key[PATIENT] = patient_key
        self.ctr[CLINICIAN] = 0
        self.ctr[PATIENT] = 0
        return self._save()

    def check(self, role, body, tag):
        """True when tag is the HMAC of body under the role's key."""
        key = self.key[role]
        return key is not None and same(hmac_sha256(key, body), tag)

    def advance(self, role, ctr):
        """Store ctr as the role's last accepted counter (before the command acts)."""
        self.ctr[role] = ctr
        return self._save()
