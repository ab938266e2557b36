"""The pump checks itself (docs/alarms.md, "The self-test"): the memory march finds every stuck
bit and every slice of it adds up to a whole pass; the power-on self-test names the part that
failed and raises self_test_failed at the priority the part needs; the periodic checks read
DRV_STATUS (driver_hot, driver_fault) and the die's temperature (die_temperature) without ever
pausing therapy; the code's hashes are checked against the manifest, a slice at a time."""

import hashlib
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import codes, codetext, post
from firmware.codecheck import DIGEST, FAILED, PASSED, RUNNING, CodeCheck
from firmware.march import March
from firmware.selftest import (FAIL, P_BATTERY, P_DRIVER, P_MEMORY, P_PRESSURE, PASS, SKIP,
                               P_CODE, P_WATCHDOG)
from sim.faults import DRIVER_FAULTS, RamCells, die_raw
from tests.firmware.test_tones import HOUR, MIN, Hal, run

CHECK = 300_000


# ---- the march -------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 64), cell=st.integers(0, 63), bit=st.integers(0, 15),
       level=st.booleans())
def test_the_march_finds_every_stuck_bit(n, cell, bit, level):
    ram = RamCells(n)
    ram.stick(cell % n, bit, 1 if level else 0)
    m = March(ram)
    assert m.step(1 << 20) == FAILED
    assert m.bad_cell == cell % n
    assert m.bad_bits == 1 << bit


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 64), budget=st.integers(1, 40))
def test_a_march_in_slices_is_one_whole_pass(n, budget):
    m = March(array("H", [0x1234] * n))
    steps = 0
    while True:
        r = m.step(budget)
        steps += 1
        if r:
            break
    assert r == PASSED
    # nine elements visit each cell once (15 reads and writes in all), at most `budget` visits
    # a step
    assert steps == (9 * n + budget - 1) // budget
    assert m.step(1 << 20) == PASSED    # and the next pass starts afresh


# ---- the periodic checks ---------------------------------------------------------------------

class FaultHal(Hal):
    def __init__(self):
        Hal.__init__(self)
        self.drv = 0
        self.die_c = 37
        self.ram = RamCells(self.MEMTEST_CELLS)

    def driver_status(self):
        return self.drv

    def read_die_temp(self):
        return die_raw(self, self.die_c)


def faulty():
    hal = FaultHal()
    from firmware.therapy import Therapy
    from tests.firmware.test_tones import PARAMS, Log

    th = Therapy(hal, Log(), hal.save_state)
    th.boot(0, 0, PARAMS, None)
    th.refill(0, 20_000_000)
    return hal, th


def active(th):
    mask = th.sup.al.active
    return {codes.ALARM_NAMES[c] for c in codes.ALARM_NAMES if mask & (1 << c)}


def test_the_driver_pre_warning_is_a_warning_that_ends_by_itself():
    hal, th = faulty()
    run(hal, th, HOUR)
    strokes = hal.strokes
    hal.drv = DRIVER_FAULTS["otpw"]
    run(hal, th, CHECK + MIN)
    assert "driver_hot" in active(th)
    assert codes.priority(codes.AL_DRIVER_HOT) == "warning"
    run(hal, th, HOUR)
    assert hal.strokes > strokes          # delivery went on
    hal.drv = 0
    run(hal, th, CHECK + MIN)
    assert "driver_hot" not in active(th)


def test_a_driver_shutdown_or_short_is_critical_and_latched_until_resume():
    for fault in ("ot", "short"):
        hal, th = faulty()
        run(hal, th, HOUR)
        hal.drv = DRIVER_FAULTS[fault]
        run(hal, th, CHECK + MIN)
        assert "driver_fault" in active(th)
        strokes = hal.strokes
        run(hal, th, HOUR)
        assert hal.strokes == strokes       # no stroke while it lasts
        hal.drv = 0
        run(hal, th, HOUR)
        assert "driver_fault" in active(th)  # latched
        th.resume(hal.now)
        run(hal, th, HOUR)
        assert "driver_fault" not in active(th)
        assert hal.strokes > strokes


