"""`make flash`: put a compiled firmware bundle on a pump, a Pico or a virtual one.

    python -m host_tools.flash [--port PORT] [--key FILE] [--update-key PEM] [--board NAME]
                               [--bundle DIR] [--dev] [--keys-out DIR]

The board is what answers on the port says it is, never who started the port: a pump's `info`
names its board; MicroPython's REPL says its platform and machine (sys.platform `rp2` on a
"Raspberry Pi Pico with RP2040" is boards/pico.py; the unix port, a virtual board's REPL, is
boards/virtual.py). BOARD=... must fit what the REPL says.

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
has no keys yet is then provisioned: new clinician and patient keys, written to --keys-out
(default: the user's data directory, `pumpctl/keys/pump-keys-<pump id>/`, never the
checkout), and the public half of the update key; then its clock is set to this computer's
(a Pico's clock starts at 2021). Each stage prints a line as it starts; transfers show a bar on
a terminal.

Exit status as pumpctl's: 0 done, 1 the pump refused, 2 bad usage, 3 no connection or a reply
that could not be verified.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

from host_tools import boardlimits, fmt, progress
from host_tools import bundle as bundlemod
from host_tools import link as linkmod
from host_tools.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


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


@contextlib.contextmanager
def repl(port: str):
    """MicroPython's raw REPL on `port`, through mpremote's transport (pinned; never on a running
    pump, which refuses it: docs/protocol.md). RuntimeError when it cannot be had."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError as e:
        raise RuntimeError(f"mpremote cannot open {port}: {e}") from None
    try:
        t.enter_raw_repl(soft_reset=False)
        yield t
        t.exit_raw_repl()
    except TransportError as e:
        raise RuntimeError(f"MicroPython's REPL on {port} failed: {e}") from None
    finally:
        t.close()


def _repl_exec(port: str, code: str) -> str:
    """What `code` prints on the REPL at `port`."""
    with repl(port) as t:
        return t.exec(code).decode(errors="replace")


# A first install writes each file in pieces of this many bytes, base64 in the source the REPL
# runs and decoded there by binascii: a third less of the chip's work than mpremote's `fs cp`
# (a bytes literal with escapes, 256 bytes a piece), and the same mpremote transport.
COPY_PIECE = 4096


def install_files(bundle: Path) -> list[tuple[str, bytes]]:
    """(path on the board, bytes) of a first install: firmware/, boards/, and at the top the
    boot loader (main.py, loader.mpy)."""
    files = [(f"{top}/{f.name}", f.read_bytes()) for top in ("firmware", "boards")
             for f in sorted((bundle / top).glob("*")) if f.is_file()]
    files += [(name, (bundle / name).read_bytes()) for name in ("main.py", "loader.mpy")
              if (bundle / name).is_file()]
    if (bundle / "base-manifest.json").is_file():   # the base's signed manifest (the self-test)
        files.append((bundlemod.BASE_MANIFEST, (bundle / "base-manifest.json").read_bytes()))
    return files


def copy_bundle(t, bundle: Path, show=None) -> None:
    """A first install's files into the working directory of the REPL `t` (the root of a Pico's
    flash; a virtual board's flash directory), and no update slot left in front of them."""
    import base64

    t.exec("import os\nfrom binascii import a2b_base64 as d\n"
           "for n in ('firmware', 'boards', 'fw', 'fw/base'):\n try:\n  os.mkdir(n)\n except OSError:\n  pass")
    for path, data in install_files(bundle):
        t.exec(f"f=open({path!r},'wb')\nw=f.write")
        for i in range(0, len(data), COPY_PIECE):
            t.exec(f"w(d({base64.b64encode(data[i:i + COPY_PIECE])!r}))")
        t.exec("f.close()")
        if show is not None:
            show(f"{path} ({len(data)} bytes)")
    # What was just installed is the base: an update slot that was running must not stay in
    # front of it (a development pump reinstalled from its REPL).
    t.exec("try:\n os.remove('fw/boot')\nexcept OSError:\n pass")


def _reset(port: str) -> None:
    import serial

    with serial.serial_for_url(port, timeout=0.5) as s:
        s.write(b"\r\x02")   # leave the raw REPL if mpremote left it there
        time.sleep(0.2)
        s.write(b"\x04")     # Ctrl-D at the prompt: a soft reset
        time.sleep(0.2)


