# The therapy history's pages on flash (firmware/history.py holds the rest): loaded only while
# an entry is written, `history` is answered or the pump boots, then dropped again. Functions
# of the History object `h`; what must last between two loads is in h.pages, a list (an object
# of a class defined here would keep this module's code alive): [the open page's number, the
# seq of its first entry, the seq of the next entry written, the carry as written, the closed
# pages (read when first needed: [page, first seq, entries] by slot), the last program
# (number, ng/day, nL/day, cap: entries still waiting included)].
#
# Pages, and what a power cut can do to them. Entries go into the open page, a record of its
# own in A/B slots (`hist.a`, `hist.b`), rewritten whole with each new entry: a cut write
# leaves the page as it was before that entry. When the open page is full it is copied into the
# ring of PAGES closed pages (page p in the file `hist%02d` % (p % PAGES), read back before it
# counts) and the next page opens. A closed slot is written once per turn of the ring, over the
# oldest page: a cut write there can only lose the page that was being dropped anyway, and
# until the copy reads back the full page is still the open one, so nothing else is at risk.
# No more than one page is in RAM at a time.
#
# Page payload (little-endian), checked by the store's layout (firmware/store.py): HEAD_FMT =
# magic b"HPG1", page number, seq of its first entry, then the carry, what its entries leave
# behind: the last program's number, its basal in ng/day and nL/day, its daily maximum in ng,
# the last day summarised (pump-clock day); then the entries, each ENTRY_FMT = kind (the index
# of its name in KINDS), by (_BY_* | _RECOVERED), the count of its ints, 0, the notes' length,
# the pump clock (s); its ints (FIELDS names them), the notes (compact JSON, UTF-8). Sizes, and
# the rate of entries 400 days hold: docs/formats.md, "The therapy history".
import struct

from firmware import wirejson as json
from firmware.codes import EV_HISTORY_FAILED, EV_HISTORY_LOST
from firmware.compat import const
from firmware.store import RecordStore, _holds, decode, encode

PAGES = const(22)          # closed pages in the ring: with the open page, ~90 KB of entries
_PAGE_MAX = const(4080)     # bytes of a page: with the store's 16, one 4 KB littlefs block
_READ_BUDGET = const(2400)  # bytes of entries and notes one `history` reply carries at most
_READ_MAX = const(20)       # entries one `history` reply carries at most
HEAD_FMT = "<4s7i"
HEAD_LEN = const(32)
ENTRY_FMT = "<BBBBHi"
ENTRY_LEN = const(10)      # without its ints and notes
MAGIC = b"HPG1"
OPEN = "hist"              # the open page's record (A/B)
BY = ("pump", "patient", "clinician")
_BY_PUMP = const(0)
_BY_PATIENT = const(1)
_BY_CLINICIAN = const(2)
_RECOVERED = const(0x80)    # a program found in the settings at boot, not written as it began
KINDS = (None, "program", "refill", "catheter", "prime", "bridge", "clinician_bolus", "stop",
         "resume", "patient_boluses", "lost")
_DOSE = ("dose_nl", "duration_ms", "conc_ng_ml")
FIELDS = (
    (),
    ("program", "conc_ng_ml", "basal_ng_day", "basal_nl_day", "max_daily_ng",
     "old_basal_ng_day", "old_basal_nl_day", "old_max_daily_ng"),
    ("volume_nl", "conc_ng_ml", "residual_nl", "expected_nl", "stable_s", "discrepancy"),
    ("catheter_nl",),
    _DOSE, _DOSE, _DOSE,
    ("for_s",),
    ("auto",),
    ("given", "denied", "volume_nl", "mass_ng"),
    ("entries",),
)
# The notes a program, refill or catheter keeps from the host's `meta` (512 bytes at most).
NOTES = ("drug", "units", "concentration", "library", "titration_override", "model")
_ID_MAX = const((1 << 30) - 1)
_PAGE = const(0)           # h.pages: the open page's number,
_FIRST = const(1)          # the seq of its first entry,
_WRITTEN = const(2)        # of the next entry written,
_CARRY = const(3)          # the carry as written,
_SLOTS = const(4)          # the closed pages (None until read),
_PROG = const(5)           # the last program, entries waiting included
_H_PROGRAM = const(1)      # KINDS.index("program")
_H_PB_DAY = const(9)       # KINDS.index("patient_boluses")


def _i32(v):
    return 0x7FFFFFFF if v > 0x7FFFFFFF else -0x80000000 if v < -0x80000000 else v


