# Signed firmware updates over the protocol (docs/protocol.md "Updates", docs/security.md).
#
# The host streams one blob through `update_chunk` requests in a clinician session:
#
#   manifest (JSON text) | signature (RSA, PKCS#1 v1.5, SHA-256) | each file in manifest order
#
# A file the running firmware already has need not cross the line: `update_begin` with
# `files: true` lists the running firmware's files (name, size, SHA-256), and an `update_chunk`
# with `copy: n` instead of `data` takes the blob's next n bytes from the running firmware's file
# of the same name, at the same offset. Copied bytes go through the same path as sent ones (the
# file's SHA-256 against the signed manifest, the read-back at commit): a copy is only a shorter
# way to send bytes, never a way round the signature.
#
# The manifest says which board and version the files are for and each file's size and
# SHA-256. It must verify under the pump's update key, an RSA public key written once at the
# factory (`provision`), which the clinician key cannot stand in for. Nothing is written to
# flash before the signature verifies; then the files go to the slot that is not running
# (firmware/loader.py), each checked as it completes, and `update_commit` checks them all
# again from flash before it switches the pointer. The pump resets into the new firmware on
# trial; it confirms itself once it has run (App) or when the host confirms.
#
# The update key, its signature check, where the filesystem is, and the confirmation of a new
# firmware live in firmware/updatekey.py, which the pump needs at every boot (the self-test
# checks the running firmware's manifest); this module, the transfer, is loaded only when an
# update begins: the Pico's heap is small.
import binascii
import json
from hashlib import sha256

from firmware import auth, loader
from firmware.compat import const
from firmware.updatekey import (KEY_MAX, KEY_MIN, UpdateKey, confirm, fs_for,  # noqa: F401
                                 rsa_verify)
from firmware.version import VERSION

MANIFEST_MAX = const(8192)
FILES_MAX = const(64)
FILE_MAX = const(65536)
TOTAL_MAX = const(393216)       # three copies (base, a, b) must fit the Pico's 1.4 MB littlefs
CHUNK_MAX = const(768)
RUNNING_HEX = const(16)          # hex digits of each running file's SHA-256 update_begin lists
COPY_MAX = const(4096)          # bytes one `update_chunk` may copy from the running firmware
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


class UpdateError(Exception):
    """An update refused: nothing runs from it (the message says why)."""


def version_tuple(text):
    out = []
    for part in str(text).split("."):
        if not part.isdigit():
            return None
        out.append(int(part))
    return tuple(out)


def _check_name(name):
    parts = name.split("/")
    if len(parts) != 2 or parts[0] not in ("firmware", "boards"):
        return False
    base = parts[1]
    dot = base.rfind(".")
    if dot <= 0 or base[dot:] not in (".mpy", ".py"):
        return False
    for c in base[:dot]:
        if c not in _NAME_CHARS:
            return False
    return True


def check_manifest(man, board):
    """Raise UpdateError unless the manifest fits this pump."""
    if type(man) is not dict or man.get("v") != 1:
        raise UpdateError("the manifest is not version 1")
    if man.get("board") != board:
        raise UpdateError("the bundle is for board %s, this pump is %s"
                          % (json.dumps(man.get("board")), board))
    new = version_tuple(man.get("version"))
    running = version_tuple(VERSION)
    if new is None or running is None:
        raise UpdateError("the manifest's version is not numbers and dots")
    if new < running:
        raise UpdateError("version %s is older than the running %s" % (man["version"], VERSION))
    files = man.get("files")
    if type(files) is not list or not files or len(files) > FILES_MAX:
        raise UpdateError("the manifest must list 1 to %d files" % FILES_MAX)
    total = 0
    names = []
    for e in files:
        if type(e) is not list or len(e) != 3:
            raise UpdateError("each file is [path, size, sha256]")
        name, size, digest = e
        if type(name) is not str or not _check_name(name) or name in names:
            raise UpdateError("bad or repeated file name %s" % json.dumps(name))
        if type(size) is not int or size < 1 or size > FILE_MAX:
            raise UpdateError("%s: size must be 1 to %d bytes" % (name, FILE_MAX))
        if type(digest) is not str or len(digest) != 64 or auth.unhex(digest) is None:
            raise UpdateError("%s: sha256 must be 64 lower-case hex digits" % name)
        names.append(name)
        total += size
    if total > TOTAL_MAX:
        raise UpdateError("the bundle is %d bytes, at most %d" % (total, TOTAL_MAX))
    for need in ("firmware/__init__", "firmware/app", "boards/__init__"):
        if need + ".mpy" not in names and need + ".py" not in names:
            raise UpdateError("the bundle has no %s" % need)


