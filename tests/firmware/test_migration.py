"""The state record's versions (firmware/pump.py, the top): today's firmware reads the record
of the firmware before versions (layout 1, 0x5057, real bytes in fixtures/, written by
fixtures/make_layout1.py with that firmware) and migrates it; it reads a later layout's record
by the fields it knows; only a record no layout explains is memory_error."""

from pathlib import Path

from firmware import codes
from firmware.bolus import SAVE_LEN as PB_SAVE_LEN
from firmware.guard import RESERVE, UNITS
from firmware.guard import SAVE_LEN as GUARD_SAVE_LEN
from firmware.history import SAVE_LEN as HIST_SAVE_LEN
from firmware.record import HDR_LEN, LEGACY_MAGIC, STATE_MAGIC, STATE_VERSION
from firmware.therapy import Therapy
from firmware.store import MemDev, RecordStore, unpack_ints
from tests.testboard import HealthyHal

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PARAMS = {"conc_ng_ml": 1_000_000, "steps": [[0, 500_000]], "max_daily_ng": 600_000,
          "low_res_nl": 19_900_000, "pb": [10_000, 600, 3600, 4]}


class Hal(HealthyHal):
    def __init__(self):
        HealthyHal.__init__(self)
        self.saved = None

    def save_state(self, buf):
        self.saved = list(buf)
        return True


class Log:
    def __init__(self):
        self.events = []

    def add(self, code, now, a, b):
        self.events.append((code, a, b))


def layout1_record():
    dev = MemDev()
    for slot in ("a", "b"):
        dev.files["state." + slot] = (FIXTURES / f"layout1_state.{slot}").read_bytes()
    store = RecordStore(dev, "state")
    payload = store.load()
    assert payload is not None and not store.corrupt
    return list(unpack_ints(payload))


def boot(state, params=PARAMS):
    hal, log = Hal(), Log()
    th = Therapy(hal, log, hal.save_state)
    th.boot(0, 0, params, state)
    return th, hal, log


def test_the_fixture_is_a_layout_1_record():
    rec = layout1_record()
    assert rec[0] == LEGACY_MAGIC == 0x5057 and len(rec) == 5 + PB_SAVE_LEN + GUARD_SAVE_LEN


def test_a_layout_1_record_is_migrated_with_every_limit_kept():
    th, hal, log = boot(layout1_record())
    assert (codes.EV_MIGRATED, 1, STATE_VERSION) in log.events
    assert not th.sup.alarms & (1 << codes.AL_MEMORY_ERROR) and not th.guard.lost
    assert th.pump.rx is not None                           # delivery can go on (after resume)
    assert th.pump.stopped                                  # it was stopped: it still is
    assert th.sup.alarms & (1 << codes.AL_RESERVOIR_LOW)
    assert th.reservoir.nl == 19_781_750 - 32 * 250    # the saved account (its reserve off)
    assert th.guard.total == (873 + 32) * UNITS        # 873 strokes given + the reserve
    assert th.pb_policy.count_since(th.pump.mono_s, 86_400) == 1   # the bolus at 2 h
    assert th.reservoir.fills == 1 and th.reservoir.fill_ts == -1 and th.reservoir.expires_ts() == -1
    # Saved again, the record is layout 2; booting from it migrates nothing.
    th.save()
    assert hal.saved[0] == STATE_MAGIC and hal.saved[1] == STATE_VERSION
    again, _, log2 = boot(hal.saved)
    assert not [e for e in log2.events if e[0] == codes.EV_MIGRATED]
    # (an unclean save: the reserve counts as given, in both accounts)
    assert again.guard.total == th.guard.total + RESERVE * UNITS and again.pump.stopped
    assert again.reservoir.nl == th.reservoir.nl - RESERVE * 250


def _record():
    th, hal, _ = boot(None)
    th.refill(0, 20_000_000)
    th.save()
    return hal.saved


