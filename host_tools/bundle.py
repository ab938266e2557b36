"""Signed firmware bundles: the manifest, its signature, and the transfer to a running pump.

A bundle is the directory `make build` writes: firmware/*.mpy and boards/*.mpy (plus main.py
and loader.mpy, which only a first install copies). Its manifest lists every file under
firmware/ and boards/ with its size and SHA-256, the board it is for and the version; the
update key (an RSA private key, PEM) signs the manifest's exact bytes (PKCS#1 v1.5, SHA-256),
and the pump checks that signature with the public half it was given at the factory
(firmware/update.py). The clinician key only opens the session the transfer runs in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from host_tools.errors import InputError
from host_tools.link import PumpError

ROOT = Path(__file__).resolve().parent.parent
DEV_UPDATE_KEY = Path(__file__).resolve().parent / "keys" / "DEVELOPMENT-ONLY-update-key.pem"
CHUNK = 512                # raw bytes a request carries (684 in base64: the line stays < 1 KB)


def load_update_key(path=None):
    """The private update key (default: the repository's development key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = Path(path) if path else DEV_UPDATE_KEY
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise InputError("UPDATE_KEY", str(path), f"a readable PEM file ({e.strerror})") from None
    except (ValueError, TypeError):
        raise InputError("UPDATE_KEY", str(path), "an unencrypted RSA private key in PEM") \
            from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048 or \
            key.public_key().public_numbers().e != 65537:
        raise InputError("UPDATE_KEY", str(path), "an RSA key of at least 2048 bits, e = 65537")
    return key


def modulus(key) -> bytes:
    """The public modulus, big-endian, as the pump stores it."""
    n = key.public_key().public_numbers().n
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def sign(key, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def board_name(board: str) -> str:
    """NAME from boards/<board>.py, read as text (the Pico's board files import machine)."""
    src = (ROOT / "boards" / f"{board}.py").read_text(encoding="utf-8")
    m = re.search(r'^NAME\s*=\s*"([^"]+)"', src, re.M)
    if not m:
        raise InputError("BOARD", board, "a board file with NAME = \"...\"")
    return m.group(1)


def version(bundle: Path | None = None) -> str:
    """The bundle's version: its firmware/version.py when it carries the source, else the
    tree's (make build compiles this tree)."""
    src_file = bundle / "firmware" / "version.py" if bundle else None
    if src_file is None or not src_file.exists():
        src_file = ROOT / "firmware" / "version.py"
    src = src_file.read_text(encoding="utf-8")
    return re.search(r'^VERSION\s*=\s*"([^"]+)"', src, re.M).group(1)


def bundle_files(bundle: Path) -> list[tuple[str, bytes]]:
    """(path, bytes) of every file the update carries, in a stable order."""
    out = []
    for top in ("firmware", "boards"):
        for f in sorted((bundle / top).glob("*")):
            if f.is_file() and f.suffix in (".mpy", ".py"):
                out.append((f"{top}/{f.name}", f.read_bytes()))
    return out


def manifest(bundle: Path, board: str, build: str = "production",
             ver: str | None = None) -> tuple[bytes, list[bytes]]:
    """(manifest bytes, file contents in manifest order)."""
    files = bundle_files(bundle)
    if not files:
        raise InputError("bundle", str(bundle), "a directory with firmware/ and boards/ "
                         "(make build)")
    man = {"v": 1, "version": ver or version(bundle), "board": board_name(board), "build": build,
           "files": [[name, len(data), hashlib.sha256(data).hexdigest()]
                     for name, data in files]}
    return json.dumps(man, separators=(",", ":")).encode(), [d for _, d in files]


def blob(man: bytes, sig: bytes, contents: list[bytes]) -> bytes:
    return man + sig + b"".join(contents)


def push(lk, man: bytes, sig: bytes, contents: list[bytes], progress=None) -> dict:
    """Send a signed bundle over an open link (clinician key) and commit it. Returns the
    commit reply; the pump resets into the new firmware on trial right after."""
    data = blob(man, sig, contents)
    lk.call("update_begin", {"manifest_len": len(man), "sig_len": len(sig)})
    off = 0
    while off < len(data):
        piece = data[off:off + CHUNK]
        r = lk.call("update_chunk", {"off": off,
                                     "data": base64.b64encode(piece).decode("ascii")})
        if r.get("have") != off + len(piece):
            raise PumpError("E_UPDATE", f"the pump holds {r.get('have')} bytes of the update, "
                            f"expected {off + len(piece)}: nothing was switched")
        off += len(piece)
        if progress:
            progress(off, len(data))
    return lk.call("update_commit")
