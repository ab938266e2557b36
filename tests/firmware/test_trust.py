"""Trust rules on CPython (firmware/auth.py, proto.py, app.py): counters that no value can
exhaust and that do not wear the flash, re-keying, keys that fail closed, provisioning only on
a new pump or after the button, signed replies bound to their request, `info` without a key."""

import json

from firmware import auth, codes, codetext
from firmware.app import BUTTON_HOLD_MS, PROVISION_MS
from tests.firmware.proto_bench import (CLIN, PAT, PARAMS, Signer, ask, boot, programmed,
                                        provisioned, reply_tag, run_for)


def saves(app):
    return app.keys.store.seq


def test_a_counter_only_moves_within_its_window():
    app, clin = programmed()
    last = app.keys.last[auth.CLINICIAN]
    far = clin.line("status", ctr=last + auth.WINDOW + 1)
    assert ask(app, far)["error"] == "E_REPLAY"
    top = Signer(app).line("status", ctr=auth.CTR_MAX)
    assert ask(app, top)["error"] == "E_REPLAY"
    assert app.keys.last[auth.CLINICIAN] == last
    ok = Signer(app)
    assert ask(app, ok.line("status", ctr=last + auth.WINDOW))["ok"]   # a few lost: fine


def test_a_patient_app_polling_every_minute_writes_the_key_record_once_per_block():
    app, _ = programmed()
    pat = Signer(app, key=PAT, role="patient")
    before = saves(app)
    for _ in range(10 * auth.BLOCK):
        assert ask(app, pat.line("status"))["ok"]
        app.hal.t += 60_000
        if app.hal.t - app.proto.sn_ms[auth.PATIENT] > 240_000:
            pat.hello(app)
    assert saves(app) - before <= 10 + 1
    # and a reboot never lets an old counter back in: it starts above everything used
    used = app.keys.last[auth.PATIENT]
    app2 = boot(app.hal.dev)
    assert app2.keys.last[auth.PATIENT] >= used


def test_near_the_counters_end_only_a_re_key_is_taken_and_it_recovers_the_pump():
    app, clin = programmed()
    keys = app.keys
    keys.reserved[auth.CLINICIAN] = keys.last[auth.CLINICIAN] = auth.CTR_LIMIT
    keys._save()
    app = boot(app.hal.dev)
    clin = Signer(app)
    assert clin.hello(app)["ctr_left"] == 0
    r = ask(app, clin.line("stop"))
    assert r["error"] == "E_REKEY" and not app.therapy.pump.stopped
    nonce = bytes(range(32))
    line = clin.line("rekey", {"nonce": nonce.hex()})
    r = ask(app, line)
    assert r["rekeyed"] is True
    assert r["_tag"] == reply_tag(CLIN, line, app.hal.lines[-1])   # signed with the old key
    new_c = auth.derive(CLIN, b"rekey/clinician/", nonce)
    new_p = auth.derive(CLIN, b"rekey/patient/", nonce)
    assert ask(app, clin.line("status"))["error"] == "E_AUTH"     # the old key no longer signs
    assert ask(app, Signer(key=CLIN).hello_line())["error"] == "E_AUTH"   # the old key is gone
    fresh = Signer(app, key=new_c)
    assert fresh.ctr == 0 and ask(app, fresh.line("stop"))["ok"]
    assert Signer(app, key=new_p, role="patient").ctr == 0
    assert ask(boot(app.hal.dev), Signer(boot(app.hal.dev), key=new_c).hello_line())["ok"]
    names = [codetext.EVENT_NAMES[e[1]] for e in app.events.entries()]
    assert "keys" in names


def test_a_request_for_another_pump_is_refused_with_a_signed_reply():
    app, clin = programmed()
    line = clin.line("stop", pump="another-pump")
    r = ask(app, line)
    assert r["error"] == "E_AUTH" and "another-pump" in r["message"]
    assert r["_tag"] == reply_tag(CLIN, line, app.hal.lines[-1])
    assert not app.therapy.pump.stopped


def test_every_reply_to_an_authenticated_request_is_signed_and_bound_to_it():
    app, clin = programmed()
    for cmd, args in (("status", None), ("stop", None), ("bolus", {"dose_nl": -1}),
                      ("settings", None)):
        line = clin.line(cmd, args)
        r = ask(app, line)
        assert r["_tag"] == reply_tag(CLIN, line, app.hal.lines[-1]), (cmd, r)
    # a repeat is signed too, for the same request
    r2 = ask(app, line)
    assert r2["repeat"] is True and r2["_tag"] == reply_tag(CLIN, line, app.hal.lines[-1])
    # a request that does not verify gets no signature (the pump cannot know whose it is)
    body, tag = line.rsplit(" ", 1)
    r3 = ask(app, body + " " + ("0" * 64))
    assert r3["error"] == "E_AUTH" and "_tag" not in r3


def test_info_without_a_key_says_only_what_picks_a_key():
    app, clin = programmed()
    public = ask(app, json.dumps({"id": 1, "cmd": "info"}))
    assert set(public) == {"id", "ok", "cmd", "pump_id", "firmware", "board", "build", "keys",
                           "provisioned", "self_test"}
    keyed = ask(app, clin.line("info"))
    for k in ("ctr", "clock_ts", "stroke_nl", "catheter_nl", "reservoir_max_nl", "update"):
        assert k in keyed


