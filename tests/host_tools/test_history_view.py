"""`pumpctl history`: the pump's therapy history read reply by reply and printed as a clinician
reads it (when, what, by whom, old -> new in mass and volume a day, why, the drug library's
version), `--json` one object; the drug library's version in every program's notes. The far end
is the scripted pty peer; tests/e2e runs the command against the real firmware."""

import json

import pytest

from host_tools import druglib, program, pumpctl, views
from host_tools.prescription import parse_prescription

from serial_peer import body_of

SECRET = bytes(range(32))
ZICONOTIDE = {"drug": "ziconotide", "units": "mcg", "concentration": "25 mcg/mL",
              "library": "0123456789ab"}


def entry(seq, kind, **fields):
    return {"seq": seq, "ts": 91_500_000 + 3600 * seq, "kind": kind, "by": "clinician",
            **fields}


HISTORY = [
    entry(0, "program", program=1, conc_ng_ml=25_000, basal_ng_day=2400, basal_nl_day=96_000,
          max_daily_ng=19_200, old_basal_ng_day=-1, old_basal_nl_day=-1, old_max_daily_ng=-1,
          notes=ZICONOTIDE),
    entry(1, "refill", volume_nl=20_000_000, conc_ng_ml=0, residual_nl=1_900_000,
          expected_nl=2_000_000, stable_s=30 * 86_400),
    entry(2, "program", program=2, conc_ng_ml=25_000, basal_ng_day=7200, basal_nl_day=288_000,
          max_daily_ng=19_200, old_basal_ng_day=2400, old_basal_nl_day=96_000,
          old_max_daily_ng=19_200, recovered=True,
          notes={**ZICONOTIDE, "titration_override": "trial protocol 7, approved by Dr. A"}),
    entry(3, "clinician_bolus", dose_nl=40_000, duration_ms=600_000, conc_ng_ml=25_000),
    entry(4, "stop", for_s=1800),
    {**entry(5, "resume", auto=1), "by": "pump"},
    {**entry(6, "patient_boluses", given=3, denied=1, volume_nl=24_000, mass_ng=600),
     "by": "patient", "ts": 91_497_600},
    {"seq": 7, "kind": "lost", "by": "pump", "entries": 12},
    {**entry(8, "stop", for_s=0), "unsaved": True},
]


@pytest.fixture
def keyfile(tmp_path):
    p = tmp_path / "clinician.key"
    p.write_text(json.dumps({"role": "clinician", "key": SECRET.hex(), "pump_id": "pump-1"}))
    return p


def history_pump(rows, per_reply=3, **extra):
    """A script that pages `rows` as the pump does: from `since`, a few a reply."""
    def script(p, line):
        req = json.loads(body_of(line))
        if req["cmd"] != "history":
            return p.reply(line, ok=True, cmd=req["cmd"], pump_id="pump-1")
        args = req.get("args") or {}
        since = args.get("since", 0) if "last" not in args else len(rows) - args["last"]
        got = rows[since:since + min(per_reply, args.get("max", 20))]
        fields = {"first": 0, "unsaved": 0, "dropped": 0,
                  "today": {"day_ts": 91_584_000, "given": 1, "denied": 0, "volume_nl": 8000,
                            "mass_ng": 200}, **extra}
        return p.reply(line, ok=True, cmd="history", entries=got, next=since + len(got),
                       total=len(rows), **fields)
    return script


def run(*argv):
    return pumpctl.main([str(a) for a in argv])


def test_pumpctl_history_reads_every_reply_and_says_what_changed_by_whom_and_why(peer, keyfile,
                                                                                capsys):
    peer.script = history_pump(HISTORY)
    assert run("--port", peer.path, "--key", keyfile, "history") == 0
    out = capsys.readouterr().out.splitlines()
    sent = [r.get("args") for r in peer.requests() if r["cmd"] == "history"]
    assert sent == [{"max": 20}, {"since": 3, "max": 20}, {"since": 6, "max": 20}]
    assert out[0] == ("2026-11-25 00:40  program 1        clinician  basal 2.4 mcg/day "
                      "(0.096 mL/day) (the first program); max a day 19.2 mcg; ziconotide at "
                      "25 mcg/mL; no override; drug library 0123456789ab")
    assert "residual 1.9 mL measured, 2 mL expected (-0.1 mL); usable for 30 d" in out[1]
    assert ("basal 2.4 mcg/day (0.096 mL/day) -> 7.2 mcg/day (0.288 mL/day); max a day "
            "19.2 mcg; ziconotide at 25 mcg/mL; why: trial protocol 7, approved by Dr. A; "
            "drug library 0123456789ab; recorded at the boot after a power cut") in out[2]
    assert "clinician bolus  clinician  1 mcg (0.04 mL) over 10 min" in out[3]
    assert out[4].endswith("stop             clinician  for 30 min")
    assert out[5].endswith("resume           pump       the timed stop ended")
    assert out[6] == ("2026-11-25        patient boluses  patient    3 given (0.6 mcg, "
                      "0.024 mL), 1 denied")
    assert "12 entries could not be read" in out[7]
    assert out[8].endswith("until resumed  (NOT YET ON FLASH)")
    assert out[9].endswith("1 given (0.2 mcg, 0.008 mL), 0 denied so far today")