def basal_ng_day(steps):
    """A day of the schedule's basal in ng, to the nearest ng (steps: [start_min, ng/day])."""
    total = 0
    n = len(steps)
    for i in range(n):
        end = steps[i + 1][0] if i + 1 < n else 1440
        total += steps[i][1] * (end - steps[i][0])
    return (total + 720) // 1440


def notes(meta):
    """The notes kept from a `meta` object, as bytes (b"" when none)."""
    if type(meta) is not dict:
        return b""
    keep = {}
    for k in NOTES:
        if k in meta:
            keep[k] = meta[k]
    return json.dumps(keep).encode() if keep else b""


def _size(data, off):
    """The bytes of the entry at `off`."""
    return ENTRY_LEN + 4 * data[off + 2] + (data[off + 4] | data[off + 5] << 8)


def _page(data):
    """(page number, first seq, entry offsets) of a page's bytes, or None if it is not one."""
    if not data or len(data) < HEAD_LEN or data[:4] != MAGIC:
        return None
    offs = []
    off = HEAD_LEN
    n = len(data)
    while off + ENTRY_LEN <= n:
        offs.append(off)
        off += _size(data, off)
    if off != n:
        return None
    h = struct.unpack_from("<ii", data, 4)
    return h[0], h[1], offs


# ---- flash ---------------------------------------------------------------------------------
def _open(h):
    """The open page's store and payload (None: there is none; b"": one is there and does not
    verify)."""
    rs = RecordStore(h.port.dev, OPEN)
    data = rs.load()
    return rs, b"" if data is None and rs.corrupt else data


def _load(h, page):
    """A page's payload: page -1 the open one, else a closed one (None and b"" as _open)."""
    if page < 0:
        return _open(h)[1]
    raw = h.port.dev.read("hist%02d" % page)
    rec = decode(raw)
    return (b"" if raw is not None else None) if rec is None else rec[1]


def _save(h, rs, page, payload, tail):
    """Write a page (the open one through its store rs); True when the flash holds it (a
    MemoryError is the caller's failure: the entry waits)."""
    try:
        if page < 0:
            return rs.save(payload, tail)
        dev = h.port.dev
        path = "hist%02d" % page
        rec = encode(0, payload, tail)
        dev.write(path, rec)
        return _holds(dev, path, rec)
    except OSError:
        return False


# ---- boot ----------------------------------------------------------------------------------
def _state(h, now):
    """h.pages, read from the flash first if it has not been yet."""
    if h.pages is None:
        load(h, now)
    return h.pages


def load(h, now):
    st = [0, 0, 0, [0, -1, -1, -1, -1], None, None]
    data = _load(h, -1)
    p = _page(data)
    if p is not None:
        st[_PAGE], st[_FIRST], offs = p
        st[_WRITTEN] = st[_FIRST] + len(offs)
        st[_CARRY] = list(struct.unpack_from("<5i", data, 12))
    elif data is not None:
        # The open page is damaged: go on after the newest closed page, and say so.
        st[_SLOTS] = slots = _scan(h)
        best = -1
        for i in range(PAGES):
            if slots[i][0] > best:
                best = slots[i][0]
                st[_FIRST] = st[_WRITTEN] = slots[i][1] + slots[i][2]
                st[_CARRY] = list(struct.unpack_from("<5i", _load(h, i), 12))
        st[_PAGE] = best + 1
        h.log.add(EV_HISTORY_LOST, now, st[_PAGE], -1)
        h.pending.insert(0, ("lost", h.port.clock_ts(now), (-1,)))
    st[_PROG] = st[_CARRY][:4]
    h.pages = st


def recover(h, now, tag, params, rx):
    """At boot: the settings hold program tag[0], programmed at pump clock tag[1]. A program
    that took effect without its entry (a power cut between the settings and the history) is
    added from them, marked recovered; programs missing before it are counted as lost."""
    last = _state(h, now)[_PROG][0]
    number, ts = tag
    if type(number) is not int or number <= last:
        return
    if number > last + 1:
        h.add("lost", ts, (number - last - 1,), now)
    h.add("program", ts, (params, rx, _RECOVERED, number), now)


def next_program(h, now):
    """The number the next program gets (the settings carry it for recover())."""
    n = _state(h, now)[_PROG][0] + 1
    for e in h.pending:
        if type(e) is tuple and e[0] == "program":
            n += 1
    return n