class Updater:
    """One transfer at a time, in RAM: a restart abandons it (the pointer never named it)."""

    def __init__(self, fs, key, board):
        self.fs = fs
        self.key = key
        self.board = board
        self.reset()

    def reset(self):
        self.active = False
        self.have = 0
        self.mlen = 0
        self.slen = 0
        self.head = b""
        self.manifest = None   # the parsed manifest once its signature verified
        self.text = None       # its exact bytes
        self.sig = None
        self.target = None
        self.file = 0          # index of the file being written
        self.file_have = 0
        self.hash = None
        self.src = None        # where the running firmware's files are (copies come from there)

    def running(self):
        """(slot running now, whether it is on trial)."""
        st = loader.load(self.fs)
        if st is None:
            return loader.BASE, False
        return st["active"], st.get("tries") is not None

    def begin(self, mlen, slen):
        if self.fs is None:
            raise UpdateError("this board's storage cannot take updates")
        if self.key.modulus is None:
            raise UpdateError("the pump has no update key: it comes with the keys at "
                              "provisioning (a pump provisioned before signed updates gets one "
                              "when provisioned again after its button)"
                              if not self.key.damaged else "the update key record is damaged")
        if slen != len(self.key.modulus):
            raise UpdateError("sig_len must be %d, the update key's size" % len(self.key.modulus))
        if mlen < 2 or mlen > MANIFEST_MAX:
            raise UpdateError("manifest_len must be 2 to %d" % MANIFEST_MAX)
        slot, trial = self.running()
        if trial:
            raise UpdateError("the running firmware is on trial: confirm it first "
                              "(update_confirm)")
        self.reset()
        self.active = True
        self.mlen = mlen
        self.slen = slen
        self.target = "b" if slot == "a" else "a"
        self.src = "" if slot == loader.BASE else loader.slot_dir(slot) + "/"
        return self.target

    def running_files(self):
        """[[name, size, SHA-256 hex]] of the running firmware's files, read in small pieces
        (what the host may ask the pump to copy instead of sending). After begin()."""
        out = []
        if self.src is None:
            return out
        for top in ("firmware", "boards"):
            for n, is_dir in self.fs.entries(self.src + top):
                name = top + "/" + n
                if is_dir or not _check_name(name):
                    continue
                d = self.fs.digest(self.src + name)
                if d is not None:
                    # The first RUNNING_HEX hex digits of the SHA-256: the host only chooses
                    # what to copy by them (every copied byte is hashed against the signed
                    # manifest's whole digest), and the reply of some forty files stays near
                    # 2 KB: its full digests needed a 4 KB block the Pico's heap did not have.
                    out.append([name, d[0], d[1][:RUNNING_HEX]])
        return out

    def total(self):
        n = self.mlen + self.slen
        if self.manifest is not None:
            for e in self.manifest["files"]:
                n += e[1]
        return n

    def chunk(self, off, data):
        """Take the next piece of the blob; returns how many bytes the pump holds."""
        if not self.active:
            raise UpdateError("no update in progress: send update_begin")
        if off != self.have:
            raise UpdateError("expected offset %d" % self.have)
        head_len = self.mlen + self.slen
        while data:
            if self.have < head_len:
                n = min(len(data), head_len - self.have)
                self.head += data[:n]
                data = data[n:]
                self.have += n
                if self.have == head_len:
                    self._verify_head()
                continue
            if self.file >= len(self.manifest["files"]):
                self.reset()
                raise UpdateError("more data than the manifest lists: update abandoned")
            data = self._write(data)
        return self.have

    def copy(self, off, n):
        """Take the blob's next n bytes from the running firmware's file of the same name (at
        the same offset in that file); returns how many bytes the pump holds."""
        if not self.active:
            raise UpdateError("no update in progress: send update_begin")
        if off != self.have:
            raise UpdateError("expected offset %d" % self.have)
        if self.manifest is None:
            raise UpdateError("copy only after the manifest and its signature")
        if self.file >= len(self.manifest["files"]):
            raise UpdateError("nothing left to copy: the manifest's files are all in")
        name, size, _ = self.manifest["files"][self.file]
        if n > size - self.file_have:
            raise UpdateError("%s has %d bytes left, not %d" % (name, size - self.file_have, n))
        piece = None
        try:
            f = open(self.fs.path(self.src + name), "rb")
            try:
                f.seek(self.file_have)
                piece = f.read(n)
            finally:
                f.close()
        except OSError:
            pass
        if piece is None or len(piece) != n:
            self.reset()
            raise UpdateError("the running firmware has no %d bytes of %s at %d to copy: "
                              "update abandoned" % (n, name, off))
        self._write(piece)
        return self.have

    def _verify_head(self):
        text = self.head[:self.mlen]
        sig = self.head[self.mlen:]
        self.head = b""
        if not rsa_verify(self.key.modulus, text, sig):
            self.reset()
            raise UpdateError("the manifest's signature does not verify under the update key")
        try:
            man = json.loads(text)
        except ValueError:
            man = None
        try:
            check_manifest(man, self.board)
        except UpdateError:
            self.reset()
            raise
        self.manifest = man
        self.text = text
        self.sig = sig
        fs = self.fs
        d = loader.slot_dir(self.target)
        fs.mkdir("fw")
        fs.rmtree(d)
        fs.mkdir(d)
        fs.mkdir(d + "/firmware")
        fs.mkdir(d + "/boards")
        self._open()

    def _open(self):
        self.file_have = 0
        self.hash = sha256()

    def _write(self, data):
        name, size, digest = self.manifest["files"][self.file]
        n = min(len(data), size - self.file_have)
        piece = data[:n]
        self.fs.append(loader.slot_dir(self.target) + "/" + name, piece)
        self.hash.update(piece)
        self.file_have += n
        self.have += n
        if self.file_have == size:
            if loader.hexstr(self.hash.digest()) != digest:
                self.reset()
                raise UpdateError("%s does not match its SHA-256 in the manifest: update "
                                  "abandoned" % name)
            self.file += 1
            self._open()
        return data[n:]

    def commit(self):
        """Check every file again from flash, keep the manifest with the slot and switch the
        pointer to it on trial. Returns (slot, version)."""
        if not self.active or self.manifest is None:
            raise UpdateError("no update in progress: send update_begin")
        if self.have != self.total():
            raise UpdateError("the bundle is incomplete: %d of %d bytes"
                              % (self.have, self.total()))
        fs = self.fs
        d = loader.slot_dir(self.target)
        rec = {"manifest": self.text.decode(), "sig": auth.tohex(self.sig)}
        fs.write(d + "/manifest.json", json.dumps(rec).encode())
        if not loader.slot_ok(fs, self.target):
            self.reset()
            raise UpdateError("the files read back from flash do not match the manifest: "
                              "update abandoned, the running firmware stays")
        slot, _ = self.running()
        loader.save(fs, {"v": 1, "active": self.target, "prev": slot, "tries": loader.TRIES})
        target, version = self.target, self.manifest["version"]
        self.reset()
        return target, version


def b64(text):
    """bytes from base64 text, or None."""
    try:
        return binascii.a2b_base64(text)
    except (ValueError, TypeError):
        return None
