"""What the pump holds now, as the host's checks need it: the stored prescription, the status,
the catheter, and the firmware's own prescription check on the pump's board. Shared by the
Plans of host_tools/program.py and host_tools/therapy.py."""

from __future__ import annotations

from firmware.rx import Rx, RxError, catheter_nl

from host_tools import boardlimits
from host_tools.context import UsageError
from host_tools.errors import InputError
from host_tools.link import Link, PumpError
from host_tools.views import catheter_text


def settings_of(lk: Link) -> dict | None:
    return lk.call("settings", changes=False).get("settings")


def settings_or_none(lk: Link) -> dict | None:
    """The stored prescription, when this key may read it (the patient key may not)."""
    if lk.key is None or lk.key.role != "clinician":
        return None
    return settings_of(lk)


def current(lk: Link) -> tuple[dict, dict]:
    """The stored prescription and the status, for anything that converts doses."""
    settings = settings_of(lk)
    if not settings:
        raise PumpError("E_REFUSED", "the pump has no prescription: program it first",
                        "not_programmed")
    return settings, lk.call("status", changes=False)


def catheter_of(settings: dict) -> tuple[int, str]:
    """The patient's catheter volume and a note naming it, from the pump's settings (the
    firmware bounds a prime and confirms a bridge with the same number). None set: refused."""
    cat = settings.get("catheter")
    if not cat:
        raise UsageError("the pump's settings hold no catheter, and priming and bridging are "
                         "bounded by it: add a [catheter] table (model, length after trimming, "
                         "volume_per_cm) to the prescription and `pumpctl program` it")
    return catheter_nl(settings), f" ({catheter_text(cat)})"


def check_on_board(params: dict, lim: boardlimits.BoardLimits, where: str) -> None:
    """The firmware's own prescription check, on the numbers of the pump's board."""
    try:
        Rx(params, lim)
    except RxError as e:
        raise InputError(f"{where}: {e.key}", e.message, "a prescription the pump's board "
                         f"accepts: {lim.describe()}") from None
