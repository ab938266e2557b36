"""pumpctl's exit statuses and what it sends (or does not send) before the pump answers.

The far end of the line is the scripted pty peer (conftest.py): it answers with canned lines,
so these tests pin down pumpctl's side. tests/e2e/ drives the real firmware."""

import argparse
import io
import json

import pytest

from host_tools import commands, context, fmt, link, program, pumpctl, views
from host_tools.errors import InputError

from serial_peer import body_of

SECRET = bytes(range(32))

ZICONOTIDE = """
drug = "ziconotide"
concentration = "25 mcg/mL"
basal = {{ rate = "{rate}" }}
[limits]
max_daily_dose = "19.2 mcg"
low_reservoir = "2 mL"
"""


@pytest.fixture
def keyfile(tmp_path):
    p = tmp_path / "clinician.key"
    p.write_text(json.dumps({"role": "clinician", "key": SECRET.hex(), "pump_id": "pump-1"}))
    return p


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real boards, Picos or titration record of this machine leak into a test."""
    monkeypatch.setenv("PUMPCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PUMPCTL_KEY", raising=False)
    monkeypatch.setattr(link, "find_pumps", lambda: [])


def rx_file(tmp_path, text, name="rx.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def run(*argv):
    return pumpctl.main([str(a) for a in argv])


CATHETER = {"model": "Prometra 11823", "length_mm": 600, "nl_per_cm": 2600}  # 156 uL


def settings_of(rate_ng_day, catheter=None):
    out = {"conc_ng_ml": 25_000, "steps": [[0, rate_ng_day]], "max_daily_ng": 19_200,
           "low_res_nl": 2_000_000, "meta": {"drug": "ziconotide", "units": "mcg",
                                             "concentration": "25 mcg/mL"}}
    if catheter:
        out["catheter"] = catheter
    return out


LIMITS = {"stroke_nl": 250, "reservoir_nl": 20_000_000, "reservoir_min_nl": 500_000,
          "min_rate_nl_day": 48_000, "max_strokes_per_min": 600, "max_rate_nl_day": 216_000_000,
          "catheter_nl": 200_000}


def pump(settings=None, program=None, **replies):
    """A script: info and settings answered from arguments, the rest as given or ok."""
    def script(p, line):
        cmd = json.loads(body_of(line))["cmd"]
        if cmd == "info":
            return p.reply(line, ok=True, cmd="info", pump_id="pump-1", clock_ts=1000,
                           ctr={"clinician": 0, "patient": 0}, stroke_nl=250,
                           catheter_nl=200_000, board="virtual-pico", limits=LIMITS)
        if cmd == "settings":
            return p.reply(line, ok=True, cmd="settings", settings=settings)
        if cmd == "program" and program is not None:
            return p.reply(line, ok=True, cmd="program", settings=program)
        if cmd in replies:
            return p.reply(line, **replies[cmd])
        return p.reply(line, ok=True, cmd=cmd)
    return script


def test_bad_usage_is_2(capsys):
    assert run("bolus") == 2  # --dose missing
    assert "--dose" in capsys.readouterr().err


def test_a_mistyped_command_names_the_one_meant_and_an_unknown_one_lists_them(capsys):
    assert run("stauts") == 2
    err = capsys.readouterr().err
    assert "unknown command 'stauts': did you mean 'status'?" in err, err
    assert run("frobnicate") == 2
    err = capsys.readouterr().err
    assert "did you mean" not in err and "'patient-bolus'" in err, err


def test_bad_usage_with_json_is_one_object_on_stdout_and_still_2(capsys):
    assert run("--json", "bolus") == 2
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["error"] == "E_USAGE" and "--dose" in out["message"]


def test_every_error_with_json_is_one_object_with_the_same_status(peer, tmp_path, keyfile,
                                                                   capsys):
    bad = rx_file(tmp_path, ZICONOTIDE.format(rate="3 mg/mL"))
    cases = [(("--json", "check", bad), 2, "E_INPUT"),
             (("--json", "--port", "/nonexistent/tty", "info"), 3, "E_NO_CONNECTION"),
             (("--json", "--port", peer.path, "--key", keyfile, "program", bad, "--yes"), 2,
              "E_INPUT")]
    for argv, status, code in cases:
        assert run(*argv) == status, argv
        out = capsys.readouterr().out
        assert json.loads(out) == {**json.loads(out), "ok": False, "error": code}, out


def test_version_names_the_host_and_the_firmware_it_speaks_to(capsys):
    with pytest.raises(SystemExit) as e:
        run("--version")
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("pumpctl ") and "firmware" in out


def test_each_command_lists_only_the_options_it_uses(capsys):
    def options(cmd):
        with pytest.raises(SystemExit):
            run(cmd, "--help")
        return capsys.readouterr().out
    check = options("check")
    assert "--board" in check and "--port" not in check and "--key" not in check \
        and "--timeout" not in check
    assert "--key" not in options("info") and "--port" in options("info")
    assert "--port" not in options("ports")
    assert "--key" in options("status")


def test_check_on_a_scenario_file_says_to_use_pumpsim_run(capsys):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "occlusion.toml"
    assert run("check", path) == 2
    assert "pumpsim run" in capsys.readouterr().err


def test_an_invalid_prescription_is_2_and_nothing_is_sent(peer, tmp_path, keyfile, capsys):
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="3 mg/mL"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes") == 2
    assert "basal.rate" in capsys.readouterr().err
    assert peer.lines == []


def test_program_without_a_terminal_or_yes_is_2_and_nothing_is_sent(peer, tmp_path, keyfile,
                                                                    capsys):
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="2.4 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f) == 2
    assert "--yes" in capsys.readouterr().err
    assert peer.lines == []


def test_no_port_is_3(keyfile, capsys):
    assert run("--port", "/dev/no-such-pump", "--key", keyfile, "status") == 3
    assert "no connection" in capsys.readouterr().err


def test_no_pump_found_is_3(capsys):
    assert run("info") == 3
    assert "no pump found" in capsys.readouterr().err


def test_two_pumps_found_is_2_and_names_them(monkeypatch, capsys):
    monkeypatch.setattr(link, "find_pumps", lambda: [
        link.Found("/dev/ttyACM0", "pico", "Pico"), link.Found("/dev/pts/7", "virtual", "vb")])
    assert run("info") == 2
    err = capsys.readouterr().err
    assert "/dev/ttyACM0" in err and "/dev/pts/7" in err and "--port" in err


def test_a_refusal_is_1_and_prints_the_code_and_message(peer, keyfile, capsys):
    peer.script = pump(patient_bolus={"ok": False, "error": "E_REFUSED", "reason": "lockout",
                                      "message": "the lockout has not passed"})
    assert run("--port", peer.path, "--key", keyfile, "patient-bolus", "--yes") == 1
    err = capsys.readouterr().err
    assert "E_REFUSED" in err and "lockout" in err and "has not passed" in err


def test_a_refusal_with_json_still_prints_one_object(peer, keyfile, capsys):
    peer.script = pump(stop={"ok": False, "error": "E_AUTH", "message": "wrong tag"})
    assert run("--port", peer.path, "--key", keyfile, "--json", "stop", "--yes") == 1
    assert json.loads(capsys.readouterr().out)["error"] == "E_AUTH"


def test_a_pump_that_never_answers_is_3(peer, keyfile, capsys):
    assert run("--port", peer.path, "--key", keyfile, "--timeout", "0.1", "info") == 3


def test_ack_of_an_unknown_code_is_2_and_lists_the_codes(peer, keyfile, capsys):
    peer.script = pump()
    assert run("--port", peer.path, "--key", keyfile, "ack", "ocllusion") == 2
    assert "occlusion" in capsys.readouterr().err
    assert peer.requests() == []


def test_info_json_is_one_object_without_the_envelope(peer, capsys):
    peer.script = pump()
    assert run("--port", peer.path, "--json", "info") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pump_id"] == "pump-1" and "id" not in out and "ok" not in out


def test_a_ziconotide_jump_is_refused_before_anything_is_written(peer, tmp_path, keyfile, capsys):
    peer.script = pump(settings=settings_of(2400))
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="7.2 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes") == 2
    err = capsys.readouterr().err
    assert "2.4 mcg/day" in err and "--override-titration" in err
    assert "program" not in [r["cmd"] for r in peer.requests()]


def test_a_read_back_that_differs_is_1(peer, tmp_path, keyfile, capsys):
    peer.script = pump(settings=None, program=settings_of(1000))
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="1.2 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes") == 1
    assert "E_VERIFY" in capsys.readouterr().err


def test_the_program_request_carries_the_clinicians_strings_and_the_override(peer, tmp_path,
                                                                             keyfile, capsys):
    # A start at the label's 2.4 mcg/day breaks the 1.2 mcg/day start guard, within the
    # override's ceiling.
    peer.script = pump(settings=None)
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="2.4 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes",
               "--override-titration", "trial protocol 7, approved by Dr. A") == 1  # no reply
    sent = [r for r in peer.requests() if r["cmd"] == "program"][0]["args"]["params"]
    assert sent["steps"] == [[0, 2400]] and sent["conc_ng_ml"] == 25_000
    assert sent["meta"]["drug"] == "ziconotide" and sent["meta"]["basal"] == "2.4 mcg/day"
    assert sent["meta"]["titration_override"] == "trial protocol 7, approved by Dr. A"
    out = capsys.readouterr().out
    assert "trial protocol 7" in out
    assert "the override stays within its ceiling, 2.4 mcg/day" in out and "PRIALT" in out


def test_the_program_request_carries_the_drug_librarys_version(peer, tmp_path, keyfile):
    from host_tools import druglib

    peer.script = pump(settings=None)
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="1.2 mcg/day"))
    run("--port", peer.path, "--key", keyfile, "program", f, "--yes")
    sent = [r for r in peer.requests() if r["cmd"] == "program"][0]["args"]["params"]
    assert sent["meta"]["library"] == druglib.version()
    assert sent["meta"]["library"].startswith("2+") and len(sent["meta"]["library"]) == 10


# ---- the override's ceiling (issue 19, item 5) ---------------------------------------------------

def test_ziconotide_started_at_5_mcg_a_day_is_refused_whatever_the_reason(peer, tmp_path,
                                                                          keyfile, capsys):
    """As reproduced: 5 mcg/day with the reason "x" was accepted; the labels start at no more
    than 2.4 mcg/day. "x" is not a reason, and no reason lifts the start past the label."""
    peer.script = pump(settings=None)
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="5 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes",
               "--override-titration", "x") == 2
    assert "at least 3 different words" in capsys.readouterr().err
    assert peer.lines == []   # refused before the pump was asked anything
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes",
               "--override-titration", "the patient asked for faster relief") == 2
    err = capsys.readouterr().err
    assert "lifts the titration guard only up to 2.4 mcg/day" in err, err
    assert "5 mcg/day is above it" in err and "PRIALT" in err
    assert "program" not in [r["cmd"] for r in peer.requests()]


def test_without_an_override_the_refusal_says_how_far_one_could_go(peer, tmp_path, keyfile,
                                                                   capsys):
    peer.script = pump(settings=None)
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="2 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes") == 2
    err = capsys.readouterr().err
    assert "--override-titration" in err and "may program at most 2.4 mcg/day" in err, err
    assert "program" not in [r["cmd"] for r in peer.requests()]


@pytest.mark.parametrize("reason", ["x", "ok", "  ", "pain pain pain", "Dr. X 12", "ok ok"])
def test_an_override_reason_must_say_why_in_words(peer, tmp_path, keyfile, capsys, reason):
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="2.4 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes",
               "--override-titration", reason) == 2
    assert "--override-titration" in capsys.readouterr().err
    assert peer.lines == []


def test_a_reason_of_three_words_is_enough():
    for reason in ("ward round: Dr. B", "bench pump, water", "already on intrathecal morphine"):
        program.check_override(reason)


BACLOFEN = """
drug = "baclofen"
concentration = "500 mcg/mL"
basal = {{ rate = "{rate}" }}
[limits]
max_daily_dose = "800 mcg"
low_reservoir = "2 mL"
"""


def program_baclofen(peer, tmp_path, keyfile, rate, *extra, settings=None):
    peer.script = pump(settings=settings, program=None)
    f = rx_file(tmp_path, BACLOFEN.format(rate=rate))
    return run("--port", peer.path, "--key", keyfile, "program", f, "--yes", *extra)


def programmed(peer):
    return "program" in [r["cmd"] for r in peer.requests()]


def test_a_baclofen_start_after_a_trial_follows_the_rule_and_shows_it(peer, tmp_path, keyfile,
                                                                      capsys):
    # 50 mcg worked for 6 h (not longer than 8 h): the first daily dose is twice it.
    program_baclofen(peer, tmp_path, keyfile, "100 mcg/day", "--trial-dose", "50 mcg",
                     "--trial-effect", "6 h")
    out = capsys.readouterr().out
    assert "start rule: baclofen after a screening trial" in out, out
    assert "worked for 6 h, not longer than 8 h" in out and "twice the screening dose" in out
    assert "Saulino" in out and "this prescription starts there" in out
    assert programmed(peer)


@pytest.mark.parametrize("effect, rule_mcg", [("9 h", 50), ("8 h", 100), ("6", 100)])
def test_the_start_rule_depends_on_how_long_the_trial_worked(peer, tmp_path, keyfile, capsys,
                                                            effect, rule_mcg):
    """Longer than 8 h: the screening dose itself; 8 h or less (a bare number is hours):
    twice it. Any other start is an override, at most twice the screening dose."""
    other = 150 - rule_mcg   # 100 when the rule gives 50, 50 when it gives 100
    trial = ("--trial-dose", "50 mcg", "--trial-effect", effect)
    assert program_baclofen(peer, tmp_path, keyfile, f"{other} mcg/day", *trial) == 2
    err = capsys.readouterr().err
    assert f"not at the {rule_mcg} mcg/day the start rule gives" in err, err
    assert "may program at most 100 mcg/day" in err and not programmed(peer)
    program_baclofen(peer, tmp_path, keyfile, f"{other} mcg/day", *trial,
                     "--override-titration", "spasms return by the afternoon")
    assert programmed(peer)
    capsys.readouterr()
    assert program_baclofen(peer, tmp_path, keyfile, "150 mcg/day", *trial,
                            "--override-titration", "spasms return by the afternoon") == 2
    assert "only up to 100 mcg/day" in capsys.readouterr().err


def test_trial_options_are_refused_when_they_cannot_apply(peer, tmp_path, keyfile, capsys):
    trial = ("--trial-dose", "50 mcg", "--trial-effect", "6 h")
    assert program_baclofen(peer, tmp_path, keyfile, "100 mcg/day", "--trial-dose",
                            "50 mcg") == 2
    assert "--trial-effect" in capsys.readouterr().err and peer.lines == []
    assert program_baclofen(peer, tmp_path, keyfile, "100 mcg/day", "--trial-dose", "50 mg",
                            "--trial-effect", "6 h") == 2   # a slip: 50 mg for 50 mcg
    assert "at most the library's hard limit" in capsys.readouterr().err and peer.lines == []
    assert program_baclofen(peer, tmp_path, keyfile, "100 mcg/day", "--trial-dose", "50 mcg",
                            "--trial-effect", "3 d") == 2
    assert "from 1 min to 24 h" in capsys.readouterr().err and peer.lines == []
    z = rx_file(tmp_path, ZICONOTIDE.format(rate="1.2 mcg/day"), "z.toml")
    assert run("--port", peer.path, "--key", keyfile, "program", z, "--yes", *trial) == 2
    assert "no screening trial for ziconotide" in capsys.readouterr().err and peer.lines == []
    # A pump already running baclofen: nothing is started, a trial cannot apply.
    running = {"conc_ng_ml": 500_000, "steps": [[0, 100_000]], "max_daily_ng": 800_000,
               "low_res_nl": 2_000_000, "meta": {"drug": "baclofen", "units": "mcg"}}
    assert program_baclofen(peer, tmp_path, keyfile, "100 mcg/day", *trial,
                            settings=running) == 2
    assert "only when baclofen is started" in capsys.readouterr().err
    assert not programmed(peer)


def test_prime_without_a_terminal_needs_both_confirmations(peer, keyfile, capsys):
    peer.script = pump()
    assert run("--port", peer.path, "--key", keyfile, "prime", "--volume", "100 uL",
               "--yes") == 2
    assert peer.lines == []


def test_prime_refuses_more_than_the_patients_catheter_holds(peer, keyfile, capsys):
    peer.script = pump(settings=settings_of(2400, CATHETER), status={"ok": True, "cmd": "status"})
    assert run("--port", peer.path, "--key", keyfile, "prime", "--volume", "0.2 mL",
               "--confirm", "0.2 mL") == 2
    err = capsys.readouterr().err
    assert "0.156 mL" in err and "Prometra 11823, 60 cm" in err
    assert "bolus" not in [r["cmd"] for r in peer.requests()]


def test_prime_without_a_catheter_in_the_settings_is_refused_before_anything_is_sent(
        peer, keyfile, capsys):
    peer.script = pump(settings=settings_of(2400), status={"ok": True, "cmd": "status"})
    assert run("--port", peer.path, "--key", keyfile, "prime", "--volume", "0.1 mL",
               "--confirm", "0.1 mL") == 2
    assert "no catheter" in capsys.readouterr().err
    assert "bolus" not in [r["cmd"] for r in peer.requests()]


def test_prime_is_two_requests_the_second_repeating_the_pumps_id(peer, keyfile, capsys):
    """The pump holds a prime until a second request confirms it (firmware/pump.py arm_prime):
    pumpctl sends the volume, shows what the pump holds, then confirms with the pump's id."""
    peer.script = pump(settings=settings_of(2400, CATHETER), status={"ok": True, "cmd": "status"},
                       bolus={"ok": True, "cmd": "bolus", "started": False, "confirm": 4321,
                              "catheter_nl": 156_000, "expires_s": 120, "kind": "prime"})
    assert run("--port", peer.path, "--key", keyfile, "prime", "--volume", "150 uL",
               "--confirm", "150 uL") == 0
    boluses = [r["args"] for r in peer.requests() if r["cmd"] == "bolus"]
    assert boluses == [{"dose_nl": 150_000, "duration_s": 0, "kind": "prime"},
                       {"dose_nl": 150_000, "duration_s": 0, "kind": "prime", "confirm": 4321}]


