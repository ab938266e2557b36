"""What a pump's board can do, as the host checks prescriptions, boluses and refills against it.

Two ways in, one shape out (BoardLimits):

- `pump_limits(link)`: the pump that answers says it itself (`info` -> `limits`, added by the
  firmware). This is the ONE place the host reads a live pump's limits; when the protocol moves
  them to a keyed reply, only this function changes.
- `board_limits(name)`: a board by name ("virtual", "pico", "implant") from its file in boards/,
  for work without a pump (`pumpctl check --board`, scenario files). The RP2040 boards import
  `machine`, so their constants are read from the source, never imported.

A BoardLimits also offers the upper-case names firmware.rx.Rx reads (STROKE_NL, ...), so the
host runs the firmware's own prescription check against the same board the pump has.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from host_tools import fmt
from host_tools.errors import InputError

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"
BOARD_NAMES = ("virtual", "pico", "implant")
# the firmware's `info` -> `limits` keys, and the board constants they come from
INFO_KEYS = {"stroke_nl": "STROKE_NL", "reservoir_nl": "RESERVOIR_NL",
             "reservoir_min_nl": "RESERVOIR_MIN_NL", "min_rate_nl_day": "MIN_RATE_NL_DAY",
             "max_strokes_per_min": "MAX_STROKES_PER_MIN", "catheter_nl": "CATHETER_NL"}


@dataclass(frozen=True)
class BoardLimits:
    name: str                   # the board's NAME ("virtual-pico", "pico", "implant")
    stroke_nl: int
    reservoir_nl: int           # the most the reservoir holds
    reservoir_min_nl: int       # delivery stops with this much left
    min_rate_nl_day: int        # slowest basal rate the pump accepts
    max_strokes_per_min: int    # the motor's limit
    catheter_nl: int            # drug held in the catheter (priming, bridge)
    source: str = "board file"  # where these came from: "the pump" or a board file

    @property
    def max_rate_nl_day(self) -> int:
        return self.max_strokes_per_min * self.stroke_nl * 1440

    # what firmware.rx.Rx reads from a board
    @property
    def STROKE_NL(self) -> int:  # noqa: N802
        return self.stroke_nl

    @property
    def MAX_STROKES_PER_MIN(self) -> int:  # noqa: N802
        return self.max_strokes_per_min

    @property
    def MIN_RATE_NL_DAY(self) -> int:  # noqa: N802
        return self.min_rate_nl_day

    def describe(self) -> str:
        return (f"{self.name} ({self.stroke_nl} nL strokes, a {fmt.vol(self.reservoir_nl)} "
                f"reservoir, {fmt.vol_rate(self.min_rate_nl_day)} to "
                f"{fmt.vol_rate(self.max_rate_nl_day)})")


@lru_cache(maxsize=8)
def board_data(name: str) -> dict:
    """Every upper-case constant of boards/<name>.py, read from the source."""
    path = BOARDS_DIR / f"{name}.py"
    if not name.isidentifier() or name.startswith("_") or not path.is_file():
        raise InputError("board", name, "one of " + ", ".join(f'"{b}"' for b in BOARD_NAMES))
    tree = ast.parse(path.read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                values[target.id] = ast.literal_eval(node.value)
    return values


def board_limits(name: str) -> BoardLimits:
    data = board_data(name)
    return BoardLimits(data["NAME"], **{k: data[c] for k, c in INFO_KEYS.items()},
                       source=f"boards/{name}.py")


def name_of(board_name: str | None) -> str | None:
    """The board file behind a board's NAME ("virtual-pico" -> "virtual"), or None."""
    for name in BOARD_NAMES:
        if board_data(name)["NAME"] == board_name:
            return name
    return None


def from_info(info: dict) -> BoardLimits:
    """The limits in an `info` reply. A firmware without `limits` is matched to its board file
    by name (its `stroke_nl`, `catheter_nl`, `reservoir_max_nl` taken as it says)."""
    got = info.get("limits")
    if isinstance(got, dict) and all(isinstance(got.get(k), int) for k in INFO_KEYS):
        return BoardLimits(str(info.get("board")), **{k: got[k] for k in INFO_KEYS},
                           source="the pump")
    name = name_of(info.get("board"))
    if name is None:
        raise InputError("pump", str(info.get("board")), "a pump that reports its limits in "
                         "`info`, or a known board: " + ", ".join(BOARD_NAMES))
    base = board_limits(name)
    overrides = {k: info[v] for k, v in (("stroke_nl", "stroke_nl"),
                                         ("catheter_nl", "catheter_nl"),
                                         ("reservoir_nl", "reservoir_max_nl"))
                 if isinstance(info.get(v), int)}
    return BoardLimits(**{**base.__dict__, **overrides,
                          "source": f"boards/{name}.py (the pump did not report its limits)"})


def pump_limits(link) -> BoardLimits:
    """The limits of the pump on this link: the one function the host reads them through.
    With a key, link.info() is the signed `info` of a session (docs/security.md), so the limits
    are the pump's own and verified; without one, the public `info` names the board only and
    its board file gives them."""
    return from_info(link.info())