def test_pumpctl_history_json_is_one_object_with_the_entries_and_their_words(peer, keyfile,
                                                                            capsys):
    peer.script = history_pump(HISTORY[:3], unsaved=1, dropped=2)
    assert run("--port", peer.path, "--key", keyfile, "--json", "history") == 0
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert [e["seq"] for e in got["entries"]] == [0, 1, 2]
    assert got["entries"][2]["notes"]["titration_override"].startswith("trial protocol 7")
    assert "why: trial protocol 7" in got["entries"][2]["text"]
    assert got["total"] == 3 and got["unsaved"] == 1 and got["today"]["given"] == 1
    assert len(got["warnings"]) == 2 and "only in the pump's RAM" in err


def test_the_page_reads_only_the_newest_entries_newest_first(peer, keyfile):
    from host_tools import commands
    from host_tools.link import Key, Link

    peer.script = history_pump(HISTORY, per_reply=20)
    with Link.open(peer.path, Key("clinician", SECRET, "pump-1")) as lk:
        lines = commands.history_lines(lk)
    sent = [r.get("args") for r in peer.requests() if r["cmd"] == "history"]
    assert sent == [{"last": 20, "max": 20}]
    assert lines[0].endswith("so far today") and "program 1" in lines[-1]


def test_every_program_carries_the_drug_librarys_version():
    raw = {"drug": "morphine", "concentration": "25 mg/mL", "basal": {"rate": "2 mg/day"},
           "limits": {"max_daily_dose": "6 mg", "low_reservoir": "2 mL"}}
    params = program.build_params(raw, parse_prescription(raw), "x" * 300)
    version = druglib.version()
    assert params["meta"]["library"] == version and "+" in version
    assert program.meta_size(params["meta"]) <= 512     # kept while optional notes go


def test_an_entry_of_a_kind_this_host_does_not_know_is_still_shown():
    line = views.history_lines([{"seq": 0, "ts": 0, "kind": "valve", "by": "pump", "v0": 3}])[0]
    assert "valve" in line and '"v0": 3' in line


def test_a_catheter_revision_a_prime_and_a_refill_with_a_discrepancy_read_as_a_clinician_reads():
    rows = [HISTORY[0],
            entry(1, "catheter", catheter_nl=15_000),
            entry(2, "prime", dose_nl=15_000, duration_ms=0, conc_ng_ml=25_000),
            entry(3, "bridge", dose_nl=10_000, duration_ms=60_000, conc_ng_ml=25_000),
            entry(4, "refill", volume_nl=18_000_000, conc_ng_ml=0, residual_nl=1_000_000,
                  expected_nl=2_000_000, stable_s=0, discrepancy=1,
                  notes={"drug": "ziconotide"})]
    out = views.history_lines(rows)
    assert out[1].endswith("catheter revised clinician  new or revised, empty: 0.015 mL")
    assert "prime            clinician  0.375 mcg (0.015 mL), as fast as the motor allows" \
        in out[2]
    assert "bridge bolus     clinician  0.25 mcg (0.01 mL) over 1 min" in out[3]
    assert out[4].endswith("refill           clinician  reservoir 18 mL of ziconotide; residual "
                           "1 mL measured, 2 mL expected (-1 mL: a discrepancy, "
                           "refill_discrepancy raised)")


def test_the_historys_log_events_read_in_words():
    assert views.explain("history_failed", 2, 0) == ("a therapy history entry could not be "
                                                     "written: 2 waiting in RAM (retried)")
    assert views.explain("history_lost", 7, -1) == ("the therapy history's open page was "
                                                    "damaged: page 7 begun anew")
