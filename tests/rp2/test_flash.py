"""`make flash` onto the emulated Pico with today's tool (host_tools/flash.py: maintenance, the
REPL, mpremote, a soft reset): the new build runs, with the settings and the dose account, and
the deliberate reset it took is not mistaken for the watchdog's."""

from pathlib import Path

from tests.board.test_flash import build_bundle
from tests.rp2.pico import flash_bundle

PICO_FILES = ("__init__.py", "pico.py", "rp2_common.py", "stepgen.py", "tmc2209.py")


def pico_bundle(dest: Path, version: str) -> Path:
    """`make build BOARD=pico`'s bundle, with firmware/version.py saying `version`."""
    return build_bundle(dest, version, PICO_FILES, ("-march=armv6m",))


def test_make_flash_onto_the_emulated_pico_keeps_therapy_and_is_no_watchdog_reset(pico,
                                                                                 tmp_path):
    bundle = pico_bundle(tmp_path, "9.9.9-rp2")
    pico.program()
    pico.inject("advance", "3h")
    before = pico.status()
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    assert before["delivered_24h_nl"] > 0 and before["alarms"] == []
    out = flash_bundle(pico.info["port"], pico.info["clinician_key"], bundle)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "9.9.9-rp2" in out.stdout
    pico.answers()
    assert pico.ask({"cmd": "info"})["firmware"] == "9.9.9-rp2"
    after = pico.status()
    assert after["stopped"] is True   # as maintenance left it
    # machine.reset() is a watchdog reset on the RP2040, and the clock restarts at 2021 after
    # it: neither may show as a fault after a flash the clinician asked for.
    assert after["alarms"] == [], after["alarms"]
    assert abs(after["clock_ts"] - before["clock_ts"]) < 3600
    # The chip did go through a watchdog reset (maintenance's machine.reset()): the pump told it
    # apart from a real one.
    assert pico.inject("truth")["watchdog_resets"] == 1
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert after["delivered_24h_nl"] == before["delivered_24h_nl"]   # a clean save
    assert after["reservoir_nl"] == before["reservoir_nl"]
    assert pico.ask({"cmd": "resume"}, sign=True)["ok"]
    start = pico.inject("truth")["strokes"]
    pico.inject("advance", "2h")
    assert pico.inject("truth")["strokes"] > start