# What MicroPython's REPL says it runs on (sys.platform, sys.implementation._machine) -> the
# board file: the rp2 port on a Raspberry Pi Pico is boards/pico.py; the unix port is the
# virtual board's REPL (after `pumpctl maintenance` on a development build).
REPL_PROBE = ("import sys; print('PLATFORM', sys.platform, '|', "
              "getattr(sys.implementation, '_machine', ''))")
PLATFORM_OF = {"pico": "rp2", "implant": "rp2", "virtual": "linux"}


def repl_board(port: str, asked: str | None) -> str:
    """The board file for the MicroPython REPL on `port`, from what the REPL says it runs on;
    `asked` (BOARD=...) must fit it. InputError when it does not, or the REPL is unknown."""
    out = _repl_exec(port, REPL_PROBE)
    line = next((x for x in out.splitlines() if x.startswith("PLATFORM ")), "")
    platform, _, machine = line[len("PLATFORM "):].partition(" | ")
    platform = platform.strip()
    if not platform:
        raise InputError("the port", port, f"a MicroPython REPL that answers {REPL_PROBE!r} "
                         f"(it printed {out.strip()[-200:]!r})")
    said = f"the REPL on {port} runs on {platform} ({machine.strip() or 'no machine name'})"
    if asked is not None:
        if PLATFORM_OF.get(asked) != platform:
            raise InputError("BOARD", asked, f"a board for what answers: {said}")
        return asked
    if platform == "rp2" and machine.startswith("Raspberry Pi Pico with RP2040"):
        return "pico"
    if platform == "linux":
        return "virtual"
    raise InputError("the port", port, f"a Raspberry Pi Pico (RP2040) or a virtual board: {said}"
                     "; for another RP2040 board name its board file with BOARD=...")


def _build(board: str, dev: bool) -> Path | None:
    cmd = ["make", "-s", "-C", str(ROOT), "build", f"BOARD={board}"]
    if dev:
        cmd.append("DEV=1")
    return ROOT / "build" if subprocess.run(cmd, text=True).returncode == 0 else None


# How long a pump may take to come back after an update's switch or a first install: its
# self-test, and once after each install the watchdog's proof (a second reset). A Pico needs a
# few seconds; the emulated one on a busy machine much longer. The wait ends when it answers.
BACK_S = 180.0


def _wait_back(port: str, key, version: str, slot: str, timeout_s: float = BACK_S):
    """The new firmware's signed info once it answers a session (None at the timeout)."""
    end = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < end:
        try:
            with linkmod.Link.open(port, key, timeout_s=5.0, attempts=1) as lk:
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
    stages = progress.Stages("update", 3)
    stages(f"{len(contents)} files, {total} bytes, version {version} for board "
           f"{json.loads(man)['board']}, signed with the update key: sending (files the pump "
           "already runs are copied on the pump)")
    stats: dict = {}
    with linkmod.Link.open(port, key, timeout_s=3.0) as lk:
        r = bundlemod.push(lk, man, sig, contents, progress.transfer("update"), stats)
    if stats.get("reused"):
        print(f"update: {len(stats['reused'])} files ({stats['copied']} bytes) the pump already "
              f"had were copied on the pump from its running firmware (checked against the "
              f"signed manifest like the rest); {stats['sent']} bytes sent")
    slot = str(r.get("slot"))
    stages(f"checked and switched to slot {slot}; waiting for the pump to restart into it "
           f"(up to {BACK_S:.0f} s)")
    info = _wait_back(port, key, version, slot)
    if info is None:
        return _fail(3, "the pump did not come back after the update; check it with "
                        "`pumpctl info` (it goes back to the old firmware by itself if the new "
                        "one does not come up)")
    stages(f"pump {info.get('pump_id')} runs firmware {info.get('firmware')} "
           f"({info.get('build')} build, slot {(info.get('update') or {}).get('slot')}); "
           "confirmed")
    stages.end("done")
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


FIRST_INSTALL_STAGES = 6


