# The therapy history (firmware/history.py) on the MicroPython VM and on CPython alike (see
# test_history_vm.py): both must print exactly the same lines. tests/firmware/test_history.py
# imports the same scenarios.
#
#   history_check.py    the stated rate for 400 days and beyond it, then a `program` cut by
#                       the power at every flash write; "OK ..."/"FAIL ..." lines, DONE or FAILED
import sys

from boards import virtual
from firmware import histpages
from firmware.app import App
from firmware.handlers import Refusal
from firmware.histpages import notes
from firmware.history import History
from firmware.rx import Rx
from firmware.store import MemDev
from tests.testboard import MemBoard

DAY_S = 86400
T0 = 91497600                 # a midnight on the pump clock (s since 2024-01-01)
# The rate docs/formats.md states: five entries a day (the day's patient boluses, a stop, a
# resume, a clinician bolus, and a program or a refill), a program every other day with 160
# bytes of notes (the drug, its concentration and unit, the library's version, a reason).
PER_DAY = 5
NOTES_BYTES = 160
P1 = {"conc_ng_ml": 25000000, "steps": [[0, 2000000], [420, 3000000]],
      "max_daily_ng": 6000000, "low_res_nl": 2000000, "pb": [200000, 600, 7200, 4],
      "meta": {"drug": "morphine", "units": "mg", "library": "0123456789ab"}}
P2 = {"conc_ng_ml": 25000000, "steps": [[0, 2500000], [420, 3000000]],
      "max_daily_ng": 6000000, "low_res_nl": 2000000, "pb": [200000, 600, 7200, 4],
      "meta": {"drug": "morphine", "units": "mg", "library": "0123456789ab",
               "titration_override": "ward round: pain not controlled"}}


class Log:
    def __init__(self):
        self.events = []

    def add(self, code, now, a, b):
        self.events.append((code, a, b))


class Clock:
    def __init__(self, ts):
        self.ts = ts

    def __call__(self, now):
        return self.ts


class Port:
    """What the shell is to the history (firmware/hal.pyi HistoryPort): its files, its clock."""

    def __init__(self, dev, clock):
        self.dev = dev
        self.clock_ts = clock


class Kept(History):
    """A history whose page logic stays loaded (the pump's drops it after each call, which
    cut_checks and the other tests exercise; a test of thousands of entries need not)."""

    def run(self, name, now, *args):
        return getattr(histpages, name)(self, now, *args)


def new_history(dev=None, ts=T0, kept=False):
    clock = Clock(ts)
    hist = (Kept if kept else History)(Port(dev if dev is not None else MemDev(), clock), Log())
    hist.run("load", 0)
    return hist, clock


def total(hist):
    return histpages.total(hist)


def rx_of(params):
    return Rx(params, virtual)


def program_params(day):
    """A program for `day`, its notes NOTES_BYTES long as the history keeps them."""
    meta = {"drug": "morphine", "units": "mg", "concentration": "25 mg/mL",
            "library": "0123456789ab", "titration_override": ""}
    base = len(notes(meta))
    meta["titration_override"] = ("day %d " % day + "x" * NOTES_BYTES)[:NOTES_BYTES - base]
    return {"conc_ng_ml": 25000000, "steps": [[0, 2000000 + day * 1000]],
            "max_daily_ng": 6000000, "low_res_nl": 2000000, "meta": meta}


def live(days, per_day=PER_DAY, dev=None, hist=None, clock=None):
    """`days` days at the stated rate (per_day > PER_DAY adds clinician boluses). Returns the
    history, its clock, and the entries' kinds in the order they were added."""
    if hist is None:
        hist, clock = new_history(dev, kept=True)
    kinds = []
    start = clock.ts // DAY_S - T0 // DAY_S
    for d in range(start, start + days):
        day0 = T0 + d * DAY_S
        clock.ts = day0 + 8 * 3600
        hist.roll(0)
        if d > 0:
            kinds.append("patient_boluses")   # yesterday's, closed by the roll
        hist.patient_bolus(0, 0, 8000, 25000000)
        hist.patient_bolus(0, 4, 0, 0)
        clock.ts = day0 + 10 * 3600
        hist.note("stop", 0, 1800)
        clock.ts += 1800
        hist.note("resume", 0, 1)
        kinds += ["stop", "resume"]
        clock.ts = day0 + 12 * 3600
        for _ in range(per_day - 4):
            hist.note("clinician_bolus", 0, 100000, 600000, 25000000)
            kinds.append("clinician_bolus")
        clock.ts = day0 + 14 * 3600
        if d % 2 == 0:
            p = program_params(d)
            hist.note("program", 0, p, rx_of(p))
            kinds.append("program")
        else:
            hist.note("refill", 0, 20000000, 0, 1500000, 1400000, 30 * DAY_S, 0, None)
            kinds.append("refill")
    return hist, clock, kinds


