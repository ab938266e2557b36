"""The serial protocol and the firmware shell (firmware/proto.py, auth.py, app.py) on CPython.

The same code runs on the MicroPython VM in tests/e2e (through the virtual Pico); here each
rule of docs/protocol.md is checked directly: authentication, roles, counters, repeats, stable
error codes, and that a refused request changes nothing.
"""

import hashlib
import hmac
import json

from hypothesis import given
from hypothesis import strategies as st

from firmware import auth, codes, codetext
from firmware.app import App
from firmware.guard import UNITS
from firmware.proto import HINT
from tests.firmware.proto_bench import (CATHETER_NL, CLIN, PARAMS, PAT, MemHal, Signer, ask,
                                        boot, feed, feed_raw, programmed, provisioned, run_for)


@given(st.binary(min_size=0, max_size=200), st.binary(max_size=300))
def test_hmac_matches_the_standard_library_for_any_key_length(key, msg):
    assert auth.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


# RFC 4231, test cases 1, 2, 6 and 7 (HMAC-SHA-256); 6 and 7 have 131-byte keys.
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than "
     b"block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


def test_hmac_matches_rfc_4231():
    for key, msg, want in RFC4231:
        assert auth.tohex(auth.hmac_sha256(key, msg)) == want


@given(st.binary(max_size=40))
def test_unhex_round_trips_lower_case_only(data):
    assert auth.unhex(data.hex()) == data
    assert auth.tohex(data) == data.hex()
    if any(c in "abcdef" for c in data.hex()):
        assert auth.unhex(data.hex().upper()) is None
    assert auth.unhex(data.hex() + "g0") is None
    assert auth.unhex(data.hex() + "0") is None
    assert auth.unhex(data.hex() + " 0") is None and auth.unhex(data.hex() + "0\n") is None
    assert auth.unhex(data.hex() + "\u00e90") is None


def test_an_upper_case_tag_is_refused():
    app = programmed()[0]
    clin = Signer(app)
    line = clin.line("status")
    body, tag = line.rsplit(" ", 1)
    assert tag != tag.upper()
    r = ask(app, body + " " + tag.upper())
    assert r["error"] == "E_AUTH" and "lower-case" in r["message"]


def test_terminal_form_answers_without_a_key():
    app = boot()
    assert ask(app, "1 help")["commands"]["program"].endswith("[key: clinician]")
    info = ask(app, "7 info")
    assert info["id"] == 7 and info["provisioned"] is False and info["firmware"]
    assert info["keys"] == "none" and info["build"] == "production"
    assert ask(app, "3 ping")["pong"] is True
    bad = ask(app, "4 program")
    assert bad["ok"] is False and bad["error"] == "E_PARSE"


def test_a_fresh_pump_refuses_everything_but_provisioning():
    app = boot()
    r = ask(app, Signer().line("status"))
    assert r["error"] == "E_NOT_PROVISIONED"
    prov = {"id": 1, "cmd": "provision",
            "args": {"clinician_key": CLIN.hex(), "patient_key": PAT.hex()}}
    assert ask(app, json.dumps(prov))["ok"]
    again = ask(app, json.dumps(prov))
    assert again["error"] == "E_LOCKED"


def test_provisioning_checks_the_keys():
    app = boot()
    for args in ({"clinician_key": "ab" * 31, "patient_key": PAT.hex()},
                 {"clinician_key": CLIN.hex(), "patient_key": CLIN.hex()},
                 {"clinician_key": 5, "patient_key": PAT.hex()}):
        r = ask(app, json.dumps({"id": 2, "cmd": "provision", "args": args}))
        assert r["error"] == "E_ARGS", r
    assert not app.keys.provisioned()


def test_program_reads_back_what_was_stored():
    app = provisioned()
    r = ask(app, Signer(app).line("program", {"params": PARAMS}))
    assert r["ok"] and r["settings"] == PARAMS
    # and it survives a reboot, from flash
    app2 = boot(app.hal.dev)
    assert ask(app2, Signer(app2).line("settings"))["settings"] == PARAMS
    assert app2.therapy.pump.rx is not None