def layout2_record():
    dev = MemDev()
    for slot in ("a", "b"):
        dev.files["state." + slot] = (FIXTURES / f"layout2_state.{slot}").read_bytes()
    store = RecordStore(dev, "state")
    payload = store.load()
    assert payload is not None and not store.corrupt
    return list(unpack_ints(payload))


def test_a_layout_2_record_is_migrated_to_the_account_in_drug_mass():
    """Layout 2 counted the guard in whole strokes (tests/firmware/fixtures/make_layout2.py made
    the record with that firmware): each is UNITS units now, the reserve too; the fill's date and
    stability and the timed stop are kept; the catheter, on a pump that was running, is full."""
    rec = layout2_record()
    assert rec[1] == 2
    params = dict(PARAMS, low_res_nl=2_000_000)
    th, hal, log = boot(rec, params)
    assert (codes.EV_MIGRATED, 2, STATE_VERSION) in log.events
    assert not th.sup.alarms & (1 << codes.AL_MEMORY_ERROR) and not th.guard.lost
    assert th.guard.total == (873 + RESERVE) * UNITS   # 873 strokes given + the reserve
    assert th.reservoir.nl == 19_781_750 - RESERVE * 250
    assert th.reservoir.fill_ts == 90_000_000 and th.reservoir.stable_s == 30 * 86400
    assert th.reservoir.catheter == 1 and th.reservoir.drug is None
    assert th.pump.stopped and th.pump.susp_s >= 0      # the timed stop goes on
    th.save()
    assert hal.saved[1] == STATE_VERSION                 # and it is saved in today's layout


def test_a_later_layouts_record_is_read_by_the_fields_this_firmware_knows():
    """A later layout might add a header field and a block after the last one: this firmware
    (an update that is rolled back, say) reads the rest as it is."""
    rec = _record()
    h = rec[3]
    later = rec[:h] + [777] + rec[h:] + [1, 2, 3]
    later[1] = STATE_VERSION + 1
    later[3] = h + 1
    th, _, log = boot(later)
    assert not th.sup.alarms & (1 << codes.AL_MEMORY_ERROR)
    assert th.reservoir.nl == 20_000_000 - 40 * 250
    assert (codes.EV_MIGRATED, STATE_VERSION + 1, STATE_VERSION) in log.events


def test_a_layout_3_record_is_read_without_the_historys_block():
    """Layout 4 added the therapy history's block (the day's patient boluses) after the
    guard's and nothing else: a layout-3 record has none, and the day's counts start at
    nothing; a layout-3 firmware (a rollback) reads a layout-4 record (its oldest reader)."""
    rec = _record()
    assert rec[1] == STATE_VERSION == 4 and rec[2] == 3
    old = rec[:-HIST_SAVE_LEN]
    old[1] = 3
    th, _, log = boot(old)
    assert not th.sup.alarms & (1 << codes.AL_MEMORY_ERROR)
    assert th.reservoir.nl == 20_000_000 - 40 * 250
    assert (codes.EV_MIGRATED, 3, STATE_VERSION) in log.events
    assert th.hist.pb[1:] == [0, 0, 0, 0]


def test_the_days_patient_boluses_survive_a_restart_in_the_record():
    rec = list(_record())
    rec[-HIST_SAVE_LEN:] = [812, 2, 1, 20_000, 500_000]
    th, _, log = boot(rec)
    assert th.hist.pb == [812, 2, 1, 20_000, 500_000]
    assert not [e for e in log.events if e[0] == codes.EV_MIGRATED]


def test_a_record_no_layout_explains_is_memory_error():
    rec = _record()
    for broken in (rec[:HDR_LEN], [0x1234] + rec[1:]):
        th, _, _ = boot(broken)
        assert th.sup.alarms & (1 << codes.AL_MEMORY_ERROR) and th.guard.lost
    newer = list(rec)
    newer[1] = newer[2] = STATE_VERSION + 1   # a layout only newer firmware may read
    th, _, _ = boot(newer)
    assert th.sup.alarms & (1 << codes.AL_MEMORY_ERROR)
