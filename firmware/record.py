# The state record: what must survive a restart, one array of ints, assembled from the rooms'
# blocks and written through the shell's save port (firmware/app.py: A/B records on flash).
#
#   [STATE_MAGIC, layout version, oldest layout that can read it, header length H,
#    header fields (_FLAGS .. _STOP_S, below), then at H the patient-bolus block
#    (firmware/bolus.py, PB_SAVE_LEN), the dose guard's block (firmware/guard.py) and, from
#    layout 4, the therapy history's block (firmware/history.py: the day's patient boluses)]
#
# The header holds the timing core's stop (flags, phase, what is left of a timed stop, how long
# it has lasted), the pump clock, the supervisor's alarms, the reservoir room's account, fill
# block and catheter block (firmware/reservoir.py), the guard's phase, and the save's number.
#
# Layout 3 (issue 19) counts the guard in drug mass (1/UNITS of a stroke: firmware/guard.py), so
# a layout-2 reader would take its buckets for strokes: it is the oldest reader (_READER), and
# firmware from before it finds a layout-3 record unreadable (memory_error: the account is taken
# as full until a clinician reprograms). Layouts 1 and 2 are migrated here: their buckets are
# strokes, their catheter is full, their fill's drug and concentration are not known.
#
# The journal (a second, tiny record through its own port): before each stroke the pump writes
# [the number of the last full save, the strokes since it, this one included]. After a power
# cut the account then takes what the journal says instead of the whole reserve the full record
# holds, so a restart costs at most the stroke in flight, not a reserve. A later layout adds a header field at the end (H grows) or a block
# after the guard's; a reader takes the fields it knows and skips the rest, so firmware of
# either side of an update (or a rollback) reads the other's record. A change that an older
# reader could not take (a field changing meaning or size) raises the "oldest reader" entry,
# and the new firmware then migrates older records in fields(), as it migrates layout 1
# (LEGACY_MAGIC, the record before versions existed) today. A record nobody can read is
# memory_error; a migration never is.
#
# A save counts only when the flash confirmed it: only then does the guard's new reserve count
# (guard.saved()). A failure raises memory_error as a warning (AL_FLASH_FAILING) and delivery
# goes on within what the last good record covers; a later good save ends it.
from array import array

from firmware.bolus import SAVE_LEN as PB_SAVE_LEN
from firmware.codes import (AL_FLASH_FAILING, AL_MEMORY_ERROR, EV_MIGRATED, EV_SAVE_FAILED,
                            EV_SUSPEND_RESTORED)
from firmware.compat import TYPE_CHECKING, const
from firmware.guard import RESERVE, UNITS
from firmware.guard import SAVE_LEN as GUARD_SAVE_LEN
from firmware.history import SAVE_LEN as HIST_SAVE_LEN

if TYPE_CHECKING:
    from firmware.bolus import PatientBolusPolicy
    from firmware.guard import DoseGuard
    from firmware.hal import Log, SavePort
    from firmware.history import History
    from firmware.pump import Pump
    from firmware.reservoir import Reservoir
    from firmware.supervisor import Supervisor

LEGACY_MAGIC = const(0x5057)   # layout 1: [magic, flags, stop_left_ms, reservoir_nl, alarms,
                               # patient-bolus block, guard block]
STATE_MAGIC = const(0x5058)    # layouts 2 and later
STATE_VERSION = const(4)       # 4: layout 3 and the history's block after the guard's
_READER = const(3)             # the oldest layout whose firmware can read what this one writes
_FLAGS = const(4)              # _F_* below
_PHASE = const(5)              # ms to the next stroke when delivery stopped (the phase kept)
_RES = const(6)                # reservoir account, nL (one reserve short after an unclean stop)
_ALARMS = const(7)             # active alarm bits (not dose_limit: re-derived from the account)
_SUSP = const(8)               # ms left of a timed stop at the save (-1: none)
_TS = const(9)                 # pump clock (s since 2024-01-01) at the save
_FILL = const(10)              # the reservoir's fill block (FILL_LEN ints)
_HDR2_LEN = const(21)          # layout 2's header ended here (_FILL + FILL_LEN)
_SAVE_ID = const(21)           # the number of this save (the journal names the save it follows)
_G_W = const(22)               # the guard's phase: what a stroke weighs ...
_G_LEFT = const(23)            # ... for this many more strokes
_CATH = const(24)              # the reservoir's catheter block (CATH_LEN ints)
_STOP_S = const(36)            # how long delivery had been stopped at the save, s (-1: running)
HDR_LEN = const(37)
_HIST_AT = HDR_LEN + PB_SAVE_LEN + GUARD_SAVE_LEN
STATE_LEN = _HIST_AT + HIST_SAVE_LEN
_JOURNAL_LEN = const(2)         # [save number, strokes since it]
_LEGACY_LEN = 5 + PB_SAVE_LEN + GUARD_SAVE_LEN
_F_STOPPED = const(1)
_F_LOST = const(2)             # the dose account was lost: a reprogram states an assumption
_F_CLEAN = const(4)            # saved by an orderly shutdown (exact, no reserve)
_F_MEM_FLASH = const(8)        # memory_error was raised by failing saves, not a lost record
_DOSE_LIMIT_BIT = const(1 << 7)  # 1 << codes.AL_DOSE_LIMIT
_FLASH_BIT = const(1 << 17)      # 1 << codes.AL_FLASH_FAILING
# An unclean restart during a timed stop: the last save may be one periodic check and one late
# wake-up old, so the stop's remaining time is taken that much shorter (never longer).
_SUSPEND_SLACK_MS = const(60000)