def test_wrong_tag_wrong_key_and_missing_tag_are_refused():
    app = provisioned()
    line = Signer().line("program", {"params": PARAMS})
    tampered = line.replace("3000000", "3000001", 1)
    assert ask(app, tampered)["error"] == "E_AUTH"
    assert ask(app, Signer(key=bytes(32)).line("status"))["error"] == "E_AUTH"
    assert ask(app, line.rsplit(" ", 1)[0])["error"] == "E_AUTH"
    forged_role = Signer(key=PAT, role="clinician").line("status")
    assert ask(app, forged_role)["error"] == "E_AUTH"
    assert app.load_settings() is None and app.keys.last[auth.CLINICIAN] == 0


def test_the_patient_key_can_bolus_and_read_status_only():
    app, clin = programmed()
    pat = Signer(app, key=PAT, role="patient")
    assert ask(app, pat.line("status"))["ok"]
    assert ask(app, pat.line("alarms"))["ok"]
    for cmd, args in (("program", {"params": PARAMS}), ("stop", None),
                      ("bolus", {"dose_nl": 1000}), ("refill", {"volume_nl": 1}),
                      ("log", None), ("maintenance", None), ("settings", None)):
        r = ask(app, pat.line(cmd, args))
        assert r["error"] == "E_ROLE", (cmd, r)
    assert ask(app, pat.line("patient_bolus"))["started"] is True
    assert not app.therapy.pump.stopped


def test_replayed_and_reordered_requests_are_refused_even_after_a_reboot():
    app, clin = programmed()
    first = clin.line("stop")
    second = clin.line("resume")
    assert ask(app, second)["ok"]
    r = ask(app, first)  # older counter, arriving late
    assert r["error"] == "E_REPLAY" and not app.therapy.pump.stopped
    app2 = boot(app.hal.dev)
    assert ask(app2, second)["error"] == "E_SESSION"
    assert ask(app2, first)["error"] == "E_SESSION" and not app2.therapy.pump.stopped
    assert ask(app2, Signer(app2).line("status"))["ok"]


def test_a_repeated_request_is_answered_again_but_acted_on_once():
    app, clin = programmed()
    pat = Signer(app, key=PAT, role="patient")
    line = pat.line("patient_bolus")
    r1 = ask(app, line)
    r2 = ask(app, line)   # the host lost the first reply and sent the same line again
    assert r1["started"] and r2["started"] and r2["repeat"] is True
    starts = [e for e in app.events.entries() if e[1] == codes.EV_PB_START]
    assert len(starts) == 1
    # a new request is a new bolus request (refused: the lockout runs)
    r3 = ask(app, pat.line("patient_bolus"))
    assert r3["error"] == "E_REFUSED" and r3["reason"] == "lockout"


def test_a_refused_prescription_changes_nothing():
    app, clin = programmed()
    before = (app.load_settings(), app.therapy.pump.rx, app.therapy.reservoir.nl)
    bad = dict(PARAMS, max_daily_ng=2_000_000)  # below the basal
    r = ask(app, clin.line("program", {"params": bad}))
    assert r["error"] == "E_RX" and "steps" in r["message"]
    r = ask(app, clin.line("program", {"params": dict(PARAMS, extra=1)}))
    assert r["error"] == "E_ARGS"
    r = ask(app, clin.line("program", {"params": dict(PARAMS, meta={"x": "y" * 600})}))
    assert r["error"] == "E_ARGS"
    assert (app.load_settings(), app.therapy.pump.rx, app.therapy.reservoir.nl) == before


def test_values_are_checked_by_the_firmware():
    app, clin = programmed()
    for args in ({"dose_nl": "1 mL"}, {"dose_nl": -5}, {"dose_nl": 1000, "duration_s": 1.5},
                 {"dose_nl": 1000, "kind": "turbo"}, {}):
        r = ask(app, clin.line("bolus", args))
        assert r["error"] == "E_ARGS", (args, r)
    r = ask(app, clin.line("bolus", {"dose_nl": 10_000_000, "duration_s": 3600}))
    assert r["error"] == "E_REFUSED" and r["reason"] == "bad_value"
    assert not app.therapy.pump.cb_on


