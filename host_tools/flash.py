"""`make flash`: put a compiled firmware bundle on a pump, a Pico or a virtual one.

    python -m host_tools.flash [--port PORT] [--key FILE] [--update-key PEM] [--board NAME]
                               [--bundle DIR] [--dev] [--keys-out DIR]

A running pump is updated over its own protocol, never through a REPL (docs/security.md):
1. Ask the pump who it is (`info`, no key needed): its board, firmware and build.
2. Build the bundle for that board (`make build BOARD=...`) unless --bundle names one.
3. Sign its manifest (every file's size and SHA-256, the board, the version) with the update
   key, --update-key (default: the repository's DEVELOPMENT-ONLY key, which virtual pumps and
   development Picos are provisioned with), and send manifest, signature and files in a
   clinician session (--key). The pump checks the signature with the public key it got at
   the factory, writes the files to its inactive slot, checks them again and switches.
4. The pump resets into the new firmware on trial. Once it answers a session with the new
   version, this tool confirms it; a firmware that does not come up is rolled back by the
   pump itself after a few boots. Delivery goes on as before: settings and the dose account
   stay where they are (/data).

A Pico with only MicroPython on it (it shows the REPL, not the protocol) gets its first
install with mpremote: the bundle, main.py and the loader at the root. A pump that answers but
has no keys yet is then provisioned: new clinician and patient keys (written to --keys-out,
default ./pump-keys-<pump id>/) and the public half of the update key.

Exit status as pumpctl's: 0 done, 1 the pump refused, 2 bad usage, 3 no connection or a reply
that could not be verified.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

from host_tools import boardlimits
from host_tools import bundle as bundlemod
from host_tools import link as linkmod
from host_tools.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _fail(code: int, message: str) -> int:
    print(f"flash: {message}", file=sys.stderr)
    return code


def _info(port: str, timeout_s: float = 3.0) -> dict | None:
    try:
        with linkmod.Link.open(port, timeout_s=timeout_s, attempts=2) as lk:
            return lk.call("info", signed=False, changes=False)
    except (linkmod.LinkError, linkmod.PumpError, OSError):
        return None


def _wait_repl(port: str, timeout_s: float = 20.0) -> bool:
    """Until the line shows MicroPython's prompt."""
    import serial

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with serial.serial_for_url(port, timeout=0.5) as s:
                s.reset_input_buffer()
                s.write(b"\r\x03\x02\r")
                seen = b""
                stop = time.monotonic() + 2
                while time.monotonic() < stop:
                    seen += s.read(256)
                    if b">>> " in seen:
                        return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _mpremote(port: str, *args: str) -> None:
    cmd = [str(BIN / "mpremote"), "connect", port, "resume", *args]
    print("$ mpremote " + " ".join(cmd[2:]), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"mpremote failed ({out.returncode}): {out.stderr.strip()[-500:]}")


def _reset(port: str) -> None:
    import serial

    with serial.serial_for_url(port, timeout=0.5) as s:
        s.write(b"\r\x02")   # leave the raw REPL if mpremote left it there
        time.sleep(0.2)
        s.write(b"\x04")     # Ctrl-D at the prompt: a soft reset
        time.sleep(0.2)


def _build(board: str, dev: bool) -> Path | None:
    cmd = ["make", "-s", "-C", str(ROOT), "build", f"BOARD={board}"]
    if dev:
        cmd.append("DEV=1")
    return ROOT / "build" if subprocess.run(cmd, text=True).returncode == 0 else None


def _wait_back(port: str, key, version: str, slot: str, timeout_s: float = 60.0):
    """The new firmware's signed info once it answers a session (None at the timeout)."""
    end = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < end:
        try:
            with linkmod.Link.open(port, key, timeout_s=1.0, attempts=1) as lk:
                info = lk.info(refresh=True)
                last = info
                if (info.get("update") or {}).get("slot") != slot:
                    break   # the pump reset after the commit, so only a rollback names another
                if info.get("firmware") == version:
                    lk.call("update_confirm")
                    return info
        except (linkmod.LinkError, linkmod.PumpError, OSError):
            pass
        time.sleep(0.5)
    if last is not None:
        up = last.get("update") or {}
        raise linkmod.PumpError("E_UPDATE", f"the pump came back with firmware "
                                f"{last.get('firmware')} in slot {up.get('slot')}: the new "
                                "firmware did not come up and the pump went back to the "
                                f"old one (last crash: {up.get('last_crash')})")
    return None


