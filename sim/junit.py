"""A scenario's check results (sim/expect.py: {"name", "ok", "detail"}) as a JUnit XML report,
so CI systems (GitLab, Jenkins, GitHub test reporters) show each expectation as a test case.

Layout:

    <testsuites name=SUITE tests=N failures=F errors="0" time=T>
      <testsuite name=SUITE tests=N failures=F errors="0" skipped="0" time=T>
        <testcase classname=SUITE name=CHECK>            a passing check
          <system-out>detail</system-out>
        </testcase>
        <testcase classname=SUITE name=CHECK>            a failing check
          <failure message=detail type="check failed">detail</failure>
        </testcase>
      </testsuite>
    </testsuites>

Built with xml.etree.ElementTree, which escapes <, &, and quotes. Characters XML 1.0 cannot hold
at all (most control characters) are replaced by U+FFFD so the file always parses.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

# Everything outside the XML 1.0 Char production.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def build_junit(suite_name: str, checks, time_s: float) -> ET.Element:
    """The report as an element tree (root <testsuites>)."""
    checks = list(checks)
    for c in checks:
        if not isinstance(c.get("name"), str):
            raise TypeError(f"check without a string name: {c!r}")
    failures = sum(1 for c in checks if not c["ok"])
    counts = {"tests": str(len(checks)), "failures": str(failures), "errors": "0",
              "time": f"{time_s:.3f}"}
    name = _text(suite_name)
    root = ET.Element("testsuites", {"name": name, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": name, **counts, "skipped": "0"})
    for c in checks:
        case = ET.SubElement(suite, "testcase", {"classname": name, "name": _text(c["name"])})
        detail = _text(c.get("detail", ""))
        if c["ok"]:
            if detail:
                ET.SubElement(case, "system-out").text = detail
        else:
            fail = ET.SubElement(case, "failure", {"message": detail, "type": "check failed"})
            fail.text = detail
    return root


def write_junit(path, suite_name: str, checks, time_s: float) -> None:
    """Write the JUnit XML report of `checks` (dicts with "name", "ok", "detail") to `path`.

    The file is written next to its destination and then renamed over it, so a reader never
    sees half a report.
    """
    root = build_junit(suite_name, checks, time_s)
    ET.indent(root)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
