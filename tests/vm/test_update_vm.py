"""The update path's power-loss safety, on the MicroPython VM and on CPython (update_check.py):
a cut before or in the middle of every change of the transfer, the switch, the trial boots and
the confirmation, for a good firmware and one that crashes at boot, from the base and from a
slot; the copy of files the running firmware already has. Also the signature check itself against `cryptography`'s."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from firmware import update
from firmware.version import VERSION
from sim.runner import ROOT, micropython_exe

SCRIPT = ROOT / "tests" / "vm" / "update_check.py"
FILES = {"firmware/__init__.py": b"# firmware\n", "firmware/app.py": b"print('new app')\n" * 40,
         "boards/__init__.py": b"# boards\n",
         "firmware/extra.py": bytes(range(256)) * 3}


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def modulus(k):
    n = k.public_key().public_numbers().n
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def make_work(tmp_path, key):
    files = [[name, len(data), hashlib.sha256(data).hexdigest()] for name, data in FILES.items()]
    man = json.dumps({"v": 1, "version": VERSION, "board": "virtual-pico", "files": files},
                     separators=(",", ":")).encode()
    (tmp_path / "manifest.bin").write_bytes(man)
    (tmp_path / "sig.bin").write_bytes(key.sign(man, padding.PKCS1v15(), hashes.SHA256()))
    (tmp_path / "modulus.bin").write_bytes(modulus(key))
    for name, data in FILES.items():
        p = tmp_path / "files" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return tmp_path


def run(cmd, env, tmp):
    out = subprocess.run(cmd + [str(SCRIPT), str(tmp)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def test_a_power_cut_at_every_step_of_an_update_leaves_a_firmware_that_verifies(tmp_path, key):
    vm = tmp_path / "vm"
    cp = tmp_path / "cp"
    vm.mkdir()
    cp.mkdir()
    out_vm = run([micropython_exe()], dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen"),
                 make_work(vm, key))
    out_cp = run([sys.executable], dict(os.environ, PYTHONPATH=str(ROOT)), make_work(cp, key))
    lines = out_vm.strip().splitlines()
    assert lines[-1] == "DONE", out_vm
    cuts = [int(x.split()[2]) for x in lines if x.startswith("OK cuts")]
    assert len(cuts) == 4 and min(cuts) >= 15, out_vm
    # Files the running firmware has are copied on the pump (all but the changed app.py and
    # the missing firmware/__init__.py), checked like sent ones.
    assert f"OK copied {len(FILES) - 2}" in lines, out_vm
    assert out_vm == out_cp


def test_the_firmware_checks_signatures_as_cryptography_makes_them(key):
    m = modulus(key)
    msg = b'{"v":1}'
    sig = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    assert update.rsa_verify(m, msg, sig)
    assert not update.rsa_verify(m, msg + b" ", sig)
    bad = bytearray(sig)
    bad[-1] ^= 1
    assert not update.rsa_verify(m, msg, bytes(bad))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not update.rsa_verify(m, msg, other.sign(msg, padding.PKCS1v15(), hashes.SHA256()))
    # PSS or SHA-1 signatures by the right key are not what the pump takes either
    assert not update.rsa_verify(m, msg, key.sign(msg, padding.PKCS1v15(), hashes.SHA1()))
    assert not update.rsa_verify(m, msg, sig[:-1])
    assert not update.rsa_verify(m, msg, int.from_bytes(m, "big").to_bytes(len(m), "big"))
