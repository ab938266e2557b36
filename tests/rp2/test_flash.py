"""`make flash` onto the emulated Pico (host_tools/flash.py): a running pump gets a signed update
over its own protocol, switches slots, resets into the new firmware and confirms it; settings,
the dose account and delivery carry over, and the deliberate reset it took (a watchdog reset on
the RP2040) is not mistaken for the watchdog's, nor does it lose the clock. A bundle signed with
another key is refused before anything is written."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rp2.pico import flash_bundle, pico_bundle


def other_update_key(path):
    """An RSA key of the pump's update key's size that is not the one it was provisioned with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def test_make_flash_updates_the_emulated_pico_and_is_no_watchdog_reset(pico, tmp_path):
    # A normal compiled bundle (firmware/version.mpy): the tool takes the version it waits for
    # from the bundle it sends, not from this tree's firmware/version.py.
    bundle = pico_bundle(tmp_path, "9.9.9")
    assert not (bundle / "firmware" / "version.py").exists()
    pico.program()
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
    # MicroPython restarted the RTC at 2021: neither may show as a fault after an update.
    assert pico.inject("truth")["watchdog_resets"] >= 1
    assert after["alarms"] == [], after["alarms"]
    assert abs(after["clock_ts"] - before["clock_ts"]) < 3600
    assert after["delivering"] is True
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert after["delivered_24h_nl"] >= before["delivered_24h_nl"]
    start = pico.inject("truth")["strokes"]
    pico.inject("advance", "20 min")   # a stroke every 4.5 min
    assert pico.inject("truth")["strokes"] > start
