"""The pump on the emulated Pico: it boots from its flash, is provisioned, is programmed, and
every stroke it counts is the pulses the driver received on the STEP pin while enabled."""

from tests.rp2.pico import PARAMS, PICO, STEPS_PER_STROKE, STROKE_NL


def test_a_new_pico_boots_is_provisioned_and_sets_up_its_driver(pico):
    assert pico.ask({"cmd": "info"})["provisioned"] is True
    info = pico.ask({"cmd": "info"}, sign=True)   # the rest comes to a keyed caller
    assert info["board"] == "pico" and info["build"] == "production"
    assert info["stroke_nl"] == STROKE_NL and info["reservoir_max_nl"] == PICO.RESERVOIR_NL
    truth = pico.inject("truth")
    # The four TMC2209 register writes of boards/tmc2209.setup_writes arrived with valid CRCs
    # (the driver counted them), or every stroke would be refused as a stall.
    assert truth["tmc_writes"] == 4
    assert truth["boots"] == 1 and truth["watchdog_resets"] == 0 and truth["resets"] == 0
    st = pico.status()
    assert st["alarms"] == [] and st["programmed"] is False
    # The factory set the clock: no clock_lost on a new pump.
    assert abs(info["clock_ts"] - st["clock_ts"]) < 600


def test_basal_and_boluses_are_step_pulses_counted_exactly(pico):
    pico.program()
    pico.inject("advance", "1h")
    assert pico.patient_bolus()["ok"] is True
    reply = pico.ask({"cmd": "bolus", "args": {"dose_nl": 5000, "duration_s": 300}}, sign=True)
    assert reply["ok"] is True, reply
    pico.inject("advance", "30 min")
    st = pico.status()
    truth = pico.inject("truth")
    # Every stroke the pump counted is a whole window of STEPS_PER_STROKE pulses with EN active,
    # and the plant moved exactly those strokes' volume (an ideal mechanism here).
    assert st["strokes"] == truth["strokes"] == truth["stroke_windows"]
    assert truth["pulses"] == st["strokes"] * STEPS_PER_STROKE
    assert truth["delivered_nl"] == st["strokes"] * STROKE_NL
    assert PICO.RESERVOIR_NL - truth["reservoir_nl"] == truth["delivered_nl"]
    assert st["reservoir_nl"] == 20_000_000 - truth["delivered_nl"]
    # The boluses' 8 uL + 5 uL (52 strokes) on top of 90 min of basal at 80 to 120 uL/day (20 to
    # 30 strokes; a few wall seconds more at speed 1): no stroke missing, none extra.
    assert 52 + 19 <= st["strokes"] <= 52 + 32
    assert st["alarms"] == [] and st["delivering"] is True
    assert st["delivered_24h_nl"] >= truth["delivered_nl"]


def test_a_refused_bolus_moves_nothing(pico):
    pico.program()
    before = pico.inject("truth")["pulses"]
    too_much = PARAMS["max_daily_ng"] * 1_000_000 // PARAMS["conc_ng_ml"] + STROKE_NL
    reply = pico.ask({"cmd": "bolus", "args": {"dose_nl": too_much}}, sign=True)
    assert reply["ok"] is False and reply["error"] == "E_REFUSED"
    pico.inject("advance", "1 min")
    truth = pico.inject("truth")
    assert truth["pulses"] - before <= STEPS_PER_STROKE  # at most a basal stroke in a minute
