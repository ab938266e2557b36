"""A board that loses its clock (a Pico: no battery-backed RTC, restarted at 2021-01-01 by
MicroPython after every hard reset) on CPython, the app's side: the pump carries on from the
clock saved with its state, says so with the warning clock_lost until a clinician sets the
clock, and never on a board that keeps its clock. tests/rp2 runs the same on the emulated Pico."""

from firmware import codes
from firmware.app import App, clock_trailer, split_clock
from firmware.store import RecordStore, pack_ints
from tests.firmware.proto_bench import PARAMS, MemHal, Signer, ask, programmed, run_for

RTC_2021 = -94_608_000          # 2021-01-01 00:00 on the pump clock (seconds since 2024)
TEN_AM = 91_500_000 // 86_400 * 86_400 + 10 * 3600


def restart(app, rtc_ts, kept=False):
    """A hard reset: a new App on the same flash, the board's clock reading rtc_ts."""
    app.therapy.save()
    hal = MemHal(app.hal.dev)
    hal.CLOCK_KEPT = kept
    hal.ts0 = rtc_ts - hal.t // 1000
    new = App(hal)
    new.boot()
    return new


def alarm_codes(app):
    return {codes.ALARM_NAMES[c] for c in codes.ALARM_NAMES if app.therapy.sup.alarms & (1 << c)}


def at_ten_am():
    app, clin = programmed()
    ask(app, clin.line("clock", {"set_ts": TEN_AM}))
    run_for(app, 3_600_000)
    return app, clin


def test_a_lost_clock_is_reported_and_the_schedule_goes_on_from_the_saved_clock():
    app, clin = at_ten_am()
    saved = app.clock_ts(app.hal.ticks_ms())
    app = restart(app, RTC_2021)
    clin = Signer(app)   # a new session with the restarted pump
    assert "clock_lost" in alarm_codes(app)
    assert codes.priority(codes.AL_CLOCK_LOST) == "warning"
    assert app.clock_ts(app.hal.ticks_ms()) == saved         # not 2021
    assert app.hal.clock_ts() == saved                        # the RTC agrees from here on
    assert app.therapy.pump.step == 1                                 # 11:00: still the 07:00 step
    st = ask(app, clin.line("status"))
    assert st["delivering"] is True
    log = ask(app, clin.line("log"))["entries"]
    assert all(e[1] >= 0 for e in log)
    lost = [e for e in log if e[2] == "clock_lost"]
    assert lost and lost[-1][3] == saved - RTC_2021


def test_the_alarm_outlives_a_reset_until_a_clinician_sets_the_clock():
    app, _ = at_ten_am()
    app = restart(app, RTC_2021)
    app = restart(app, app.hal.clock_ts() + 60)   # a soft reset: the RTC was kept this time
    assert "clock_lost" in alarm_codes(app)
    clin = Signer(app)
    reply = ask(app, clin.line("clock", {"set_ts": TEN_AM + 7200}))
    assert reply["clock_lost"] is False and "clock_lost" not in alarm_codes(app)
    assert any(e[2] == "clock_set" for e in ask(app, clin.line("log"))["entries"])
    app = restart(app, app.hal.clock_ts())
    assert "clock_lost" not in alarm_codes(app)


def test_a_board_that_keeps_its_clock_never_raises_it():
    app, _ = at_ten_am()
    app = restart(app, RTC_2021, kept=True)
    assert "clock_lost" not in alarm_codes(app)
    assert app.clock_ts(app.hal.ticks_ms()) < 0   # it believes its clock, whatever it says


def test_a_clock_that_reads_later_than_the_saved_one_is_believed():
    app, _ = at_ten_am()
    later = app.clock_ts(app.hal.ticks_ms()) + 5000
    app = restart(app, later)
    assert "clock_lost" not in alarm_codes(app)
    assert app.clock_ts(app.hal.ticks_ms()) == later


def test_a_new_pico_with_its_clock_at_2021_says_its_clock_is_not_set():
    hal = MemHal()
    hal.CLOCK_KEPT = False
    hal.ts0 = RTC_2021
    app = App(hal)
    app.boot()
    assert "clock_lost" in alarm_codes(app) and app.clock_ts(hal.ticks_ms()) == 0


def test_state_records_without_the_clock_trailer_still_load():
    app, clin = programmed()
    app.therapy.save()
    # The record as firmware before the trailer wrote it: the state alone.
    RecordStore(app.hal.dev, "state").save(pack_ints(app.therapy.record.state))
    app = restart(app, app.hal.clock_ts(), kept=False)
    assert "clock_lost" not in alarm_codes(app) and "memory_error" not in alarm_codes(app)
    assert app.therapy.pump.rx is not None and app.therapy.pump.rx.conc_ng_ml == PARAMS["conc_ng_ml"]


def test_the_trailer_round_trips_and_leaves_other_payloads_alone():
    body = pack_ints([1, 2, 3])
    for ts in (0, 1, 91_500_000, -5, (1 << 31) - 1, -(1 << 31)):
        assert split_clock(body + clock_trailer(ts)) == (body, ts)
    assert split_clock(body) == (body, None)
    assert split_clock(b"") == (b"", None)
