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
import struct

from firmware import buildinfo, codecheck, codes, loader, updatekey
from firmware.auth import Keys
from firmware.compat import TYPE_CHECKING, unload
from firmware.eventlog import EventLog
from firmware.handlers import Handlers
from firmware.proto import Proto
from firmware.store import RecordStore, pack_ints, unpack_ints
from firmware.therapy import BOOT_WATCHDOG, Therapy
from firmware.ticks import add, diff

if TYPE_CHECKING:
    from firmware.hal import Hal

LOG_CAPACITY = 200
BYTES_PER_CYCLE = 256     # serial bytes taken in one cycle (about 10 ms of a Pico's time)
ANCHOR_MS = 3600000       # re-anchor the clock hourly: one tick difference stays valid
MAINT_FLAG = "maint"
# The pump clock at the moment of each state save rides behind the pump's state record, so a
# board that loses its clock (a Pico: no battery-backed RTC) carries on from it. Older records
# have no trailer; the state record itself (firmware/record.py) is not changed by it.
CLOCK_TAG = b"CLK1"
CLOCK_TRAILER_LEN = 8
SHIFT_MAX = (1 << 29) - 1


def clock_trailer(ts):
    return CLOCK_TAG + struct.pack("<i", ts)


def split_clock(payload):
    """(the state record's bytes, the clock saved with them or None)."""
    n = len(payload) - CLOCK_TRAILER_LEN
    if n >= 0 and payload[n:n + 4] == CLOCK_TAG:
        # a view, not a copy: on the Pico a record-sized buffer counts
        return memoryview(payload)[:n], struct.unpack_from("<i", payload, n + 4)[0]
    return payload, None


def _clamp(s):
    return SHIFT_MAX if s > SHIFT_MAX else -SHIFT_MAX if s < -SHIFT_MAX else s
# The physical act that opens provisioning (docs/security.md): the button held for
# BUTTON_HOLD_MS within BUTTON_LOOK_MS of a boot opens it for PROVISION_MS.
BUTTON_LOOK_MS = 60000
BUTTON_HOLD_MS = 2000
BUTTON_POLL_MS = 100
PROVISION_MS = 600000
# A new firmware on trial confirms itself after running this long (or when the host confirms).
CONFIRM_MS = 60000
_SLOT_NO = {"base": 0, "a": 1, "b": 2}