def test_clinician_bolus_respects_the_daily_cap():
    app, clin = programmed()
    r = ask(app, clin.line("bolus", {"dose_nl": 150_000, "duration_s": 3600}))
    assert r["ok"] and r["kind"] == "clinician" and app.therapy.pump.cb_on
    run_for(app, 3_700_000)
    assert not app.therapy.pump.cb_on and app.therapy.pump.strokes >= 600
    clin.hello(app)   # an hour later: the session has ended, a new one is needed
    r = ask(app, clin.line("bolus", {"dose_nl": 100_000, "duration_s": 3600}))
    assert r["error"] == "E_REFUSED" and r["reason"] == "daily_max"


def test_refill_with_residual_flags_a_discrepancy():
    app, clin = programmed()
    r = ask(app, clin.line("refill", {"volume_nl": 20_000_000, "residual_nl": 12_000_000}))
    assert r["ok"] and r["discrepancy"] is True and r["expected_nl"] == 20_000_000
    names = [a["code"] for a in ask(app, clin.line("alarms"))["alarms"]]
    assert "refill_discrepancy" in names
    r = ask(app, clin.line("ack", {"code": "refill_discrepancy"}))
    assert r["acked"]
    assert ask(app, clin.line("alarms"))["alarms"] == []


def test_concentration_change_needs_the_bridge_and_is_stored():
    app, clin = programmed()
    r = ask(app, clin.line("refill", {"volume_nl": 20_000_000, "conc_ng_ml": 20_000_000}))
    assert r["error"] == "E_REFUSED" and r["reason"] == "bridge_unconfirmed"
    r = ask(app, clin.line("refill", {"volume_nl": 20_000_000, "conc_ng_ml": 20_000_000,
                                      "bridge_nl": app.hal.CATHETER_NL}))
    assert r["error"] == "E_REFUSED" and r["reason"] == "bridge_unconfirmed"  # the board's, not
    r = ask(app, clin.line("refill", {"volume_nl": 20_000_000, "conc_ng_ml": 20_000_000,
                                      "bridge_nl": CATHETER_NL}))  # the patient's catheter
    assert r["ok"]
    assert app.load_settings()["conc_ng_ml"] == 20_000_000
    assert boot(app.hal.dev).therapy.pump.rx.conc_ng_ml == 20_000_000


def test_stop_for_a_while_resumes_by_itself():
    app, clin = programmed()
    assert ask(app, clin.line("stop", {"for_s": 600}))["stopped"]
    assert ask(app, clin.line("status"))["stop_left_s"] == 600
    hal = app.hal
    quit_after = [0]

    def wait(ms):
        hal.t += ms
        quit_after[0] += 1
        if quit_after[0] > 400:
            app.quit = True
    hal.wait = wait
    app.run()
    assert not app.therapy.pump.stopped and hal.t > 600_000


def test_ack_needs_an_active_alarm_with_a_known_code():
    app, clin = programmed()
    assert ask(app, clin.line("ack", {"code": "nonsense"}))["error"] == "E_ARGS"
    r = ask(app, clin.line("ack", {"code": "occlusion"}))
    assert r["error"] == "E_REFUSED" and r["reason"] == "not_active"


def test_event_log_pages_verifies_and_survives_a_reboot():
    app, clin = programmed()
    for _ in range(3):
        ask(app, clin.line("stop"))
        ask(app, clin.line("resume"))
    r = ask(app, clin.line("log", {"max": 4}))
    assert r["chain_ok"] and len(r["entries"]) == 4 and r["entries"][0][2] == "boot"
    rest = ask(app, clin.line("log", {"since": r["next"]}))
    assert rest["entries"][0][0] == r["next"]
    app2 = boot(app.hal.dev)
    after = ask(app2, Signer(app2).line("log", {"since": 0, "max": 50}))
    names = [e[2] for e in after["entries"]]
    assert names.count("stop") == 3 and names[-2:] == ["boot", "self_test"] and after["chain_ok"]


