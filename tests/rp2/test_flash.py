"""A Pico's first day on the emulated one (README.md): an erased Pico holding only the
MicroPython UF2 (`pumpsim board --runtime rp2 --blank`) gets its first install with `make flash`
(host_tools/flash.py), which asks the REPL what board it is, copies the bundle with mpremote,
provisions the pump into the user's data directory (never the checkout) and sets its clock; it
is programmed with pumpctl; then `make flash` updates it over its own protocol: a signed update
that switches slots, resets into the new firmware and confirms it. Settings, the dose account
and delivery carry over, and the deliberate reset it took (a watchdog reset on the RP2040) is
neither mistaken for the watchdog's nor loses the clock. A bundle signed with another key is
refused before anything is written."""

import contextlib
import io
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from host_tools import fmt, pumpctl
from tests.rp2.pico import ROOT, Pico, flash_bundle, pico_bundle

RX = ROOT / "examples" / "prescriptions" / "morphine_flex.toml"


def other_update_key(path):
    """An RSA key of the pump's update key's size that is not the one it was provisioned with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def first_install(pico: Pico, data: Path) -> str:
    """`make flash PORT=...` on the blank Pico, with the user's data directory at `data`."""
    out = subprocess.run([sys.executable, "-m", "host_tools.flash", "--port", pico.info["port"]],
                         capture_output=True, text=True, timeout=900, cwd=ROOT,
                         env=dict(pico.env, XDG_DATA_HOME=str(data)))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def run_pumpctl(pico: Pico, *argv: str) -> str:
    """pumpctl in this process, as a person runs it with README.md's --timeout (it must find no
    other program on the port: the board's registry is in the board's TMPDIR)."""
    out, err = io.StringIO(), io.StringIO()
    old = tempfile.tempdir
    tempfile.tempdir = pico.env["TMPDIR"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = pumpctl.main(["--port", pico.info["port"], "--key",
                               pico.keys["clinician_key"], "--timeout", "30", *argv])
    finally:
        tempfile.tempdir = old
    assert rc == 0, out.getvalue() + err.getvalue()
    return out.getvalue()


def test_a_blank_pico_is_installed_programmed_and_updated_by_make_flash(tmp_path):
    pico = Pico(tmp_path / "flash", blank=True)
    try:
        first_install_then_update(pico, tmp_path)
    finally:
        assert pico.close() == 0


def first_install_then_update(pico: Pico, tmp_path: Path) -> None:
    flash = Path(pico.info["flash"])
    assert not (flash / "clinician.key").exists()       # MicroPython and nothing else
    out = first_install(pico, tmp_path / "data")
    for n in range(1, 7):
        assert f"first install [{n}/6 at " in out, out
    assert f"MicroPython's REPL on {pico.info['port']}: board pico" in out
    keys = next(tmp_path.glob("data/pumpctl/keys/pump-keys-*"))
    assert f"keys in {keys}/clinician.key" in out and "pump clock set to" in out
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700 and not keys.is_relative_to(ROOT)
    assert stat.S_IMODE((keys / "clinician.key").stat().st_mode) == 0o600
    pico.use_keys(keys / "clinician.key", keys / "patient.key")
    info = pico.ask({"cmd": "info"}, sign=True)
    assert info["board"] == "pico" and info["build"] == "production"
    assert info["pump_id"] == keys.name.removeprefix("pump-keys-")
    assert info["update"]["slot"] == "base" and info["update"]["update_key"] is True
    st = pico.status()
    assert st["alarms"] == [] and abs(st["clock_ts"] - fmt.host_now_ts()) < 600  # no clock_lost
    # Programmed as README.md says, with pumpctl.
    run_pumpctl(pico, "refill", "--volume", "20 mL", "--yes")
    shown = run_pumpctl(pico, "program", str(RX), "--yes", "--override-titration",
                        "already on intrathecal morphine")
    assert "delivering" in shown
    make_flash_updates_it(pico, tmp_path)


def make_flash_updates_it(pico: Pico, tmp_path: Path) -> None:
    # A normal compiled bundle (firmware/version.mpy): the tool takes the version it waits for
    # from the bundle it sends, not from this tree's firmware/version.py.
    bundle = pico_bundle(tmp_path, "9.9.9")
    assert not (bundle / "firmware" / "version.py").exists()
    pico.inject("advance", "20 min")   # a stroke every 4.5 min
    before = pico.status()
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    info0 = pico.ask({"cmd": "info"}, sign=True)
    assert before["delivered_24h_nl"] > 0 and before["alarms"] == []
    # Signed with another key: refused once the manifest and its signature are in, before a
    # file is written; the pump runs on as it was.
    out = flash_bundle(pico, bundle, "--update-key", str(other_update_key(tmp_path / "k.pem")))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "signature does not verify" in out.stderr, out.stderr
    info = pico.ask({"cmd": "info"}, sign=True)
    assert info["firmware"] == info0["firmware"] and info["update"] == info0["update"]
    assert pico.status()["delivering"] is True
    # The development key's signature: installed, switched, confirmed.
    out = flash_bundle(pico, bundle)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "version 9.9.9" in out.stdout and "runs firmware 9.9.9" in out.stdout
    # Only version.mpy differs from the factory's firmware: the pump copied the rest itself.
    n_files = len(list(bundle.rglob("*.mpy")))
    assert f"update: {n_files - 1} files (" in out.stdout, out.stdout
    assert "confirmed" in out.stdout
    pico.answers()
    info = pico.ask({"cmd": "info"}, sign=True)
    assert info["firmware"] == "9.9.9" and info["update"]["slot"] == "a"
    assert info["update"]["trial"] is False
    after = pico.status()
    # The switch reset the chip through the watchdog (machine.reset() is one on the RP2040) and
    # MicroPython restarted the RTC at 2021: neither may show as a fault after an update. The
    # bench tells the forced reset from the watchdog's own (the chip's REASON register).
    # The watchdog's own resets are the self-test's proofs, one after each install (the first
    # install and this update), and raise no alarm (below).
    truth = pico.inject("truth")
    assert truth["resets"] >= 1 and truth["watchdog_resets"] == 2, truth
    assert after["alarms"] == [], after["alarms"]
    assert abs(after["clock_ts"] - before["clock_ts"]) < 3600
    assert after["delivering"] is True
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert after["delivered_24h_nl"] >= before["delivered_24h_nl"]
    start = pico.inject("truth")["strokes"]
    pico.inject("advance", "20 min")   # a stroke every 4.5 min
    assert pico.inject("truth")["strokes"] > start
