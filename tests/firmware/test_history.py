"""The therapy history through the pump (firmware/app.py, the protocol): every change of
therapy is an entry with its role, it outlives the event log's ring and restarts, a failed
write is logged, retried and shown while therapy goes on. The room on its own is
tests/firmware/test_histpages.py; the stated rate for 400 days and the power cuts inside
`program`, on both runtimes, tests/vm/test_history_vm.py (tests/vm/history_check.py)."""

import json

from firmware.app import App
from firmware.store import MemDev
from tests.firmware.proto_bench import CATHETER_NL, PARAMS, PAT, MemHal, Signer, ask, run_for
from tests.firmware.proto_bench import programmed as programmed_app

REASON = "ward round: pain not controlled on 2 mg/day"
RX = dict(PARAMS, meta={"drug": "morphine", "units": "mg", "library": "0123456789ab",
                        "titration_override": REASON})


def history(app, clin, **args):
    """Every entry `history` gives, reply by reply as pumpctl reads it, and the last reply."""
    rows, nxt = [], None
    while True:
        r = ask(app, clin.line("history", dict(args, **({"since": nxt} if nxt else {}))))
        assert r["ok"], r
        rows += r["entries"]
        if not r["entries"] or r["next"] >= r["total"]:
            return rows, r
        nxt = r["next"]


def log_events(app, clin):
    return [e[2] for e in ask(app, clin.line("log", {"since": 0}))["entries"]]


def restart(app):
    """An orderly restart: a new App on the same flash (the state saved as a reset saves it)."""
    app.shutdown(app.hal.ticks_ms())
    hal = MemHal(app.hal.dev)
    hal.t = app.hal.t
    new = App(hal)
    new.boot()
    return new, Signer(new)


def programmed():
    app, clin = programmed_app()
    assert ask(app, clin.line("program", {"params": RX}))["ok"]
    return app, clin


def test_a_history_kept_only_in_the_ring_would_lose_the_program():
    """The event log is a 200-entry ring: 250 refused patient boluses push the program out of
    it. The history keeps it, with its reason and the drug library's version, across a
    restart; the refusals are one line of the day's summary."""
    app, clin = programmed()
    pat = Signer(app, key=PAT, role="patient")
    for _ in range(250):
        ask(app, pat.line("patient_bolus"))     # given once, then refused (lockout)
    assert "program" not in log_events(app, clin)          # the ring forgot it
    app, clin = restart(app)
    rows, last = history(app, clin)
    progs = [r for r in rows if r["kind"] == "program"]
    assert [p["program"] for p in progs] == [1, 2]
    assert progs[-1]["notes"] == {"drug": "morphine", "units": "mg",
                                  "library": "0123456789ab", "titration_override": REASON}
    assert progs[-1]["by"] == "clinician" and progs[-1]["old_basal_ng_day"] == 2_708_333
    assert last["today"]["denied"] >= 249 and last["unsaved"] == 0


def test_every_change_of_therapy_is_an_entry_with_its_role():
    app, clin = programmed()
    ts0 = app.clock_ts(app.hal.ticks_ms())
    r = ask(app, clin.line("refill", {"volume_nl": 18_000_000, "residual_nl": 19_000_000,
                                      "conc_ng_ml": 20_000_000, "bridge_nl": CATHETER_NL,
                                      "meta": {"drug": "morphine", "concentration": "20 mg/mL"}}))
    assert r["ok"], r
    assert ask(app, clin.line("bolus", {"dose_nl": 20_000, "kind": "bridge"}))["ok"]
    run_for(app, 240_000)
    assert ask(app, clin.line("bolus", {"dose_nl": 10_000}))["ok"]
    run_for(app, 240_000)
    armed = ask(app, clin.line("bolus", {"dose_nl": 10_000, "kind": "prime"}))
    assert ask(app, clin.line("bolus", {"dose_nl": 10_000, "kind": "prime",
                                        "confirm": armed["confirm"]}))["ok"]
    assert ask(app, clin.line("stop"))["ok"] and ask(app, clin.line("resume"))["ok"]
    assert ask(app, clin.line("stop", {"for_s": 60}))["ok"]
    run_for(app, 120_000)                                   # it resumes by itself
    rows, _ = history(app, clin)
    got = [(r["kind"], r["by"]) for r in rows]
    assert got == [("program", "clinician"), ("refill", "clinician"), ("program", "clinician"),
                   ("refill", "clinician"), ("bridge", "clinician"),
                   ("clinician_bolus", "clinician"), ("prime", "clinician"),
                   ("stop", "clinician"), ("resume", "clinician"), ("stop", "clinician"),
                   ("resume", "pump")]
    refill = rows[3]
    assert (refill["volume_nl"], refill["conc_ng_ml"], refill["residual_nl"]) == \
        (18_000_000, 20_000_000, 19_000_000)
    assert refill["expected_nl"] > 19_000_000 and refill["notes"]["drug"] == "morphine"
    assert rows[4]["dose_nl"] == 20_000 and rows[4]["conc_ng_ml"] == 20_000_000
    assert rows[9]["for_s"] == 60 and rows[10]["auto"] == 1
    assert all(ts0 <= r["ts"] <= ts0 + 3600 for r in rows[1:])