def test_damaged_settings_mean_memory_error_until_reprogrammed():
    app, clin = programmed()
    dev = app.hal.dev
    for name in ("settings.a", "settings.b"):
        if name in dev.files:
            data = bytearray(dev.files[name])
            data[20] ^= 0xFF
            dev.files[name] = bytes(data)
    app2 = boot(dev)
    assert app2.therapy.pump.rx is None
    assert app2.therapy.sup.alarms & (1 << codes.AL_MEMORY_ERROR)
    c2 = Signer(app2)
    assert ask(app2, c2.line("program", {"params": PARAMS}))["ok"]
    app3 = boot(dev)
    assert not app3.therapy.sup.alarms & (1 << codes.AL_MEMORY_ERROR) and app3.therapy.pump.rx is not None


def test_maintenance_is_refused_by_a_production_build():
    app, clin = programmed()
    r = ask(app, clin.line("maintenance"))
    assert r["error"] == "E_REFUSED" and r["reason"] == "production_build"
    assert not app.quit and not app.therapy.pump.stopped
    app.hal.dev.write("maint", b"1")     # a flag an older development build left behind
    hal = MemHal(app.hal.dev)
    hal.reset = lambda: setattr(hal, "was_reset", True)
    started = []
    hal.wait = lambda ms: setattr(started[0], "quit", True)
    from firmware.app import main
    main(hal, started.append)            # boots the pump: no REPL, whatever the flag says
    assert hal.was_reset and started[0].therapy.pump.rx is not None


def test_maintenance_stops_saves_and_hands_back_the_repl_in_a_development_build(monkeypatch):
    from firmware import buildinfo
    monkeypatch.setattr(buildinfo, "KIND", "development")
    app, clin = programmed()
    assert ask(app, clin.line("maintenance"))["maintenance"] is True
    assert app.quit and app.therapy.pump.stopped
    hal = MemHal(app.hal.dev)
    from firmware.app import main
    assert main(hal) == "maintenance"      # the reboot after maintenance: no firmware, REPL
    app2 = boot(app.hal.dev)               # the next reset boots the pump again, still stopped
    assert app2.therapy.pump.stopped and app2.therapy.pump.rx is not None


def test_control_bytes_overlong_lines_and_bad_utf8():
    app, clin = programmed()
    assert feed_raw(app, b"\x03\x04\x03\r\n") == HINT.decode() + "\r\n"  # once, in words
    r = feed(app, b"x" * 1500 + b"\n")
    assert [x["error"] for x in r] == ["E_TOO_LONG"]
    assert feed(app, b"\xff\xfe{}\n")[0]["error"] == "E_PARSE"
    assert feed(app, b"{\"id\": 1, \"cmd\": 5}\n")[0]["error"] == "E_PARSE"
    assert feed(app, b"{\"id\": -1, \"cmd\": \"info\"}\n")[0]["error"] == "E_ARGS"
    assert feed(app, b"[1, 2]\n")[0]["error"] == "E_PARSE"
    assert feed(app, b"{\"cmd\": \"fly\"}\n")[0]["error"] == "E_UNKNOWN_CMD"
    # Ctrl-C in the middle of a line is dropped, not a break (the hint goes out on its own line)
    out = feed_raw(app, b"7 pi\x03ng\n").split("\r\n")
    assert out[0] == HINT.decode() and json.loads(out[1])["pong"] is True


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_never_break_the_pump_or_change_settings(chunks):
    app, clin = programmed()
    before = (app.load_settings(), app.therapy.pump.stopped, app.therapy.reservoir.nl, app.keys.last[:])
    for chunk in chunks:
        for line in feed_raw(app, chunk).split("\r\n"):
            if line.startswith("{"):  # a person's lines are text; a program's are JSON
                reply = json.loads(line)
                assert reply["ok"] is False or reply["cmd"] in ("help", "info", "ping")
    feed_raw(app, b"\n")
    assert (app.load_settings(), app.therapy.pump.stopped, app.therapy.reservoir.nl,
            app.keys.last[:]) == before
    assert ask(app, clin.line("status"))["delivering"] is True


