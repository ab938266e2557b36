"""What a dose means (issue 19) on the emulated Pico: the drug is the fill's, a prime goes only
into an empty catheter and is not the patient's dose, and a run of power cuts does not fill the
dose account with strokes that never happened (the journal). The same rules are tested in the
firmware's rooms (tests/firmware/test_meaning.py) and the simulator (tests/sim/test_meaning_sim.py);
here they hold on the rp2 port, with its flash and its resets."""

from tests.rp2.pico import PARAMS, STEPS_PER_STROKE, STROKE_NL

CATHETER_NL = 156_000    # PARAMS' catheter: 60 cm at 2.6 uL/cm
HYDROMORPHONE = dict(PARAMS, conc_ng_ml=10_000_000, steps=[[0, 1_000_000]],
                     max_daily_ng=2_000_000, pb=None,
                     meta={"drug": "hydromorphone", "units": "mg"})


def refused(reply, reason):
    assert reply["ok"] is False and reply["error"] == "E_REFUSED", reply
    assert reply["reason"] == reason, reply


def test_a_program_of_another_drug_waits_for_a_refill_of_it(pico):
    pico.program()                   # morphine 25 mg/mL, then a fill that names no drug
    st = pico.status()
    assert st["fill_drug"] == "morphine" and st["fill_conc_ng_ml"] == 25_000_000
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    # Hydromorphone programmed over the morphine in the reservoir: refused, nothing changed.
    refused(pico.ask({"cmd": "program", "args": {"params": HYDROMORPHONE}}, sign=True),
            "drug_mismatch")
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    # A refill of hydromorphone stops delivery until its program: no pulse meanwhile, and
    # resume is refused.
    reply = pico.ask({"cmd": "refill", "args": {
        "volume_nl": 20_000_000, "conc_ng_ml": 10_000_000, "drug": "hydromorphone",
        "bridge_nl": CATHETER_NL}}, sign=True)
    assert reply["ok"] is True, reply
    st = pico.status()
    assert st["fill_drug"] == "hydromorphone" and st["delivering"] is False and st["stopped"]
    before = pico.inject("truth")["pulses"]
    pico.inject("advance", "30 min")
    assert pico.inject("truth")["pulses"] == before
    refused(pico.ask({"cmd": "resume"}, sign=True), "drug_mismatch")
    # Its own program goes through, and delivery resumes.
    assert pico.ask({"cmd": "program", "args": {"params": HYDROMORPHONE}}, sign=True)["ok"]
    assert pico.ask({"cmd": "resume"}, sign=True)["ok"]
    pico.inject("advance", "1h")
    assert pico.inject("truth")["pulses"] > before
    assert pico.status()["delivering"] is True


def prime(pico, dose_nl):
    """Both steps of a prime; the first reply when it is refused."""
    first = pico.ask({"cmd": "bolus", "args": {"dose_nl": dose_nl, "kind": "prime"}}, sign=True)
    if not first["ok"]:
        return first
    return pico.ask({"cmd": "bolus", "args": {"dose_nl": dose_nl, "kind": "prime",
                                               "confirm": first["confirm"]}}, sign=True)


def test_a_prime_fills_the_empty_catheter_once_and_is_not_the_patients_dose(pico):
    pico.program()
    assert pico.status()["catheter"] == "empty"          # a new pump
    reply = prime(pico, 150_000)
    assert reply["ok"] is True and reply["started"] is True, reply
    pico.inject("advance", "30 min")
    st = pico.status()
    truth = pico.inject("truth")
    assert st["catheter"] == "full"
    # The prime's 600 strokes reached the catheter, not the patient: the last 24 h hold the
    # basal's strokes only, and the patient bolus is still given.
    assert truth["delivered_nl"] >= 150_000
    assert st["delivered_24h_nl"] < 150_000 and st["delivered_24h_ng"] < 1_000_000, st
    # A second prime into the full catheter is refused and moves nothing.
    before = pico.inject("truth")["pulses"]
    refused(prime(pico, 100_000), "catheter_full")
    # Declared revised (two steps), the catheter is empty again, and a prime of more than it
    # holds is refused.
    first = pico.ask({"cmd": "catheter", "args": {"revised": True}}, sign=True)
    assert first["ok"] is True and first["revised"] is False, first
    done = pico.ask({"cmd": "catheter", "args": {"revised": True, "confirm": first["confirm"]}},
                    sign=True)
    assert done["ok"] is True and done["catheter"] == "empty", done
    refused(prime(pico, CATHETER_NL + STROKE_NL), "catheter")
    pico.inject("advance", "1 min")
    # the basal's stroke or two in that time (a prime would be hundreds)
    assert pico.inject("truth")["pulses"] - before <= 4 * STEPS_PER_STROKE
    # The account is not full of the prime: the patient bolus is given.
    assert pico.patient_bolus()["ok"] is True


def test_power_cuts_in_a_row_cost_at_most_the_stroke_in_flight(pico):
    """Before the journal each restart booked the reserve's 40 strokes into the last 24 h: a
    few cuts in a day filled the cap and withheld the basal. Now the account after every cut is
    at least the truth and at most a stroke a restart above it."""
    pico.program()
    pico.inject("advance", "30 min")
    cuts = 4
    for n in range(cuts):
        pico.inject("power_loss", "for=2min")
        pico.answers()
        pico.inject("advance", "20 min")
    truth = pico.inject("truth")
    assert truth["boots"] == cuts + 1
    st = pico.status()
    assert "memory_error" not in {a["code"] for a in st["alarms"]} and st["delivering"], st
    assert truth["delivered_nl"] <= st["delivered_24h_nl"] <= \
        truth["delivered_nl"] + cuts * STROKE_NL, (st, truth)
    assert truth["reservoir_nl"] - cuts * STROKE_NL <= st["reservoir_nl"] <= truth["reservoir_nl"]