def _damage(dev, names):
    for name in names:
        if name in dev.files:
            data = bytearray(dev.files[name])
            data[len(data) // 2] ^= 0x5A
            dev.files[name] = bytes(data)


def test_damaged_keys_fail_closed_while_therapy_goes_on():
    app, clin = programmed()
    dev = app.hal.dev
    _damage(dev, ("auth.a", "auth.b"))
    app2 = boot(dev)
    assert app2.therapy.sup.alarms & (1 << codes.AL_KEY_DAMAGED)
    assert codes.priority(codes.AL_KEY_DAMAGED) == "warning"
    assert not app2.therapy.sup.alarms & codes.CRITICAL_MASK and app2.therapy.pump.rx is not None
    for line in (Signer().hello_line(), Signer(key=PAT, role="patient").hello_line(),
                 clin.line("program", {"params": PARAMS})):
        assert ask(app2, line)["error"] == "E_KEYS"
    info = ask(app2, "5 info")
    assert info["keys"] == "damaged" and info["provisioned"] is False
    prov = json.dumps({"id": 1, "cmd": "provision",
                       "args": {"clinician_key": bytes(32).hex(), "patient_key": PAT.hex()}})
    r = ask(app2, prov)
    assert r["error"] == "E_LOCKED" and "button" in r["message"]
    strokes = app2.therapy.pump.strokes
    run_for(app2, 3_600_000)
    assert app2.therapy.pump.strokes > strokes          # delivery went on as programmed


def test_one_damaged_copy_falls_back_with_the_counters_moved_on():
    app, clin = programmed()
    dev = app.hal.dev
    used = app.keys.last[auth.CLINICIAN]
    newest = "auth" + (".a", ".b")[app.keys.store.slot]
    _damage(dev, (newest,))
    app2 = boot(dev)
    assert not app2.keys.damaged and app2.keys.fallback
    assert app2.keys.last[auth.CLINICIAN] >= used + auth.WINDOW
    assert "key_fallback" in [codetext.EVENT_NAMES[e[1]] for e in app2.events.entries()]
    assert ask(app2, Signer(app2).line("status"))["ok"]


def _boot_with_button(dev, held):
    from tests.firmware.proto_bench import MemHal
    from firmware.app import App
    hal = MemHal(dev)
    hal.button_held = lambda: held(hal.t)
    app = App(hal)
    app.boot()
    return app


def _run_loop(app, ms):
    hal = app.hal
    end = hal.t + ms

    def wait(n):
        hal.t += max(n, 1)
        if hal.t >= end:
            app.quit = True
    hal.wait = wait
    app.quit = False
    app.run()


def test_provisioning_again_needs_the_button_held_at_boot():
    app = provisioned()
    dev = app.hal.dev
    prov = json.dumps({"id": 1, "cmd": "provision",
                       "args": {"clinician_key": bytes(range(1, 33)).hex(),
                                "patient_key": PAT.hex()}})
    # a press too short, or too late after the boot, opens nothing
    short = _boot_with_button(dev, lambda t: t < 5000 + BUTTON_HOLD_MS // 2)
    _run_loop(short, 10_000)
    assert ask(short, prov)["error"] == "E_LOCKED"
    late = _boot_with_button(dev, lambda t: t > 5000 + 120_000)
    _run_loop(late, 200_000)
    assert ask(late, prov)["error"] == "E_LOCKED"
    held = _boot_with_button(dev, lambda t: t < 5000 + BUTTON_HOLD_MS + 500)
    _run_loop(held, 5_000)
    r = ask(held, prov)
    assert r["ok"] and r["provisioned"] is True
    names = [codetext.EVENT_NAMES[e[1]] for e in held.events.entries()]
    assert names[-2:] == ["button", "keys"]
    assert ask(held, Signer(key=CLIN).hello_line())["error"] == "E_AUTH"   # old key gone
    assert ask(held, Signer(held, key=bytes(range(1, 33))).line("status"))["ok"]
    # the window closes after PROVISION_MS, and after one provisioning
    assert ask(held, prov)["error"] == "E_LOCKED"
    again = _boot_with_button(dev, lambda t: t < 5000 + BUTTON_HOLD_MS + 500)
    _run_loop(again, 5_000)
    again.hal.t += PROVISION_MS
    assert ask(again, prov)["error"] == "E_LOCKED"


def test_the_update_key_is_set_once_and_never_over_the_line_again():
    app = boot()
    modulus = bytes([0xC5] * 384)
    args = {"clinician_key": CLIN.hex(), "patient_key": PAT.hex(), "update_key": modulus.hex()}
    assert ask(app, json.dumps({"id": 1, "cmd": "provision", "args": args}))["update_key"]
    assert app.upkey.modulus == modulus
    held = _boot_with_button(app.hal.dev, lambda t: t < 5000 + BUTTON_HOLD_MS + 500)
    _run_loop(held, 5_000)
    args["update_key"] = bytes([0xC7] * 384).hex()
    r = ask(held, json.dumps({"id": 2, "cmd": "provision", "args": args}))
    assert r["error"] == "E_LOCKED" and "factory" in r["message"]
    assert boot(app.hal.dev).upkey.modulus == modulus
