# The power-on self-test: once at every boot, before the first stroke (docs/alarms.md, "The
# self-test"). The shell (firmware/app.py) imports this module for it and lets it go after:
# its code is needed once a boot, and the Pico's heap is small. What it finds stays in the
# self-test's room (firmware/selftest.py), which raises the alarms and keeps the periodic
# checks going from there.
#
#   code       the running firmware's files against its install's signed manifest (the
#              signature under the update key, then each file's size and SHA-256)
#   memory     a whole march over the RAM region the board keeps for it (firmware/march.py)
#   driver     the TMC2209 answers with its version, took its configuration (every setup
#              write counted, GCONF read back), and DRV_STATUS shows no shutdown or short
#   pressure   the outlet pressure sensor reads inside P_RAW_MIN..P_RAW_MAX
#   battery    the battery reads inside B_MV_MIN..B_MV_MAX
#   buzzer     its PWM takes a frequency and reads it back
#   watchdog   once per install (named by its manifest): everything saved, the watchdog started
#              with a short timeout and never fed; it must reset the chip, which the next boot
#              sees (reset_cause() 2) and records. If the chip did not reset, the part fails.
import json
from hashlib import sha256

from firmware import auth, loader, updatekey
from firmware.codecheck import DIGEST, PASSED, CodeCheck
from firmware.selftest import (FAIL, P_BATTERY, P_BUZZER, P_CODE, P_DRIVER, P_MEMORY,
                               P_PRESSURE, P_WATCHDOG, PASS, SKIP, TMC2209_VERSION, WDT_TEST_MS)
from firmware.codes import EV_SELF_TEST, EV_SELF_TEST_FAIL, EV_WATCHDOG_PROVED
from firmware.ticks import diff

_SHUTS = 0x3E       # DRV_STATUS: ot and the shorts (firmware/selftest.py)


def load(fs, slot, modulus, board):
    """(CodeCheck or None, what was found: 0 signed, 4 unsigned (the pump has no update key
    yet), or why not: 1 no manifest, 2 a damaged one, 3 its signature is wrong)."""
    raw = fs.read(loader.slot_dir(slot) + "/manifest.json")
    if raw is None:
        return None, 1
    try:
        rec = json.loads(raw)
        text = rec["manifest"].encode()
        sig = auth.unhex(rec["sig"])
        man = json.loads(text)
        files = man["files"]
        ok = man.get("board") == board and type(files) is list and len(files) > 0
    except Exception:   # noqa: BLE001  anything that does not parse is a damaged manifest
        return None, 2
    if not ok or sig is None:
        return None, 2
    found = 4               # the pump has no update key yet: only the hashes can be checked
    if modulus is not None:
        if not updatekey.rsa_verify(modulus, text, sig):
            return None, 3
        found = 0
    # What the periodic check keeps of it, compact (the Pico's heap is small).
    digests = bytearray(DIGEST * len(files))
    for i in range(len(files)):
        d = auth.unhex(files[i][2][:2 * DIGEST])
        if d is None:
            return None, 2
        digests[i * DIGEST:(i + 1) * DIGEST] = d
    return CodeCheck(fs, slot, loader.Fs(code_root()), "\n".join([e[0] for e in files]),
                     [e[1] for e in files], digests,
                     loader.hexstr(sha256(raw).digest()[:8])), found


def code_root():
    """The directory the firmware package was imported from ("" for the filesystem root)."""
    import firmware

    f = firmware.__file__
    d = f[:f.rfind("/")] if "/" in f else ""
    return d[:d.rfind("/")] if "/" in d else ""


def run(st, now, hal, fs, slot, modulus, store, before_reset):
    """The self-test into st (firmware/selftest.py's SelfTest); returns the parts that failed.
    fs: the filesystem of the installs (None: no files here, code and watchdog skipped); store:
    the record of the watchdog's proof; before_reset(): saves everything before its test."""
    t0 = hal.ticks_ms()
    out = st.outcome
    for p in range(len(out)):
        out[p] = 0
    code = None
    found = 0
    if fs is not None:
        code, found = load(fs, slot, modulus, hal.NAME)
    if code is None:
        out[P_WATCHDOG] = SKIP          # no install to prove it for
    else:
        _watchdog(st, now, hal, store, code.identity.encode(), before_reset)
    _code(st, code, found)
    mem = st.mem
    mem.cells = hal.test_ram()
    mem.restart()
    ok = mem.step(1 << 20) == PASSED
    _part(st, P_MEMORY, ok, -1 if ok else mem.bad_cell)
    v = hal.driver_version()
    s = hal.driver_status() if v == TMC2209_VERSION else -1
    _part(st, P_DRIVER, v == TMC2209_VERSION and s >= 0 and not s & _SHUTS,
          s if v == TMC2209_VERSION else v if v <= 0 else 0x1000 + v)
    raw = hal.read_pressure()
    _part(st, P_PRESSURE, hal.P_RAW_MIN <= raw <= hal.P_RAW_MAX, raw)
    mv = hal.read_battery() * hal.B_MV_NUM // hal.B_MV_DEN
    _part(st, P_BATTERY, hal.B_MV_MIN <= mv <= hal.B_MV_MAX, mv)
    ok = hal.buzzer_check()
    _part(st, P_BUZZER, ok, 1 if ok else 0)
    st.post_ms = diff(hal.ticks_ms(), t0)
    st.post_ts = st.pump.ts()
    passed = 0
    failed = 0
    for p in range(len(out)):
        if out[p] == PASS:
            passed |= 1 << p
        elif out[p] == FAIL:
            failed |= 1 << p
            st.log.add(EV_SELF_TEST_FAIL, now, p, st.detail[p])
    st.log.add(EV_SELF_TEST, now, passed, failed)
    st.failed = failed
    st.alarms(now)
    return failed


def _part(st, p, ok, detail):
    st.outcome[p] = PASS if ok else FAIL
    st.detail[p] = detail


def _code(st, code, found):
    st.code = code
    if code is None:
        if found:
            _part(st, P_CODE, False, found)
        else:
            st.outcome[P_CODE] = SKIP       # no files here (a board in memory, the simulator)
        return
    ok = code.full() == PASSED
    _part(st, P_CODE, ok, found if ok else 100 + code.bad)
    # the periodic check hashes a pass a day, a slice each check; a file's opening takes a
    # check of its own and its last slice may be short: two checks a file go to those
    calls = 86400000 // st.hal.CHECK_MS - 2 * code.count
    per_check = code.total // (calls if calls > 0 else 1) + 1
    st.code_slice = (per_check + 255) // 256 * 256


def _watchdog(st, now, hal, store, ident, before_reset):
    """The record says T (test under way), P (proved) or F (failed), then the install."""
    mark = store.load()
    if hal.reset_cause() == 2 and mark == b"T" + ident:
        store.save(b"P" + ident)
        st.log.add(EV_WATCHDOG_PROVED, now, WDT_TEST_MS, 0)
        _part(st, P_WATCHDOG, True, 1)
    elif mark == b"P" + ident:
        _part(st, P_WATCHDOG, True, 2)
    elif mark is not None and mark[:1] in (b"T", b"F") and mark[1:] == ident:
        # The test ran at a boot before, and this boot is not the reset it asked for.
        store.save(b"F" + ident)
        _part(st, P_WATCHDOG, False, 0)
    else:
        store.save(b"T" + ident)
        before_reset()
        hal.watchdog_test(WDT_TEST_MS)
        store.save(b"F" + ident)
        _part(st, P_WATCHDOG, False, 0)
