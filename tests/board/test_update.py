"""Signed updates on a live virtual Pico through `make flash` (host_tools/flash.py): a good
update carries the settings and the dose account over and delivery never stops; a bad
signature, a bundle for another board or an older version is refused and changes nothing; a
new firmware that crashes at boot is rolled back by the pump itself. One board for all of it
(the power cut at every step is tests/vm/test_update_vm.py)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sim.runner import ROOT
from tests.board.vboard_fixture import programmed_board


def source_bundle(dest: Path, version: str, app_source: str | None = None) -> Path:
    """The firmware and the virtual board as source (the VM compiles it), version changed."""
    shutil.copytree(ROOT / "firmware", dest / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__", "main.py"))
    (dest / "firmware" / "version.py").write_text(f'VERSION = "{version}"\n')
    if app_source is not None:
        (dest / "firmware" / "app.py").write_text(app_source)
    (dest / "boards").mkdir()
    for name in ("__init__.py", "virtual.py"):
        shutil.copy(ROOT / "boards" / name, dest / "boards" / name)
    return dest


def flash(board, bundle, *extra):
    return subprocess.run([sys.executable, "-m", "host_tools.flash", "--port",
                           board.info["port"], "--key", board.info["clinician_key"],
                           "--bundle", str(bundle), *extra], capture_output=True, text=True,
                          timeout=180, cwd=ROOT)


def pointer(board):
    p = Path(board.info["flash"]) / "fw" / "boot"
    return p.read_text() if p.exists() else None


def events(board):
    return [e[2] for e in board.ask({"cmd": "log", "args": {"max": 50}}, sign=True)["entries"]]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    with programmed_board(tmp_path_factory.mktemp("upd") / "flash") as b:
        yield b


def test_a_good_update_keeps_settings_and_dose_account_and_delivery_goes_on(board, tmp_path):
    board.inject("advance", "3h")
    before = board.ask({"cmd": "status"}, sign=True)
    settings = board.ask({"cmd": "settings"}, sign=True)["settings"]
    out = flash(board, source_bundle(tmp_path, "9.9.9"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "runs firmware 9.9.9" in out.stdout and "confirmed" in out.stdout
    info = board.ask({"cmd": "info"}, sign=True)
    assert info["firmware"] == "9.9.9" and info["build"] == "production"
    assert info["update"]["slot"] == "a" and info["update"]["trial"] is False
    assert json.loads(pointer(board)) == {"v": 1, "active": "a", "prev": "base"}
    assert board.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    after = board.ask({"cmd": "status"}, sign=True)
    # Nothing lost, nothing invented, and no stop: an update is not a maintenance.
    assert after["delivered_24h_nl"] == before["delivered_24h_nl"], (before, after)
    assert after["reservoir_nl"] == before["reservoir_nl"]
    assert after["stopped"] is False and after["delivering"] is True
    start = board.inject("truth")["delivered_nl"]
    board.inject("advance", "1h")
    assert board.inject("truth")["delivered_nl"] > start
    # the switch, the new firmware's first boot proving its watchdog (the self-test lets it
    # reset the chip once per install), its self-test, the confirmation (a basal step may come
    # in the hour, at whatever time of day the test runs)
    assert [e for e in events(board) if e != "step"][-6:] == [
        "update", "boot", "boot", "watchdog_proved", "self_test", "update"]


def test_a_bad_signature_another_board_or_an_older_version_changes_nothing(board, tmp_path):
    ptr = pointer(board)
    other = tmp_path / "other.pem"
    other.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=3072)
                      .private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    out = flash(board, source_bundle(tmp_path / "sig", "9.9.9"), "--update-key", str(other))
    assert out.returncode == 1 and "signature does not verify" in out.stderr, out.stderr
    out = flash(board, source_bundle(tmp_path / "pico", "9.9.9"), "--board", "pico")
    assert out.returncode == 1 and "for board \"pico\"" in out.stderr, out.stderr
    out = flash(board, source_bundle(tmp_path / "old", "0.0.1"))
    assert out.returncode == 1 and "older than the running 9.9.9" in out.stderr, out.stderr
    assert pointer(board) == ptr
    assert not (Path(board.info["flash"]) / "fw" / "b" / "firmware").exists()
    assert board.ask({"cmd": "info"}, sign=True)["firmware"] == "9.9.9"


def test_a_firmware_that_crashes_at_boot_is_rolled_back_by_the_pump(board, tmp_path):
    crash = "raise RuntimeError('boom at boot')\n"
    start = board.inject("truth")["delivered_nl"]
    out = flash(board, source_bundle(tmp_path, "9.9.10", crash))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "did not come up" in out.stderr and "boom at boot" in out.stderr, out.stderr
    # only the changed app.py and version.py crossed the line: the rest was copied on the pump
    assert "the pump already had were copied" in out.stdout, out.stdout
    info = board.ask({"cmd": "info"}, sign=True)
    assert info["firmware"] == "9.9.9" and info["update"]["slot"] == "a"
    assert "RuntimeError: boom at boot" in info["update"]["last_crash"]
    log = events(board)
    assert "rollback" in log and "crash" in log
    assert json.loads(pointer(board))["active"] == "a"
    board.inject("advance", "1h")
    assert board.inject("truth")["delivered_nl"] > start   # therapy went on


def test_flash_with_a_wrong_clinician_key_sends_nothing(board, tmp_path):
    ptr = pointer(board)
    wrong = tmp_path / "wrong.key"
    key = json.loads(Path(board.info["clinician_key"]).read_text())
    key["key"] = "00" * 32
    wrong.write_text(json.dumps(key))
    out = subprocess.run([sys.executable, "-m", "host_tools.flash", "--port",
                          board.info["port"], "--key", str(wrong), "--bundle",
                          str(source_bundle(tmp_path / "b", "9.9.11"))],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 1 and "E_AUTH" in out.stderr, out.stdout + out.stderr
    assert "update_begin" not in out.stdout and pointer(board) == ptr
    assert board.ask({"cmd": "ping"})["pong"] is True


def test_files_the_pump_already_has_are_copied_on_the_pump_not_sent(board, tmp_path):
    # From slot a (9.9.9, all files from this checkout) to 9.9.12, where only version.py
    # differs: every other file is copied by the pump from its running firmware and checked
    # against the signed manifest; the new slot holds exactly the bundle's files.
    from host_tools.bundle import bundle_files
    bundle = source_bundle(tmp_path, "9.9.12")
    files = bundle_files(bundle)
    out = flash(board, bundle)
    assert out.returncode == 0, out.stdout + out.stderr
    version_size = len((bundle / "firmware" / "version.py").read_bytes())
    copied = sum(len(d) for n, d in files if n != "firmware/version.py")
    assert (f"update: {len(files) - 1} files ({copied} bytes) the pump already had were copied"
            in out.stdout), out.stdout
    assert "runs firmware 9.9.12" in out.stdout
    info = board.ask({"cmd": "info"}, sign=True)
    assert info["firmware"] == "9.9.12" and info["update"]["slot"] == "b"
    sent = int(out.stdout.split("; ")[1].split(" bytes sent")[0])
    # the manifest (its size grows with the files: about 100 bytes each), its signature (384
    # bytes), version.py; nothing else
    from host_tools.bundle import manifest
    man_size = len(manifest(bundle, "virtual")[0])
    assert version_size + man_size < sent < version_size + man_size + 512
    for name, data in files:
        assert (Path(board.info["flash"]) / "fw" / "b" / name).read_bytes() == data, name