def read_all(hist, since=0, visit=None):
    """Every entry from `since` on, a reply's worth at a time as `history` reads them: the
    rows, or (visit given) visit(row) for each and the first row (a small heap keeps up)."""
    rows = []
    nxt = since
    while nxt < total(hist):
        got, nxt = histpages.read(hist, nxt, 20)
        for r in got:
            if visit is None:
                rows.append(r)
            else:
                visit(r)
                if not rows:
                    rows.append(r)
    return rows


class Tally:
    """What read_all visits: the count, whether seqs run on from `since` with the kinds
    expected, the programs' last reason."""

    def __init__(self, since, kinds=None):
        self.n = 0
        self.since = since
        self.kinds = kinds
        self.bad = 0
        self.programs = 0
        self.reason = ""

    def __call__(self, r):
        if r["seq"] != self.since + self.n or (self.kinds is not None
                                                and r["kind"] != self.kinds[self.n]):
            self.bad += 1
        if r["kind"] == "program":
            self.programs += 1
            self.reason = r["notes"]["titration_override"]
        self.n += 1


def rate_checks(out):
    hist, clock, kinds = live(400)
    t = Tally(0, kinds)
    first_ts = read_all(hist, 0, t)[0]["ts"]
    out.append("OK rate %d entries over %d days, oldest kept %d, pages %d" % (
        t.n, (clock.ts - first_ts) // DAY_S + 1, histpages.oldest(hist), hist.pages[0]))
    out.append(("OK" if not t.bad and histpages.oldest(hist) == 0 and t.n == len(kinds)
                and t.programs == 200 and t.reason[:8] == "day 398 " else "FAIL")
               + " all 400 days kept, in order")
    kinds = None
    # Beyond 400 days the oldest pages go, whole; what is kept reads back, and at the stated
    # rate it always reaches back at least 400 days.
    live(300, hist=hist, clock=clock)
    oldest = histpages.oldest(hist)
    t = Tally(oldest)
    span = (clock.ts - read_all(hist, oldest, t)[0]["ts"]) // DAY_S
    ok = oldest > 0 and not t.bad and t.n == total(hist) - oldest
    out.append(("OK" if ok and span >= 400 else "FAIL") +
               " after 700 days: oldest %d, %d kept, reaching back %d days" % (
                   oldest, t.n, span))
    # Above the rate it holds fewer days, and says from where.
    hist, clock, _ = live(400, per_day=12)
    oldest = histpages.oldest(hist)
    t = Tally(oldest)
    span = (clock.ts - read_all(hist, oldest, t)[0]["ts"]) // DAY_S
    out.append(("OK" if oldest > 0 and not t.bad and t.n == total(hist) - oldest else "FAIL")
               + " at 12 a day: %d kept, reaching back %d days" % (t.n, span))


class CountDev(MemDev):
    """A flash that counts the history's writes: the open page's (A/B) and the closed pages'."""

    def __init__(self):
        MemDev.__init__(self)
        self.open = 0
        self.closed = 0
        self.other = 0

    def write(self, path, data):
        if path.startswith("hist."):
            self.open += 1
        elif path.startswith("hist"):
            self.closed += 1
        else:
            self.other += 1
        MemDev.write(self, path, data)


def wear_checks(out):
    """The history's flash writes in a year at the stated rate (docs/alarms.md, the wear
    budget): one open-page write per entry, a closed page about every 100 entries, nothing
    else; and a quiet year (a program and a refill a month, nothing else) for comparison."""
    dev = CountDev()
    hist, clock, kinds = live(365, dev=dev)
    n = dev.open + dev.closed
    out.append(("OK" if dev.open == len(kinds) and dev.other == 0 and n <= 1900 else "FAIL")
               + " a year at %d a day: %d writes (%d of the open page, %d closed pages)" % (
                   PER_DAY, n, dev.open, dev.closed))
    dev = CountDev()
    hist, clock = new_history(dev, kept=True)
    p = program_params(0)
    for m in range(12):
        clock.ts = T0 + m * 30 * DAY_S
        hist.note("refill", 0, 20000000, 0, 1500000, 1400000, 30 * DAY_S, 0, None)
        hist.note("program", 0, p, rx_of(p))
        for d in range(30):
            clock.ts += DAY_S
            hist.roll(0)
    out.append(("OK" if dev.open + dev.closed == 24 else "FAIL")
               + " a quiet year: %d writes" % (dev.open + dev.closed))


class CutDev(MemDev):
    """A flash whose `cut`-th write from now is torn (`keep`: the share of its bytes that got
    there, 0 or 1/2) and after which the power is off: nothing more is written."""

    def __init__(self):
        MemDev.__init__(self)
        self.cut = 0
        self.keep = 0
        self.n = 0
        self.dead = False

    def arm(self, cut, keep):
        self.cut = cut
        self.keep = keep
        self.n = 0
        self.dead = False

    def write(self, path, data):
        if self.dead:
            return
        self.n += 1
        if self.n == self.cut:
            self.dead = True
            if self.keep:
                self.files[path] = bytes(data[:len(data) // 2])
            return
        MemDev.write(self, path, data)


def boot(dev):
    app = App(MemBoard(dev))
    app.boot()
    return app


def program(app, params):
    """`program` as the protocol hands it to its handler (a refusal is the reply's error)."""
    out = {}
    try:
        app.proto.handlers.do_program({"params": params}, app.hal.ticks_ms(), out)
    except Refusal as e:
        out["error"] = e.code
    return out


def programs(app):
    got = []
    for r in read_all(app.therapy.hist):
        if r["kind"] == "program":
            got.append((r["program"], r["notes"].get("titration_override", ""),
                        1 if r.get("recovered") else 0, r["old_basal_ng_day"]))
        elif r["kind"] == "lost":
            got.append(("lost", r["entries"]))
    return got


def cut_checks(out):
    """A `program` cut by the power at each of its flash writes, torn or not there at all:
    after the boot, the settings hold either program and the history has exactly the one
    that took effect (with its reason), never a program it does not hold, never one twice."""
    n = 0
    for keep in (0, 1):
        cut = 1
        while True:
            dev = CutDev()
            app = boot(dev)
            program(app, P1)
            app.therapy.refill(app.hal.ticks_ms(), 20000000)
            dev.arm(cut, keep)
            program(app, P2)
            if not dev.dead:
                break
            dev.arm(0, 0)   # the power comes back
            app = boot(dev)
            held = app.load_settings()
            got = programs(app)
            ok = (held == P2 and got == [(1, "", 0, -1), (2, P2["meta"]["titration_override"],
                                                          got[-1][2], 2708333)]) or \
                 (held == P1 and got == [(1, "", 0, -1)])
            out.append("%s cut %d keep %d: settings %s, history %s" % (
                "OK" if ok else "FAIL", cut, keep, "new" if held == P2 else "old", got))
            # The history goes on from there: the next program is numbered after it.
            program(app, P1)
            last = programs(app)[-1]
            if last[0] != len([g for g in got if g[0] != "lost"]) + 1:
                out.append("FAIL cut %d keep %d: next program numbered %s" % (cut, keep, last))
            n += 1
            cut += 1
    out.append("OK cuts %d" % n)


def main():
    out = []
    rate_checks(out)
    wear_checks(out)
    cut_checks(out)
    for line in out:
        print(line)
    print("FAILED" if [x for x in out if x.startswith("FAIL")] else "DONE")


if __name__ == "__main__":
    main()
    sys.exit(0)