def _scrub():
    """Words on the stack below here that still point at the self-test's module (the collector
    takes any word that looks like a pointer for one) are overwritten by this frame's."""
    a = b = c = d = e = f = g = h = i = j = k = m = n = o = p = q = 0
    return a + b + c + d + e + f + g + h + i + j + k + m + n + o + p + q


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
        events = EventLog.load(self.st_log, LOG_CAPACITY)
        self.log_damaged = events is None and self.st_log.corrupt
        self.events = events if events is not None else EventLog(LOG_CAPACITY)
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
        if d >= ANCHOR_MS:
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
        """Start the pump from the stored records (a factory-fresh pump has none)."""
        hal = self.hal
        now = hal.ticks_ms()
        self.base_ts = hal.clock_ts()
        self.base_ticks = now
        cause = BOOT_WATCHDOG if hal.reset_cause() == 1 else 0
        raw = self.st_state.load()
        saved_ts = None
        if raw is not None:
            raw, saved_ts = split_clock(raw)
        state = unpack_ints(raw) if raw is not None else None
        lost = self._lost_clock(saved_ts)
        params = self.load_settings()
        # Settings are never guessed: a damaged settings record (even with an older one intact
        # in the other slot) or one that does not parse means memory_error, and no delivery
        # until the pump is reprogrammed.
        settings_bad = self.st_settings.corrupt or (params is None
                                                    and self.st_settings.seq is not None)
        if settings_bad:
            params = None
        # A clock that was lost cannot tell how long the pump was off (-1): a timed stop then
        # counts on from the boot and a fill's age does not grow by the time off.
        th = self.therapy
        th.hist.run("load", now)   # (its pages; again before the next write if this fails)
        raw = self.st_journal.load()
        journal = unpack_ints(raw) if raw is not None else None
        th.boot(now, (self.base_ts % 86400) * 1000, params, state, cause,
                self.st_state.corrupt, -1 if lost is not None else self.base_ts, journal)
        if self.program_tag and params is not None and th.pump.rx is not None:
            th.hist.run("recover", now, self.program_tag, params, th.pump.rx)
        th.hist.roll(now)
        fallback = state is not None and self.st_state.corrupt
        raw = state = None   # the pump holds its own copy: two record-sized buffers freed
        if settings_bad:
            th.sup.raise_alarm(codes.AL_MEMORY_ERROR, now)
        elif fallback:
            # The older record was used: limits stay safe (one reserve taken), but what only the
            # newest held (a refill, a stop, a bolus start) is gone. Say so in the log.
            self.events.add(codes.EV_RECORD_FALLBACK, self.base_ts, 1, 0)
        if self.log_damaged:
            # The log is a record, not a dose limit: a damaged one is restarted and says so,
            # and therapy goes on.
            self.events.add(codes.EV_LOG_LOST, self.base_ts, 0, 0)
        if lost is not None:
            self.events.add(codes.EV_CLOCK_LOST, self.base_ts, lost, 0)
            th.sup.raise_alarm(codes.AL_CLOCK_LOST, now)
        self._boot_keys(now)
        self._boot_firmware(now)
        self._self_test(now)
        if self.button is not None:
            self.btn_until = add(now, BUTTON_LOOK_MS)
        th.save()
        self.save_log()
        if hasattr(gc, "threshold"):
            gc.threshold(-1)   # the modules are loaded (firmware/__init__.py): collect on need

    def _boot_keys(self, now):
        """Keys fail closed: a record that exists and does not verify raises key_damaged (the
        protocol then refuses every keyed request); therapy goes on as programmed."""
        keys = self.keys
        sup = self.therapy.sup
        if keys.damaged:
            sup.raise_alarm(codes.AL_KEY_DAMAGED, now)
        else:
            sup.clear_alarm(codes.AL_KEY_DAMAGED, now)
        if keys.fallback:
            self.events.add(codes.EV_KEY_FALLBACK, self.base_ts, 0, 0)

    def _boot_firmware(self, now):
        """What the loader did before this firmware started: log it, and start the trial's
        clock when this firmware has not confirmed yet."""
        fs = self.fs
        if fs is None:
            return
        crash = fs.read(loader.CRASH)
        st = loader.load(fs)
        self.slot = st["active"] if st is not None else loader.BASE
        trial = st is not None and st.get("tries") is not None
        if crash is not None:
            try:
                self.last_crash = crash.decode()
            except UnicodeError:
                self.last_crash = "(not UTF-8)"
            self.events.add(codes.EV_CRASH, self.base_ts, _SLOT_NO.get(self.slot, 0),
                            1 if trial else 0)
            fs.remove(loader.CRASH)
        if st is not None and st.get("back"):
            back = st["back"]
            self.events.add(codes.EV_ROLLBACK, self.base_ts, _SLOT_NO.get(back[0], 0),
                            1 if back[1] == "trial" else 2)
            del st["back"]
            loader.save(fs, st)
        if trial:
            self.confirm_at = add(now, CONFIRM_MS)

    def _self_test(self, now):
        """The power-on self-test (firmware/selftest.py), before the first stroke. The running
        firmware's files against its signed manifest: if they do not match, the board goes
        back to the firmware before it (as the boot loader does for a damaged slot) and
        resets into it; the base has none before it and stays, with self_test_failed raised
        (critical). The watchdog is made to reset the chip once per install."""
        failed = self._post(now)
        _scrub()
        if failed & 1 and codecheck.fall_back(self.fs, self.slot):
            self.shutdown(now)
            self.hal.reset()

    def _post(self, now):
        from firmware import post   # needed once a boot: its code goes back to the heap after
        try:
            return post.run(self.therapy.checks, now, self.hal, self.fs, self.slot,
                            self.upkey.modulus, RecordStore(self.dev, "wdt"), self._before_test)
        finally:
            post = None
            unload("firmware.post")

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
        self.events_add(codes.EV_UPDATE, now, 2, _SLOT_NO.get(self.slot, 0))
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
        rx = bytearray(BYTES_PER_CYCLE)   # what one cycle takes off the serial line, at most
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
        while not self.quit:
            now = hal.ticks_ms()
            k = hal.read_into(rx) if woke is not False else 0
            if diff(now, due) >= 0 or k == 0 and woke is not False:
                wait = pump.service(now)
                due = add(now, wait)
            else:
                wait = diff(due, now)
            if k:
                proto.feed_from(rx, k, now)
                if proto.lines != lines:
                    lines = proto.lines
                    due = now   # a request may have changed what is due: service it next
                    wait = 0
                elif k == BYTES_PER_CYCLE:
                    wait = 0
            if diff(now, self.base_ticks) >= ANCHOR_MS:
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
                if wait > BUTTON_POLL_MS:
                    wait = BUTTON_POLL_MS
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