# ---- pure helpers ------------------------------------------------------------------------------

def test_the_side_by_side_view_uses_the_units_the_clinician_wrote():
    old, new = settings_of(2400), settings_of(4800)
    lines = views.side_by_side(old, new)
    row = next(x for x in lines if "basal from 00:00" in x)
    assert row.startswith("*") and "2.4 mcg/day" in row and "4.8 mcg/day" in row
    assert next(x for x in lines if "drug" in x).startswith(" ")


class Terminal(io.StringIO):
    """Typed answers on a standard input that says it is a terminal."""

    def isatty(self):
        return True


def ctx_with(answers):
    import argparse

    return context.Context(argparse.Namespace(json=False), stdout=io.StringIO(),
                            stderr=io.StringIO(), stdin=Terminal(answers))


def test_the_second_confirmation_is_the_volume_typed_again():
    context.Context.confirm_volume(ctx_with("y\n0.2 mL\n"), "priming bolus", 200_000, 0, None)
    with pytest.raises(context.UsageError, match="not 0.2 mL"):
        ctx_with("y\n2 mL\n").confirm_volume("priming bolus", 200_000, 0, None)
    with pytest.raises(context.UsageError, match="not confirmed"):
        ctx_with("n\n").confirm_volume("priming bolus", 200_000, 0, None)
    with pytest.raises(context.UsageError, match="end of input"):
        ctx_with("y\n").confirm_volume("priming bolus", 200_000, 0, None)


