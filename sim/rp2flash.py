"""The emulated Pico's flash seen from outside the chip, while it is powered off: its unique id
and the littlefs filesystem the MicroPython rp2 port keeps at its end.

The geometry is the RPI_PICO build's (MicroPython v1.28.0): a 2 MiB flash whose last 1408 KiB
(MICROPY_HW_FLASH_STORAGE_BYTES) hold littlefs v2 in 4 KiB erase blocks, mounted by the port's
_boot.py as `os.VfsLfs2(rp2.Flash(), progsize=256)` (read size and lookahead 32, vfs_lfs's
defaults). littlefs-python (pinned in requirements.lock) opens it with the same numbers; a
mount that fails says the geometry is not this build's.
"""

from __future__ import annotations

import os
from pathlib import Path

FLASH_BYTES = 2 * 1024 * 1024
FS_BYTES = 1408 * 1024
FS_OFFSET = FLASH_BYTES - FS_BYTES
BLOCK_BYTES = 4096
PROG_BYTES = 256
READ_BYTES = 32
LOOKAHEAD_BYTES = 32
UID_FILE = "unique_id"
LEGACY_UID = "0" * 16
CODE_VICTIM = "firmware/march.mpy"   # the file `corrupt_code` changes (damage_code)       # what every emulated flash read before the id was modelled


def unique_id(flash_dir: Path, existing_image: bool) -> str:
    """The flash chip's 64-bit unique id (16 hex digits), kept in flash_dir/unique_id. A new
    flash directory gets a random one; an image made before ids were modelled keeps the zeros
    its pump was provisioned with (its key files name that pump id)."""
    path = Path(flash_dir) / UID_FILE
    try:
        text = path.read_text().strip().lower()
    except OSError:
        text = ""
    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        return text
    text = LEGACY_UID if existing_image else os.urandom(8).hex()
    path.write_text(text + "\n")
    return text


def _mount(image: bytearray):
    from littlefs import LittleFS, LittleFSError

    fs = LittleFS(block_size=BLOCK_BYTES, block_count=FS_BYTES // BLOCK_BYTES,
                  prog_size=PROG_BYTES, read_size=READ_BYTES, lookahead_size=LOOKAHEAD_BYTES,
                  mount=False)
    fs.context.buffer = image
    try:
        fs.mount()
    except LittleFSError as e:
        raise RuntimeError(f"the emulated Pico's littlefs does not mount ({e}): not the "
                           "RPI_PICO build's filesystem geometry (sim/rp2flash.py)") from None
    return fs


def read_files(image_path: Path, names) -> dict[str, bytes]:
    """The contents of files under /data in the image (missing ones left out)."""
    data = bytearray(Path(image_path).read_bytes()[FS_OFFSET:FLASH_BYTES])
    fs = _mount(data)
    out = {}
    for name in names:
        try:
            with fs.open(f"/data/{name}", "rb") as f:
                out[name] = f.read()
        except FileNotFoundError:
            pass
    return out


def _edit(image_path: Path, names, change) -> list[str]:
    """Apply change(fs, path) to each named record under /data of the image and write the image
    back whole (only while the chip is off). change returns False for a record it left alone
    (missing, empty). Returns the names changed."""
    image_path = Path(image_path)
    whole = bytearray(image_path.read_bytes())
    fs = _mount(whole[FS_OFFSET:FLASH_BYTES])
    done = []
    for name in names:
        try:
            changed = change(fs, f"/data/{name}")
        except FileNotFoundError:
            continue
        if changed:
            done.append(name)
    _write_back(image_path, whole, fs)
    return done


def _write_back(image_path: Path, whole: bytearray, fs) -> None:
    """The edited filesystem back into the whole image, replaced at once."""
    fs.unmount()
    whole[FS_OFFSET:FLASH_BYTES] = fs.context.buffer
    tmp = image_path.with_suffix(".tmp")
    tmp.write_bytes(whole)
    os.replace(tmp, image_path)


def damage_code(image_path: Path) -> list[str]:
    """Change one file of the firmware the loader runs (fw/boot's "active" slot, else the base
    at the root): firmware/march.mpy gets one byte more at its end, which MicroPython's .mpy
    loader never reads (so the module still imports and runs) but its size and SHA-256 no
    longer match its manifest: what the self-test's code check is for. Only while the chip is
    off. Returns the path changed (empty when the image holds no firmware)."""
    import json

    from firmware import loader

    image_path = Path(image_path)
    whole = bytearray(image_path.read_bytes())
    fs = _mount(whole[FS_OFFSET:FLASH_BYTES])
    try:
        with fs.open("/" + loader.POINTER, "r") as f:
            active = json.loads(f.read()).get("active", loader.BASE)
    except (FileNotFoundError, ValueError):
        active = loader.BASE
    root = "" if active == loader.BASE else loader.slot_dir(active) + "/"
    path = root + CODE_VICTIM
    try:
        with fs.open("/" + path, "ab") as f:
            f.write(b"\n")
    except FileNotFoundError:
        return []
    _write_back(image_path, whole, fs)
    return [path]


def damage(image_path: Path, names) -> list[str]:
    """Flip one byte in the middle of each named record under /data (both copies of a record
    are named), as the virtual board's corrupt_keys and corrupt_flash do. Only while the chip is
    off. Returns the names damaged."""
    def flip(fs, path):
        with fs.open(path, "rb") as f:
            buf = bytearray(f.read())
        if not buf:
            return False
        buf[len(buf) // 2] ^= 0x5A
        with fs.open(path, "wb") as f:
            f.write(bytes(buf))
        return True
    return _edit(image_path, names, flip)


def remove(image_path: Path, names) -> list[str]:
    """Remove the named records under /data from the image (only while the chip is off).
    Returns the names removed."""
    def rm(fs, path):
        fs.remove(path)
        return True
    return _edit(image_path, names, rm)