def state_reservoir_nl(state):
    """The reservoir account held by a saved state record (either layout), or 0."""
    if state is None or len(state) < 7:
        return 0
    if state[0] == LEGACY_MAGIC:
        return state[3]
    return state[_RES] if state[0] == STATE_MAGIC else 0


def state_clock_ts(state):
    """The pump clock (s since 2024-01-01) saved with a state record (layout 2 on), or -1."""
    if state is None or len(state) <= _TS or state[0] != STATE_MAGIC:
        return -1
    return state[_TS]


def fields(src):
    """Where a stored record keeps what this firmware reads, migrated from whichever layout
    wrote it: (layout, flags, phase, index of the reservoir account, alarms, susp, ts, index
    of the fill block or -1, index of the catheter block or -1, index of the patient-bolus
    block), or None for a record no layout this firmware knows explains (memory_error)."""
    n = len(src)
    if n == _LEGACY_LEN and src[0] == LEGACY_MAGIC:
        # Layout 1 had no timed stops, clock, fill dates or bolus history: those start unknown.
        return (1, src[1] & _F_STOPPED, src[2], 3, src[4], -1, -1, -1, -1, 5)
    if n < 4 or src[0] != STATE_MAGIC or src[1] < 2 or src[2] > STATE_VERSION:
        return None
    h = src[3]
    if h < (HDR_LEN if src[1] >= 3 else _HDR2_LEN) or n < h + PB_SAVE_LEN + GUARD_SAVE_LEN:
        return None
    return (src[1], src[_FLAGS], src[_PHASE], _RES, src[_ALARMS], src[_SUSP], src[_TS], _FILL,
            _CATH if src[1] >= 3 else -1, h)


