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
SLOW_REPLY_S = 30.0        # the wait for a reply that does flash work (listing, copies)
CHUNK = 512                # raw bytes a request carries (684 in base64: the line stays < 1 KB)


def _same_digest(listed, digest: str) -> bool:
    """A running file's digest as update_begin lists it (the whole SHA-256 hex, or since the
    Pico's smaller replies its first 16 or more digits) matches the manifest's."""
    return isinstance(listed, str) and len(listed) >= 16 and digest.startswith(listed)


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
    """The version of the firmware in the bundle, read from the bundle itself: its
    firmware/version.py when it carries the source, else the compiled firmware/version.mpy (what
    the pump will report once it runs it). Without a bundle: this tree's firmware/version.py."""
    if bundle is None:
        return _version_of_source(ROOT / "firmware" / "version.py")
    src = bundle / "firmware" / "version.py"
    if src.exists():
        return _version_of_source(src)
    mpy = bundle / "firmware" / "version.mpy"
    if mpy.exists():
        return _version_of_mpy(mpy)
    raise InputError("bundle", str(bundle), "a bundle with firmware/version.mpy or "
                     "firmware/version.py (make build)")


def _version_of_source(path: Path) -> str:
    m = re.search(r'^VERSION\s*=\s*"([^"]+)"', path.read_text(encoding="utf-8"), re.M)
    if not m:
        raise InputError("bundle", str(path), 'a line VERSION = "x.y.z"')
    return m.group(1)


def _varuint(data: bytes, i: int) -> tuple[int, int]:
    n = 0
    while True:
        b = data[i]
        i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, i


def mpy_qstrs(data: bytes) -> tuple[list[str], int, int]:
    """A MicroPython .mpy file's (format 6, bytecode only, as mpy-cross writes it) qstr table:
    the names it has MicroPython intern when it loads (the port's static ones, which it names
    by number, left out), where its constants start, and how many there are."""
    if len(data) < 4 or data[0] != ord("M") or data[1] != 6 or data[2] >> 2:
        raise ValueError("not a bytecode .mpy of format 6")
    n_qstr, i = _varuint(data, 4)
    n_obj, i = _varuint(data, i)
    out = []
    for _ in range(n_qstr):
        n, i = _varuint(data, i)
        if n & 1:
            continue          # one of the port's static qstrs, by number
        n >>= 1
        out.append(data[i:i + n].decode("utf-8"))
        i += n + 1            # the text and its NUL
    return out, i, n_obj


def mpy_strings(data: bytes) -> list[str]:
    """The strings of a MicroPython .mpy file: its qstr table and its string constants, in
    file order."""
    out, i, n_obj = mpy_qstrs(data)
    for _ in range(n_obj):
        kind = data[i]
        i += 1
        if kind == 5:         # a str constant: length, text, NUL
            n, i = _varuint(data, i)
            out.append(data[i:i + n].decode("utf-8"))
            i += n + 1
        else:
            break             # version.py holds nothing else
    return out


def _version_of_mpy(path: Path) -> str:
    """The one string of numbers and dots in the compiled version.py (VERSION's value: the
    file holds only that assignment)."""
    try:
        found = [s for s in mpy_strings(path.read_bytes()) if re.fullmatch(r"\d+(\.\d+)*", s)]
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise InputError("bundle", str(path), f"a version.mpy from mpy-cross ({e})") from None
    if len(found) != 1:
        raise InputError("bundle", str(path), "a compiled version.py holding one version "
                         f"string (found {found or 'none'})")
    return found[0]


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


# Where an install keeps the signed manifest of the base (the first install); an update's is
# in its slot (fw/a/manifest.json). The pump's self-test checks the running files against it
# (firmware/codecheck.py).
BASE_MANIFEST = "fw/base/manifest.json"