def test_patient_boluses_are_summed_per_day_and_outlive_a_restart():
    app, clin = programmed()
    hal = app.hal
    midnight = (app.clock_ts(hal.ticks_ms()) // 86_400 + 1) * 86_400
    pat = Signer(app, key=PAT, role="patient")
    assert ask(app, pat.line("patient_bolus"))["ok"]
    assert not ask(app, pat.line("patient_bolus"))["ok"]          # lockout
    app, clin = restart(app)
    pat = Signer(app, key=PAT, role="patient")
    run_for(app, 7_300_000)
    pat.hello(app)
    clin.hello(app)
    assert ask(app, pat.line("patient_bolus"))["ok"]
    today = ask(app, clin.line("history"))["today"]
    assert (today["given"], today["denied"], today["volume_nl"], today["mass_ng"]) == \
        (2, 1, 16_000, 400_000)
    # past midnight the shell's hourly call closes the day into one entry
    run_for(app, (midnight - app.clock_ts(app.hal.ticks_ms()) + 60) * 1000)
    app.therapy.hist.roll(app.hal.ticks_ms())
    clin.hello(app)
    rows, last = history(app, clin)
    days = [r for r in rows if r["kind"] == "patient_boluses"]
    assert [(d["ts"], d["given"], d["denied"], d["volume_nl"], d["by"]) for d in days] == \
        [(midnight - 86_400, 2, 1, 16_000, "patient")]
    assert last["today"]["given"] == 0
    # a restart from a record saved before the day was closed does not close it twice
    app, clin = restart(app)
    assert [r["kind"] for r in history(app, clin)[0]].count("patient_boluses") == 1


class FailingDev(MemDev):
    """A flash whose history files refuse every write while `fail` is set."""

    def __init__(self):
        MemDev.__init__(self)
        self.fail = False

    def write(self, path, data):
        if not (self.fail and path.startswith("hist")):
            MemDev.write(self, path, data)


def test_a_failed_history_write_is_logged_retried_and_shown_and_therapy_goes_on():
    dev = FailingDev()
    app = App(MemHal(dev))
    app.boot()
    ask(app, json.dumps({"id": 1, "cmd": "provision", "args": {
        "clinician_key": bytes(range(32)).hex(), "patient_key": PAT.hex()}}))
    clin = Signer(app)
    assert ask(app, clin.line("refill", {"volume_nl": 20_000_000}))["ok"]
    dev.fail = True
    assert ask(app, clin.line("program", {"params": RX}))["ok"]   # therapy does not wait
    st = ask(app, clin.line("status"))
    assert st["delivering"] is True
    rows, last = history(app, clin)
    assert last["unsaved"] == 1 and [(r["kind"], r.get("unsaved")) for r in rows] == \
        [("refill", None), ("program", True)]
    assert "history_failed" in log_events(app, clin)
    dev.fail = False
    app.therapy.hist.roll(app.hal.ticks_ms())                    # the shell's hourly retry
    app, clin = restart(app)
    rows, last = history(app, clin)
    assert last["unsaved"] == 0 and [r["kind"] for r in rows] == ["refill", "program"]
    assert rows[1]["notes"]["titration_override"] == REASON


def test_a_catheter_revision_and_a_refill_with_its_drug_and_discrepancy_are_entries():
    app, clin = programmed()
    armed = ask(app, clin.line("catheter", {"revised": True}))
    assert armed["ok"] and not armed["revised"]
    assert ask(app, clin.line("catheter", {"revised": True, "confirm": armed["confirm"]}))["ok"]
    r = ask(app, clin.line("refill", {"volume_nl": 18_000_000, "residual_nl": 1_000_000,
                                      "drug": "morphine"}))
    assert r["ok"] and r["discrepancy"] is True
    rows, _ = history(app, clin)
    assert [x["kind"] for x in rows][-2:] == ["catheter", "refill"]
    cath, refill = rows[-2], rows[-1]
    assert cath["by"] == "clinician" and cath["catheter_nl"] == app.therapy.catheter_nl() > 0
    assert (refill["volume_nl"], refill["residual_nl"], refill["discrepancy"]) == \
        (18_000_000, 1_000_000, 1)
    assert refill["expected_nl"] > 18_000_000 and refill["notes"] == {"drug": "morphine"}
