# The firmware's shell: boots the pump from flash, runs the tickless control loop, talks the
# serial protocol and keeps the records. The pump's logic is in firmware/pump.py; this file
# only waits, reads bytes, stores records and keeps the clock.
#
# The board (boards/*.py, `Hal`) gives: ticks_ms, clock_ts/set_clock_ts, reset_cause, stroke,
# read_pressure, read_battery, tone, led, start_watchdog/feed, wait, read_byte, write, uid,
# storage, reset, and its constants (boards/__init__.py has the contract).
#
# The loop, once per cycle: service the pump (strokes and checks due now), handle the bytes
# that arrived, feed the watchdog, and sleep until the pump's next deadline or a byte arrives,
# never longer than half the watchdog's timeout. The watchdog is fed only at the end of a
# whole cycle: a loop stuck anywhere resets the board.
import json

from firmware import codes
from firmware.auth import Keys
from firmware.eventlog import EventLog
from firmware.proto import Proto
from firmware.pump import BOOT_WATCHDOG, Pump
from firmware.store import RecordStore, pack_ints, unpack_ints
from firmware.ticks import add, diff

LOG_CAPACITY = 200
BYTES_PER_CYCLE = 64      # serial bytes handled before delivery is serviced again
ANCHOR_MS = 3600000       # re-anchor the clock hourly: one tick difference stays valid
MAINT_FLAG = "maint"


def _save(store, payload):
    """Save a record; when a damaged slot was found, overwrite it too so the next boot finds
    no damage left (a save goes to the slot not holding the newest record). True when the
    flash holds it; a write the filesystem refused is False, never an exception."""
    try:
        ok = store.save(payload)
        if ok and store.corrupt:
            ok = store.save(payload)
            store.corrupt = False
    except OSError:
        return False
    return ok


class LogSink:
    """What the pump logs to: the hash-chained event log, stamped with the pump clock."""

    def __init__(self, app):
        self.app = app

    def add(self, code, now, a, b):
        app = self.app
        app.events.add(code, app.clock_ts(now), a, b)
        app.log_dirty = True


class App:
    def __init__(self, hal):
        self.hal = hal
        dev = hal.storage()
        self.dev = dev
        self.st_state = RecordStore(dev, "state")
        self.st_settings = RecordStore(dev, "settings")
        self.st_log = RecordStore(dev, "log")
        self.keys = Keys(RecordStore(dev, "auth"))
        self.uid = hal.uid()
        self.base_ts = hal.clock_ts()   # pump clock (s since 2024-01-01) at base_ticks
        self.base_ticks = hal.ticks_ms()
        events = EventLog.load(self.st_log, LOG_CAPACITY)
        self.log_damaged = events is None and self.st_log.corrupt
        self.events = events if events is not None else EventLog(LOG_CAPACITY)
        self.log_dirty = False
        hal.save_state = self.save_state  # the pump saves its state through this
        self.pump = Pump(hal, LogSink(self))
        self.proto = Proto(self)
        self.quit = False

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
        self.hal.set_clock_ts(ts)
        self.base_ts = ts
        self.base_ticks = now
        self.pump.set_time_of_day(now, (ts % 86400) * 1000, ts)

    # ---- records -----------------------------------------------------------------------------
    def load_settings(self):
        data = self.st_settings.load()
        if data is None:
            return None
        try:
            params = json.loads(data)
        except ValueError:
            return None
        return params if type(params) is dict else None

    def save_settings(self, params):
        return _save(self.st_settings, json.dumps(params).encode())

    def save_state(self, buf):
        """Called by the pump whenever its state must survive a restart. Returns whether the
        flash holds it: the pump acts on a failure (firmware/pump.py save())."""
        ok = _save(self.st_state, pack_ints(buf))
        if self.log_dirty:
            self.save_log()
        return ok

    def save_log(self):
        self.log_dirty = False
        _save(self.st_log, self.events.to_bytes())

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
        state = list(unpack_ints(raw)) if raw is not None else None
        params = self.load_settings()
        # Settings are never guessed: a damaged settings record (even with an older one intact
        # in the other slot) or one that does not parse means memory_error, and no delivery
        # until the pump is reprogrammed.
        settings_bad = self.st_settings.corrupt or (params is None
                                                    and self.st_settings.seq is not None)
        if settings_bad:
            params = None
        self.pump.boot(now, (self.base_ts % 86400) * 1000, params, state, cause,
                       self.st_state.corrupt, self.base_ts)
        if settings_bad:
            self.pump.raise_alarm(codes.AL_MEMORY_ERROR, now)
        elif state is not None and self.st_state.corrupt:
            # The older record was used: limits stay safe (one reserve taken), but what only the
            # newest held (a refill, a stop, a bolus start) is gone. Say so in the log.
            self.events.add(codes.EV_RECORD_FALLBACK, self.base_ts, 1, 0)
        if self.log_damaged:
            # The log is a record, not a dose limit: a damaged one is restarted and says so,
            # and therapy goes on.
            self.events.add(codes.EV_LOG_LOST, self.base_ts, 0, 0)
        self.pump.save()
        self.save_log()

    def reply(self, data):
        hal = self.hal
        hal.write(data)
        hal.write(b"\r\n")

    def run(self):
        """The control loop. Returns only after `maintenance`."""
        hal = self.hal
        pump = self.pump
        proto = self.proto
        nap_max = hal.WDT_TIMEOUT_MS // 2
        hal.start_watchdog(hal.WDT_TIMEOUT_MS)
        while not self.quit:
            now = hal.ticks_ms()
            wait = pump.service(now)
            k = 0
            while k < BYTES_PER_CYCLE:
                b = hal.read_byte()
                if b < 0:
                    break
                proto.feed(b, now)
                k += 1
                if self.quit:
                    break
            if k:
                wait = 0 if k == BYTES_PER_CYCLE else pump.next_in_ms(hal.ticks_ms())
            if diff(now, self.base_ticks) >= ANCHOR_MS:
                self._anchor(now)
                if self.log_dirty:
                    self.save_log()
            hal.feed()
            if self.quit:
                break
            if wait > nap_max:
                wait = nap_max
            hal.wait(wait)

    # ---- commands the protocol forwards -------------------------------------------------------
    def stop(self, now, for_s):
        """Suspend delivery; with for_s, for that long. The pump keeps the deadline itself and
        on flash, so a restart neither forgets it nor lengthens it."""
        self.pump.stop(now, for_s * 1000)

    def resume(self, now):
        self.pump.resume(now)

    def stop_left_s(self, now):
        return (self.pump.suspend_left_ms(now) + 999) // 1000

    def refill_ts(self, now):
        """When the reservoir reaches its low level at the projected rate (the basal and the
        last days' boluses; -1 if unknown)."""
        s = self.pump.low_in_s()
        return -1 if s < 0 else self.clock_ts(now) + s

    def maintenance(self, now):
        """Stop delivery, save everything and leave the loop; the board resets into the REPL."""
        self.pump.stop(now)
        self.pump.save(True)
        self.save_log()
        self.dev.write(MAINT_FLAG, b"1")
        self.quit = True


def main(hal):
    """Entry point on every board. Returns when the REPL should take over (maintenance)."""
    app = App(hal)
    hal.app = app  # lets a simulated board reach the pump (a real board ignores it)
    if app.maintenance_pending():
        app.clear_maintenance()
        return "maintenance"
    app.boot()
    app.run()
    hal.reset()  # comes back through maintenance_pending() into the REPL, watchdog off
    return "maintenance"
