# What `info` shows of the self-test (firmware/selftest.py's room): when it ran, whether it
# passed, each part's outcome with what it found in words, and the periodic checks' state.
# Loaded for an `info` request and let go after: the Pico's heap is small.
from firmware.selftest import CRITICAL_PARTS, FAIL, PARTS

OUTCOMES = ("not_run", "pass", "fail", "skipped")
# the code part's detail: 0 signed, 4 unsigned (no update key yet), 1..3 the manifest's fault,
# 100 + k: file k of the manifest does not match
MANIFEST = ("signed", "none", "damaged", "signature wrong", "not signed: no update key yet")


def report(st):
    parts = {}
    for p in range(len(PARTS)):
        parts[PARTS[p]] = {"outcome": OUTCOMES[st.outcome[p]],
                           "critical": bool(CRITICAL_PARTS & (1 << p)),
                           "found": _found(st, p, st.detail[p])}
    return {"when_ts": st.post_ts, "ms": st.post_ms,
            "passed": None if st.post_ts < 0 else not st.failed, "parts": parts,
            "failing": [PARTS[p] for p in range(len(PARTS)) if st.failed & (1 << p)],
            "periodic": {"code_passes": st.passes[0], "memory_passes": st.passes[1],
                         "driver_status": st.drv, "die_c10": st.die_dc}}


def _found(st, p, d):
    """What the part found, in words (from the number the self-test kept)."""
    name = PARTS[p]
    if st.outcome[p] == 0:
        return ""
    if name == "code":
        if st.outcome[p] != FAIL and st.code is None:
            return "no files here"
        if d >= 100:
            return "%s does not match" % (st.code.name(d - 100) if st.code else "file %d" % (d - 100))
        return "manifest " + MANIFEST[d] + ("" if st.code is None else
                                            ", %d files" % st.code.count)
    if name == "memory":
        return "all cells" if d < 0 else "cell %d read back wrong" % d
    if name == "driver":
        if st.outcome[p] != FAIL:
            return "TMC2209 answered, configured, DRV_STATUS %03x" % d
        return ("no answer" if d < 0 else "configuration did not take" if d == 0 else
                "version %02x" % (d - 0x1000) if d > 0xFFF else "DRV_STATUS %03x" % d)
    if name == "pressure":
        return "raw %d" % d
    if name == "battery":
        return "%d mV" % d
    if name == "buzzer":
        return "PWM set up" if d else "the PWM did not take"
    return ("no install to prove it for" if st.outcome[p] == 3 else
            ("reset the chip" if d == 1 else "reset the chip after this install") if d else
            "did not reset the chip")
