# The firmware's shell: boots the pump from flash, runs the tickless control loop, talks the
# serial protocol and keeps the records. The pump's logic is in firmware/therapy.py and the rooms
# it builds; this file only waits, reads bytes, stores records and keeps the clock.
#
# The board (boards/*.py, `Hal`) gives: ticks_ms, clock_ts/set_clock_ts, reset_cause, stroke,
# read_pressure, read_battery, tone, led, start_watchdog/feed, wait, read_into, write, uid,
# storage, reset, button_held, and its constants (the contract: firmware/hal.pyi).
#
# The loop, once per cycle: service the pump (strokes and checks due now), handle the bytes
# that arrived, feed the watchdog, and sleep until the pump's next deadline or a byte arrives,
# never longer than half the watchdog's timeout. The watchdog is fed only at the end of a
# whole cycle: a loop stuck anywhere resets the board.
import gc
import json

from firmware import buildinfo, codes, loader, updatekey
from firmware.auth import Keys
from firmware.compat import TYPE_CHECKING, const, scrub, unload
from firmware.eventlog import EventLog
from firmware.handlers import Handlers
from firmware.proto import Proto
from firmware.store import RecordStore, clock_trailer, pack_ints
from firmware.store import split_clock  # noqa: F401  (tests import it from here)
from firmware.therapy import Therapy
from firmware.ticks import add, diff

if TYPE_CHECKING:
    from firmware.hal import Hal

_LOG_CAPACITY = const(200)
_SLICE_ROOM_MS = const(30)       # a check's slice runs only this far from the next deadline
_SLICE_GAP_MS = const(2)          # ... in the next wake-up, this soon while one is owed
_BYTES_PER_CYCLE = const(256)     # serial bytes taken in one cycle (about 10 ms of a Pico's time)
_ANCHOR_MS = const(3600000)       # re-anchor the clock hourly: one tick difference stays valid
MAINT_FLAG = "maint"
SHIFT_MAX = (1 << 29) - 1


def _clamp(s):
    return SHIFT_MAX if s > SHIFT_MAX else -SHIFT_MAX if s < -SHIFT_MAX else s
# The physical act that opens provisioning (docs/security.md): the button held for
# BUTTON_HOLD_MS within BUTTON_LOOK_MS (firmware/start.py) of a boot opens it for PROVISION_MS.
BUTTON_HOLD_MS = 2000
_BUTTON_POLL_MS = const(100)
PROVISION_MS = 600000


def _save_once(store, payload, tail):
    try:
        ok = store.save(payload, tail)
        if ok and store.corrupt:
            ok = store.save(payload, tail)
            store.corrupt = False
        return ok
    except OSError:
        return False


def _save(store, payload, tail=b""):
    """Save a record; when a damaged slot was found, overwrite it too so the next boot finds
    no damage left (a save goes to the slot not holding the newest record). True when the
    flash holds it; a write the filesystem refused is False, never an exception.

    A save builds a record-sized buffer. On the Pico's small heap a MemoryError can come from
    fragmentation alone: the heap is collected and the save tried once more; a second failure
    is a failed save (the pump acts on it), never an uncaught exception that resets the pump."""
    try:
        return _save_once(store, payload, tail)
    except MemoryError:
        gc.collect()
    try:
        return _save_once(store, payload, tail)
    except MemoryError:
        return False


class LogSink:
    """What the pump logs to: the hash-chained event log, stamped with the pump clock."""

    def __init__(self, app):
        self.app = app

    def add(self, code, now, a, b):
        app = self.app
        app.events.add(code, app.clock_ts(now), a, b)
        app.log_dirty = True