class Record:
    def __init__(self, port: "SavePort", log: "Log", pump: "Pump", sup: "Supervisor",
                 reservoir: "Reservoir", pb_policy: "PatientBolusPolicy",
                 guard: "DoseGuard", hist: "History") -> None:
        self.port = port        # save_state(buf) -> True when the flash holds it (the shell's)
        self.log = log
        self.pump = pump
        self.sup = sup
        self.res = reservoir
        self.pb_policy = pb_policy
        self.guard = guard
        self.hist = hist        # the therapy history (its block: the day's patient boluses)
        self.state = array("i", [0] * STATE_LEN)
        self.save_fails = 0     # state saves that failed in a row
        self._saving = False
        self.save_id = 0        # the number of the last save the flash confirmed
        # save_journal(buf) -> True when on flash (None: no journal)
        self.journal_port: "SavePort | None" = None
        self.jbuf = array("i", [0] * _JOURNAL_LEN)

    def save(self, clean=False, now=-1):
        """Write the state that must survive a restart (limits, lockouts, stop, alarms, the
        reservoir and its fill) to flash. True when the flash confirmed it."""
        if self._saving:
            return False
        pump = self.pump
        sup = self.sup
        if now < 0:
            now = pump.t
        pump._sync()
        st = self.state
        st[0] = STATE_MAGIC
        st[1] = STATE_VERSION
        st[2] = _READER
        st[3] = HDR_LEN
        save_id = (self.save_id + 1) & 0x3FFFFFFF
        st[_SAVE_ID] = save_id
        guard = self.guard
        st[_G_W] = guard.w
        st[_G_LEFT] = guard.left
        st[_STOP_S] = pump.stopped_s() if pump.stopped else -1
        flags = _F_STOPPED if pump.stopped else 0
        if self.guard.lost:
            flags |= _F_LOST
        if clean:
            flags |= _F_CLEAN
        if sup.mem_flash:
            flags |= _F_MEM_FLASH
        st[_FLAGS] = flags
        st[_PHASE] = pump.stop_left_ms
        # dose_limit is re-derived from the account, a failing flash from the next save
        st[_ALARMS] = sup.al.active & ~(_DOSE_LIMIT_BIT | _FLASH_BIT)
        if pump.stopped and pump.susp_s >= 0:
            left = pump._susp_left_ms(pump.t)
            st[_SUSP] = left if left > 0 else 0  # a stop that is over ends at the next boot
        else:
            st[_SUSP] = -1
        mono_s = pump.mono_s
        st[_TS] = pump.ts0 + mono_s
        # After an unclean restart assume the reserved strokes were delivered, as the guard does.
        self.res.save_into(st, _RES, _FILL, mono_s, 0 if clean else RESERVE * pump.stroke_nl)
        self.res.save_cath(st, _CATH)
        self.pb_policy.save_into(st, HDR_LEN, mono_s)
        self.guard.save_into(st, HDR_LEN + PB_SAVE_LEN, clean)
        self.hist.save_into(st, _HIST_AT)
        self._saving = True
        try:
            ok = self.port(st) is True
        finally:
            self._saving = False
        if ok:
            self.save_id = save_id
            self.guard.saved(clean)
            self.journal(0)     # nothing since this save (a restart before a stroke costs nothing)
            if self.save_fails:
                self.save_fails = 0
                sup.clear_alarm(AL_FLASH_FAILING, now)
            if sup.mem_flash:
                sup.mem_flash = False
                sup.clear_alarm(AL_MEMORY_ERROR, now)
            return True
        self.save_fails += 1
        if self.save_fails == 1:
            self.log.add(EV_SAVE_FAILED, now, 1, 0)
        sup.raise_alarm(AL_FLASH_FAILING, now)
        return False

    def journal(self, strokes):
        """Before a stroke: the flash must hold that at most `strokes` were given since the last
        save, or the stroke may not happen (the pump acts on False). True without a journal
        port: then the full record's reserve alone covers the stroke, as before the journal."""
        port = self.journal_port
        if port is None:
            return True
        j = self.jbuf
        j[0] = self.save_id
        j[1] = strokes
        try:
            return port(j) is True
        except OSError:
            return False

    def load(self, src, now, clock_ts, damaged, journal=None):
        """Restore the rooms from a stored record (and the journal written after it, if any).
        -1 if no layout explains it (nothing changed), 1 if a timed stop it holds is already
        over (the caller resumes), else 0."""
        f = fields(src)
        if f is None:
            return -1
        layout, flags, phase, res_at, alarms, susp, ts, fill_at, cath_at, at = f
        pump = self.pump
        if layout != STATE_VERSION:
            self.log.add(EV_MIGRATED, now, layout, STATE_VERSION)
        pump.set_stopped(bool(flags & _F_STOPPED))
        self.guard.lost = bool(flags & _F_LOST)
        self.sup.mem_flash = bool(flags & _F_MEM_FLASH)
        pump.stop_left_ms = phase
        self.sup.al.active = alarms
        # The clock tells how long the pump was off only if it did not go back since the save.
        counted = clock_ts >= 0 and ts >= 0 and clock_ts >= ts
        if clock_ts < 0:
            pump.ts0 = ts if ts >= 0 else 0  # time off not counted: dates run late, never early
        res = self.res
        guard = self.guard
        res.load_from(src, res_at, fill_at, pump.mono_s)
        res.load_cath(src, cath_at)
        self.pb_policy.load_from(src, at, pump.mono_s)
        guard.load_from(src, at + PB_SAVE_LEN)
        if layout < 3:
            guard.in_units()    # its buckets were strokes
        else:
            self.save_id = src[_SAVE_ID]
            guard.weigh(src[_G_LEFT], src[_G_W])
            pump.stopped_for(src[_STOP_S])
            if (journal is not None and not damaged and not flags & _F_CLEAN
                    and journal[0] == self.save_id and 0 <= journal[1] <= RESERVE):
                # The journal says how many of the reserve's strokes were given: the rest were
                # not, and come off the account (and back into the reservoir's).
                spare = RESERVE - journal[1]
                w = src[_G_W] if src[_G_W] > UNITS else UNITS
                guard.forget(spare * w)
                res.nl += spare * pump.stroke_nl
        hist_at = at + PB_SAVE_LEN + GUARD_SAVE_LEN
        if layout >= 4 and len(src) >= hist_at + HIST_SAVE_LEN:
            self.hist.load_from(src, hist_at)
        if not pump.stopped or susp < 0:
            return 0
        # A timed stop: what is left of it counts from this boot. The time since the save is
        # known only if the clock can tell (whole seconds: one more for the second in
        # progress); otherwise an unclean save may be up to one check and a late wake-up old,
        # and a fallback to the older record one more such interval.
        if counted:
            left = susp - (clock_ts - ts + 1) * 1000
        else:
            left = susp
            if not flags & _F_CLEAN:
                left -= pump.check_ms + _SUSPEND_SLACK_MS
            if damaged:
                left -= pump.check_ms + _SUSPEND_SLACK_MS
        self.log.add(EV_SUSPEND_RESTORED, now, left // 1000 if left > 0 else 0,
                     1 if counted else 0)
        if left <= 0:
            return 1
        pump.susp_s = left // 1000
        pump.susp_ms = left % 1000
        return 0
