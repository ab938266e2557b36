"""The drug library (host_tools/drugs.toml): every number has a source or says it is a project
ceiling, soft is below hard, the bolus limits refuse and warn where the file says, and a drug
without published support is refused unless the prescription names its evidence."""

import tomllib

import pytest

from host_tools import druglib
from host_tools.errors import InputError
from host_tools.prescription import parse_prescription

LIMITS = ("concentration", "daily_dose", "patient_bolus", "patient_boluses_per_day",
          "clinician_bolus")


def test_every_number_names_a_source_and_soft_is_below_hard():
    with open(druglib.LIBRARY, "rb") as f:
        table = tomllib.load(f)
    sources = table["sources"]
    assert "project" in sources and "ceiling" in sources["project"]
    for name, d in table["drugs"].items():
        for key in LIMITS:
            for side in ("soft", "hard"):
                value, source = d[key][side]
                assert source in sources, (name, key, side)
        for key, t in d.items():
            if key.startswith("titration"):
                for rule, pair in t.items():
                    assert pair[1] in sources, (name, key, rule)
    for drug in druglib.load().values():
        for lim in (drug.concentration, drug.daily, drug.patient_bolus,
                    drug.patient_boluses_per_day, drug.clinician_bolus):
            assert 0 < lim.soft < lim.hard, drug.name


def test_a_cited_source_names_a_section_or_a_listing():
    for key, text in druglib.sources().items():
        if key != "project":
            assert any(w in text for w in ("section", "NDC", "abstract", "Table", "page")), key


def test_a_limit_whose_source_is_unknown_is_refused(monkeypatch, tmp_path):
    text = druglib.LIBRARY.read_text().replace('["25 mg/mL", "infumorph_ndc"]',
                                               '["25 mg/mL", "PACC 2017"]', 1)
    p = tmp_path / "drugs.toml"
    p.write_text(text)
    monkeypatch.setattr(druglib, "LIBRARY", p)
    druglib._table.cache_clear()
    druglib.load.cache_clear()
    try:
        with pytest.raises(InputError, match="a key of \\[sources\\]"):
            druglib.load()
    finally:
        druglib._table.cache_clear()
        druglib.load.cache_clear()


MORPHINE = {"drug": "morphine", "concentration": "25 mg/mL", "basal": {"rate": "2 mg/day"},
            "limits": {"max_daily_dose": "6 mg"}}


def rx(**changes):
    return parse_prescription({**MORPHINE, **changes})


def test_a_5_mg_morphine_patient_bolus_is_refused_naming_the_limit():
    with pytest.raises(InputError) as e:
        rx(patient_bolus={"dose": "5 mg", "duration": "10 min", "lockout": "2 h",
                          "max_per_day": 4})
    assert e.value.key == "patient_bolus.dose" and "1 mg" in e.value.expected


def test_patient_bolus_soft_limits_and_the_cap_warn():
    got = rx(patient_bolus={"dose": "0.8 mg", "duration": "10 min", "lockout": "2 h",
                            "max_per_day": 8}).warnings
    assert any("0.8 mg is above the library's soft limit of 0.5 mg" in w for w in got)
    assert any("8 patient boluses a day" in w for w in got)
    assert any("add up to 8.4 mg, above limits.max_daily_dose (6 mg)" in w for w in got)


def test_too_many_patient_boluses_a_day_are_refused():
    with pytest.raises(InputError) as e:
        rx(patient_bolus={"dose": "0.2 mg", "duration": "10 min", "lockout": "1 h",
                          "max_per_day": 13})
    assert e.value.key == "patient_bolus.max_per_day"


def test_ketamine_needs_a_named_source():
    ket = {"drug": "ketamine", "concentration": "1 mg/mL", "basal": {"rate": "1 mg/day"},
           "limits": {"max_daily_dose": "2 mg"}}
    with pytest.raises(InputError) as e:
        parse_prescription(ket)
    assert e.value.key == "source"
    got = parse_prescription({**ket, "source": "Case series, J Pain 2099;1:1"})
    assert got.source.startswith("Case series")


def test_the_display_unit_is_the_drugs():
    assert rx().unit == "mg"
    zico = parse_prescription({"drug": "ziconotide", "concentration": "0.025 mg/mL",
                               "basal": {"rate": "0.0012 mg/day"},
                               "limits": {"max_daily_dose": "3 mcg"}})
    assert zico.unit == "mcg"


# ---- lower limits, the implant's volume, the version (issue 19, item 4) ---------------------------