def test_confirm_volume_given_beforehand_must_match():
    ctx = ctx_with("")
    ctx.confirm_volume("bridge bolus", 120_000, 0, "120 uL")
    with pytest.raises(InputError, match="--confirm"):
        ctx.confirm_volume("bridge bolus", 120_000, 0, "0.2 mL")
    ctx.confirm_volume("bridge bolus", 120_000, 2, None)  # --yes --yes


def test_an_empty_override_reason_is_2(peer, tmp_path, keyfile, capsys):
    f = rx_file(tmp_path, ZICONOTIDE.format(rate="2.4 mcg/day"))
    assert run("--port", peer.path, "--key", keyfile, "program", f, "--yes",
               "--override-titration", "  ") == 2
    assert peer.lines == []


def test_the_pumps_notes_stay_within_512_bytes_however_long_the_schedule():
    from host_tools.prescription import parse_prescription

    steps = [{"start": f"{h:02d}:00", "rate": f"{100 + h}.123456 mcg/day"} for h in range(13)]
    raw = {"drug": "clonidine", "concentration": "1000 mcg/mL", "basal": {"steps": steps},
           "limits": {"max_daily_dose": "1000 mcg", "low_reservoir": "2 mL"}}
    params = program.build_params(raw, parse_prescription(raw), "x" * 200)
    assert program.meta_size(params["meta"]) <= 512
    assert params["meta"]["titration_override"] == "x" * 200
    with pytest.raises(InputError, match="--override-titration"):
        program.build_params(raw, parse_prescription(raw), "x" * 600)