class StoppedDriverHal(FaultHal):
    """A driver that shut down or shorted moves nothing: DIAG says so (a stroke NOT_DONE)."""

    def stroke(self):
        if self.drv & 0x3E:
            return codes.NOT_DONE
        return FaultHal.stroke(self)


def test_a_stroke_that_fails_names_the_drivers_fault_at_once():
    """The stroke's motor_stall runs the periodic check at once (it sounds the alarm), and the
    check reads DRV_STATUS: the driver's fault is named with the stall, not at the next
    5-minute check."""
    for fault in ("ot", "short"):
        hal, th = faulty()
        hal.__class__ = StoppedDriverHal
        run(hal, th, HOUR)
        run(hal, th, th.pump.check_at - hal.now + 1)     # just past a check
        next_check = th.pump.check_at
        strokes = hal.strokes
        hal.drv = DRIVER_FAULTS[fault]
        while "motor_stall" not in active(th):
            run(hal, th, 1000)
        assert hal.now < next_check, "no stroke failed before the next check"
        assert "driver_fault" in active(th), fault    # named with the stall, not 5 min later
        assert hal.strokes == strokes


def test_a_silent_driver_or_an_open_coil_counts_after_three_checks_running():
    for flags in (-1, DRIVER_FAULTS["open"]):
        hal, th = faulty()
        run(hal, th, HOUR)
        hal.drv = flags
        run(hal, th, CHECK + MIN)
        assert "driver_fault" not in active(th)    # one check could be a glitch on the line
        run(hal, th, 3 * CHECK)
        assert "driver_fault" in active(th)


def test_a_hot_die_is_a_warning_with_hysteresis():
    hal, th = faulty()
    run(hal, th, HOUR)
    hal.die_c = hal.DIE_MAX_C + 5
    run(hal, th, CHECK + MIN)
    assert "die_temperature" in active(th)
    hal.die_c = hal.DIE_MAX_C - 1     # inside the band, but not 2 degC inside
    run(hal, th, 2 * CHECK)
    assert "die_temperature" in active(th)
    hal.die_c = 37
    run(hal, th, 2 * CHECK)
    assert "die_temperature" not in active(th)


def test_a_stuck_memory_bit_is_found_within_the_hour_and_stops_delivery():
    hal, th = faulty()
    run(hal, th, HOUR)
    hal.ram.stick(3, 7, 1)
    run(hal, th, HOUR + 2 * CHECK)
    assert "self_test_failed" in active(th)
    assert th.checks.failed == 1 << P_MEMORY
    strokes = hal.strokes
    run(hal, th, HOUR)
    assert hal.strokes == strokes
    hal.ram.unstick()                  # (a part that heals: the next pass clears it)
    run(hal, th, 2 * HOUR)
    assert "self_test_failed" not in active(th)
    assert hal.strokes > strokes


def test_the_periodic_memory_pass_runs_hourly():
    hal, th = faulty()
    run(hal, th, 5 * HOUR)
    assert 4 <= th.checks.passes[1] <= 6


# ---- the power-on self-test ------------------------------------------------------------------

class PostHal(FaultHal):
    NAME: str = "virtual"

    def __init__(self):
        FaultHal.__init__(self)
        self.version = 0x21
        self.pwm = True
        self.raw_p = None
        self.mv_b = None

    def ticks_ms(self):
        return self.now & 0x3FFFFFFF

    def driver_version(self):
        return self.version

    def buzzer_check(self):
        return self.pwm

    def read_pressure(self):
        return self.raw_p if self.raw_p is not None else FaultHal.read_pressure(self)

    def read_battery(self):
        if self.mv_b is not None:
            return self.mv_b * self.B_MV_DEN // self.B_MV_NUM + 1
        return FaultHal.read_battery(self)


class Log:
    def __init__(self):
        self.events = []

    def add(self, code, now, a, b):
        self.events.append((codetext.EVENT_NAMES.get(code, code), a, b))


def post_on(hal):
    from firmware.therapy import Therapy
    from tests.firmware.test_tones import PARAMS

    log = Log()
    th = Therapy(hal, log, hal.save_state)
    th.boot(0, 0, PARAMS, None)
    failed = post.run(th.checks, 0, hal, None, "base", None, None, None)
    return th, log, failed