def first_install(port: str, bundle: Path, board: str, stages: progress.Stages,
                  update_key=None, build: str = "production") -> None:
    """For a Pico that shows only MicroPython's REPL: the bundle, then main.py and the loader at
    the root, through mpremote's transport; then a soft reset starts the pump. The base gets its
    manifest, signed with the update key the pump will be provisioned with: the self-test
    checks the files against it at every boot (docs/security.md)."""
    bundlemod.write_base_manifest(bundle, board, build, update_key)
    files = install_files(bundle)
    stages(f"copying the bundle ({len(files)} files, {sum(len(d) for _, d in files)} bytes) "
           f"to the {board} board's REPL with mpremote's transport")
    with repl(port) as t:
        copy_bundle(t, bundle, show=stages.note)
    _reset(port)


# Where a first install puts a new pump's keys unless --keys-out says otherwise: the user's
# data directory (platformdirs: $XDG_DATA_HOME/pumpctl/keys, else ~/.local/share/pumpctl/keys),
# never the checkout, where one `git add -A` would commit the clinician key.
def keys_home() -> Path:
    import platformdirs

    return platformdirs.user_data_path("pumpctl") / "keys"


def keys_dir(out_dir: str | None, pump_id: str) -> Path:
    return Path(out_dir) if out_dir else keys_home() / f"pump-keys-{pump_id}"


def check_keys_out(out_dir: str | None) -> None:
    """--keys-out inside this checkout must be a place git ignores (InputError otherwise)."""
    if not out_dir:
        return
    out = Path(out_dir).resolve()
    if not out.is_relative_to(ROOT):
        return
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q",
                              str(out / "clinician.key")], capture_output=True)
    if ignored.returncode == 1:
        raise InputError("--keys-out", out_dir, "a directory outside this checkout, or one git "
                         f"ignores (pump-keys-*): {out} would be one `git add` from a commit")


def provision_new(port: str, update_key, out_dir: str | None,
                  stages: progress.Stages | None = None) -> tuple[int, Path]:
    """Keys for a pump that answers and has none, then its clock: (exit status, the key
    directory). A clock that could not be set is said, with the command that sets it."""
    say = stages or print
    say("provisioning: new clinician and patient keys, and the update key's public half")
    with linkmod.Link.open(port) as lk:
        c, p = linkmod.provision(lk, bundlemod.modulus(update_key))
    out = keys_dir(out_dir, c.pump_id or "with-no-id")   # the keys are the pump's now: keep them
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    linkmod.write_key(out / "clinician.key", c)
    linkmod.write_key(out / "patient.key", p)
    print(f"provisioned pump {c.pump_id}: keys in {out}/clinician.key and {out}/patient.key "
          "(keep them safe: they control the pump; they are not in the checkout)")
    return set_clock(port, out / "clinician.key", stages), out


