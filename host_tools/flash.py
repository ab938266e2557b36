"""`make flash`: put a compiled firmware bundle on a pump, a Pico or a virtual one.

    python -m host_tools.flash [--port PORT] [--key FILE] [--board NAME] [--bundle DIR]

Steps, each printed as it happens:
1. Ask the pump who it is (`info`, no key needed). A running pump is sent the authenticated
   `maintenance` command (the clinician key, --key): it stops delivery, saves its state and
   resets into MicroPython's REPL. A board that already shows the REPL (a new Pico with only
   MicroPython on it) goes straight on.
2. Build the bundle for the pump's board (`make build BOARD=...`; a virtual pump needs
   BOARD=virtual) unless --bundle names one already built.
3. Copy it with mpremote (`resume` keeps mpremote from soft-resetting first), then reset the
   board with Ctrl-D at the REPL: MicroPython runs main.py on a Pico; the virtual board starts
   its firmware again.
4. Wait for the pump to answer and print its firmware version. It comes back stopped (as
   maintenance left it); `pumpctl resume` restarts delivery.

Exit status as pumpctl's: 0 done, 1 the pump refused, 2 bad usage, 3 no connection.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from host_tools import boardlimits
from host_tools import link as linkmod

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _fail(code: int, message: str) -> int:
    print(f"flash: {message}", file=sys.stderr)
    return code


def _info(port: str, timeout_s: float = 3.0) -> dict | None:
    try:
        with linkmod.Link.open(port, timeout_s=timeout_s) as lk:
            return lk.call("info", signed=False)
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="make flash", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", help="the pump's serial port (default: the one pump pumpctl finds)")
    p.add_argument("--key", help="clinician key file (a running pump needs it for maintenance)")
    p.add_argument("--board", help="board to build for (default: what the pump says it is)")
    p.add_argument("--bundle", help="an already built bundle directory (skips make build)")
    args = p.parse_args(argv)

    port = args.port
    if not port:
        found = linkmod.find_pumps()
        if len(found) != 1:
            return _fail(3, f"found {len(found)} pumps; name one with PORT=...")
        port = found[0].port
    info = _info(port)
    if info is not None:
        board = boardlimits.name_of(info.get("board"))  # its board file: virtual, pico, implant
        print(f"pump {info.get('pump_id')} on {port}: firmware {info.get('firmware')}, "
              f"board {info.get('board')}")
        key_path = args.key
        if key_path is None:
            vb = linkmod.board_for_port(port)
            key_path = getattr(vb, "clinician_key", None) if vb else None
        if not key_path:
            return _fail(2, "the pump is running: give the clinician key (KEY=...) so it can "
                            "be put into maintenance")
        try:
            key = linkmod.load_key(key_path)
            with linkmod.Link.open(port, key=key) as lk:
                lk.call("maintenance")
        except linkmod.PumpError as e:
            return _fail(1, f"the pump refused maintenance: {e}")
        except linkmod.LinkError as e:
            return _fail(3, f"lost the pump while entering maintenance: {e}")
        print("maintenance: delivery stopped and state saved; waiting for the REPL")
    else:
        # Already at the REPL (after `pumpctl maintenance`): a registered virtual board is
        # known by its port.
        board = "virtual" if linkmod.board_for_port(port) else None
        print(f"{port} does not answer the pump protocol; looking for MicroPython's REPL")
    if not _wait_repl(port):
        return _fail(3, f"no MicroPython REPL on {port}")
    board = args.board or board or "pico"
    bundle = Path(args.bundle) if args.bundle else ROOT / "build"
    if not args.bundle:
        out = subprocess.run(["make", "-s", "-C", str(ROOT), "build", f"BOARD={board}"],
                             text=True)
        if out.returncode != 0:
            return _fail(2, f"make build BOARD={board} failed")
    if not (bundle / "firmware").is_dir():
        return _fail(2, f"{bundle} holds no firmware/ directory: build it first (make build)")
    try:
        # The unix port's REPL works in a host directory, where stat("") fails: name it "."
        dest = ":." if board == "virtual" else ":"
        _mpremote(port, "fs", "cp", "-r", str(bundle / "firmware"), str(bundle / "boards"), dest)
        if (bundle / "main.py").exists():
            _mpremote(port, "fs", "cp", str(bundle / "main.py"), ":main.py")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return _fail(3, str(e))
    _reset(port)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        info = _info(port, timeout_s=1.0)
        if info is not None:
            print(f"pump {info.get('pump_id')} is back: firmware {info.get('firmware')} "
                  f"(stopped until `pumpctl resume`)")
            return 0
        time.sleep(0.5)
    return _fail(3, "the pump did not come back after the reset")


if __name__ == "__main__":
    sys.exit(main())