def update(port: str, key_path: str, update_key, bundle: Path, board: str,
           build: str) -> int:
    """The signed update of a running pump."""
    key = linkmod.load_key(key_path)
    man, contents = bundlemod.manifest(bundle, board, build)
    sig = bundlemod.sign(update_key, man)
    version = json.loads(man)["version"]
    total = len(man) + len(sig) + sum(len(c) for c in contents)
    print(f"update: {len(contents)} files, {total} bytes, version {version} for board "
          f"{json.loads(man)['board']}, signed with the update key")
    shown = [0]

    def progress(done, all_):
        pct = done * 100 // all_
        if pct >= shown[0] + 25 or done == all_:
            shown[0] = pct
            print(f"  {done} of {all_} bytes in", flush=True)

    stats: dict = {}
    with linkmod.Link.open(port, key, timeout_s=3.0) as lk:
        r = bundlemod.push(lk, man, sig, contents, progress, stats)
    if stats.get("reused"):
        print(f"update: {len(stats['reused'])} files ({stats['copied']} bytes) the pump already "
              f"had were copied on the pump from its running firmware (checked against the "
              f"signed manifest like the rest); {stats['sent']} bytes sent")
    print(f"update: checked and switched to slot {r.get('slot')}; the pump restarts into it")
    info = _wait_back(port, key, version, r.get("slot"))
    if info is None:
        return _fail(3, "the pump did not come back after the update; check it with "
                        "`pumpctl info` (it goes back to the old firmware by itself if the new "
                        "one does not come up)")
    print(f"pump {info.get('pump_id')} runs firmware {info.get('firmware')} "
          f"({info.get('build')} build, slot {(info.get('update') or {}).get('slot')}); "
          "confirmed")
    return 0


def _legacy_maintenance(port: str, key_path: str, info: dict) -> None:
    """A pump whose firmware predates sessions (its `info` shows counters): the old signed
    maintenance, so mpremote can replace it once with a firmware that updates itself."""
    key = linkmod.load_key(key_path)
    ctr = (info.get("ctr") or {}).get("clinician", 0) + 1
    body = json.dumps({"id": 9, "cmd": "maintenance", "role": "clinician", "ctr": ctr},
                      separators=(",", ":")).encode()
    tag = hmac.new(key.secret, body, hashlib.sha256).hexdigest().encode()
    with linkmod.Link.open(port) as lk:
        reply = lk.exchange(body + b" " + tag + b"\n", 9)
    if not reply.get("ok"):
        raise linkmod.PumpError(reply.get("error", "E_UNKNOWN"), reply.get("message", ""))


def first_install(port: str, bundle: Path, board: str, update_key=None,
                  build: str = "production") -> None:
    """mpremote, for a Pico that shows only MicroPython's REPL. The base gets its manifest,
    signed with the update key the pump will be provisioned with: the self-test checks the
    files against it at every boot (docs/security.md)."""
    dest = ":." if board == "virtual" else ":"
    _mpremote(port, "fs", "cp", "-r", str(bundle / "firmware"), str(bundle / "boards"), dest)
    for name in ("main.py", "loader.mpy"):
        if (bundle / name).exists():
            _mpremote(port, "fs", "cp", str(bundle / name), f":{name}")
    record = bundlemod.write_base_manifest(bundle, board, build, update_key)
    for d in ("fw", "fw/base"):
        try:
            _mpremote(port, "fs", "mkdir", f":{d}")
        except RuntimeError:
            pass   # it is there already
    _mpremote(port, "fs", "cp", str(record), f":{bundlemod.BASE_MANIFEST}")
    try:
        # What was just installed is the base: an update slot that was running must not
        # stay in front of it (a development pump reinstalled from its REPL).
        _mpremote(port, "fs", "rm", ":fw/boot")
    except RuntimeError:
        pass   # a new Pico has no pointer
    _reset(port)


