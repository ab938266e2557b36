# The boot loader: which firmware runs (docs/security.md, "Firmware updates").
#
# This module imports nothing from the firmware package but the one-line firmware/buildinfo.py,
# once the firmware is chosen, because it runs before any firmware is chosen: on a Pico it is
# copied to the root of the flash as loader.mpy and main.py calls it; the virtual board imports
# it the same way (sim/vboard_main.py). The firmware imports it as
# firmware.loader to switch and confirm. So the pointer's format below never changes: a loader
# installed long ago must read what a new firmware writes.
#
# Three places a firmware can be, under the filesystem root (`/` on a Pico, the flash directory
# of a virtual board):
#
#   base      firmware/ and boards/ at the root: the first install (mpremote, once)
#   fw/a      fw/a/firmware/..., fw/a/boards/..., fw/a/manifest.json   an update
#   fw/b      the same                                                  the update after it
#
# fw/boot (the pointer) says which runs: {"v": 1, "active": "a", "prev": "base", "tries": 2}.
# It is only ever replaced whole: written to fw/boot.tmp, then os.rename'd over fw/boot, which
# littlefs (and POSIX) do atomically. A power cut leaves the old pointer or the new one.
#
# "tries" marks a trial: a new firmware that has not yet confirmed it works. Each boot of it
# takes one try (saved before the firmware runs); when none is left, the loader goes back to
# "prev" by itself. A slot runs only if every file matches its manifest (size and SHA-256).
import json
import os
import sys
from hashlib import sha256

# This file's version. main.py imports the copy a first install put at the root of the flash
# (loader.mpy) before any firmware runs; when that copy is this very version, the firmware
# package uses it as firmware.loader instead of loading its own (firmware/__init__.py): one
# copy of the code on the Pico's small heap. Change this file, change the version: a test
# (tests/repo/test_loader_version.py) holds each version to its text.
LOADER_V = 1
BASE = "base"
SLOTS = ("a", "b")
TRIES = 3                      # boots a new firmware gets to come up and confirm
POINTER = "fw/boot"
_TMP = "fw/boot.tmp"
CRASH = "fw/crash"
_CRASH_MAX = 240
_BUF = 512


class Fs:
    """Files under a root directory, with only what MicroPython's os offers on every port."""

    def __init__(self, root):
        while len(root) > 1 and root[-1] == "/":
            root = root[:-1]
        self.root = root

    def path(self, name):
        if not self.root:
            return name
        if self.root == "/":
            return "/" + name
        return self.root + "/" + name

    def read(self, name):
        try:
            f = open(self.path(name), "rb")
        except OSError:
            return None
        try:
            return f.read()
        finally:
            f.close()

    def write(self, name, data, mode="wb"):
        f = open(self.path(name), mode)
        try:
            f.write(data)
            if hasattr(f, "flush"):
                f.flush()
        finally:
            f.close()

    def append(self, name, data):
        self.write(name, data, "ab")

    def rename(self, old, new):
        os.rename(self.path(old), self.path(new))

    def remove(self, name):
        try:
            os.remove(self.path(name))
        except OSError:
            pass

    def mkdir(self, name):
        try:
            os.mkdir(self.path(name))
        except OSError:
            pass  # it exists already

    def entries(self, name):
        """[(name, is_dir)] in a directory ([] when it does not exist)."""
        try:
            return [(e[0], e[1] == 0x4000) for e in os.ilistdir(self.path(name))]
        except (OSError, AttributeError):
            pass
        try:
            names = os.listdir(self.path(name))
        except OSError:
            return []
        out = []
        for n in names:
            try:
                is_dir = os.stat(self.path(name + "/" + n))[0] & 0x4000 != 0
            except OSError:
                is_dir = False
            out.append((n, is_dir))
        return out

    def rmtree(self, name):
        for n, is_dir in self.entries(name):
            if is_dir:
                self.rmtree(name + "/" + n)
            else:
                self.remove(name + "/" + n)
        try:
            os.rmdir(self.path(name))
        except OSError:
            pass

    def digest(self, name):
        """(size, SHA-256 hex) of a file read in small pieces, or None when it is missing."""
        try:
            f = open(self.path(name), "rb")
        except OSError:
            return None
        h = sha256()
        size = 0
        buf = bytearray(_BUF)
        try:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                size += n
                h.update(buf if n == _BUF else buf[:n])
        finally:
            f.close()
        return size, hexstr(h.digest())