def test_a_watchdog_reset_is_reported():
    app, clin = programmed()
    app2 = App(MemHal(app.hal.dev, cause=1))
    app2.boot()
    assert app2.therapy.sup.alarms & (1 << codes.AL_WATCHDOG_RESET)


def test_a_repeated_refusal_is_answered_as_a_repeat():
    app, clin = programmed()
    line = clin.line("bolus", {"dose_nl": 10_000_000, "duration_s": 3600})
    r1 = ask(app, line)
    r2 = ask(app, line)
    assert r1["error"] == r2["error"] == "E_REFUSED" and r2["repeat"] is True
    assert "repeat" not in r1


def test_an_empty_reservoir_is_not_reported_as_delivering():
    app = provisioned()
    clin = Signer(app)
    assert ask(app, clin.line("program", {"params": PARAMS}))["ok"]
    assert ask(app, clin.line("status"))["delivering"] is False
    assert ask(app, clin.line("refill", {"volume_nl": 20_000_000}))["ok"]
    assert ask(app, clin.line("status"))["delivering"] is True


def test_a_concentration_change_can_carry_the_hosts_new_words():
    app, clin = programmed()
    meta = {"drug": "morphine", "concentration": "20 mg/mL"}
    r = ask(app, clin.line("refill", {"volume_nl": 20_000_000, "conc_ng_ml": 20_000_000,
                                      "bridge_nl": CATHETER_NL, "meta": meta}))
    assert r["ok"]
    assert app.load_settings()["meta"] == meta


def test_a_critical_alarm_sounds_the_buzzer_at_once():
    """The periodic check runs every CHECK_MS (5 min); raising an alarm brings it forward, so
    the critical pattern sounds in the same millisecond, not up to 5 minutes later."""
    app, clin = programmed()
    hal = app.hal
    sounded = []
    hal.stroke = lambda: False                       # the motor has stalled
    hal.tone = lambda pattern: sounded.append((hal.t, pattern))
    run_for(app, 600_000)   # a stroke is due every 3 to 5 minutes here
    assert app.therapy.sup.alarms & (1 << codes.AL_MOTOR_STALL)
    raised = [e for e in app.events.entries()
              if e[1] == codes.EV_ALARM and e[2] == codes.AL_MOTOR_STALL]
    assert raised and sounded and sounded[0][1] == codes.TONE_CRITICAL
    assert sounded[0][0] // 1000 + hal.ts0 == raised[0][0]


def test_a_fallback_to_the_older_state_record_is_logged():
    app, clin = programmed()
    dev = app.hal.dev
    newest = "state" + (".a", ".b")[app.st_state.slot]
    data = bytearray(dev.files[newest])
    data[30] ^= 0xFF
    dev.files[newest] = bytes(data)
    app2 = boot(dev)
    names = [codetext.EVENT_NAMES[e[1]] for e in app2.events.entries()]
    assert "record_fallback" in names
    assert app2.therapy.pump.rx is not None and not app2.therapy.sup.alarms & (1 << codes.AL_MEMORY_ERROR)


# ---- issue 13: the protocol's additions ------------------------------------------------------

def test_a_prime_takes_two_requests_and_the_patients_catheter_bounds_it():
    app, clin = programmed()
    over = ask(app, clin.line("bolus", {"dose_nl": CATHETER_NL + 250, "kind": "prime"}))
    assert over["error"] == "E_REFUSED" and over["reason"] == "catheter"
    first = ask(app, clin.line("bolus", {"dose_nl": 150_000, "kind": "prime"}))
    assert first["ok"] and first["started"] is False and not app.therapy.pump.cb_on
    assert first["catheter_nl"] == CATHETER_NL and first["expires_s"] == 120
    wrong = ask(app, clin.line("bolus", {"dose_nl": 150_000, "kind": "prime",
                                         "confirm": first["confirm"] + 1}))
    assert wrong["error"] == "E_REFUSED" and wrong["reason"] == "prime_unconfirmed"
    second = ask(app, clin.line("bolus", {"dose_nl": 150_000, "kind": "prime",
                                          "confirm": first["confirm"]}))
    assert second["ok"] and second["started"] is True and app.therapy.pump.cb_on
    # A bridge pushes out at most what the catheter holds, too.
    app.therapy.stop(app.hal.ticks_ms())
    app.therapy.resume(app.hal.ticks_ms())
    bridge = ask(app, clin.line("bolus", {"dose_nl": CATHETER_NL + 250, "kind": "bridge"}))
    assert bridge["error"] == "E_REFUSED" and bridge["reason"] == "catheter"


