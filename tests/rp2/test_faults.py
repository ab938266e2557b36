"""Faults on the emulated Pico's bench reach the firmware through its real pins: the pressure
ADC, the driver's DIAG line, the watchdog; the alarms they raise sound on the buzzer's PWM."""

from tests.rp2.pico import STROKE_NL


def test_an_occlusion_raises_the_alarm_from_the_pressure_adc_and_sounds_it(pico):
    pico.program()
    at_s = pico.inject("advance", "10 min")["virtual_time_s"]
    pico.inject("occlusion")
    # The catheter holds what the strokes push: the outlet pressure read on ADC0 climbs stroke
    # by stroke until the pump stops.
    pico.inject("advance", "1h")
    st = pico.status()
    assert {"code": "occlusion", "priority": "critical", "acked": False} in st["alarms"]
    assert st["delivering"] is False
    truth = pico.inject("truth")
    assert truth["pressure_kpa"] >= 25   # boards/pico.py OCCLUSION_PA
    # The critical pattern (two alternating notes on the buzzer's PWM), every 10 minutes while
    # unacknowledged: 5 or 6 in the hour, and no other pattern.
    played = [p for t, p in truth["tone_trace"] if t >= at_s]
    assert played == [1] * len(played) and 5 <= len(played) <= 6
    strokes = truth["strokes"]
    pico.inject("advance", "30 min")
    assert pico.inject("truth")["strokes"] == strokes   # nothing more into the occlusion
    pico.inject("clear_occlusion")
    pico.inject("advance", "10 min")
    assert pico.status()["delivering"] is True


def test_a_motor_stall_before_the_first_step_is_retried_then_alarmed(pico):
    """DIAG already up when the driver is enabled: nothing moved (stroke() answers False), so
    the firmware tries again, twice (boards/pico.py STALL_RETRIES), then motor_stall."""
    pico.program()
    pico.inject("advance", "10 min")
    before = pico.inject("truth")
    pico.inject("motor_stall", "at_step=0")
    pico.inject("advance", "1h")
    st = pico.status()
    assert {"code": "motor_stall", "priority": "critical", "acked": False} in st["alarms"]
    truth = pico.inject("truth")
    assert truth["delivered_nl"] == before["delivered_nl"]   # a jammed head moves nothing
    assert st["strokes"] * STROKE_NL == truth["delivered_nl"]
    # Not one pulse went out (the bench reports only the enable windows with pulses in them),
    # and nothing is counted as uncertain: nothing moved.
    assert truth["pulses"] == before["pulses"] and truth["failed_strokes"] == 0
    assert st["strokes_uncertain"] == 0


def test_a_motor_stall_partway_is_uncertain_counted_as_given_and_not_retried(pico):
    """A jammed rotor raises DIAG a few steps in (StallGuard): some drug may have moved, so
    stroke() answers 2 (uncertain, boards/__init__.py). The firmware counts it against the dose
    guard and the reservoir account as given, does not try again (that could give more than a
    stroke in all), and raises motor_stall."""
    pico.program()
    pico.inject("advance", "10 min")
    before = pico.inject("truth")
    pico.inject("motor_stall")               # DIAG at step 5 (sim/rp2bench.py STALL_AT_STEP)
    pico.inject("advance", "1h")
    st = pico.status()
    assert {"code": "motor_stall", "priority": "critical", "acked": False} in st["alarms"]
    truth = pico.inject("truth")
    assert truth["delivered_nl"] == before["delivered_nl"]
    assert st["strokes"] * STROKE_NL == truth["delivered_nl"]   # not counted as a whole stroke
    assert truth["failed_strokes"] == 1 and st["strokes_uncertain"] == 1


def test_a_stall_signalled_at_the_last_step_is_not_counted_as_delivered(pico):
    """Regression: stroke() looked at DIAG only while it waited for the PIO, which on the
    emulator finishes a stroke's pulses in one burst: a stall raised at the last pulse was
    counted as a stroke delivered. It is an uncertain stroke now (the guard counts it)."""
    pico.program()
    pico.inject("advance", "10 min")
    pico.inject("motor_stall", "at_step=25")
    pico.inject("advance", "1h")
    st = pico.status()
    truth = pico.inject("truth")
    assert "motor_stall" in {a["code"] for a in st["alarms"]}
    assert st["strokes"] * STROKE_NL == truth["delivered_nl"]
    assert truth["failed_strokes"] == 1 and st["strokes_uncertain"] == 1


def test_a_hung_loop_is_reset_by_the_watchdog_and_logged(pico):
    pico.program()
    pico.inject("advance", "10 min")
    pico.inject("hang")
    # The core stops; the clock and the watchdog run on, and the watchdog bites within 8.3 s.
    pico.inject("advance", "1 min")
    pico.answers()
    truth = pico.inject("truth")
    assert truth["watchdog_resets"] == 1 and truth["resets"] == 0 and truth["boots"] == 2
    st = pico.status()
    assert {"code": "watchdog_reset", "priority": "warning", "acked": False} in st["alarms"]
    # A watchdog reset is a hard reset: the Pico's RTC restarted, and the pump says so.
    assert {"code": "clock_lost", "priority": "warning", "acked": False} in st["alarms"]
    assert st["delivering"] is True
    log = pico.ask({"cmd": "log", "args": {"max": 50}}, sign=True)["entries"]
    assert any(e[2] == "alarm" and e[3] == 10 for e in log)   # codes.AL_WATCHDOG_RESET