def set_clock(port: str, key_path: Path, stages: progress.Stages | None = None) -> int:
    """Set the pump clock to this computer's (a new Pico's starts at 2021: clock_lost)."""
    say = stages or print
    say("setting the pump clock to this computer's")
    command = f"pumpctl --port {port} --key {key_path} clock --set now --yes"
    try:
        with linkmod.Link.open(port, linkmod.load_key(key_path), timeout_s=5.0) as lk:
            ts = lk.call("clock", {"set_ts": fmt.host_now_ts()}).get("clock_ts", 0)
    except linkmod.PumpError as e:
        return _fail(1, f"the pump refused to set its clock ({e}); set it with: {command}")
    except linkmod.LinkError as e:
        return _fail(3, f"the clock was not set ({e}); set it with: {command}")
    print(f"pump clock set to {fmt.pump_time(ts)}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="make flash", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--port", help="the pump's serial port (default: the one pump pumpctl finds)")
    p.add_argument("--key", help="clinician key file (a running pump needs it)")
    p.add_argument("--update-key", help="the update key (PEM) that signs the bundle (default: "
                   "the repository's DEVELOPMENT-ONLY key)")
    p.add_argument("--board", help="board to build for (default: what answers on the port says "
                   "it is: the pump's info, or MicroPython's sys.platform and machine)")
    p.add_argument("--bundle", help="an already built bundle directory (skips make build)")
    p.add_argument("--dev", action="store_true", help="a development build (make build DEV=1)")
    p.add_argument("--keys-out", help="where a newly provisioned pump's key files go (default: "
                   f"{keys_home()}/pump-keys-<pump id>; never the checkout unless git ignores "
                   "the place)")
    args = p.parse_args(argv)

    try:
        update_key = bundlemod.load_update_key(args.update_key)
        check_keys_out(args.keys_out)
    except InputError as e:
        return _fail(2, str(e))
    port = args.port
    if not port:
        found = linkmod.find_pumps()
        if len(found) != 1:
            return _fail(3, f"found {len(found)} pumps; name one with PORT=...")
        port = found[0].port
    bundle = Path(args.bundle) if args.bundle else None

    def built(board: str) -> Path:
        b = bundle or _build(board, args.dev)
        if b is None:
            raise InputError("make build", f"BOARD={board}", "a build that succeeds")
        if not (b / "firmware").is_dir():
            raise InputError("--bundle", str(b), "a directory holding firmware/ (make build)")
        return b

    try:
        info = _info(port)
        if info is None:
            return install(port, args, update_key, built)
        # the pump's board file (virtual, pico, implant), from what it says it is
        board = args.board or boardlimits.name_of(info.get("board"))
        if board is None:
            raise InputError("the pump's board", str(info.get("board")),
                             f"one of this tree's board files ({', '.join(PLATFORM_OF)})")
        print(f"pump {info.get('pump_id')} on {port}: firmware {info.get('firmware')}, "
              f"board {info.get('board')}, {info.get('build', 'old')} build")
        if info.get("keys") == "none" or (info.get("keys") is None
                                          and info.get("provisioned") is False):
            return provision_new(port, update_key, args.keys_out)[0]
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
            first_install(port, built(board), board, progress.Stages("install", 1),
                          update_key, "development" if args.dev else "production")
            print("installed; from now on `make flash` updates this pump over its protocol")
            return 0
        build = "development" if args.dev else "production"
        return update(port, key_path, update_key, built(board), board, build)
    except InputError as e:
        return _fail(2, str(e))
    except linkmod.PumpError as e:
        return _fail(1, f"the pump refused: {e}")
    except linkmod.LinkError as e:
        return _fail(3, str(e))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return _fail(3, str(e))


def install(port: str, args, update_key, built) -> int:
    """The first install on what shows MicroPython's REPL, then keys and the clock."""
    stages = progress.Stages("first install", FIRST_INSTALL_STAGES)
    stages(f"{port} does not answer the pump protocol: looking for MicroPython's REPL")
    if not _wait_repl(port):
        return _fail(3, f"no MicroPython REPL and no pump on {port}")
    board = repl_board(port, args.board)
    stages.note(f"MicroPython's REPL on {port}: board {board}")
    stages(f"building the bundle for board {board}"
           + (f" (given: {args.bundle})" if args.bundle else " (make build)"))
    first_install(port, built(board), board, stages, update_key,
                  "development" if args.dev else "production")
    stages(f"restarting into the pump firmware; waiting for it to answer (up to {BACK_S:.0f} s)")
    info = None
    end = time.monotonic() + BACK_S
    while info is None and time.monotonic() < end:
        # 5 s for the reply: a first `info` loads its modules from flash, which on a busy
        # emulated Pico took longer than the 1 s this once allowed, every time
        info = _info(port, timeout_s=5.0)
        if info is None:
            time.sleep(0.5)
    if info is None:
        return _fail(3, "the pump did not come up after the first install (the REPL took the "
                        f"files; check {port} with a terminal: it should answer `info`)")
    stages.note(f"pump {info.get('pump_id')} runs firmware {info.get('firmware')} "
                f"({info.get('build')} build, board {info.get('board')})")
    if info.get("keys") == "none":
        code, out = provision_new(port, update_key, args.keys_out, stages)
        key = out / "clinician.key"
    else:
        stages(f"the pump has keys already ({info.get('keys')}): none made")
        key = Path(args.key) if args.key else None
        code = set_clock(port, key, stages) if key else 0
        if key is None:
            print(f"the clock: `pumpctl --port {port} --key CLINICIAN_KEY clock --set now "
                  "--yes` sets it")
    if code == 0:
        stages.end(f"done: `pumpctl --port {port} --key {key or 'CLINICIAN_KEY'} info` shows "
                   "the pump")
    return code


if __name__ == "__main__":
    sys.exit(main())
