"""The JUnit XML report of a scenario's checks (sim/junit.py), read back with ElementTree."""

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from sim.junit import write_junit

CHECKS = [
    {"name": "alarms", "ok": True, "detail": "expected alarms none, raised none"},
    {"name": "delivered_min_nl", "ok": False,
     "detail": "delivered_nl = 95750 nL (0.09575 mL), expected >= 96000 nL (0.096 mL)"},
    {"name": "max_abs_error_max_nl", "ok": True, "detail": "max_abs_error_nl = 250 nL"},
    {"name": "reservoir_min_nl", "ok": False, "detail": "reservoir_nl = 0 nL, expected >= 1"},
    {"name": "patient_boluses_denied", "ok": True, "detail": "patient_boluses_denied = 2"},
]


def suite_of(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    return root, suite


def test_counts_failures_and_their_messages(tmp_path):
    path = tmp_path / "report.xml"
    write_junit(path, "basal-3day", CHECKS, 1.23456)
    root, suite = suite_of(path)
    for el in (root, suite):
        assert el.get("tests") == "5"
        assert el.get("failures") == "2"
        assert el.get("errors") == "0"
        assert el.get("time") == "1.235"
        assert el.get("name") == "basal-3day"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in CHECKS]
    assert all(c.get("classname") == "basal-3day" for c in cases)
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert sorted(failed) == ["delivered_min_nl", "reservoir_min_nl"]
    assert failed["delivered_min_nl"].get("message") == CHECKS[1]["detail"]
    assert failed["reservoir_min_nl"].get("message") == CHECKS[3]["detail"]
    assert failed["reservoir_min_nl"].text == CHECKS[3]["detail"]
    passing = [c for c in cases if c.find("failure") is None]
    assert [c.find("system-out").text for c in passing] == \
        [c["detail"] for c in CHECKS if c["ok"]]


def test_special_characters_survive_a_round_trip(tmp_path):
    nasty = 'a < b && c > "d" \'e\' <failure message="x"/> ]]> \x00\x1b end\nnext line'
    checks = [{"name": "limit <&\"'>", "ok": False, "detail": nasty},
              {"name": "fine", "ok": True, "detail": nasty}]
    path = tmp_path / "report.xml"
    write_junit(path, 'suite "<&>"', checks, 0)
    root, suite = suite_of(path)  # parses: nothing broke out of its attribute or text
    assert suite.get("name") == 'suite "<&>"' and suite.get("failures") == "1"
    case = suite.find("testcase")
    assert case.get("name") == "limit <&\"'>"
    # Characters XML 1.0 cannot carry (NUL, ESC) become U+FFFD; everything else is kept.
    want = nasty.replace("\x00", "\ufffd").replace("\x1b", "\ufffd")
    assert case.find("failure").text == want
    assert case.find("failure").get("message") == want
    assert len(suite.findall("testcase")) == 2


def test_no_checks_is_an_empty_passing_suite(tmp_path):
    path = tmp_path / "empty.xml"
    write_junit(path, "nothing-expected", [], 0.5)
    _, suite = suite_of(path)
    assert suite.get("tests") == "0" and suite.get("failures") == "0"
    assert suite.findall("testcase") == []


def test_overwrites_an_existing_report(tmp_path):
    path = tmp_path / "report.xml"
    path.write_text("not xml at all <")
    write_junit(str(path), "s", CHECKS[:1], 0)
    _, suite = suite_of(path)
    assert suite.get("tests") == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["report.xml"]  # no temporary left behind


@given(checks=st.lists(st.fixed_dictionaries({"name": st.text(max_size=20), "ok": st.booleans(),
                                                "detail": st.text(max_size=40)}), max_size=8))
def test_any_text_gives_a_parseable_report_with_the_right_counts(tmp_path_factory, checks):
    path = tmp_path_factory.mktemp("junit") / "r.xml"
    write_junit(path, "prop", checks, 0)
    _, suite = suite_of(path)
    assert suite.get("tests") == str(len(checks))
    assert suite.get("failures") == str(sum(not c["ok"] for c in checks))
    cases = suite.findall("testcase")
    assert [c.find("failure") is None for c in cases] == [c["ok"] for c in checks]