def provision_new(port: str, update_key, out_dir: str | None) -> int:
    """Keys for a pump that answers and has none."""
    with linkmod.Link.open(port) as lk:
        c, p = linkmod.provision(lk, bundlemod.modulus(update_key))
    out = Path(out_dir or f"pump-keys-{c.pump_id}")
    out.mkdir(parents=True, exist_ok=True)
    linkmod.write_key(out / "clinician.key", c)
    linkmod.write_key(out / "patient.key", p)
    print(f"provisioned pump {c.pump_id}: keys in {out}/clinician.key and {out}/patient.key "
          "(keep them safe: they control the pump)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="make flash", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", help="the pump's serial port (default: the one pump pumpctl finds)")
    p.add_argument("--key", help="clinician key file (a running pump needs it)")
    p.add_argument("--update-key", help="the update key (PEM) that signs the bundle (default: "
                   "the repository's DEVELOPMENT-ONLY key)")
    p.add_argument("--board", help="board to build for (default: what the pump says it is)")
    p.add_argument("--bundle", help="an already built bundle directory (skips make build)")
    p.add_argument("--dev", action="store_true", help="a development build (make build DEV=1)")
    p.add_argument("--keys-out", help="where a newly provisioned pump's key files go")
    args = p.parse_args(argv)

    try:
        update_key = bundlemod.load_update_key(args.update_key)
    except InputError as e:
        return _fail(2, str(e))
    port = args.port
    if not port:
        found = linkmod.find_pumps()
        if len(found) != 1:
            return _fail(3, f"found {len(found)} pumps; name one with PORT=...")
        port = found[0].port
    info = _info(port)
    # the pump's board file (virtual, pico, implant), from what it says it is
    board = args.board or (boardlimits.name_of(info.get("board")) or "pico" if info else None)
    bundle = Path(args.bundle) if args.bundle else None

    def built():
        b = bundle or _build(board, args.dev)
        if b is None:
            raise InputError("make build", f"BOARD={board}", "a build that succeeds")
        if not (b / "firmware").is_dir():
            raise InputError("--bundle", str(b), "a directory holding firmware/ (make build)")
        return b

    try:
        if info is None:
            print(f"{port} does not answer the pump protocol; looking for MicroPython's REPL")
            if not _wait_repl(port):
                return _fail(3, f"no MicroPython REPL and no pump on {port}")
            # The REPL does not say which board it is: a registered virtual board does.
            board = board or ("virtual" if linkmod.board_for_port(port) else "pico")
            first_install(port, built(), board, update_key,
                          "development" if args.dev else "production")
            for _ in range(60):
                info = _info(port, timeout_s=1.0)
                if info is not None:
                    break
                time.sleep(0.5)
            if info is None:
                return _fail(3, "the pump did not come up after the first install")
            print(f"installed: pump {info.get('pump_id')} runs firmware {info.get('firmware')}")
            if info.get("keys") != "none":
                return 0
        print(f"pump {info.get('pump_id')} on {port}: firmware {info.get('firmware')}, "
              f"board {info.get('board')}, {info.get('build', 'old')} build")
        if info.get("keys") == "none" or (info.get("keys") is None
                                          and info.get("provisioned") is False):
            return provision_new(port, update_key, args.keys_out)
        key_path = args.key
        if key_path is None:
            vb = linkmod.board_for_port(port)
            key_path = (vb.board or {}).get("clinician_key") if vb else None
        if not key_path:
            return _fail(2, "the pump is running: give the clinician key (KEY=...)")
        if "ctr" in info and "build" not in info:
            _legacy_maintenance(port, key_path, info)
            print("maintenance (old firmware): waiting for the REPL for a one-time install")
            if not _wait_repl(port):
                return _fail(3, f"no MicroPython REPL on {port}")
            first_install(port, built(), board, update_key,
                          "development" if args.dev else "production")
            print("installed; from now on `make flash` updates this pump over its protocol")
            return 0
        build = "development" if args.dev else "production"
        return update(port, key_path, update_key, built(), board, build)
    except InputError as e:
        return _fail(2, str(e))
    except linkmod.PumpError as e:
        return _fail(1, f"the pump refused: {e}")
    except linkmod.LinkError as e:
        return _fail(3, str(e))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return _fail(3, str(e))


if __name__ == "__main__":
    sys.exit(main())
