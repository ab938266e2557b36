# The running firmware's files against the signed manifest of its install, a slice at a time.
#
# Every install has a manifest: an update's in its slot (fw/a/manifest.json, fw/b/...), the
# base's (the first install) in fw/base/manifest.json, written by the installer
# (host_tools/flash.py) in the same form: {"manifest": the exact text the update key signed,
# "sig": the signature, hex}. The power-on self-test (firmware/post.py) checks the signature and
# every file once a boot, and leaves this object behind for the periodic check: the names,
# sizes and the first half of each SHA-256 (kept compact: the Pico's heap is small), whose
# step() hashes a slice and keeps its place, a whole pass about once a day. Opening a file and
# its hash allocates, once per file; a slice in between allocates nothing.
from array import array
from hashlib import sha256

from firmware import loader
from firmware.compat import const

_BUF = const(256)
DIGEST = const(16)          # bytes of each SHA-256 kept for the periodic pass
RUNNING = const(0)
PASSED = const(1)
FAILED = const(-1)


class CodeCheck:
    def __init__(self, fs, slot, code_fs, names, sizes, digests, identity):
        """names: the manifest's file names, one a line; sizes; digests: the first DIGEST bytes
        of each SHA-256 (firmware/post.py makes them from the signed manifest)."""
        self.fs = fs            # where the pointer lives (fall_back)
        self.slot = slot
        self.code_fs = code_fs  # where the files are
        self.names = names
        self.sizes = sizes
        self.digests = digests
        self.identity = identity  # this install (the watchdog's proof names it)
        self.count = len(sizes)
        starts = array("H", [0])    # where each name starts in `names` (and one past the end)
        i = names.find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = names.find("\n", i + 1)
        starts.append(len(names) + 1)
        self.starts = starts
        self.total = sum(sizes)
        self.buf = bytearray(_BUF)
        self.k = 0              # the file in progress
        self.f = None
        self.h = None
        self.got = 0
        self.bad = -1           # the file that did not match

    def name(self, k):
        # (not names.split("\n")[k]: a list of every name at each file's opening, 2 ms on
        # the Pico)
        at = self.starts
        return self.names[at[k]:at[k + 1] - 1]

    def restart(self):
        if self.f is not None:
            self.f.close()
        self.f = None
        self.h = None
        self.k = 0

    def step(self, nbytes):
        """Hash up to about nbytes more. PASSED when the last file of a pass matched (the next
        call starts another), FAILED when a file is missing or did not match (self.bad; the
        next call starts again), else RUNNING. Opening a file (littlefs walks the path: 2 to 5
        ms of the Pico's time) is a call of its own, and a call ends with the file it ends, so
        no call pays for two files: a pass of the Pico's 46 files takes about 250 calls."""
        if self.f is None:
            try:
                self.f = open(self.code_fs.path(self.name(self.k)), "rb")
            except OSError:
                return self._fail()
            if self.h is None:
                self.h = sha256()
            self.got = 0
            return RUNNING
        buf = self.buf
        while nbytes > 0:
            k = self.k
            n = self.f.readinto(buf)
            if n:
                self.h.update(buf if n == _BUF else memoryview(buf)[:n])
                self.got += n
                nbytes -= n
            size = self.sizes[k]
            if n == _BUF and self.got <= size:
                continue
            # the end of the file (or more of it than the manifest says)
            ok = self.got == size and self.h.digest()[:DIGEST] == self.digests[
                k * DIGEST:(k + 1) * DIGEST]
            self.f.close()
            self.f = None
            self.h = sha256()   # the next file's, made here: the call that opens it is long
            if not ok:
                return self._fail()
            self.k = k + 1
            if self.k == self.count:
                self.k = 0
                return PASSED
            return RUNNING
        return RUNNING

    def _fail(self):
        self.bad = self.k
        self.restart()
        return FAILED

    def full(self):
        """A whole pass from the first file: PASSED or FAILED."""
        self.restart()
        while True:
            r = self.step(1 << 20)
            if r != RUNNING:
                return r

    def fall_back(self):
        return fall_back(self.fs, self.slot)


def fall_back(fs, slot):
    """The firmware in `slot` does not match its manifest: the next boot goes back to the
    previous one (or the base), as the boot loader does when it finds it so. False for the
    base, which has nothing to go back to (and where there are no files: fs None)."""
    if fs is None or slot == loader.BASE:
        return False
    st = loader.load(fs)
    if st is None or st.get("active") != slot:
        return False
    loader.save(fs, loader._back(fs, st, "damaged"))
    return True
