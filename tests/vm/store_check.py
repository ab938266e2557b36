# Runs the record store and the event log on the MicroPython VM (see test_store_vm.py); also runs
# on CPython, and both must print exactly the same lines.
#
#   store_check.py check       power cuts at every byte of a few saves, event-log tamper checks;
#                              prints "OK ..." / "FAIL ..." lines, then DONE or FAILED
#   store_check.py write DIR   writes a state store and an event log under DIR with FileDev
#   store_check.py read DIR    loads them back and prints what it found
import sys
from array import array

from binascii import hexlify

from firmware.eventlog import EventLog
from firmware.store import FileDev, RecordStore, encode, pack_ints, unpack_ints

MODES = ("truncate", "overlay", "erased", "garbage")


class PowerLoss(Exception):
    pass


class Rand:
    """A tiny LCG: the same garbage on every runtime."""

    def __init__(self, seed):
        self.x = seed

    def byte(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 16) & 0xFF


class CutDev:
    """A flash whose next write can be cut after `k` bytes, leaving `mode` debris behind."""

    def __init__(self):
        self.files = {}
        self.cut = None

    def read(self, path):
        return self.files.get(path)

    def write(self, path, data):
        data = bytes(data)
        if self.cut is None:
            self.files[path] = data
            return
        k, mode, rnd = self.cut
        self.cut = None
        if k >= len(data):
            self.files[path] = data
        else:
            head = data[:k]
            if mode == "truncate":
                torn = head
            elif mode == "overlay":
                old = self.files.get(path) or b""
                torn = head + old[k:]
            elif mode == "erased":
                torn = head + b"\xff" * (len(data) - k)
            else:
                n = rnd.byte() % (len(data) - k + 8)
                torn = head + bytes([rnd.byte() for _ in range(n)])
            self.files[path] = torn
        raise PowerLoss()


def history():
    """A store with three saves done (so both slots hold records)."""
    dev = CutDev()
    s = RecordStore(dev, "st")
    for p in (b"first", b"second record", b"third"):
        s.save(p)
    return dev


def check_cuts(new_payloads):
    fails = 0
    count = 0
    rnd = Rand(7)
    for new in new_payloads:
        size = len(encode(0, new))
        for mode in MODES:
            for k in range(size + 1):
                dev = history()
                dev.cut = (k, mode, rnd)
                try:
                    RecordStore(dev, "st").save(new)
                    print("FAIL no power loss", mode, k)
                    fails += 1
                except PowerLoss:
                    pass
                s = RecordStore(dev, "st")
                got = s.load()
                want = new if k >= size else b"third"
                if got != want:
                    print("FAIL cut", mode, k, got)
                    fails += 1
                s.save(b"after")
                if RecordStore(dev, "st").load() != b"after":
                    print("FAIL save after cut", mode, k)
                    fails += 1
                count += 1
    return count, fails


def check_log():
    fails = 0
    log = EventLog(8)
    for i in range(30):
        log.add(i % 7, 1000 * i, i * i, -i)
        if not log.verify():
            print("FAIL log verify after add", i)
            fails += 1
    ents = log.entries()
    if len(ents) != 8 or ents[0] != (22000, 1, 484, -22) or ents[-1] != (29000, 1, 841, -29):
        print("FAIL log entries", ents)
        fails += 1
    data = log.to_bytes()
    again = EventLog.from_bytes(data)
    if not again.verify() or again.entries() != ents or again.to_bytes() != data:
        print("FAIL log round trip")
        fails += 1
    # Every field of every entry, changed in the saved bytes, must break the chain.
    caught = 0
    for off in range(24, len(data), 4):
        bad = bytearray(data)
        bad[off] ^= 1
        if EventLog.from_bytes(bytes(bad)).verify():
            print("FAIL log tamper undetected at", off)
            fails += 1
        else:
            caught += 1
    # Swap two neighbours, in memory.
    swapped = EventLog.from_bytes(data)
    for arr in (swapped.t, swapped.code, swapped.a, swapped.b, swapped.chain):
        arr[2], arr[3] = arr[3], arr[2]
    if swapped.verify():
        print("FAIL log swap undetected")
        fails += 1
    print("OK log caught", caught)
    print("LOG", hexlify(data).decode())
    return fails


def state_values():
    return array("i", [0, 1, -1, 123456789, -2147483648, 2147483647, 1 << 29, 42])


def write(root):
    dev = FileDev(root)
    s = RecordStore(dev, "state")
    vals = state_values()
    ok = True
    for i in range(5):
        vals[0] = i
        ok = s.save(pack_ints(vals)) and ok    # read back piece by piece (FileDev.same)
    # The piece-by-piece read-back on this VM: the record matches, a changed byte does not.
    rec = dev.read("state" + (".a", ".b")[s.slot])
    bad = bytearray(rec)
    bad[len(bad) - 1] ^= 1
    ok = ok and dev.same("state" + (".a", ".b")[s.slot], rec) and not dev.same(
        "state" + (".a", ".b")[s.slot], bytes(bad))
    if not ok:
        print("SAVE FAILED")
        return
    log = EventLog(6)
    for i in range(10):
        log.add(i, 500 * i, i, 2 * i)
    log.save(RecordStore(dev, "log"))
    print("DONE")


def read(root):
    dev = FileDev(root)
    s = RecordStore(dev, "state")
    data = s.load()
    if data is None:
        print("STATE none", s.corrupt)
    else:
        print("STATE", s.seq, list(unpack_ints(data)))
    log = EventLog.load(RecordStore(dev, "log"), 6)
    if log is None:
        print("LOG none")
    else:
        print("LOG", log.verify(), log.entries())
    print("DONE")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    if cmd == "write":
        write(sys.argv[2])
        return
    if cmd == "read":
        read(sys.argv[2])
        return
    count, fails = check_cuts((b"", b"new", b"a somewhat longer new payload, 40 bytes!"))
    print("OK cuts", count)
    fails += check_log()
    print("REC", hexlify(encode(3, pack_ints(state_values()))).decode())
    print("DONE" if fails == 0 else "FAILED")


main()