def hexstr(data):
    return "".join("%02x" % b for b in data)


def slot_dir(slot):
    return "fw/" + slot


def slot_manifest(fs, slot):
    """The parsed manifest a slot was installed with, or None."""
    raw = fs.read(slot_dir(slot) + "/manifest.json")
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
        man = json.loads(rec["manifest"])
        return man if type(man) is dict and type(man.get("files")) is list else None
    except Exception:
        return None


def slot_ok(fs, slot):
    """True when every file of the slot's manifest is there with its size and SHA-256."""
    man = slot_manifest(fs, slot)
    if man is None or not man["files"]:
        return False
    for entry in man["files"]:
        try:
            name, size, digest = entry
        except (TypeError, ValueError):
            return False
        if fs.digest(slot_dir(slot) + "/" + name) != (size, digest):
            return False
    return True


def load(fs):
    """The pointer, or None (no update was ever installed: the base runs)."""
    raw = fs.read(POINTER)
    if raw is None:
        return None
    try:
        st = json.loads(raw)
    except ValueError:
        return {"v": 1, "active": BASE, "prev": BASE, "back": ["?", "pointer"]}
    if type(st) is not dict or st.get("active") not in SLOTS + (BASE,):
        return {"v": 1, "active": BASE, "prev": BASE, "back": ["?", "pointer"]}
    return st


def save(fs, st):
    """Replace the pointer atomically (write a temporary file, rename it over the old one)."""
    fs.mkdir("fw")
    fs.write(_TMP, json.dumps(st).encode())
    fs.rename(_TMP, POINTER)


def _back(fs, st, why):
    """Go back to the previous firmware (or the base, when that one does not verify)."""
    prev = st.get("prev", BASE)
    if prev not in SLOTS or not slot_ok(fs, prev):
        prev = BASE
    return {"v": 1, "active": prev, "prev": BASE, "back": [st.get("active"), why]}


def choose(fs):
    """The firmware to run now: "base", "a" or "b". Takes a try from a firmware on trial, and
    goes back to the previous one when it has none left or its files do not verify."""
    st = load(fs)
    if st is None:
        return BASE
    act = st["active"]
    if act != BASE and not slot_ok(fs, act):
        st = _back(fs, st, "damaged")
        save(fs, st)
        return st["active"]
    tries = st.get("tries")
    if tries is not None:
        if type(tries) is not int or tries <= 0:
            st = _back(fs, st, "trial")
            save(fs, st)
            return st["active"]
        st["tries"] = tries - 1
        save(fs, st)
    return act


def activate(fs, slot):
    """Put the slot's files first on the import path (the base needs nothing)."""
    if slot != BASE:
        path = fs.path(slot_dir(slot))
        if path not in sys.path:
            sys.path.insert(0, path)


def crashed(fs, slot, exc):
    """Keep one line about an uncaught exception for the next boot's event log."""
    try:
        text = "%s: %s: %s" % (slot, type(exc).__name__, exc)
        fs.mkdir("fw")
        fs.write(CRASH, text[:_CRASH_MAX].encode())
    except Exception:
        pass  # the reset matters more than the note


def boot_board(run, reset):
    """A board's whole boot after main.py: choose, run; never the REPL in production.

    run() imports the firmware once the chosen one is on the import path, builds the board's
    Hal and runs it (main.py's: the device's entry, the one place that picks a board); reset()
    resets the board. A development build (firmware/buildinfo.py KIND, the one module of the
    firmware package read here) returns after `maintenance` or an uncaught exception, so
    MicroPython's REPL takes the line; a production build logs the exception and resets the
    board, and the loader's tries bring back the old firmware if the new one keeps failing."""
    fs = Fs("")
    slot = BASE
    dev = False
    try:
        slot = choose(fs)
        activate(fs, slot)
        from firmware import buildinfo
        dev = buildinfo.KIND == "development"
        if run() == "maintenance" and dev:
            return
    except BaseException as e:  # noqa: B036  anything at all: production never stops here
        crashed(fs, slot, e)
        if dev:
            raise
    reset()
