"""Every board defines what the virtual board defines, with sane values; firmware names no pin."""

import ast
import re
from pathlib import Path

import pytest

from boards import stepgen, virtual
from tests.boards.board_data import constants

ROOT = Path(__file__).resolve().parents[2]
HARDWARE = ("pico", "implant")
VIRTUAL_NAMES = sorted(n for n in dir(virtual) if n.isupper())
# Quantities that may be zero (a check switched off); every other number must be positive.
MAY_BE_ZERO = {"B_SAG_MIN_MV", "CLOCK_KEPT", "B_TONE_UAS", "B_WAKE_UAS"}


def test_the_virtual_board_list_is_not_empty():
    assert len(VIRTUAL_NAMES) > 20 and "STROKE_NL" in VIRTUAL_NAMES


@pytest.mark.parametrize("board", HARDWARE)
def test_hardware_boards_define_every_virtual_constant_with_the_same_kind(board):
    b = constants(board)
    missing = [n for n in VIRTUAL_NAMES if n not in b.values]
    assert not missing, f"{board} lacks {missing}"
    for n in VIRTUAL_NAMES:
        assert type(b.values[n]) is type(getattr(virtual, n)), n
        if isinstance(b.values[n], int):
            low = 0 if n in MAY_BE_ZERO else 1
            assert b.values[n] >= low, f"{board}.{n} = {b.values[n]}"


@pytest.mark.parametrize("board", HARDWARE + ("virtual",))
def test_board_values_fit_together(board):
    b = constants(board)
    # ADC readings: 16 bit, the valid window brackets zero pressure.
    assert 0 < b.P_RAW_MIN < b.P_RAW_ZERO < b.P_RAW_MAX < 65536
    # The sensor can read the occlusion threshold and a stroke's rise before it saturates.
    top_pa = (b.P_RAW_MAX - b.P_RAW_ZERO) * 1000 // b.P_RAW_PER_KPA
    assert b.STROKE_RISE_PA < b.OCCLUSION_PA < top_pa
    # Battery: thresholds inside the readable window, end of service below the warning.
    assert b.B_MV_MIN < b.B_EOS_MV < b.B_ERI_MV < b.B_MV_MAX
    assert b.B_MV_DEN == 65535 and b.B_MV_NUM <= 3 * 3300   # at most a 3:1 divider at 3.3 V
    assert b.B_MV_MAX <= 65535 * b.B_MV_NUM // b.B_MV_DEN    # the ADC can reach B_MV_MAX
    # Watchdog within the RP2040's reach, and checks often enough.
    assert 1000 <= b.WDT_TIMEOUT_MS <= 8300
    assert b.CHECK_MS >= b.WDT_TIMEOUT_MS
    assert b.RESERVOIR_MIN_NL < b.RESERVOIR_NL and b.CATHETER_NL < b.RESERVOIR_NL
    assert 0 < b.REFILL_TOLERANCE_PCT < 100
    # The slowest accepted rate still needs at least one stroke a day.
    assert b.MIN_RATE_NL_DAY >= b.STROKE_NL
    assert b.NAME == board or (board == "virtual" and b.NAME.startswith("virtual"))


@pytest.mark.parametrize("board", HARDWARE)
def test_hardware_board_pins_are_distinct_rp2040_gpios(board):
    b = constants(board)
    pins = {n: v for n, v in b.values.items() if n.startswith("PIN_") and v is not None}
    assert len(pins) >= 9
    assert all(0 <= v <= 29 for v in pins.values()), pins
    assert len(set(pins.values())) == len(pins), f"{board} uses a pin twice: {pins}"
    for n in ("PIN_PRESSURE_ADC", "PIN_BATTERY_ADC"):
        assert 26 <= b.values[n] <= 29, f"{n} must be an ADC pin (GP26..GP29)"
    assert 0 <= b.STEP_SM <= 7 and b.EN_ACTIVE in (0, 1) and b.DIR_FORWARD in (0, 1)
    assert stepgen.check_board(b) == []


def test_the_two_hardware_boards_really_differ():
    pico, implant = constants("pico"), constants("implant")
    assert pico.PIN_STEP != implant.PIN_STEP and pico.STROKE_NL != implant.STROKE_NL
    assert pico.P_RAW_PER_KPA != implant.P_RAW_PER_KPA


# ---- the firmware never touches hardware directly ---------------------------------------------
FIRMWARE = sorted((ROOT / "firmware").glob("*.py"))
HARDWARE_MODULES = {"machine", "rp2", "umachine", "pyb", "boards"}
PIN_WORDS = re.compile(r"\b(Pin|PIN_[A-Z_]+|GP\d+|ADC\(|PWM\(|StateMachine)\b")


def test_there_is_firmware_to_check():
    assert len(FIRMWARE) >= 8


@pytest.mark.parametrize("path", FIRMWARE, ids=lambda p: p.name)
def test_firmware_never_imports_hardware_modules(path):
    # firmware/main.py is the boot entry: it alone picks the board (boards.<name>.Hal) and
    # gives the boot loader machine.reset (a production firmware that stops resets the board).
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if path.name == "main.py" and top in ("boards", "machine"):
                continue
            assert top not in HARDWARE_MODULES, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", FIRMWARE, ids=lambda p: p.name)
def test_firmware_names_no_pin(path):
    code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    found = PIN_WORDS.findall(code)
    assert not found, f"{path.name} names hardware: {found}"


def test_the_pin_check_bites():
    assert PIN_WORDS.search("step = Pin(PIN_STEP, Pin.OUT)")
    assert PIN_WORDS.search("x = board.PIN_DIAG")
