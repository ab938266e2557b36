# What the pump needs of its signed updates at every boot (firmware/update.py has the transfer,
# loaded only when an update begins): the update key, an RSA public key written once at the
# factory, and the check of a signature with it (the self-test checks the running firmware's
# manifest at every boot); where the filesystem of the firmware slots is; and the
# confirmation that ends a new firmware's trial.
#
# Why RSA: verifying with e = 65537 is 17 modular multiplications, which MicroPython's big
# integers do in about 2.4 ms on the unix port (a few hundred ms on an RP2040); an elliptic-curve
# verification written in Python would take hundreds of times longer there.
from hashlib import sha256

from firmware import auth, loader
from firmware.compat import const

SLOT_NO = {"base": 0, "a": 1, "b": 2}  # a slot's number in the event log (update, rollback)
KEY_MIN = const(256)            # RSA-2048 at least; the development and factory keys are 3072
KEY_MAX = const(512)
E = const(65537)
# DER prefix of a SHA-256 DigestInfo (RFC 8017, section 9.2, note 1).
_DIGEST_INFO = auth.unhex("3031300d060960864801650304020105000420")


def fs_for(dev):
    """The filesystem root the loader uses, from the records' directory (`<root>/data`); None
    for storage that is not a filesystem (the simulator's, tests' MemDev)."""
    root = getattr(dev, "root", None)
    if root is None:
        return None
    if root == "/data" or root == "data":
        return loader.Fs("")
    if root.endswith("/data"):
        return loader.Fs(root[:-5])
    return None


class UpdateKey:
    """The update key: an RSA modulus in its own A/B record, written once."""

    def __init__(self, store):
        self.store = store
        data = store.load()
        self.modulus = data if data is not None and KEY_MIN <= len(data) <= KEY_MAX else None
        self.damaged = store.corrupt and self.modulus is None

    def set(self, modulus):
        self.modulus = modulus
        return self.store.save(modulus) and self.store.save(modulus)


def confirm(fs):
    """The running firmware works: end its trial (no-op when it is not on one). True when the
    pointer changed."""
    st = loader.load(fs)
    if st is None or st.get("tries") is None:
        return False
    loader.save(fs, {"v": 1, "active": st["active"], "prev": st.get("prev", loader.BASE)})
    return True


def _modexp(b, e, m):
    try:
        return pow(b, e, m)
    except (TypeError, NotImplementedError, ValueError):
        r = 1
        b %= m
        while e:
            if e & 1:
                r = r * b % m
            b = b * b % m
            e >>= 1
        return r


def rsa_verify(modulus, msg, sig):
    """True when sig is an RSASSA-PKCS1-v1_5 SHA-256 signature of msg under (modulus, 65537).
    The whole expected block is built and compared, never parsed."""
    k = len(modulus)
    if len(sig) != k or k < KEY_MIN or _DIGEST_INFO is None:
        return False
    n = int.from_bytes(modulus, "big")
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em = _modexp(s, E, n).to_bytes(k, "big")
    pad = k - 3 - len(_DIGEST_INFO) - 32
    want = b"\x00\x01" + b"\xff" * pad + b"\x00" + _DIGEST_INFO + sha256(msg).digest()
    return auth.same(em, want)
