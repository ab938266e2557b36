"""The update's switch on the emulated Pico, through littlefs and the rp2 flash driver, where
firmware/update.py and firmware/loader.py must hold: the power fails at each step of the switch
(the manifest kept beside the slot's files, the pointer written and renamed over the old one,
the account saved before the reset, the trial boots), and a new firmware that crashes at boot
is rolled back by the loader after its tries. Whatever the step, the pump comes back on a
firmware that boots, with its settings and its dose account.

The bundle here is the smallest the pump accepts (the files the manifest must list, an app that
raises at import): it sends in seconds where a whole one takes minutes on the emulator, and it
can only ever come back through the rollback. tests/rp2/test_flash.py sends a whole one."""

import shutil

from host_tools import bundle as bundlemod
from host_tools.link import Link, LinkError, PumpError, load_key
from tests.rp2.pico import REPLY_S, pico_bundle

CRASHING_APP = 'raise RuntimeError("this firmware cannot start")\n'
TINY = ("firmware/__init__.mpy", "firmware/app.mpy", "firmware/buildinfo.mpy",
        "firmware/version.mpy", "boards/__init__.mpy")
# Flash programs from update_commit on, as counted on a fresh emulated Pico: 1 to 4 the manifest
# kept beside the slot's files, 5 and 6 fw/boot.tmp, 7 its rename over fw/boot (the switch),
# about 8 more in the saves before the reset, then about 20 in the three trial boots and the
# rollback. A cut lands before the switch and right after its rename (littlefs may shift them by
# a program or two: the outcomes checked below do not depend on the exact place); the trial
# boots and the rollback run uncut in the first round. Every step, the trial boots included, is
# cut on the MicroPython VM (tests/vm/test_update_vm.py); here each cut costs four boots of the
# emulated chip.
CUT_AT = (1, 7)


def crashing_bundle(tmp_path):
    full = pico_bundle(tmp_path, "9.9.9", app_source=CRASHING_APP)
    tiny = tmp_path / "tiny"
    for name in TINY:
        (tiny / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(full / name, tiny / name)
    return tiny


class CutAtCommit:
    """A link whose update_commit goes out with a power cut armed on the chip: it fails right
    after the Nth flash program from there on. The commit's reply may never come."""

    def __init__(self, lk, pico, at_program):
        self.lk, self.pico, self.at_program = lk, pico, at_program

    def call(self, cmd, args=None, **kw):
        if cmd != "update_commit" or self.at_program is None:
            return self.lk.call(cmd, args, **kw)
        self.pico.inject("power_loss", "for=1min", f"at_program={self.at_program}")
        self.lk.timeout_s, self.lk.attempts = 10.0, 1   # no waiting long for a lost reply
        try:
            return self.lk.call(cmd, args, **kw)
        except (LinkError, PumpError) as e:
            return {"lost": str(e)}


def send_update(pico, bundle, cut_at_program=None):
    """The bundle's signed manifest and files in a clinician session, then update_commit.
    Returns the commit's reply."""
    man, contents = bundlemod.manifest(bundle, "pico")
    sig = bundlemod.sign(bundlemod.load_update_key(), man)
    with Link.open(pico.info["port"], load_key(pico.info["clinician_key"]),
                   timeout_s=REPLY_S) as lk:
        return bundlemod.push(CutAtCommit(lk, pico, cut_at_program), man, sig, contents)


def power_ons(pico):
    truth = pico.inject("truth")
    return truth["boots"] - truth["watchdog_resets"] - truth["resets"]


def log_total(pico):
    return pico.ask({"cmd": "log", "args": {"max": 1}}, sign=True)["total"]


def events_since(pico, seq):
    entries = pico.ask({"cmd": "log", "args": {"since": seq, "max": 50}}, sign=True)["entries"]
    return [e[2] for e in entries]


def check_intact(pico, settings, firmware):
    """Back on the firmware that ran before, not on trial, delivering with the same settings,
    and a dose account that holds at least what reached the patient."""
    info = pico.ask({"cmd": "info"}, sign=True)
    assert info["firmware"] == firmware and info["update"]["slot"] == "base", info
    assert info["update"]["trial"] is False
    truth = pico.inject("truth")
    st = pico.status()
    assert "memory_error" not in {a["code"] for a in st["alarms"]}, st
    assert st["delivering"] is True
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert st["delivered_24h_nl"] >= truth["delivered_nl"], (st, truth)
    assert st["reservoir_nl"] <= truth["reservoir_nl"], (st, truth)


def test_power_cuts_across_the_switch_and_a_crashing_firmware_rolled_back(pico, tmp_path):
    bundle = crashing_bundle(tmp_path)
    pico.program()
    pico.inject("advance", "30 min")
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    firmware = pico.ask({"cmd": "info"}, sign=True)["firmware"]
    # Without a cut: switched, three trial boots that crash, back to the old firmware.
    seq = log_total(pico)
    assert send_update(pico, bundle)["slot"] == "a"
    pico.answers()
    check_intact(pico, settings, firmware)
    info = pico.ask({"cmd": "info"}, sign=True)
    assert "this firmware cannot start" in (info["update"]["last_crash"] or "")
    events = events_since(pico, seq)
    assert events.count("crash") >= 1 and "rollback" in events, events
    # With the power failing at each step: before the pointer names the new slot the old
    # firmware simply boots again; after it, the new one's trial boots crash and it goes back.
    outcomes = set()
    for n in CUT_AT:
        seq = log_total(pico)
        powered = power_ons(pico)
        send_update(pico, bundle, cut_at_program=n)
        pico.answers()
        assert power_ons(pico) == powered + 1, f"no power cut at program {n}"
        check_intact(pico, settings, firmware)
        outcomes.add("rolled back" if "rollback" in events_since(pico, seq) else "kept")
    assert outcomes == {"kept", "rolled back"}, outcomes