def _clock_requests(peer):
    reqs = [json.loads(body_of(x)) for x in peer.lines if x.strip().startswith(b"{")]
    return [r for r in reqs if r["cmd"] == "clock"]


LOST = {"ok": True, "cmd": "clock", "clock_ts": 1000, "clock_lost": True}


def test_clock_yes_sets_a_lost_clock_and_plain_clock_only_says_so(peer, keyfile, capsys):
    peer.script = pump(clock=LOST)
    assert run("--port", peer.path, "--key", keyfile, "clock") == 0   # no terminal: a hint
    out = capsys.readouterr()
    assert "NOT SET" in out.out and "clock --set now" in out.err
    assert [r.get("args") for r in _clock_requests(peer)] == [None]
    assert run("--port", peer.path, "--key", keyfile, "clock", "--yes") == 0
    sets = [r["args"]["set_ts"] for r in _clock_requests(peer) if r.get("args")]
    assert len(sets) == 1 and abs(sets[0] - fmt.host_now_ts()) <= 5


def test_status_offers_to_set_a_lost_clock_with_one_confirmation(peer, keyfile):
    peer.script = pump(status={"ok": True, "cmd": "status", "programmed": False,
                               "alarms": [{"code": "clock_lost", "priority": "warning",
                                           "acked": False}]})
    for answer, sets in (("n\n", 0), ("y\n", 1)):
        peer.lines.clear()
        ctx = ctx_with(answer)
        ctx.opts = argparse.Namespace(json=False, port=peer.path, key=str(keyfile))
        assert commands.do_status(ctx, ctx.opts) == 0
        assert len([r for r in _clock_requests(peer) if r.get("args")]) == sets
        assert ("clock set" in ctx.out.getvalue()) == bool(sets)
        ctx.close()


