"""The therapy history's room on its own (firmware/history.py, firmware/histpages.py): the
page logic leaves the heap after each call, a flash that raises never breaks a command, damaged
pages are said and the rest reads on, the ring drops whole pages only when full, and an entry
reads back as it was written across the whole range. The pump's side (every change an entry,
restarts, failed writes through the app) is tests/firmware/test_history.py; the stated rate
and the power cuts, on both runtimes, tests/vm/test_history_vm.py."""

import sys

from hypothesis import given
from hypothesis import strategies as st

from firmware import codes, histpages
from firmware.histpages import PAGES
from firmware.history import History
from firmware.store import MemDev
from tests.firmware.proto_bench import PARAMS
from tests.vm.history_check import Clock, Log, Port, live, new_history, read_all

RX = dict(PARAMS, meta={"drug": "morphine", "units": "mg"})


def test_a_history_whose_flash_raises_never_breaks_a_command_and_its_entries_wait():
    class Raising(MemDev):
        def read(self, path):
            raise MemoryError("a fragmented heap")

    log = Log()
    dev = Raising()
    hist = History(Port(dev, Clock(91_500_000)), log)
    hist.run("load", 0)
    hist.note("stop", 0, 60)
    hist.note("program", 0, RX, None)             # (a bad rx waits too, then is said)
    hist.patient_bolus(0, 0, 8000, 25_000_000)
    assert len(hist.pending) == 2 and log.events[0][0] == codes.EV_HISTORY_FAILED
    assert hist.pages is None and not dev.files   # nothing written over pages not read
    assert hist.run("next_program", 0) is None    # (the settings then carry 0: no recovery)


def test_the_page_logic_leaves_the_heap_after_each_call():
    """On the Pico the page logic's code would cost ~7 KB of the heap that must stay free
    while delivering: it is loaded for a call and dropped after (history.py _drop)."""
    hist, _ = new_history()
    hist.note("stop", 0, 60)
    assert "firmware.histpages" not in sys.modules and hist.pages[2] == 1
    assert hist.run("reply", 0, {"last": 1})["entries"][0]["kind"] == "stop"
    assert "firmware.histpages" not in sys.modules


def _filled(entries):
    dev = MemDev()
    hist, clock = new_history(dev, kept=True)
    for i in range(entries):
        clock.ts += 60
        hist.note("clinician_bolus", 0, 1000 + i, 0, 25_000_000)
    return hist, dev, clock


def test_a_damaged_open_page_is_said_and_the_history_goes_on_after_the_closed_pages():
    hist, dev, clock = _filled(400)
    assert hist.pages[0] == 2
    slots = histpages._scan(hist)
    dev.files["hist.a"] = dev.files["hist.b"] = b"garbage"
    log = Log()
    again = History(Port(dev, clock), log)
    again.run("load", 0)
    assert log.events[0][0] == codes.EV_HISTORY_LOST
    rows = read_all(again)
    kept = slots[1][1] + slots[1][2]               # the two closed pages' entries
    assert [r["dose_nl"] for r in rows[:kept]] == [1000 + i for i in range(kept)]
    assert rows[kept]["kind"] == "lost" and rows[kept]["entries"] == -1
    again.note("prime", 0, 5, 0, 25_000_000)
    assert read_all(again)[-1]["kind"] == "prime"


def test_a_damaged_closed_page_reads_as_lost_entries_and_the_rest_reads_on():
    hist, dev, _ = _filled(400)
    lost = histpages._scan(hist)[0][2]
    page = dev.files["hist00"]
    dev.files["hist00"] = page[:-1] + bytes([page[-1] ^ 1])
    fresh = History(hist.port, Log())
    fresh.run("load", 0)
    assert histpages.oldest(fresh) == lost         # the oldest page held verifies no more
    rows = read_all(fresh, 0)
    assert rows[0] == {"seq": 0, "kind": "lost", "by": "pump", "entries": lost}
    assert [r["seq"] for r in rows[1:]] == list(range(lost, 400))


def test_the_ring_drops_whole_pages_only_when_it_is_full():
    hist, clock, _ = live(700)
    oldest = histpages.oldest(hist)
    assert oldest > 0 and hist.pages[0] > PAGES
    rows = read_all(hist, oldest)
    assert [r["seq"] for r in rows] == list(range(oldest, histpages.total(hist)))
    assert (clock.ts - rows[0]["ts"]) // 86_400 >= 400


INT32 = st.integers(-(1 << 31), (1 << 31) - 1)


@given(ints=st.lists(st.one_of(INT32, st.integers(-(1 << 40), 1 << 40)), min_size=5,
                     max_size=5),
       reason=st.text(max_size=120), ts=st.integers(0, (1 << 31) - 1))
def test_an_entry_reads_back_as_it_was_written_across_the_whole_range(ints, reason, ts):
    hist, _ = new_history(ts=ts)
    hist.note("refill", 0, *ints, {"drug": "baclofen", "titration_override": reason})
    row = read_all(hist)[0]
    clamp = [min(max(v, -(1 << 31)), (1 << 31) - 1) for v in ints]
    assert [row[k] for k in ("volume_nl", "conc_ng_ml", "residual_nl", "expected_nl",
                             "stable_s")] == clamp
    assert row["ts"] == ts and row["notes"] == {"drug": "baclofen", "titration_override": reason}


def test_a_note_no_entry_can_be_made_of_is_said_and_never_holds_up_the_rest():
    hist, _ = new_history()
    hist.note("valve", 0, 1)                      # a kind this firmware does not know
    hist.note("program", 0, RX, None)             # no Rx: no entry can be made
    hist.note("stop", 0, 60)
    assert hist.pending == [] and hist.dropped == 2
    assert [r["kind"] for r in read_all(hist)] == ["stop"]
    assert [e[0] for e in hist.log.events] == [codes.EV_HISTORY_FAILED] * 2