# ---- writing -------------------------------------------------------------------------------
def flush(h, now):
    """Write the entries that wait; the first the flash refuses waits on (with the rest)."""
    st = _state(h, now)
    pending = h.pending
    while pending:
        e = _made(h, st, 0, now)
        if e and not _write(h, st, e, now):
            raise OSError("the flash did not take a history page")   # (h.run logs it)
        pending.pop(0)


def _made(h, st, i, now):
    """The entry pending[i] as bytes (made from its note the first time). A note no entry can
    be made of (a kind or arguments this code does not know: a bug) is said in the log and
    counted as dropped, never left to hold up the ones after it."""
    e = h.pending[i]
    if type(e) is tuple:
        try:
            e = _entry(h, st, e)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            h.dropped += 1
            h.log.add(EV_HISTORY_FAILED, now, len(h.pending), h.dropped)
            e = b""
        h.pending[i] = e
    return e


def _entry(h, st, note):
    """An entry's bytes from a note (kind, ts, args) as the therapy room gave it (b"" for a
    day's summary the flash has already: a restart from a state record saved before it)."""
    kind, ts, args = note
    k = KINDS.index(kind)
    by = _BY_CLINICIAN
    text = b""
    if k == _H_PROGRAM:
        params, rx = args[0], args[1]
        p = st[_PROG]
        ints = (args[3] if len(args) > 3 else p[0] + 1, rx.conc_ng_ml,
                basal_ng_day(params["steps"]), rx.basal_nl_day, params["max_daily_ng"],
                p[1], p[2], p[3])
        st[_PROG] = [_i32(ints[0]), _i32(ints[2]), _i32(ints[3]), _i32(ints[4])]
        text = notes(params.get("meta"))
        if len(args) > 2:
            by |= args[2]
    else:
        ints = args
        if ints and type(ints[-1]) is not int:   # a meta object last: its notes
            text = notes(ints[-1])
            ints = ints[:-1]
        if k == _H_PB_DAY:
            if ts // 86400 == st[_CARRY][4]:
                return b""
            by = _BY_PATIENT
        elif kind == "lost" or kind == "resume" and ints[0]:
            by = _BY_PUMP
    n = len(ints)
    e = bytearray(ENTRY_LEN + 4 * n + len(text))
    struct.pack_into(ENTRY_FMT, e, 0, k, by, n, 0, len(text), ts)
    for i in range(n):
        struct.pack_into("<i", e, ENTRY_LEN + 4 * i, _i32(ints[i]))
    e[ENTRY_LEN + 4 * n:] = text
    return e


def _write(h, st, e, now):
    rs, data = _open(h)
    p = _page(data)
    if data is None or p is None:
        # No open page yet, or it was damaged since the boot: a fresh one goes on from here.
        if st[_WRITTEN] > st[_FIRST]:
            h.log.add(EV_HISTORY_LOST, now, st[_PAGE], st[_WRITTEN] - st[_FIRST])
        page, first, n, data = st[_PAGE], st[_WRITTEN], 0, b""
    else:
        page, first, offs = p
        n = len(offs)
        if len(data) + len(e) > _PAGE_MAX:
            if not _save(h, rs, page % PAGES, data, b""):
                return False
            if st[_SLOTS] is not None:
                st[_SLOTS][page % PAGES] = [page, first, n]
            page += 1
            first += n
            n = 0
    buf = bytearray(data) if n else bytearray(HEAD_LEN)
    # The carry: what the written entries leave behind (never an entry still waiting).
    c = list(struct.unpack_from("<5i", data, 12)) if data else list(st[_CARRY])
    if e[0] == _H_PROGRAM:
        c[0] = struct.unpack_from("<i", e, ENTRY_LEN)[0]
        c[1], c[2], c[3] = struct.unpack_from("<3i", e, ENTRY_LEN + 8)
    elif e[0] == _H_PB_DAY:
        c[4] = struct.unpack_from("<i", e, 6)[0] // 86400
    struct.pack_into(HEAD_FMT, buf, 0, MAGIC, page, first, c[0], c[1], c[2], c[3], c[4])
    if not _save(h, rs, -1, buf, e):
        return False
    st[_PAGE] = page
    st[_FIRST] = first
    st[_WRITTEN] = first + n + 1
    st[_CARRY] = c
    return True


# ---- reading -------------------------------------------------------------------------------
def _scan(h):
    """The closed pages' numbers and ranges, by slot ([-1, 0, 0]: none, or damaged)."""
    slots = []
    for i in range(PAGES):
        p = _page(_load(h, i))
        ok = p is not None and p[0] % PAGES == i
        slots.append([p[0], p[1], len(p[2])] if ok else [-1, 0, 0])
    return slots