def test_no_offer_without_clock_lost_or_to_the_patient_key(peer, tmp_path, keyfile, capsys):
    peer.script = pump(clock={"ok": True, "cmd": "clock", "clock_ts": 1000})
    assert run("--port", peer.path, "--key", keyfile, "clock", "--yes") == 0
    assert [r.get("args") for r in _clock_requests(peer)] == [None]
    patient = tmp_path / "patient.key"
    patient.write_text(json.dumps({"role": "patient", "key": SECRET.hex(), "pump_id": "pump-1"}))
    peer.script = pump(alarms={"ok": True, "cmd": "alarms",
                               "alarms": [{"code": "clock_lost", "priority": "warning"}]})
    peer.lines.clear()
    assert run("--port", peer.path, "--key", patient, "alarms") == 0
    assert _clock_requests(peer) == [] and "clock_lost" in capsys.readouterr().err
# ---- issue 14: what pumpctl says and asks --------------------------------------------------

STATUS = {"ok": True, "cmd": "status", "programmed": True, "stopped": False, "delivering": True,
          "rate_nl_day": 96_000, "step": 0, "basal_nl_day": 96_000, "max_daily_nl": 768_000,
          "reservoir_nl": 10_000_000, "refill_ts": -1, "alarms": [], "battery_mv": 3100,
          "delivered_24h_nl": 96_000, "bolus": {"patient": False, "clinician": False},
          "clock_ts": 1000, "stop_left_s": 0}


