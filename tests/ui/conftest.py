"""The page's fixtures: one virtual board (`pumpsim board`, the firmware on the MicroPython VM)
programmed as a clinic would find it, one `pumpctl ui` server for it in this process (the same
start() the command uses), and one headless Chromium (Debian's, through Playwright) shared by
every test of tests/ui. Screenshots go to build/test-screens/ui-*.png.

With pytest --rp2 the board is the emulated Pico instead (the MicroPython rp2 UF2 in an
emulated RP2040; docs/ui.md). The tests run in file order against the one board:
test_figures.py needs none; test_page.py's refill visit changes the pump; test_security.py
only reads it or undoes what it does; test_therapy.py, last, revises the catheter, primes it,
stops and resumes, and leaves the pump refilled with baclofen and programmed for it.
tests/rp2/test_ui.py (make test-rp2) starts its own emulated Pico with running_board().
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from host_tools import link
from host_tools.ui.cli import start
from host_tools.ui.pump import PumpView

ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "build" / "test-screens"
PUMPSIM = str(Path(sys.executable).parent / "pumpsim")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic"]


def rx_text(concentration: str, steps: dict[str, str], catheter: bool = False) -> str:
    """A morphine prescription file: its concentration, {start: rate} steps, the example's
    patient bolus and limits, and the example's catheter when asked."""
    rows = ", ".join(f'{{ start = "{t}", rate = "{r}" }}' for t, r in steps.items())
    return (f'drug = "morphine"\nconcentration = "{concentration}"\n[basal]\nsteps = [{rows}]\n'
            '[patient_bolus]\ndose = "0.2 mg"\nduration = "10 min"\nlockout = "2 h"\n'
            'max_per_day = 4\n[limits]\nmax_daily_dose = "6 mg"\nlow_reservoir = "2 mL"\n'
            + ('[catheter]\nmodel = "Prometra 11823"\nlength = "60 cm"\n'
               'volume_per_cm = "2.6 uL"\n' if catheter else ""))


START_RX = rx_text("20 mg/mL", {"00:00": "2 mg/day", "07:00": "3 mg/day", "22:00": "2.5 mg/day"},
                   catheter=True)


def pumpctl(*argv) -> tuple[int, str, str]:
    """pumpctl's main() in this process: (exit status, stdout, stderr)."""
    from host_tools import pumpctl as cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


class Board:
    def __init__(self, info: dict, proc: subprocess.Popen, slow: bool = False):
        self.info, self.proc = info, proc
        # the emulated Pico's replies take seconds on a loaded machine: pumpctl waits longer
        # for each (as tests/e2e gives it), and the page's view of it too (board_view)
        self.slow = slow
        self.timeout = ["--timeout", "30"] if slow else []
        self.port = info["port"]
        self.found = link.Found(self.port, "virtual", "virtual board", info)
        self.lock = threading.RLock()   # the page's, once it runs: one of them on the port

    def ctl(self, *argv, key: str = "clinician_key") -> tuple[int, str, str]:
        """pumpctl on this board, never while the page in this process reads it (pumpctl
        refuses a port in use; a person would run it again)."""
        with self.lock:
            return pumpctl("--port", self.port, "--key", self.info[key], *self.timeout, *argv)

    def key_pump_id(self) -> str:
        return json.loads(Path(self.info["clinician_key"]).read_text())["pump_id"]

    def status(self) -> dict:
        rc, out, err = self.ctl("--json", "status")
        assert rc == 0, err
        return json.loads(out)

    def inject(self, action: str, *params: str) -> dict:
        """`pumpsim inject` on the board's harness channel (virtual time, faults)."""
        from sim.board import inject

        out = inject(self.info["control"], action, list(params), timeout_s=600)
        assert out.get("ok"), out
        return out


@contextlib.contextmanager
def running_board(tmp: Path, rp2: bool):
    """A factory-fresh `pumpsim board` in tmp (its flash directory, and its TMPDIR where it
    registers itself), refilled with 20 mL and programmed with START_RX through pumpctl, as a
    clinic would find it; stopped (SIGTERM: it saves) at the end."""
    state = tmp / "state"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUMPCTL_STATE_DIR", str(state))   # this run's titration record only
        mp.delenv("PUMPCTL_KEY", raising=False)
        mp.delenv("PUMPCTL_PORT", raising=False)
        # pumpctl in this process finds the board's record (its key files, its pid) where the
        # board registered: its own TMPDIR
        mp.setattr(tempfile, "tempdir", str(tmp))
        env = dict(os.environ, TMPDIR=str(tmp))
        runtime = ["--runtime", "rp2"] if rp2 else []
        proc = subprocess.Popen([PUMPSIM, "board", *runtime, "--flash", str(tmp / "flash")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                                env=env)
        try:
            first = proc.stdout.readline()
            assert first, proc.stderr.read().decode()
            b = Board(json.loads(first), proc, slow=rp2)
            rx = tmp / "start.toml"
            rx.write_text(START_RX)
            assert b.ctl("refill", "--volume", "20 mL", "--yes")[0] == 0
            rc, _, err = b.ctl("program", rx, "--yes", "--override-titration",
                               "already on intrathecal morphine")
            assert rc == 0, err
            yield b
        finally:
            proc.terminate()                 # SIGTERM: the board saves and stops
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="package")
def board(tmp_path_factory, request):
    # pytest --rp2: the emulated Pico (`pumpsim board --runtime rp2`), as tests/e2e does
    with running_board(tmp_path_factory.mktemp("ui-board"),
                       request.config.getoption("--rp2")) as b:
        yield b


class Served:
    """A running page: its URL (with the token), the token, the origin, the app."""

    def __init__(self, pump: PumpView, refresh_s: float):
        self.pump = pump
        self.srv, self.url = start(pump, refresh_s)
        self.app = self.srv.app
        self.token = self.url.split("token=", 1)[1]
        self.origin = f"http://127.0.0.1:{self.srv.server_port}"
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def path(self, path: str, **query) -> str:
        return self.origin + self.app.url(path, **query)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@contextlib.contextmanager
def served(pump: PumpView, refresh_s: float = 0.5):
    s = Served(pump, refresh_s)
    try:
        yield s
    finally:
        s.close()


def board_view(board: Board, key: str, rp2: bool) -> PumpView:
    """The page's view of the board with one of its key files, sharing the board's lock."""
    pump = PumpView(board.port, link.load_key(board.info[key]), board.found,
                    timeout_s=30.0 if rp2 else 3.0)   # the emulated Pico answers slowly
    pump.lock = board.lock
    return pump


@pytest.fixture(scope="package")
def ui(board, request):
    with served(board_view(board, "clinician_key", request.config.getoption("--rp2"))) as s:
        yield s


@contextlib.contextmanager
def chromium():
    """Debian's Chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "no chromium: `make browser` installs Debian's (make test runs it first)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="package")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, request):
    """A fresh tab (its own context: no state from another test), failing the test on any
    script error or dialog the page raises."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    if request.config.getoption("--rp2"):
        pg.set_default_timeout(120_000)       # a change on the emulated Pico takes seconds
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    pg.errors = errors
    yield pg
    ctx.close()
    assert not errors, errors


def shot(pg, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"ui-{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def facts(pg, selector: str) -> dict[str, str]:
    """A table of the page (its rows' th and td) as {label: value}: the pump, the status, the
    read-back after a change."""
    pg.wait_for_selector(selector)
    return {r.locator("th").inner_text(): r.locator("td").inner_text()
            for r in pg.locator(f"{selector} tr").all()}