class App:
    def __init__(self, hal: "Hal") -> None:
        self.hal = hal
        dev = hal.storage()
        self.dev = dev
        self.st_state = RecordStore(dev, "state")
        self.st_settings = RecordStore(dev, "settings")
        self.st_log = RecordStore(dev, "log")
        # The settings carry the number of the program they hold and the pump clock when it was
        # programmed (their key "history": [number, ts]), so a boot finds a program the history
        # lacks (a power cut between the settings and its entry) and adds it (histpages
        # recover()). The key is the shell's: `settings` and the program reply never show it.
        self.program_tag = None
        self.st_journal = RecordStore(dev, "journal")
        self.keys = Keys(RecordStore(dev, "auth"))
        self.upkey = updatekey.UpdateKey(RecordStore(dev, "upkey"))
        self.fs = updatekey.fs_for(dev)
        self.updater = None     # firmware/update.py's Updater, once an update begins
        self.uid = hal.uid()
        self.base_ts = hal.clock_ts()   # pump clock (s since 2024-01-01) at base_ticks
        self.base_ticks = hal.ticks_ms()
        events = EventLog.load(self.st_log, _LOG_CAPACITY)
        self.log_damaged = events is None and self.st_log.corrupt
        self.events = events if events is not None else EventLog(_LOG_CAPACITY)
        self.log_dirty = False
        # (the app is the history's port: its files, self.dev, and its clock, clock_ts)
        self.therapy = Therapy(hal, LogSink(self), self.save_state, self.save_journal,
                               self)
        self.proto = Proto(self, Handlers(self))
        self.quit = False
        self.reset_after = False  # a committed update: reset once its reply is on the line
        self.button = getattr(hal, "button_held", None)
        self.btn_until = None   # ticks until which the button is looked at (after a boot)
        self.btn_since = None   # ticks since when it has been held
        self.prov_until = None  # ticks until which provisioning is open (after the button)
        self.confirm_at = None  # ticks at which a firmware on trial confirms itself
        self.slot = "base"
        self.last_crash = None

    # ---- clock -------------------------------------------------------------------------------
    def clock_ts(self, now):
        return self.base_ts + diff(now, self.base_ticks) // 1000

    def _anchor(self, now):
        d = diff(now, self.base_ticks)
        if d >= _ANCHOR_MS:
            s = d // 1000
            self.base_ts += s
            self.base_ticks = add(self.base_ticks, s * 1000)

    def set_clock(self, now, ts):
        shift = ts - self.clock_ts(now)
        self.hal.set_clock_ts(ts)
        self.base_ts = ts
        self.base_ticks = now
        th = self.therapy
        th.set_time_of_day(now, (ts % 86400) * 1000, ts)
        self.events.add(codes.EV_CLOCK_SET, ts, _clamp(shift), 0)
        self.log_dirty = True
        th.sup.clear_alarm(codes.AL_CLOCK_LOST, now)
        th.save()   # the new clock and the cleared alarm outlive a reset

    def _lost_clock(self, saved_ts):
        """On a board without a kept clock: whether its clock restarted (it reads a time before
        the last saved one, or before 2024, which no pump clock was ever set to). The pump then
        carries on from the saved clock, advanced by the uptime from here on: its schedule keeps
        its place as well as it can, and the dose guard, which counts the time the pump was off
        as not passed, stays on the safe side. Returns how far back the board's clock was (s),
        or None when it was not lost."""
        rtc = self.base_ts
        if self.hal.CLOCK_KEPT or (rtc >= 0 and (saved_ts is None or rtc >= saved_ts)):
            return None
        self.base_ts = saved_ts if saved_ts is not None and saved_ts > 0 else 0
        self.hal.set_clock_ts(self.base_ts)
        return _clamp(self.base_ts - rtc)

    # ---- records -----------------------------------------------------------------------------
    def load_settings(self):
        data = self.st_settings.load()
        if data is None:
            return None
        try:
            params = json.loads(data)
        except ValueError:
            return None
        if type(params) is not dict:
            return None
        tag = params.pop("history", None)
        self.program_tag = tag if type(tag) is list and len(tag) == 2 else None
        return params

    def save_settings(self, params, tag=None):
        """Store the settings, with the program's tag (given, else the one they had)."""
        tag = tag or self.program_tag
        if tag:
            params = dict(params)
            params["history"] = tag
        ok = _save(self.st_settings, json.dumps(params).encode())
        if ok:
            self.program_tag = tag
        return ok

    def save_state(self, buf):
        """Called by the pump whenever its state must survive a restart. Returns whether the
        flash holds it: the pump acts on a failure (firmware/record.py save())."""
        ts = self.clock_ts(self.hal.ticks_ms())
        ok = _save(self.st_state, pack_ints(buf), clock_trailer(ts))
        if self.log_dirty:
            self.save_log()
        return ok

    def save_journal(self, buf):
        """Called by the pump before each stroke (firmware/record.py journal): True when the
        flash holds it."""
        return _save(self.st_journal, pack_ints(buf))

    def save_log(self):
        self.log_dirty = False
        _save(self.st_log, self.events.to_bytes())

    def events_add(self, code, now, a, b):
        """Log an event that must not wait for the next state save (keys, updates)."""
        self.events.add(code, self.clock_ts(now), a, b)
        self.save_log()

    def maintenance_pending(self):
        return self.dev.read(MAINT_FLAG) == b"1"

    def clear_maintenance(self):
        self.dev.write(MAINT_FLAG, b"0")

    # ---- life cycle --------------------------------------------------------------------------
    def boot(self):
        """Start the pump from the stored records (a factory-fresh pump has none). The code is
        firmware/start.py's, needed once a boot: it goes back to the heap after."""
        from firmware import start
        try:
            start.boot(self)
        finally:
            start = None
            unload("firmware.start")
        scrub()
        if hasattr(gc, "threshold"):
            gc.threshold(-1)   # the modules are loaded (firmware/__init__.py): collect on need

    def _before_test(self):
        """The watchdog's test is about to reset the board: everything saved first."""
        self.therapy.save(True)
        self.save_log()

    # ---- keys, provisioning, updates ---------------------------------------------------------
    def button_open(self, now):
        return self.prov_until is not None and diff(now, self.prov_until) < 0

    def _look_at_button(self, now):
        """Called each cycle while the button is looked at: allocates nothing."""
        if diff(now, self.btn_until) >= 0:
            self.btn_until = None
            self.btn_since = None
            return
        if not self.button():
            self.btn_since = None
        elif self.btn_since is None:
            self.btn_since = now
        elif diff(now, self.btn_since) >= BUTTON_HOLD_MS:
            self.btn_until = None
            self.btn_since = None
            self.prov_until = add(now, PROVISION_MS)
            self.events_add(codes.EV_BUTTON, now, 0, 0)

    def provisioned(self, now, how):
        self.prov_until = None
        self.therapy.sup.clear_alarm(codes.AL_KEY_DAMAGED, now)
        self.events_add(codes.EV_KEYS, now, how, 0)

    def confirm_update(self, now):
        """The running firmware works: end its trial. True when it was on one."""
        self.confirm_at = None
        if self.fs is None or not updatekey.confirm(self.fs):
            return False
        self.events_add(codes.EV_UPDATE, now, 2, updatekey.SLOT_NO.get(self.slot, 0))
        return True

    def get_updater(self):
        """The transfer of a signed update (firmware/update.py), loaded when the first one
        begins; None for storage that is not a filesystem."""
        if self.updater is None and self.fs is not None:
            from firmware import update
            self.updater = update.Updater(self.fs, self.upkey, self.hal.NAME)
        return self.updater

    def update_info(self):
        st = loader.load(self.fs) if self.fs is not None else None
        return {"slot": self.slot, "trial": st is not None and st.get("tries") is not None,
                "update_key": self.upkey.modulus is not None, "last_crash": self.last_crash}

    def _update_reset(self, now):
        """After a committed update: save everything and reset into the loader."""
        self.shutdown(now)
        self.hal.reset()

    def shutdown(self, now):
        """An orderly stop (a reset the firmware or the board asks for): time brought up to
        `now`, the exact account and the log saved."""
        self.therapy.pump.service(now)
        self.therapy.save(True)
        self.save_log()

    def reply(self, data):
        hal = self.hal
        hal.write(data)
        hal.write(b"\r\n")

    def run(self):
        """The control loop. Returns only after `maintenance`."""
        hal = self.hal
        pump = self.therapy.pump
        proto = self.proto
        nap_max = hal.WDT_TIMEOUT_MS // 2
        checks = self.therapy.checks   # counts the wake-ups (the battery's life)
        rx = bytearray(_BYTES_PER_CYCLE)   # what one cycle takes off the serial line, at most
        hal.start_watchdog(hal.WDT_TIMEOUT_MS)
        # A wake-up costs only what it was for. The pump is serviced at the deadline it gave
        # (`due`), after a request was handled, and when something other than bytes woke the
        # loop; the line is read unless the board's wait() said, by returning False, that it
        # slept its time out with nothing waiting. An idle wake-up (the watchdog's, every
        # nap_max) is then a clock read and a feed, and bytes of a long line are not a service
        # each (docs/benchmarks.md).
        woke = True
        due = hal.ticks_ms()
        lines = proto.lines
        checks.defer = True    # the checks' long slices: here, in wake-ups of their own
        while not self.quit:
            now = hal.ticks_ms()
            k = hal.read_into(rx) if woke is not False else 0
            busy = diff(now, due) >= 0
            if busy or k == 0 and woke is not False:
                wait = pump.service(now)
                due = add(now, wait)
            else:
                wait = diff(due, now)
            if checks.owed:
                # A slice of the memory test or the code's hashes (up to a few ms): only in a
                # wake-up that had nothing due and read nothing, and with the next deadline
                # (a stroke, a check) at least _SLICE_ROOM_MS away; the next wake-up comes
                # soon while more is owed.
                if not busy and k == 0 and wait >= _SLICE_ROOM_MS:
                    checks.slice(now)
                    wait = diff(due, hal.ticks_ms())
                    if wait < 0:
                        wait = 0
                if checks.owed and wait > _SLICE_GAP_MS:
                    wait = _SLICE_GAP_MS
            if k:
                proto.feed_from(rx, k, now)
                if proto.lines != lines:
                    lines = proto.lines
                    due = now   # a request may have changed what is due: service it next
                    wait = 0
                elif k == _BYTES_PER_CYCLE:
                    wait = 0
            if diff(now, self.base_ticks) >= _ANCHOR_MS:
                self._anchor(now)
                proto.expire(now)
                self.therapy.hist.roll(now)   # the day's summary; entries waiting retried
                if self.log_dirty:
                    self.save_log()
            if self.reset_after:
                self.reset_after = False
                self._update_reset(now)
            if self.btn_until is not None:
                self._look_at_button(now)
                if wait > _BUTTON_POLL_MS:
                    wait = _BUTTON_POLL_MS
            if self.confirm_at is not None and diff(now, self.confirm_at) >= 0:
                self.confirm_update(now)
            hal.feed()
            if self.quit:
                break
            if wait > nap_max:
                wait = nap_max
            checks.wakes += 1
            woke = hal.wait(wait)

    # ---- commands the protocol forwards -------------------------------------------------------
    def maintenance(self, now):
        """Stop delivery, save everything and leave the loop; the board resets into the REPL."""
        self.therapy.stop(now)
        self.therapy.save(True)
        self.save_log()
        self.dev.write(MAINT_FLAG, b"1")
        self.quit = True


def main(hal: "Hal", started=None):
    """Entry point on every board. Returns when the REPL should take over (maintenance).
    started(app), when given, is called once the app exists: a simulated board's harness
    reaches the pump through it (a real board passes nothing)."""
    app = App(hal)
    if started is not None:
        started(app)
    if app.maintenance_pending():
        app.clear_maintenance()
        if buildinfo.KIND == "development":
            return "maintenance"
    app.boot()
    app.run()
    hal.reset()  # comes back through maintenance_pending() into the REPL, watchdog off
    return "maintenance"