def test_every_drug_has_a_sourced_lower_concentration_limit_below_its_upper_ones():
    with open(druglib.LIBRARY, "rb") as f:
        table = tomllib.load(f)
    for name, d in table["drugs"].items():
        for side, (value, source) in d["low_concentration"].items():
            assert source in table["sources"], (name, side)
    for drug in druglib.load().values():
        low, high = drug.low_concentration, drug.concentration
        assert 0 < low.hard <= low.soft < high.soft < high.hard, drug.name
        # mcg written for mg: no strength the library allows passes a thousand times weaker
        assert high.hard / 1000 < low.hard, drug.name
        assert 0 < drug.low_volume_rate.hard < drug.volume_rate.soft < drug.volume_rate.hard


def test_the_implant_band_is_the_boards_slowest_rate_to_a_few_ml_a_day():
    from host_tools.boardlimits import BOARD_NAMES, board_limits

    slowest = {board_limits(name).min_rate_nl_day for name in BOARD_NAMES}
    for drug in druglib.load().values():
        assert {drug.low_volume_rate.hard} == slowest == {48_000}
        assert (drug.volume_rate.soft, drug.volume_rate.hard) == (1_000_000, 5_000_000)


def test_baclofens_lower_limits_are_its_labelled_strengths():
    b = druglib.get("baclofen").low_concentration
    assert (b.hard, b.hard_source) == (50_000, "gablofen_ndc")
    assert (b.soft, b.soft_source) == (500_000, "prometra_baclofen")


def edited_library(monkeypatch, tmp_path, old, new):
    text = druglib.LIBRARY.read_text()
    assert old in text
    p = tmp_path / "drugs.toml"
    p.write_text(text.replace(old, new, 1))
    monkeypatch.setattr(druglib, "LIBRARY", p)
    druglib.reload()


@pytest.fixture
def library(monkeypatch, tmp_path):
    yield lambda old, new: edited_library(monkeypatch, tmp_path, old, new)
    monkeypatch.undo()
    druglib.reload()


@pytest.mark.parametrize("old, new, key", [
    ('low_concentration = { soft = ["1 mg/mL", "project"], hard = ["0.1 mg/mL", "project"] }',
     'low_concentration = { soft = ["0.1 mg/mL", "project"], hard = ["1 mg/mL", "project"] }',
     "low_concentration"),
    ('low_concentration = { soft = ["1 mg/mL", "project"], hard = ["0.1 mg/mL", "project"] }',
     'low_concentration = { soft = ["30 mg/mL", "project"], hard = ["0.1 mg/mL", "project"] }',
     "low_concentration"),
    ('low_concentration = { soft = ["1 mg/mL", "project"], hard = ["0.1 mg/mL", "project"] }',
     "", "low_concentration"),
    ('max_start_override = ["2.4 mcg/day", "prialt_us"]',
     'max_start_override = ["1 mcg/day", "prialt_us"]', "max_start_override"),
    ('max_start_override = ["2.4 mcg/day", "prialt_us"]',
     'max_start_override = ["30 mcg/day", "prialt_us"]', "max_start_override"),
    ('min_interval_override = ["24 h", "prialt_eu"]',
     'min_interval_override = ["72 h", "prialt_eu"]', "min_interval_override"),
    ('start_per_screening_long = [1, "saulino_2015"]', "", "trial_effect"),
    ('start_per_screening_long = [1, "saulino_2015"]',
     'start_per_screening_long = [3, "saulino_2015"]', "start_per_screening_long"),
])
def test_a_library_whose_limits_or_ceilings_contradict_each_other_is_refused(library, old, new,
                                                                              key):
    library(old, new)
    with pytest.raises(InputError) as e:
        druglib.load()
    assert key in e.value.key


def test_a_drug_may_give_its_own_volume_band(library):
    library('clinician_bolus = { soft = ["1 mg", "project"], hard = ["5 mg", "project"] }',
            'clinician_bolus = { soft = ["1 mg", "project"], hard = ["5 mg", "project"] }\n'
            'volume_rate = { soft = ["2 mL/day", "project"], hard = ["8 mL/day", "project"] }')
    assert druglib.get("morphine").volume_rate.hard == 8_000_000
    assert druglib.get("hydromorphone").volume_rate.hard == 5_000_000


def test_the_version_names_the_file_and_changes_with_it(library):
    first = druglib.version()
    declared, digest = first.split("+")
    assert declared == "2" and len(digest) == 8 and int(digest, 16) >= 0
    library('patient_boluses_per_day = { soft = [6, "project"], hard = [12, "project"] }',
            'patient_boluses_per_day = { soft = [5, "project"], hard = [12, "project"] }')
    assert druglib.version() != first and druglib.version().startswith("2+")
    library('version = "2"', 'version = ""')
    with pytest.raises(InputError):
        druglib.version()
