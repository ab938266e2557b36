# The therapy history: what changed in a patient's therapy, when, by whom and why, kept for at
# least 400 days apart from the event log (a 200-entry ring that forgets a program within
# weeks). Programs (with the host's notes: the drug, the drug library's version, the override
# reason), refills, catheter revisions, primes, bridges, clinician boluses, stops and resumes
# are entries of their own; patient boluses are summed up per day of the pump clock (given,
# denied, volume, mass).
#
# This is the resident half: what the therapy room calls (note(), patient_bolus()), the day's
# patient-bolus counts (its block of the state record) and the entries waiting for the flash.
# The pages on flash and their reading are firmware/histpages.py's, loaded only for the call
# that needs it (an entry written, `history` answered, the boot: run()) and dropped again: its
# code would otherwise cost the Pico ~6 KB of a heap that must keep 110 KiB free while
# delivering. Nothing here runs on the stroke path; roll(), which the shell calls hourly,
# allocates nothing unless it writes.
#
# Never lost, never in therapy's way: an entry waits in RAM (_PENDING_MAX at most) until the
# flash has it, is retried with the next entry and hourly, logged (history_failed) and shown by
# `history` (unsaved) meanwhile; nothing here raises into a command or waits for the flash.
#
# The kinds of entry, with what note() takes after `now` for each (histpages.FIELDS names the
# ints as `history` shows them):
#   "program"          params, rx: a prescription took effect (settings as stored, Rx)
#   "refill"           volume_nl, conc_ng_ml (0: unchanged), residual_nl (-1: none measured),
#                      expected_nl (the pump's account before), stable_s, discrepancy (1:
#                      the residual was off the account: refill_discrepancy), meta (or None)
#   "catheter"         catheter_nl (0: not known), meta (or None): a new or revised catheter
#   "prime", "bridge", "clinician_bolus"   dose_nl, duration_ms, conc_ng_ml: a bolus started
#   "stop"             for_s (0: until resumed)
#   "resume"           auto (1: a timed stop ended by itself, the pump's doing)
#   "patient_boluses"  given, denied, volume_nl, mass_ng: a day's, written at its end (roll())
import sys

from firmware.codes import EV_HISTORY_FAILED
from firmware.compat import const

SAVE_LEN = const(5)        # the state record's block: [day, given, denied, volume nL, mass ng]
_PENDING_MAX = const(16)    # entries kept in RAM while the flash refuses them
_DAY_S = const(86400)
_SAT = const(0x3FFFFFFF)   # a day's sums saturate here (small ints on a 32-bit VM)


class History:
    def __init__(self, port, log):
        """port: the shell (its files `dev`, and clock_ts(now): firmware/hal.pyi HistoryPort),
        or None: nothing is kept (the simulator); log: add(code, now, a, b)."""
        self.port = port
        self.log = log
        self.pending = []      # entries the flash has not taken yet, oldest first
        self.fails = 0         # failed writes in a row
        self.dropped = 0       # entries lost because too many were waiting
        self.pages = None      # what the page logic keeps between its loads (histpages.load)
        self.pb = [-1, 0, 0, 0, 0]  # the day's patient boluses: [day, given, denied, nL, ng]

    def note(self, kind, now, *args):
        """An entry of `kind` (above) now."""
        if self.port is not None:
            self.add(kind, self.port.clock_ts(now), args, now)

    def patient_bolus(self, now, reason, dose_nl, conc_ng_ml):
        """A patient bolus asked for: given (reason 0, dose_nl at conc_ng_ml) or denied. Only
        counted (the state record keeps the counts); the day's entry comes at its end."""
        if self.port is not None:
            self.roll(now)
            pb = self.pb
            if reason:
                pb[2] += 1
            else:
                pb[1] += 1
                pb[3] = min(pb[3] + dose_nl, _SAT)
                pb[4] = min(pb[4] + dose_nl * conc_ng_ml // 1000000, _SAT)

    def roll(self, now):
        """Close the day's patient-bolus summary once the pump clock is past it, and try the
        entries that wait again (the shell calls it hourly, and at boot)."""
        if self.port is None:
            return
        pb = self.pb
        day = self.port.clock_ts(now) // _DAY_S
        if day != pb[0]:
            self.pb = [day, 0, 0, 0, 0]
            if pb[1] or pb[2]:
                self.add("patient_boluses", pb[0] * _DAY_S, pb[1:], now)
        elif self.pending:
            self.run("flush", now)

    def add(self, kind, ts, args, now):
        if len(self.pending) < _PENDING_MAX:
            self.pending.append((kind, ts, args))
            self.run("flush", now)
        else:
            self.dropped += 1
            self.log.add(EV_HISTORY_FAILED, now, len(self.pending), self.dropped)

    def run(self, name, now, *args):
        """firmware/histpages.py's `name`(self, now, *args), loaded for the call and dropped
        after; what it returns, or None when it failed (no heap to load it, a flash that does
        not take a page: logged once a run of failures, the entries wait)."""
        try:
            import firmware.histpages
            got = getattr(firmware.histpages, name)(self, now, *args)
            self.fails = 0
            return got
        except Exception:
            self.fails += 1
            if self.fails == 1:
                self.log.add(EV_HISTORY_FAILED, now, len(self.pending), self.dropped)
        finally:
            sys.modules.pop("firmware.histpages", None)
            import firmware
            if hasattr(firmware, "histpages"):
                delattr(firmware, "histpages")   # its code leaves the heap at the next collection

    # ---- its block of the state record (firmware/record.py places it) ---------------------------
    def save_into(self, out, at):
        for i in range(SAVE_LEN):
            out[at + i] = self.pb[i]

    def load_from(self, src, at):
        self.pb = [src[at]] + [max(src[at + i], 0) for i in range(1, SAVE_LEN)]