def signed_record(key, man: bytes) -> bytes:
    """A manifest as an install keeps it beside its files: its exact text and the update key's
    signature over it (the form firmware/update.py writes into a slot)."""
    return json.dumps({"manifest": man.decode(), "sig": sign(key, man).hex()}).encode()


def base_record(tree: Path, board: str, key=None, build: str = "production") -> bytes:
    """The signed manifest of the base install made of `tree`'s firmware/ and boards/ (a
    built bundle, or on a virtual board the repository's tree), under the update key (default:
    the development key)."""
    man, _ = manifest(tree, board, build)
    return signed_record(key or load_update_key(), man)


def write_base_manifest(bundle: Path, board: str, build: str = "production", key=None) -> Path:
    """Write the bundle's signed base manifest beside it (a first install copies it to
    BASE_MANIFEST on the pump). Returns its path."""
    path = bundle / "base-manifest.json"
    path.write_bytes(base_record(bundle, board, key, build))
    return path


def _slow_call(lk, timeout_s: float, cmd: str, args: dict) -> dict:
    """lk.call with a longer wait for the reply (links without a timeout are called as is)."""
    old = getattr(lk, "timeout_s", None)
    if old is None:
        return lk.call(cmd, args)
    lk.timeout_s = timeout_s
    try:
        return lk.call(cmd, args)
    finally:
        lk.timeout_s = old


def push(lk, man: bytes, sig: bytes, contents: list[bytes], progress=None,
         stats: dict | None = None, reuse: bool = True) -> dict:
    """Send a signed bundle over an open link (clinician key) and commit it. Returns the
    commit reply; the pump resets into the new firmware on trial right after.

    With `reuse`, a file the running firmware already holds (same name, size and SHA-256, as
    `update_begin` lists them) is copied by the pump from its own flash (`copy` chunks) instead
    of sent: the pump hashes copied bytes against the signed manifest as it does sent ones.
    `stats`, when given, gets `sent` and `copied` (bytes) and `reused` (file names)."""
    entries = json.loads(man)["files"]
    total = len(man) + len(sig) + sum(len(c) for c in contents)
    args = {"manifest_len": len(man), "sig_len": len(sig)}
    if reuse:
        args["files"] = True
    # Listing (hashing the running firmware), copies, the chunk that completes the signature
    # (the RSA check) and the commit (every file read back and hashed) are seconds of work on
    # a slow or busy pump: every reply of the transfer gets time (a real Pico needs well under
    # a second for each; a line is not lost on USB, so the longer wait costs nothing).
    slow = max(getattr(lk, "timeout_s", 0), SLOW_REPLY_S)
    r = _slow_call(lk, slow, "update_begin", args)
    have = {}
    for e in r.get("running") or []:
        if isinstance(e, list) and len(e) == 3:
            have[e[0]] = (e[1], e[2])
    given = r.get("copy_max")
    copy_max = given if isinstance(given, int) else 0
    st = stats if stats is not None else {}
    st.update(sent=0, copied=0, reused=[])
    off = 0

    def step(args: dict, n: int) -> None:
        nonlocal off
        req = {"off": off, **args}
        r = _slow_call(lk, slow, "update_chunk", req)
        if r.get("have") != off + n:
            raise PumpError("E_UPDATE", f"the pump holds {r.get('have')} bytes of the update, "
                            f"expected {off + n}: nothing was switched")
        off += n
        if progress:
            progress(off, total)

    def send(data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            piece = data[i:i + CHUNK]
            step({"data": base64.b64encode(piece).decode("ascii")}, len(piece))
            st["sent"] += len(piece)

    send(man + sig)
    for (name, size, digest), data in zip(entries, contents):
        got = have.get(name)
        if reuse and copy_max > 0 and got is not None and got[0] == size and \
                _same_digest(got[1], digest):
            for i in range(0, size, copy_max):
                n = min(copy_max, size - i)
                step({"copy": n}, n)
            st["copied"] += size
            st["reused"].append(name)
        else:
            send(data)
    return _slow_call(lk, slow, "update_commit", {})