def _slots(st, h):
    if st[_SLOTS] is None:
        st[_SLOTS] = _scan(h)
    return st[_SLOTS]


def _held(st, s):
    """Whether a closed slot holds one of the pages the ring keeps now."""
    return 0 <= s[0] and st[_PAGE] - PAGES <= s[0] < st[_PAGE]


def oldest(h, now=0):
    """The seq of the oldest entry held."""
    st = _state(h, now)
    best = st[_FIRST]
    for s in _slots(st, h):
        if _held(st, s) and s[1] < best:
            best = s[1]
    return best


def total(h, now=0):
    """Entries ever added (the seq the next one gets)."""
    return _state(h, now)[_WRITTEN] + len(h.pending)


def _arg(args, key, lo, hi, default):
    v = args.get(key, default)
    if type(v) is not int or v < lo or v > hi:
        raise ValueError("%s must be an integer from %d to %d" % (key, lo, hi))
    return v


def reply(h, now, args):
    """`history`: the entries from `since` (the oldest held by default), or the `last` few, at
    most `max`, from one page; the range held and what waits (docs/protocol.md). A bad
    argument: {"error": why}."""
    first = oldest(h, now)
    end = total(h, now)
    try:
        most = _arg(args, "max", 1, _READ_MAX, _READ_MAX)
        if "last" in args:
            since = end - _arg(args, "last", 1, _READ_MAX, 0)
        else:
            since = _arg(args, "since", 0, _ID_MAX, first)
    except ValueError as e:
        return {"error": str(e)}
    rows, nxt = read(h, since if since > first else first, most)
    pb = h.pb
    today = None
    if pb[0] >= 0:
        today = {"day_ts": pb[0] * 86400, "given": pb[1], "denied": pb[2], "volume_nl": pb[3],
                 "mass_ng": pb[4]}
    return {"entries": rows, "next": nxt, "total": end, "first": first,
            "unsaved": len(h.pending), "dropped": h.dropped, "today": today}


def read(h, since, most, now=0):
    """Entries from seq `since` on, from one page at most: (rows, the seq after them)."""
    st = _state(h, now)
    written = st[_WRITTEN]
    rows = []
    if since >= written:
        k = since - written
        while k < len(h.pending) and len(rows) < most:
            e = _made(h, st, k, now)
            if e:
                rows.append(_row(written + k, e, 0, True))
            k += 1
        return rows, written + k
    data = None
    first = st[_FIRST]
    if since < first:
        nxt = first        # where the range after `since` picks up again
        slots = _slots(st, h)
        for i in range(PAGES):
            s = slots[i]
            if not _held(st, s):
                continue
            if s[1] <= since < s[1] + s[2]:
                data = _load(h, i)
                first = s[1]
            elif since < s[1] < nxt:
                nxt = s[1]
        if _page(data) is None:
            # a page that is gone or damaged: how many entries could not be read
            return [{"seq": since, "kind": "lost", "by": "pump", "entries": nxt - since}], nxt
    else:
        data = _load(h, -1)
    p = _page(data)
    if p is None:
        return [{"seq": since, "kind": "lost", "by": "pump",
                 "entries": written - since}], written
    offs = p[2]
    k = since - first
    spent = 0
    while k < len(offs) and len(rows) < most and spent < _READ_BUDGET:
        rows.append(_row(first + k, data, offs[k], False))
        spent += _size(data, offs[k])
        k += 1
    return rows, first + k


def _row(seq, data, off, unsaved):
    kind, by, nv, _, n, ts = struct.unpack_from(ENTRY_FMT, data, off)
    names = FIELDS[kind] if kind < len(FIELDS) else ()
    row = {"seq": seq, "ts": ts, "kind": KINDS[kind] if 0 < kind < len(KINDS) else str(kind),
           "by": BY[by & 3] if by & 3 < 3 else str(by & 3)}
    for i in range(nv):
        v = struct.unpack_from("<i", data, off + ENTRY_LEN + 4 * i)[0]
        row[names[i] if i < len(names) else "v%d" % i] = v
    if by & _RECOVERED:
        row["recovered"] = True
    if unsaved:
        row["unsaved"] = True
    if n:
        at = off + ENTRY_LEN + 4 * nv
        try:
            row["notes"] = json.loads(bytes(data[at:at + n]).decode())
        except ValueError:   # (UnicodeError is one on both runtimes)
            row["notes"] = None
    return row