def test_a_reprogram_after_memory_error_states_its_assumption():
    app, clin = programmed()
    dev = app.hal.dev
    for name in ("state.a", "state.b"):
        data = bytearray(dev.files[name])
        data[40] ^= 0xFF
        dev.files[name] = bytes(data)
    app2 = boot(dev)
    c2 = Signer(app2)
    st = ask(app2, c2.line("status"))
    assert st["dose_account"] == "lost" and "memory_error" in [a["code"] for a in st["alarms"]]
    too_much = ask(app2, c2.line("program", {"params": PARAMS, "assume_24h_ng": 7_000_000}))
    assert too_much["error"] == "E_REFUSED" and too_much["reason"] == "assumption"
    r = ask(app2, c2.line("program", {"params": PARAMS, "assume_24h_ng": 2_500_000}))
    assert r["ok"] and r["assumed_24h_nl"] == 100_000         # 2.5 mg at 25 mg/mL
    assert app2.therapy.guard.total == 400 * UNITS
    st = ask(app2, c2.line("status"))
    assert st["dose_account"] == "kept" and not st["alarms"]
    # On an intact account an assumption is refused, and nothing is stored.
    again = ask(app2, c2.line("program", {"params": PARAMS, "assume_24h_ng": 0}))
    assert again["error"] == "E_REFUSED" and again["reason"] == "assumption"


def test_a_timed_stop_goes_on_across_a_reboot_and_ends_on_time():
    """Issue 13, item 1: the deadline lived only in RAM and a restart left the pump stopped."""
    app, clin = programmed()
    assert ask(app, clin.line("stop", {"for_s": 3600}))["stopped"]
    stopped_at = app.hal.t
    run_until = app.hal.t + 1_800_000
    while app.hal.t < run_until:            # 30 minutes of the loop, then the power fails
        app.hal.t += max(1, app.therapy.pump.next_in_ms(app.hal.ticks_ms()))
        app.therapy.pump.service(app.hal.ticks_ms())
    hal2 = MemHal(app.hal.dev)              # back at once; the board's clock ran on
    hal2.t = app.hal.t
    app2 = App(hal2)
    app2.boot()
    c2 = Signer(app2)
    st = ask(app2, c2.line("status"))
    left = 3600 - (hal2.t - stopped_at) // 1000
    assert st["stopped"] and left - 2 <= st["stop_left_s"] <= left
    run_for_stopped = stopped_at + 3_600_000
    while app2.therapy.pump.stopped and app2.hal.t < run_for_stopped + 10_000:
        app2.hal.t += max(1, app2.therapy.pump.next_in_ms(app2.hal.ticks_ms()))
        app2.therapy.pump.service(app2.hal.ticks_ms())
    assert not app2.therapy.pump.stopped and app2.hal.t <= run_for_stopped  # never longer than asked


def test_status_shows_fills_dates_and_strokes_not_given():
    app, clin = programmed()
    r = ask(app, clin.line("refill", {"volume_nl": 20_000_000, "stable_s": 90 * 86400}))
    assert r["fills"] == 2 and r["expiry_ts"] == r["fill_ts"] + 90 * 86400
    st = ask(app, clin.line("status"))
    assert st["expiry_ts"] == r["expiry_ts"] and st["refill_notice_s"] == 7 * 86400
    assert st["catheter_nl"] == CATHETER_NL and st["refill_ts"] > st["clock_ts"]
    assert st["projected_nl_day"] == st["basal_nl_day"]
    for key in ("strokes_missed", "strokes_refused", "strokes_uncertain"):
        assert st[key] == 0
    assert st["refusing"] is None
