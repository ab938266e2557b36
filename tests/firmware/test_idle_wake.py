"""The control loop's idle wake-up (firmware/app.py run): a board's wait() that slept its time
out (returns False) costs a clock read and a watchdog feed; the pump is serviced when it said it
would need it, the serial line is read only when the board woke for it, and anything that woke
the loop early (a byte, a harness event: True) gets both at once."""

from tests.firmware.proto_bench import PARAMS, MemHal
from firmware.app import App


class IdleHal(MemHal):
    """Wakes for the watchdog only, unless the test queues bytes; counts what the loop asks.
    says_idle=False: a board whose wait() tells nothing (None), so the loop services and reads
    on every wake-up, as it did before."""

    def __init__(self, says_idle=True):
        MemHal.__init__(self)
        self.says_idle = says_idle
        self.reads = 0
        self.waits = []
        self.pending = b""
        self.stop_after = 0

    def read_into(self, buf):
        self.reads += 1
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def wait(self, ms):
        self.waits.append(ms)
        self.t += ms
        if len(self.waits) >= self.stop_after:
            self.app.quit = True
        return bool(self.pending) if self.says_idle else None


def running(cycles, params=None, says_idle=True):
    hal = IdleHal(says_idle)
    app = App(hal)
    hal.app = app
    app.boot()
    if params is not None:
        now = hal.ticks_ms()
        app.therapy.program(now, params)
        app.therapy.refill(now, 20_000_000)
    app.btn_until = None    # past the minute the button is watched after a boot
    serviced = []
    service = app.therapy.pump.service

    def counting(now):
        serviced.append(now)
        return service(now)
    app.therapy.pump.service = counting
    hal.stop_after = cycles
    app.run()
    return app, hal, serviced


def test_an_idle_pump_is_serviced_at_its_deadlines_not_at_every_watchdog_wake_up():
    app, hal, serviced = running(400)
    nap = hal.WDT_TIMEOUT_MS // 2
    assert max(hal.waits) == nap and len(hal.waits) == 400
    # Without therapy the pump asks to be looked at every few minutes (its checks), not every
    # nap: most wake-ups only feed the watchdog, and the line is read only on the first cycle.
    assert len(serviced) < len(hal.waits) // 10 and hal.reads == 1
    gaps = [b - a for a, b in zip(serviced, serviced[1:])]
    assert gaps and min(gaps) > nap


def test_a_byte_wakes_the_loop_into_a_read_and_a_service():
    app, hal, serviced = running(3)
    hal.pending = b'{"id": 7, "cmd": "ping"}\n'
    app.quit = False
    hal.stop_after = len(hal.waits) + 3
    before = len(serviced)
    app.run()
    assert b'"pong":true' in bytes(hal.out)
    assert len(serviced) - before >= 2 and hal.reads >= 2


def test_delivery_keeps_its_schedule_when_idle_wake_ups_skip_the_service():
    # 2 then 3 mg/day at 25 mg/mL: a stroke every 3 to 4.5 min, the loop sleeps past many naps.
    # The same strokes at the same instants as a loop that services on every wake-up.
    app, hal, serviced = running(2000, PARAMS)
    old, old_hal, old_serviced = running(2000, PARAMS, says_idle=False)
    assert app.therapy.pump.strokes == old.therapy.pump.strokes > 20 and hal.t == old_hal.t
    assert hal.waits == old_hal.waits and hal.strokes == old_hal.strokes
    assert len(serviced) < len(old_serviced) // 3 and hal.reads < old_hal.reads // 100


def test_the_checks_slices_run_in_wake_ups_of_their_own_far_from_any_stroke(tmp_path):
    """The memory's march and the code's hashes (firmware/selftest.py slice()) are the checks'
    long parts: the loop does each in a wake-up that serviced nothing due and read nothing,
    with the next deadline at least 30 ms away, and they still finish their passes."""
    from tests.firmware.test_selftest import codecheck_over

    hal = IdleHal()
    app = App(hal)
    hal.app = app
    app.boot()
    now = hal.ticks_ms()
    app.therapy.program(now, PARAMS)
    app.therapy.refill(now, 20_000_000)
    app.btn_until = None
    checks = app.therapy.checks
    files = {f"firmware/m{i}.py": bytes([65 + i]) * (300 + 97 * i) for i in range(4)}
    checks.code = codecheck_over(tmp_path, files)
    checks.code_slice = 256
    pump = app.therapy.pump
    service = pump.service
    slice_ = checks.slice
    busy_at = set()      # wake-ups whose service made a stroke or ran the check
    checks_at = []       # ... ran the check
    slices = []

    def counting(now):
        before = (pump.strokes, pump.check_at)
        wait = service(now)
        if (pump.strokes, pump.check_at) != before:
            busy_at.add(now)
        if pump.check_at != before[1]:
            checks_at.append(now)
        return wait

    def slicing(now):
        slices.append((now, pump.next_in_ms(now), checks_at[-1]))
        return slice_(now)
    pump.service = counting
    checks.slice = slicing
    hal.stop_after = 6000            # about 5 simulated hours of 4 s naps, strokes and checks
    app.run()
    assert checks.defer is True
    assert checks.passes[1] >= 4            # a memory pass an hour
    assert checks.passes[0] >= 5            # the code's four little files, pass after pass
    assert checks.failed == 0
    # each check owes a step of the code, and one an hour a slice of the memory (this board's
    # 16 cells take one): each in a wake-up of its own, right after the check's
    assert len(checks_at) >= 50 and checks.owed == 0
    assert len(checks_at) < len(slices) <= len(checks_at) + checks.passes[1]
    for now, room, check in slices:
        assert now not in busy_at           # never in the wake-up of a stroke or a check
        assert room >= 30                   # nor within 30 ms of the next deadline
        assert 0 < now - check <= 10
