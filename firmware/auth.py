# Request authentication (docs/protocol.md, "Authentication"; docs/security.md): HMAC-SHA256
# with a per-pump key per role, and a counter per role that only goes up.
#
# MicroPython has hashlib.sha256 but no hmac module, so the construction (RFC 2104) is written
# out here: H((K ^ opad) || H((K ^ ipad) || message)) with a 64-byte block, a key longer than
# the block being hashed first.
#
# Counters and flash wear. The last accepted counter lives in RAM; the flash holds a bound
# above it (`reserved`), moved a block at a time: a request whose counter passes the bound saves
# a new bound BLOCK further first. After a restart the pump takes the bound as its last counter,
# so no counter it ever accepted can be accepted again, and a patient app polling every minute
# writes the record about 23 times a day instead of 1440.
import struct
from binascii import unhexlify
from hashlib import sha256

from firmware.compat import const

NONE = const(0)
PATIENT = const(1)
CLINICIAN = const(2)
ROLES = {"patient": PATIENT, "clinician": CLINICIAN}
ROLE_NAMES = ("none", "patient", "clinician")
KEY_LEN = const(32)
_TAG_LEN = const(32)
_BLOCK = const(64)             # HMAC block size of SHA-256
CTR_MAX = const((1 << 30) - 1)
WINDOW = const(8)              # a counter may run at most this far above the last accepted
BLOCK = const(64)              # counters reserved by one save of the record
# Ordinary commands stop this far below CTR_MAX; only `rekey` may use the rest. A request moves
# the counter by at most WINDOW and a restart by at most BLOCK + WINDOW, so a pump refusing
# ordinary commands keeps room for thousands of restarts before a clinician re-keys it.
_REKEY_MARGIN = const(1 << 20)
CTR_LIMIT = const(CTR_MAX - _REKEY_MARGIN)
_MAGIC_V1 = b"KEY1"            # before sessions: the counters themselves, saved per request
_MAGIC = b"KEY2"               # keys and the reserved counter bounds
_REC_LEN = const(4 + 2 * KEY_LEN + 8)
_HEX = "0123456789abcdef"


def _pads(key):
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    return bytes(ipad), bytes(opad)


def hmac_sha256(key, msg):
    """The 32-byte HMAC-SHA256 tag of msg under key (RFC 2104, any key length)."""
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


def tohex(data):
    """Lower-case hex text of bytes (the only form the protocol uses)."""
    out = []
    for b in data:
        out.append(_HEX[b >> 4])
        out.append(_HEX[b & 15])
    return "".join(out)


def unhex(text):
    """bytes from lower-case hex digits, or None if text is not lower-case hex of even length.
    binascii does the work in C (a digit at a time in Python took about 6 ms for 32 bytes on
    the Pico: the power-on self-test's manifest digests, every request's tag); it also takes
    upper case, which the protocol's hex never is."""
    try:
        out = unhexlify(text)
    except (ValueError, TypeError):
        return None
    if text.lower() != text:
        return None
    return out


def derive(key, label, nonce):
    """A new key from a key, a label and a nonce (re-keying: nothing secret crosses the line)."""
    return hmac_sha256(key, label + nonce)


class Keys:
    """The two role keys and their counters, kept in one power-loss-safe record.

    After loading:
      never      no record was ever written (a factory-fresh pump: provisioning is open)
      damaged    a record exists and none of it verifies: the pump fails closed
      fallback   the newest copy was damaged and the older one was used (counters moved on)
    """

    def __init__(self, store):
        self.store = store
        self.key = [None, None, None]  # type: list  # by role: NONE, PATIENT, CLINICIAN
        self.last = [0, 0, 0]          # last accepted counter, by role (RAM)
        self.reserved = [0, 0, 0]      # the bound saved in flash, by role
        self.fallback = False
        data = store.load()
        self.never = data is None and not store.corrupt and store.seq is None
        self.damaged = False
        if data is None:
            self.damaged = store.corrupt
            return
        if len(data) != _REC_LEN or data[:4] not in (_MAGIC, _MAGIC_V1):
            self.damaged = True
            return
        self.key[CLINICIAN] = bytes(data[4:4 + KEY_LEN])
        self.key[PATIENT] = bytes(data[4 + KEY_LEN:4 + 2 * KEY_LEN])
        c, p = struct.unpack_from("<ii", data, 4 + 2 * KEY_LEN)
        self.fallback = store.corrupt
        # The older copy may be one save behind: the newest bound was at most a window and a
        # block above it.
        extra = WINDOW + BLOCK if store.corrupt else 0
        for role, n in ((CLINICIAN, c), (PATIENT, p)):
            n = n + extra if 0 <= n <= CTR_MAX - extra else CTR_MAX
            self.reserved[role] = n
            self.last[role] = n

    def provisioned(self):
        return self.key[CLINICIAN] is not None

    def usable(self):
        """Keys that may authenticate requests: present and not damaged."""
        return self.key[CLINICIAN] is not None and not self.damaged

    def _save(self):
        buf = bytearray(_REC_LEN)
        buf[:4] = _MAGIC
        buf[4:4 + KEY_LEN] = self.key[CLINICIAN]
        buf[4 + KEY_LEN:4 + 2 * KEY_LEN] = self.key[PATIENT]
        struct.pack_into("<ii", buf, 4 + 2 * KEY_LEN, self.reserved[CLINICIAN],
                         self.reserved[PATIENT])
        return self.store.save(bytes(buf))

    def _save_both(self):
        # Both slots: no older copy holding the previous keys may come back after a fault.
        return self._save() and self._save()

    def provision(self, clinician_key, patient_key):
        self.key[CLINICIAN] = clinician_key
        self.key[PATIENT] = patient_key
        self.last = [0, 0, 0]
        self.reserved = [0, 0, 0]
        self.damaged = False
        self.never = False
        self.fallback = False
        self.store.corrupt = False
        return self._save_both()

    def rekey(self, nonce):
        """New keys for both roles derived from the clinician key and a fresh nonce; counters
        start again from 0 (requests signed with the old keys can never verify again)."""
        ck = self.key[CLINICIAN]
        return self.provision(derive(ck, b"rekey/clinician/", nonce),
                              derive(ck, b"rekey/patient/", nonce))

    def check(self, role, body, tag):
        """True when tag is the HMAC of body under the role's key."""
        key = self.key[role]
        return key is not None and not self.damaged and same(hmac_sha256(key, body), tag)

    def sign(self, role, msg):
        return hmac_sha256(self.key[role], msg)

    def in_window(self, role, ctr):
        last = self.last[role]
        return last < ctr <= last + WINDOW and ctr <= CTR_MAX

    def advance(self, role, ctr):
        """Accept ctr as the role's last counter (before the command acts). The record is
        written only when ctr passes the saved bound; False when that write failed."""
        if ctr > self.reserved[role]:
            old = self.reserved[role]
            bound = ctr + BLOCK
            self.reserved[role] = bound if bound <= CTR_MAX else CTR_MAX
            if not self._save():
                self.reserved[role] = old
                return False
        self.last[role] = ctr
        return True
