"""pumpctl against the real firmware on a virtual board: program and read back, boluses given
and refused, refills, alarms after an injected fault, stop and resume, maintenance."""

import json
import tomllib

import pytest

import serial

from e2e_prescriptions import BACLOFEN, MORPHINE, ZICONOTIDE
from host_tools import units


def write(tmp_path, text, name="rx.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def status(pumpctl):
    rc, out, err = pumpctl("--json", "status")
    assert rc == 0, err
    return json.loads(out)


def fill_for(pumpctl, text):
    """The reservoir holds the prescription's drug at its concentration: a new pump is filled
    (the first program names its drug); on a pump that holds another (the shared pump of
    `make test-hw`) the drug is changed with a refill, which stops delivery until the program.
    True when delivery was stopped so."""
    rx = tomllib.loads(text)
    st = status(pumpctl)
    if st["reservoir_nl"] == 0:
        assert pumpctl("refill", "--volume", "20 mL", "--yes")[0] == 0
        return False
    conc = units.concentration_ng_per_ml(rx["concentration"], "concentration")
    if st.get("fill_drug") in (None, rx["drug"]) and st.get("fill_conc_ng_ml") in (0, conc):
        return False
    rc, out, err = pumpctl("refill", "--volume", "20 mL", "--drug", rx["drug"],
                           "--concentration", rx["concentration"], "--yes")
    assert rc == 0, out + err
    return True


def programmed(pumpctl, tmp_path, text=MORPHINE, *extra):
    changed = fill_for(pumpctl, text)
    if not extra and text == MORPHINE:
        # 2 mg/day is above an opioid-naive start: this patient comes from another pump
        extra = ("--override-titration", "already on 2.5 mg/day intrathecal morphine")
    rc, out, err = pumpctl("program", write(tmp_path, text), "--yes", *extra)
    assert rc == 0, out + err
    if changed:
        assert pumpctl("resume", "--yes")[0] == 0
    return out


@pytest.mark.harness
def test_discovery_finds_the_board_and_uses_its_own_key(board, pumpctl):
    rc, out, _ = pumpctl("--json", "ports")
    assert rc == 0 and [p["port"] for p in json.loads(out)["ports"]] == [board.port]
    rc, out, _ = pumpctl("--json", "info")
    info = json.loads(out)
    assert rc == 0 and info["provisioned"] is True and info["stroke_nl"] == 250
    assert status(pumpctl)["programmed"] is False  # signed with the board's clinician key


def test_program_shows_writes_reads_back_and_delivers(board, pumpctl, tmp_path):
    out = programmed(pumpctl, tmp_path)
    assert "2 mg/day" in out and "read back" in out and "delivering" in out
    st = status(pumpctl)
    assert st["delivering"] is True and st["basal_nl_day"] == 106_667
    # What the pump stores is what was sent, with the clinician's own strings (read here by a
    # request signed by hand, not through pumpctl).
    _, reply = board.raw("settings")
    params = reply["settings"]
    assert params["steps"] == [[0, 2_000_000], [420, 3_000_000], [1320, 2_500_000]]
    assert params["meta"]["drug"] == "morphine" and params["meta"]["concentration"] == "25 mg/mL"
    # A second program shows the old settings beside the new ones.
    out = programmed(pumpctl, tmp_path, MORPHINE.replace('"3 mg/day"', '"3.2 mg/day"'))
    row = next(x for x in out.splitlines() if "basal from 07:00" in x)
    assert row.startswith("*") and "3 mg/day" in row and "3.2 mg/day" in row


def test_a_titration_jump_is_refused_unless_overridden_and_the_reason_is_stored(board, pumpctl,
                                                                                tmp_path):
    programmed(pumpctl, tmp_path, BACLOFEN.format(rate="100 mcg/day"))
    jump = write(tmp_path, BACLOFEN.format(rate="200 mcg/day"), "jump.toml")
    rc, _, err = pumpctl("program", jump, "--yes")
    assert rc == 2 and "30 %" in err and "130 mcg/day" in err
    assert status(pumpctl)["basal_nl_day"] == 200_000  # 100 mcg/day at 500 mcg/mL: unchanged
    rc, out, err = pumpctl("program", jump, "--yes", "--override-titration", "ward round: Dr. B")
    assert rc == 0, err
    assert "overridden" in out and "ward round: Dr. B" in out
    assert status(pumpctl)["basal_nl_day"] == 400_000
    _, reply = board.raw("settings")
    assert reply["settings"]["meta"]["titration_override"] == "ward round: Dr. B"


def test_boluses_are_given_and_refused_with_the_pumps_reason(board, pumpctl, tmp_path):
    programmed(pumpctl, tmp_path)
    pumpctl("refill", "--volume", "20 mL", "--yes")
    assert pumpctl("patient-bolus", "--key", board.patient_key, "--yes")[0] == 0
    rc, _, err = pumpctl("patient-bolus", "--key", board.patient_key, "--yes")
    assert rc == 1 and "E_REFUSED" in err and "lockout" in err
    rc, out, err = pumpctl("bolus", "--dose", "0.1 mg", "--duration", "10 min", "--yes")
    assert rc == 0 and "0.1 mg (0.004 mL) over 10 min" in out, err
    rc, _, err = pumpctl("bolus", "--dose", "0.1 mg", "--yes")
    assert rc == 1 and "bolus_active" in err
    rc, _, err = pumpctl("bolus", "--dose", "7 mg", "--yes")  # above the 6 mg daily maximum: not sent
    assert rc == 2 and "--dose" in err and "6 mg" in err
    rc, _, err = pumpctl("stop", "--key", board.patient_key, "--yes")
    assert rc == 1 and "E_ROLE" in err
    assert status(pumpctl)["bolus"] == {"patient": True, "clinician": True}


def test_a_repeated_line_is_answered_from_the_cache_and_acts_once(board, pumpctl, tmp_path):
    programmed(pumpctl, tmp_path)

    def events():
        rc, out, _ = pumpctl("--json", "log")
        return [e["event"] for e in json.loads(out)["entries"]]

    before = events()   # a pump in the lab has a history: count what this test adds
    line, first = board.raw("bolus", {"dose_nl": 2000, "duration_s": 600})
    _, again = board.raw("", line=line)  # the reply was "lost": the same line again
    assert first["ok"] is True and again.get("repeat") is True
    after = events()
    assert after.count("clinician_bolus") == before.count("clinician_bolus") + 1
    assert after.count("clinician_bolus_denied") == before.count("clinician_bolus_denied")


@pytest.mark.harness
def test_refill_checks_the_residual_and_bridges_a_stronger_drug(board, pumpctl, tmp_path):
    programmed(pumpctl, tmp_path, BACLOFEN.format(rate="100 mcg/day"))
    rc, out, err = pumpctl("--json", "refill", "--volume", "18 mL", "--residual", "5 mL",
                           "--yes")
    r = json.loads(out)
    assert rc == 0 and r["expected_nl"] >= 19_900_000 and r["discrepancy"] is True
    assert "refill_discrepancy" in [a["code"] for a in status(pumpctl)["alarms"]]
    assert pumpctl("ack", "refill_discrepancy")[0] == 0
    # 500 -> 2000 mcg/mL: the patient's catheter (77 cm at 2.6 uL/cm) of old drug, shown, and
    # bridged; the pump checks the bridge volume against the same catheter.
    rc, out, err = pumpctl("--json", "refill", "--volume", "20 mL", "--concentration",
                           "2000 mcg/mL", "--yes", "--yes")
    r = json.loads(out)
    assert rc == 0, err
    assert "Prometra 11823, 77 cm" in err and "Bridge bolus" in err
    assert r["bridge"]["started"] is True and r["bridge"]["dose_nl"] > 0
    st = status(pumpctl)
    assert st["basal_nl_day"] == 50_000 and st["bolus"]["clinician"] is True
    _, reply = board.raw("settings")
    assert reply["settings"]["conc_ng_ml"] == 2_000_000


@pytest.mark.harness
def test_an_occlusion_raises_a_critical_alarm_that_stops_boluses(board, pumpctl, tmp_path):
    programmed(pumpctl, tmp_path)
    pumpctl("refill", "--volume", "20 mL", "--yes")
    board.inject("occlusion")
    board.inject("advance", "1 h")
    rc, out, _ = pumpctl("--json", "alarms")
    assert rc == 0 and {"code": "occlusion", "priority": "critical", "acked": False} in \
        json.loads(out)["alarms"]
    assert status(pumpctl)["delivering"] is False
    rc, _, err = pumpctl("bolus", "--dose", "0.1 mg", "--yes")
    assert rc == 1 and "(alarm)" in err
    assert pumpctl("ack", "occlusion")[0] == 0
    assert json.loads(pumpctl("--json", "alarms")[1])["alarms"][0]["acked"] is True
    board.inject("clear_occlusion")
    board.inject("advance", "10 min")
    assert status(pumpctl)["delivering"] is True


@pytest.mark.harness
def test_stop_for_a_while_then_resume(board, pumpctl, tmp_path):
    programmed(pumpctl, tmp_path)
    assert pumpctl("stop", "--for", "30 min", "--yes")[0] == 0
    st = status(pumpctl)
    assert st["stopped"] is True and 1700 <= st["stop_left_s"] <= 1800
    rc, _, err = pumpctl("patient-bolus", "--yes")
    assert rc == 1 and "stopped" in err
    rc, out, _ = pumpctl("resume", "--yes")
    assert rc == 0 and "resumed" in out
    assert status(pumpctl)["delivering"] is True
    pumpctl("stop", "--for", "5 min", "--yes")
    board.inject("advance", "6 min")
    assert status(pumpctl)["stopped"] is False


@pytest.mark.harness
def test_a_timed_stop_survives_a_power_loss_and_ends_on_time(board, pumpctl, tmp_path):
    """Issue 13, item 1: stop --for 2 h, the power fails 30 minutes in for 10 minutes; delivery
    resumes 2 h after the stop, by itself. A board whose clock runs on without power (the
    virtual board) counts the time off; a Pico's clock stops with the power (clock_lost): the
    time off is then not counted and the stop ends late by it, never early."""
    programmed(pumpctl, tmp_path)
    assert pumpctl("stop", "--for", "2 h", "--yes")[0] == 0
    board.inject("advance", "30 min")
    board.inject("power_loss", "for=10 min")
    board.inject("advance", "1 min")
    st = status(pumpctl)
    left = st["stop_left_s"]
    if "clock_lost" in {a["code"] for a in st["alarms"]}:
        assert st["stopped"] is True and 4740 < left <= 5400 - 60  # at most what the cut left
    else:
        assert st["stopped"] is True and 4500 <= left <= 4740  # 79 min, clock counted
    board.inject("advance", "78 min")
    assert status(pumpctl)["stopped"] is True
    board.inject("advance", f"{max(120, left - 78 * 60 + 60)} s")
    st = status(pumpctl)
    assert st["stopped"] is False and st["delivering"] is True
    rc, out, _ = pumpctl("log", "--since", "3 h")
    assert "the timed stop goes on" in out and "the timed stop ended" in out


@pytest.mark.harness
def test_prime_is_bounded_by_the_settings_catheter_and_confirmed_in_two_steps(board, pumpctl,
                                                                              tmp_path):
    programmed(pumpctl, tmp_path, BACLOFEN.format(rate="100 mcg/day"))
    rc, _, err = pumpctl("prime", "--volume", "0.21 mL", "--yes", "--yes")
    assert rc == 2 and "0.2002 mL" in err         # more than the catheter: nothing sent
    before = status(pumpctl)["strokes"]
    rc, out, err = pumpctl("--json", "prime", "--volume", "0.2 mL", "--confirm", "0.2 mL")
    assert rc == 0, err
    r = json.loads(out)
    assert r["started"] is True and r["catheter_nl"] == 200_200
    _, log = pumpctl("log", "--since", "1 h")[:2]
    assert "prime_armed" in log and "held for confirmation" in log
    board.inject("advance", "2 min")
    assert status(pumpctl)["strokes"] - before >= 800      # 0.2 mL as fast as the motor goes


def history(pumpctl):
    rc, out, err = pumpctl("--json", "history")
    assert rc == 0, err
    return json.loads(out)


@pytest.mark.harness
def test_the_history_keeps_each_change_with_its_reason_through_a_power_loss(board, pumpctl,
                                                                          tmp_path):
    """Issue 19, item 6: programs with their reason and the drug library's version, the
    refill, a timed stop that ends while the power is off: all in the therapy history after
    the restart, read by pumpctl history as a clinician reads it."""
    from host_tools import druglib

    programmed(pumpctl, tmp_path)
    programmed(pumpctl, tmp_path, MORPHINE.replace('"3 mg/day"', '"3.2 mg/day"'),
               "--override-titration", "breakthrough pain at 07:00")
    assert pumpctl("stop", "--for", "5 min", "--yes")[0] == 0
    board.inject("power_loss", "for=10 min")
    got = history(pumpctl)
    kinds = [(e["kind"], e["by"]) for e in got["entries"]]
    assert kinds == [("refill", "clinician"), ("program", "clinician"),
                     ("program", "clinician"), ("stop", "clinician"), ("resume", "pump")]
    new = got["entries"][2]
    assert new["notes"]["titration_override"] == "breakthrough pain at 07:00"
    assert new["notes"]["library"] == druglib.version() and new["program"] == 2
    assert new["old_basal_ng_day"] == got["entries"][1]["basal_ng_day"] < new["basal_ng_day"]
    assert got["unsaved"] == 0 and got["first"] == 0
    rc, out, _ = pumpctl("history")
    line = next(x for x in out.splitlines() if "program 2" in x)
    assert ("basal 2.667 mg/day (0.1067 mL/day) -> 2.792 mg/day (0.1117 mL/day)" in line
            and "why: breakthrough pain at 07:00" in line and druglib.version() in line)


def test_stray_control_bytes_do_not_disturb_the_pump(board, pumpctl, tmp_path):
    programmed(pumpctl, tmp_path)
    with serial.serial_for_url(board.port, timeout=0.2) as s:
        s.write(b"\x03\x03\x04hello\r\n\x03")
        s.read(4096)
    assert status(pumpctl)["delivering"] is True


def test_clock_and_log(board, pumpctl, tmp_path):
    programmed(pumpctl, tmp_path)
    rc, out, _ = pumpctl("--json", "clock", "--set", "now", "--yes")
    assert rc == 0 and isinstance(json.loads(out)["clock_ts"], int)
    rc, out, _ = pumpctl("--json", "clock")
    # The emulated Pico's clock runs at the emulator's pace while it works: on a loaded machine
    # it falls behind the wall clock by what the emulator could not keep up with.
    slack_s = 30 if board.info.get("runtime") == "rp2" else 5
    assert rc == 0 and abs(json.loads(out)["drift_s"]) <= slack_s
    rc, out, _ = pumpctl("log", "--since", "1 h")
    assert rc == 0 and "program" in out and "basal 0.1067 mL/day" in out
    rc, out, _ = pumpctl("--json", "log", "--since", "1")
    entries = json.loads(out)["entries"]
    assert entries and entries[0]["seq"] == 1 and json.loads(out)["chain_ok"] is True


@pytest.mark.harness
def test_maintenance_is_refused_and_the_line_never_reaches_a_repl(board, pumpctl, tmp_path):
    """A production build never hands out the REPL (docs/security.md); updates go through
    `make flash` (tests/board/test_update.py)."""
    programmed(pumpctl, tmp_path)
    rc, _, err = pumpctl("maintenance")  # no terminal, no --yes: refused, nothing sent
    assert rc == 2 and "--yes" in err
    rc, out, err = pumpctl("maintenance", "--yes")
    assert rc == 2 and "production build" in err and "make flash" in err, out + err
    with serial.serial_for_url(board.port, timeout=0.2) as s:
        seen = b""
        for _ in range(5):
            s.write(b"\r\x03\x03print(6 * 7)\r\n")
            seen += s.read(4096)
    assert b"42" not in seen and b">>>" not in seen and b"not a command here" in seen
    assert status(pumpctl)["delivering"] is True


# ---- guards a slip cannot pass (issue 19, items 4 and 5) ------------------------------------------

@pytest.mark.harness   # a new pump: neither ziconotide nor baclofen may run on it already
def test_a_unit_slip_and_an_override_past_its_ceiling_are_refused_and_nothing_is_written(
        board, pumpctl, tmp_path):
    from host_tools import druglib

    if status(pumpctl)["reservoir_nl"] == 0:
        assert pumpctl("refill", "--volume", "20 mL", "--yes")[0] == 0
    before = status(pumpctl)
    # Morphine "25 mcg/mL" for 25 mg/mL: refused by check and by program, naming the slip.
    slip = write(tmp_path, MORPHINE.replace('"25 mg/mL"', '"25 mcg/mL"'), "slip.toml")
    for argv in (("check", slip), ("program", slip, "--yes")):
        rc, out, err = pumpctl(*argv)
        assert rc == 2 and "did you mean 25 mg/mL?" in err, (argv, out, err)
    # Ziconotide started at 5 mcg/day: past the label's start, whatever the reason.
    high = write(tmp_path, ZICONOTIDE.format(rate="5 mcg/day"), "high.toml")
    rc, _, err = pumpctl("program", high, "--yes", "--override-titration",
                         "already on 5 mcg/day in another pump")
    assert rc == 2 and "only up to 2.4 mcg/day" in err, err
    after = status(pumpctl)
    assert (after["programmed"], after["basal_nl_day"]) == (before["programmed"],
                                                            before["basal_nl_day"])
    # At the label's 2.4 mcg/day the override goes through; the reason and the library's
    # version are stored with the settings.
    label = write(tmp_path, ZICONOTIDE.format(rate="2.4 mcg/day"), "label.toml")
    rc, out, err = pumpctl("program", label, "--yes", "--override-titration",
                           "the label's own starting dose")
    assert rc == 0 and "stays within its ceiling, 2.4 mcg/day" in out, out + err
    _, reply = board.raw("settings")
    meta = reply["settings"]["meta"]
    assert meta["titration_override"] == "the label's own starting dose"
    assert meta["library"] == druglib.version()


@pytest.mark.harness   # a new pump (see above)
def test_a_baclofen_start_follows_the_screening_trial_rule(board, pumpctl, tmp_path):
    if status(pumpctl)["reservoir_nl"] == 0:
        assert pumpctl("refill", "--volume", "20 mL", "--yes")[0] == 0
    rx = write(tmp_path, BACLOFEN.format(rate="100 mcg/day"))
    # The screening dose worked for 10 h: the rule starts at the screening dose, 50 mcg/day.
    rc, _, err = pumpctl("program", rx, "--yes", "--trial-dose", "50 mcg", "--trial-effect",
                         "10 h")
    assert rc == 2 and "not at the 50 mcg/day the start rule gives" in err, err
    # It worked for 6 h: twice it, as written.
    rc, out, err = pumpctl("--json", "program", rx, "--yes", "--trial-dose", "50 mcg",
                           "--trial-effect", "6 h")
    assert rc == 0, out + err
    got = json.loads(out)
    assert got["start_rule"]["dose_ng_day"] == 100_000 and "Saulino" in got["start_rule"]["rule"]
    assert status(pumpctl)["basal_nl_day"] == 200_000   # 100 mcg/day at 500 mcg/mL


def test_mpremote_stops_at_once_with_the_pumps_reason(board, pumpctl, tmp_path):
    """The pinned mpremote against the pump (the virtual one, the emulated Pico, or a real
    one with make test-hw): it asks for the raw REPL and gets the pump's refusal in its own
    framing (docs/protocol.md), so exec, ls and run exit 1 with the pump's reason instead of
    waiting for ever; nothing runs, and the pump answers pumpctl after."""
    import subprocess
    import sys
    from pathlib import Path

    from firmware.proto import RAW_REASON

    script = write(tmp_path, "print(6 * 7)\n", "answer.py")
    for args in (["exec", "print(6 * 7)"], ["ls"], ["run", str(script)]):
        out = subprocess.run([str(Path(sys.executable).parent / "mpremote"), "connect",
                              board.port, *args], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
        said = out.stdout + out.stderr
        assert out.returncode == 1 and RAW_REASON.decode().strip() in said, (args, said)
        assert "42" not in said
    rc, out, err = pumpctl("--json", "info")
    assert rc == 0 and json.loads(out)["pump_id"], err
