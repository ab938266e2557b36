"""`make build` produces the bundle that ships, and that bundle runs in the MicroPython VM."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from boards import stepgen, tmc2209, virtual
from firmware import codes
from sim.runner import micropython_exe

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def build(out: Path, board: str) -> str:
    proc = subprocess.run(["make", "-s", "build", f"BOARD={board}", f"BUILD={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def pico_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    return out, build(out, "pico")


def test_the_bundle_holds_every_firmware_module_and_the_board(pico_bundle):
    out, _ = pico_bundle
    sources = {p.stem for p in (ROOT / "firmware").glob("*.py")} - {"main"}
    built = {p.stem for p in (out / "firmware").glob("*.mpy")}
    assert sources == built
    assert {p.stem for p in (out / "boards").glob("*.mpy")} == {
        "__init__", "pico", "rp2_common", "stepgen", "tmc2209"}
    assert not list(out.rglob("*.py")) or (out / "main.py").is_file()  # only the boot entry
    for mpy in out.rglob("*.mpy"):
        head = mpy.read_bytes()[:4]
        assert head[0:1] == b"M" and head[1] == 6, mpy   # .mpy format 6 (MicroPython 1.2x)


def test_the_build_reports_the_bundle_size_in_bytes(pico_bundle):
    out, report = pico_bundle
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert f"{size} bytes" in report, report
    assert 10000 < size < 200000       # fits the Pico's flash with room for the data


def test_an_unknown_board_is_refused(tmp_path):
    proc = subprocess.run(["make", "-s", "build", "BOARD=nosuch", f"BUILD={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "nosuch" in proc.stdout + proc.stderr


def test_the_built_firmware_boots_and_delivers_in_the_vm(pico_bundle, tmp_path):
    out, _ = pico_bundle
    consts = tmp_path / "virtual.json"
    # the bundle has the firmware's codes written in as numbers (host_tools/mpybuild.py), so a
    # stroke's result (codes.DONE) comes from here
    consts.write_text(json.dumps({**{n: getattr(virtual, n) for n in dir(virtual) if n.isupper()},
                                  "STROKE_DONE": codes.DONE}))
    env = dict(os.environ, MICROPYPATH=f"{out}:.frozen")  # the bundle only, not the sources
    proc = subprocess.run([micropython_exe(), str(HERE / "bundle_smoke.py"), str(consts)],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[-2] == "DONE", proc.stdout
    strokes = int(lines[0].split()[1])
    assert strokes > 50 and lines[0].endswith("alarms 0"), proc.stdout
    want = (stepgen.sm_freq_hz(2000), tmc2209.crc8(b"\x05\x00\x02", 3))
    assert lines[1] == "stepgen %d %d" % want
