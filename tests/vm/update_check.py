# Runs inside the MicroPython VM and on CPython alike (see test_update_vm.py): a signed update
# written to a real directory through the loader's filesystem calls, with the power cut before
# or in the middle of every write, rename and removal of the transfer, the switch, the boots
# that follow and the confirmation. After each cut the board boots again (the loader alone,
# then the firmware confirming or crashing) and the invariants are checked:
#
# - the loader always picks a firmware whose every file matches its manifest (or the base);
# - it is the old firmware until the pointer names the new one, and the new one after that;
# - a new firmware that never confirms is left after TRIES boots, and the old one runs again;
# - a confirmed one stays.
#
#   update_check.py WORKDIR      (WORKDIR holds manifest.bin, sig.bin, modulus.bin, files/)
# Prints "OK cuts <n> <tag>" per scenario and "DONE", or "FAIL ..." lines.
import json
import os
import sys

from firmware import loader, update


class PowerCut(Exception):
    pass


class CutFs(loader.Fs):
    """A filesystem that loses power at its n-th change: a write stops half way, a rename
    or a removal does not happen."""

    def __init__(self, root, cut_at):
        loader.Fs.__init__(self, root)
        self.cut_at = cut_at
        self.ops = 0

    def _tick(self):
        self.ops += 1
        return self.ops == self.cut_at

    def write(self, name, data, mode="wb"):
        if self._tick():
            loader.Fs.write(self, name, data[:len(data) // 2], mode)
            raise PowerCut()
        loader.Fs.write(self, name, data, mode)

    def rename(self, old, new):
        if self._tick():
            raise PowerCut()
        loader.Fs.rename(self, old, new)

    def remove(self, name):
        if self._tick():
            raise PowerCut()
        loader.Fs.remove(self, name)

    def mkdir(self, name):
        if self._tick():
            raise PowerCut()
        loader.Fs.mkdir(self, name)


class Key:
    def __init__(self, modulus):
        self.modulus = modulus
        self.damaged = False


def read(path):
    f = open(path, "rb")
    try:
        return f.read()
    finally:
        f.close()


def wipe(fs, name):
    fs.rmtree(name)


def fresh(root, with_slot):
    """A board whose base firmware runs, or (with_slot) whose confirmed update is in slot a."""
    fs = loader.Fs(root)
    wipe(fs, "fw")
    if with_slot:
        fs.mkdir("fw")
        fs.mkdir("fw/a")
        fs.mkdir("fw/a/firmware")
        fs.write("fw/a/firmware/app.py", b"old = 1\n")
        man = {"v": 1, "files": [["firmware/app.py", 8, digest(b"old = 1\n")]]}
        fs.write("fw/a/manifest.json", json.dumps({"manifest": json.dumps(man),
                                                   "sig": ""}).encode())
        loader.save(fs, {"v": 1, "active": "a", "prev": "base"})


def digest(data):
    from hashlib import sha256
    return loader.hexstr(sha256(data).digest())


def transfer(fs, work):
    """The whole update as the pump's protocol handler does it; returns the new slot."""
    man = read(work + "/manifest.bin")
    sig = read(work + "/sig.bin")
    files = json.loads(man)["files"]
    blob = man + sig
    for name, _, _ in files:
        blob += read(work + "/files/" + name)
    up = update.Updater(fs, Key(read(work + "/modulus.bin")), "virtual-pico")
    up.begin(len(man), len(sig))
    off = 0
    while off < len(blob):
        off = up.chunk(off, blob[off:off + 300])
    return up.commit()[0]


def check_boot(fs, old, new, expect, fails):
    """One boot: the loader's choice must verify and be what the pointer allows."""
    slot = loader.choose(fs)
    if slot not in (old, new):
        fails.append("booted %s, neither old %s nor new %s" % (slot, old, new))
    if slot != loader.BASE and not loader.slot_ok(fs, slot):
        fails.append("booted %s whose files do not verify" % slot)
    if expect is not None and slot != expect:
        fails.append("booted %s, expected %s" % (slot, expect))
    return slot


def scenario(root, work, with_slot, good, fails):
    """Cut the power at every change, from the transfer to the end of the trial; count cuts."""
    old = "a" if with_slot else loader.BASE
    cuts = 0
    k = 1
    while True:
        fresh(root, with_slot)
        fs = CutFs(root, k)
        new = None
        finished = False
        try:
            new = transfer(fs, work)
            # boots of the new firmware: it confirms (good) or crashes before it can (bad)
            for _ in range(loader.TRIES + 1):
                slot = loader.choose(fs)
                if good and slot == new:
                    update.confirm(fs)
            finished = True
        except PowerCut:
            cuts += 1
        except update.UpdateError as e:
            fails.append("cut %d: the transfer refused: %s" % (k, e))
            return cuts
        # Power is back: boot until the board settles, the firmware behaving as it does.
        plain = loader.Fs(root)
        st = loader.load(plain)
        switched = st is not None and st["active"] != old
        target = "b" if old == "a" else "a"
        for _ in range(loader.TRIES + 2):
            slot = check_boot(plain, old, target, None, fails)
            if good and slot == target:
                update.confirm(plain)
        final = check_boot(plain, old, target, None, fails)
        if good and switched and final != target:
            fails.append("cut %d: a good update the pointer named was lost" % k)
        if not good and final != old:
            fails.append("cut %d: a firmware that never confirmed is still running" % k)
        if not switched and final != old and not (good and final == target):
            fails.append("cut %d: switched without the pointer" % k)
        if finished:
            if good and final != target:
                fails.append("an uncut good update did not end on the new firmware")
            return cuts
        k += 1


def copies(root, work, fails):
    """A transfer from slot a where the files the running firmware already has are copied on
    the pump (`copy` chunks) and the rest sent; a copy is checked like sent bytes. Returns how
    many files were copied."""
    man = read(work + "/manifest.bin")
    sig = read(work + "/sig.bin")
    files = json.loads(man)["files"]
    fs = loader.Fs(root)
    wipe(fs, "fw")
    for d in ("fw", "fw/a", "fw/a/firmware", "fw/a/boards"):
        fs.mkdir(d)
    for name, _, _ in files:
        data = read(work + "/files/" + name)
        if name == "firmware/app.py":
            data = b"old = 1\n"          # changed in the update: must be sent
        if name != "firmware/__init__.py":  # missing on the pump: must be sent
            fs.write("fw/a/" + name, data)
    fs.write("fw/a/manifest.json", b"{}")
    loader.save(fs, {"v": 1, "active": "a", "prev": "base"})
    key = Key(read(work + "/modulus.bin"))

    def begun():
        up = update.Updater(fs, key, "virtual-pico")
        up.begin(len(man), len(sig))
        return up

    # Before the manifest is in there is nothing to copy.
    up = begun()
    try:
        up.copy(0, 10)
        fails.append("a copy before the manifest was taken")
    except update.UpdateError:
        pass
    up = begun()
    listed = {}
    for name, size, hexd in up.running_files():
        listed[name] = (size, hexd)
    if listed.get("firmware/app.py") != (8, digest(b"old = 1\n")[:update.RUNNING_HEX]) or \
            "firmware/__init__.py" in \
            listed or len(listed) != len(files) - 1:
        fails.append("running_files listed %s" % sorted(listed))
    off = up.chunk(0, man + sig)
    copied = 0
    for name, size, hexd in files:
        if listed.get(name) == (size, hexd[:update.RUNNING_HEX]):
            if size > 1:
                try:
                    up.copy(off, size + 1)
                    fails.append("a copy past the end of %s was taken" % name)
                    return copied
                except update.UpdateError:
                    pass
            done = 0
            while done < size:
                n = min(100, size - done)
                off = up.copy(off, n)
                done += n
            copied += 1
        else:
            data = read(work + "/files/" + name)
            off = up.chunk(off, data)
    slot, _ = up.commit()
    if slot != "b" or not loader.slot_ok(fs, "b"):
        fails.append("the update with copies did not verify in slot b")
    for name, _, _ in files:
        if read(root + "/fw/b/" + name) != read(work + "/files/" + name):
            fails.append("%s in slot b is not the bundle's" % name)
    # Back on slot a: a copy of a file that differs (same size, one byte changed) fails its
    # SHA-256 and abandons the update; so does one the running firmware holds too little of.
    loader.save(fs, {"v": 1, "active": "a", "prev": "base"})
    new_app = read(work + "/files/firmware/app.py")
    for running_app, why in ((new_app[:-1] + b"#", "SHA-256"), (b"old = 1\n", "no ")):
        fs.write("fw/a/firmware/app.py", running_app)
        up = begun()
        off = up.chunk(0, man + sig)
        try:
            for name, size, _ in files:
                if name == "firmware/app.py":
                    off = up.copy(off, 8)
                    up.copy(off, size - 8)
                    fails.append("a copy of a changed file was taken")
                    break
                off = up.chunk(off, read(work + "/files/" + name))
        except update.UpdateError as e:
            if "firmware/app.py" not in str(e) or why not in str(e) or up.active:
                fails.append("a bad copy: %s (active %s)" % (e, up.active))
    return copied


def main():
    work = sys.argv[1]
    root = work + "/flash"
    try:
        os.mkdir(root)
    except OSError:
        pass
    fails = []
    for with_slot in (False, True):
        for good in (True, False):
            n = scenario(root, work, with_slot, good, fails)
            print("OK cuts %d %s %s" % (n, "from-slot" if with_slot else "from-base",
                                        "good" if good else "crashing"))
    print("OK copied %d" % copies(root, work, fails))
    for f in fails:
        print("FAIL " + f)
    print("FAILED" if fails else "DONE")


main()