def test_status_json_carries_the_drug_concentration_and_both_units(peer, keyfile, capsys):
    peer.script = pump(settings=settings_of(2400), status=STATUS)
    assert run("--port", peer.path, "--key", keyfile, "--json", "status") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["drug"] == "ziconotide" and out["concentration_ng_per_ml"] == 25_000
    assert out["mass_unit"] == "mcg" and out["basal_ng_day"] == 2400
    assert out["basal_nl_day"] == 96_000 and out["therapy"] == "delivering"
    assert out["text"]["basal_a_day"] == "2.4 mcg (0.096 mL)"


@pytest.mark.parametrize("argv", [("bolus", "--dose", "1 mcg"), ("patient-bolus",), ("stop",),
                                  ("resume",), ("clock", "--set", "now"),
                                  ("refill", "--volume", "10 mL"), ("maintenance",)])
def test_every_therapy_change_without_a_terminal_needs_yes_and_sends_nothing(peer, keyfile,
                                                                             capsys, argv):
    peer.script = pump(settings=settings_of(2400), status=STATUS)
    assert run("--port", peer.path, "--key", keyfile, *argv) == 2
    assert "--yes" in capsys.readouterr().err
    assert [r["cmd"] for r in peer.requests()
            if r["cmd"] not in ("info", "settings", "status", "clock")] == []