def test_a_healthy_board_passes_every_part_it_has():
    th, log, failed = post_on(PostHal())
    out = th.checks.outcome
    assert failed == 0
    assert [out[p] for p in (P_MEMORY, P_DRIVER, P_PRESSURE, P_BATTERY)] == [PASS] * 4
    assert out[P_CODE] == SKIP and out[P_WATCHDOG] == SKIP   # no files here: nothing to prove
    assert [e for e in log.events if e[0] == "self_test"] == [
        ("self_test", (1 << P_MEMORY) | (1 << P_DRIVER) | (1 << P_PRESSURE) | (1 << P_BATTERY)
         | (1 << 5), 0)]
    assert "self_test_failed" not in active(th)


def test_a_failed_part_is_named_and_critical_when_delivery_needs_it():
    cases = [("memory", P_MEMORY, "critical"), ("silent", P_DRIVER, "critical"),
             ("version", P_DRIVER, "critical"), ("pressure", P_PRESSURE, "critical"),
             ("battery", P_BATTERY, "warning"), ("buzzer", 5, "warning")]
    for what, part, priority in cases:
        hal = PostHal()
        if what == "memory":
            hal.ram.stick(1, 0, 0)
            hal.ram.cells[1] = 0    # (the march writes before it reads)
        elif what == "silent":
            hal.version = -1
        elif what == "version":
            hal.version = 0x20
        elif what == "pressure":
            hal.raw_p = hal.P_RAW_MAX + 1
        elif what == "battery":
            hal.mv_b = hal.B_MV_MAX + 200
        else:
            hal.pwm = False
        th, log, failed = post_on(hal)
        assert failed == 1 << part, what
        assert th.checks.outcome[part] == FAIL
        assert ("self_test_failed", part, th.checks.detail[part]) in log.events, what
        alarms = th.sup.al.active
        code = codes.AL_SELF_TEST if priority == "critical" else codes.AL_SELF_TEST_WARN
        assert alarms & (1 << code), what
        assert codes.ALARM_NAMES[code] == "self_test_failed"
        assert codes.priority(code) == priority


def test_the_report_says_when_what_passed_and_each_parts_outcome():
    from firmware import testreport

    hal = PostHal()
    hal.mv_b = hal.B_MV_MAX + 200
    th, _, _ = post_on(hal)
    rep = testreport.report(th.checks)
    assert rep["passed"] is False
    assert rep["failing"] == ["battery"]
    assert rep["parts"]["battery"]["outcome"] == "fail"
    assert rep["parts"]["battery"]["critical"] is False
    assert rep["parts"]["memory"] == {"outcome": "pass", "critical": True, "found": "all cells"}
    assert rep["parts"]["driver"]["found"] == "TMC2209 answered, configured, DRV_STATUS 000"
    assert rep["when_ts"] >= 0 and rep["ms"] >= 0


# ---- the code against its manifest -------------------------------------------------------------

class Dir:
    def __init__(self, root):
        self.root = str(root)

    def path(self, name):
        return self.root + "/" + name


def codecheck_over(tmp_path, files):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    names = sorted(files)
    digests = bytearray()
    for n in names:
        digests += hashlib.sha256(files[n]).digest()[:DIGEST]
    return CodeCheck(None, "base", Dir(tmp_path), "\n".join(names),
                     [len(files[n]) for n in names], digests, "id")


def test_the_code_check_finds_a_changed_file_whole_or_in_slices(tmp_path):
    files = {"firmware/a.py": b"x" * 1000, "firmware/b.py": b"y" * 300, "boards/c.py": b"z"}
    cc = codecheck_over(tmp_path, files)
    assert cc.full() == PASSED
    rounds = 0
    while (r := cc.step(256)) == RUNNING:
        rounds += 1
    assert r == PASSED and rounds >= 3
    (tmp_path / "firmware/b.py").write_bytes(b"y" * 299 + b"Y")
    assert cc.full() == FAILED
    assert cc.name(cc.bad) == "firmware/b.py"
    (tmp_path / "firmware/b.py").write_bytes(b"y" * 301)     # longer than the manifest says
    assert cc.full() == FAILED
    (tmp_path / "firmware/b.py").unlink()
    assert cc.full() == FAILED