def test_stop_says_what_it_does_and_the_withdrawal_risk_before_acting(peer, keyfile, capsys):
    peer.script = pump(settings=settings_of(2400), status=STATUS)
    assert run("--port", peer.path, "--key", keyfile, "stop", "--yes") == 0
    out = capsys.readouterr().out
    assert out.index("Withdrawal risk") < out.index("delivery stopped")


def test_a_clinician_bolus_above_the_librarys_hard_limit_is_never_sent(peer, keyfile, capsys):
    peer.script = pump(settings=settings_of(2400), status=STATUS)
    assert run("--port", peer.path, "--key", keyfile, "bolus", "--dose", "5 mcg", "--yes") == 2
    assert "2.4 mcg" in capsys.readouterr().err
    assert "bolus" not in [r["cmd"] for r in peer.requests()]
    assert run("--port", peer.path, "--key", keyfile, "bolus", "--dose", "1.5 mcg",
               "--yes") == 0
    assert "soft limit of 1 mcg" in capsys.readouterr().out


def test_the_pumps_own_limits_decide_a_refill(peer, keyfile, capsys):
    peer.script = pump(settings=settings_of(2400), status=STATUS)
    assert run("--port", peer.path, "--key", keyfile, "refill", "--volume", "30 mL",
               "--yes") == 2
    assert "20 mL" in capsys.readouterr().err
    implant = dict(LIMITS, reservoir_nl=40_000_000, stroke_nl=200)

    def script(p, line):
        if json.loads(body_of(line))["cmd"] == "info":
            return p.reply(line, ok=True, cmd="info", pump_id="pump-1", clock_ts=1000,
                           ctr={"clinician": 0, "patient": 0}, board="implant", limits=implant)
        return pump(settings=settings_of(2400), status=STATUS)(p, line)
    peer.script = script
    assert run("--port", peer.path, "--key", keyfile, "refill", "--volume", "30 mL",
               "--yes") == 0
    assert [r for r in peer.requests() if r["cmd"] == "refill"][-1]["args"]["volume_nl"] \
        == 30_000_000


def test_a_closed_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "pumpctl"
    proc = subprocess.run(f'"{exe}" --help | head -1', shell=True, capture_output=True,
                          text=True)
    assert proc.stdout.startswith("usage: pumpctl") and "Traceback" not in proc.stderr
    assert "BrokenPipeError" not in proc.stderr


def test_with_several_boards_pumpctl_takes_the_one_this_checkout_started(monkeypatch, capsys):
    import argparse

    mine = link.Found("/dev/pts/97", "virtual", "virtual board", {"root": str(context.ROOT),
                                                                 "flash": "/tmp/a", "pid": 1})
    theirs = link.Found("/dev/pts/98", "virtual", "virtual board", {"root": "/elsewhere",
                                                                   "flash": "/tmp/b", "pid": 2})
    monkeypatch.setattr(link, "find_pumps", lambda: [theirs, mine])
    ctx = context.Context(argparse.Namespace(json=False, port=None), stdout=io.StringIO(),
                           stderr=io.StringIO())
    assert ctx._port() == "/dev/pts/97"
    assert "started from this checkout" in ctx.err.getvalue()
    monkeypatch.setattr(link, "find_pumps", lambda: [theirs, theirs])
    with pytest.raises(context.UsageError, match="flash /tmp/b"):
        ctx._port()


def test_a_worked_out_volume_is_confirmed_as_it_is_shown():
    """A bridge bolus of 26,666 nL is shown as 0.02667 mL: that is what is typed (or given
    with --confirm) to confirm it, and anything that reads otherwise is refused."""
    ctx_with("y\n0.02667 mL\n").confirm_volume("bridge bolus", 26_666, 0, None)
    ctx_with("").confirm_volume("bridge bolus", 26_666, 0, "26.67 uL")
    with pytest.raises(context.UsageError, match="not 0.02667 mL"):
        ctx_with("y\n0.0267 mL\n").confirm_volume("bridge bolus", 26_666, 0, None)
    with pytest.raises(InputError, match="--confirm"):
        ctx_with("").confirm_volume("bridge bolus", 26_666, 0, "0.027 mL")


def test_check_shows_the_reminders_given_or_the_firmwares_defaults(capsys):
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "prescriptions" / "morphine_flex.toml"
    assert run("check", path) == 0
    out = capsys.readouterr().out
    assert "therapy_stopped 1 h into an open-ended stop" in out
    assert "sounds again after 30 min" in out
    assert run("check", path, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["stop_reminder_s"], shown["alarm_silence_s"]) == (3600, 1800)


def test_status_shows_the_battery_days_and_info_the_self_test():
    """The firmware's own keys (issue 20) through pumpctl's formatters."""
    st = {"battery_mv": 3050, "battery_eri_days": 732, "battery_eos_days": 1223,
          "battery_life": {"eri_days": [707, 732, 756], "eos_days": [1198, 1223, 1248]}}
    assert views.battery_text(st) == "3050 mV, about 732 d to ERI, about 1223 d to EOS"
    (line,) = views.self_test_lines({
        "when_ts": 0, "passed": False,
        "parts": {"code": {"outcome": "pass", "critical": True, "found": "manifest signed"},
                  "battery": {"outcome": "fail", "critical": False, "found": "4100 mV"}}})
    assert line.startswith("self-test    FAILED at ")
    assert line.endswith("(code ok, battery FAILED: 4100 mV)")
