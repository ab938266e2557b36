"""How long a fill of each drug stays usable in the pump: the `[stability]` table at the end of
drugs.toml. `pumpctl refill` and the simulator ask fill_stability() for each fill and send the
answer to the pump, which raises `drug_expired` when the fill is older."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

from host_tools import druglib, units
from host_tools.errors import InputError

TABLE = "stability"


@dataclass(frozen=True)
class Stability:
    fill_ms: int | None             # every fill (None: see the ziconotide keys)
    first_fill_ms: int | None
    undiluted_ms: int | None
    diluted_ms: int | None
    undiluted_ng_per_ml: tuple[int, ...]
    sources: tuple[str, ...]


def _ms(d: dict, key: str, where: str) -> int | None:
    if key not in d:
        return None
    ms = units.duration_ms(d[key], f"{where}.{key}")
    if ms <= 0:
        raise InputError(f"{where}.{key}", d[key], "a duration above zero")
    return ms


@lru_cache(maxsize=1)
def load() -> dict[str, Stability]:
    with open(druglib.LIBRARY, "rb") as f:
        table = tomllib.load(f).get(TABLE, {})
    out = {}
    for name, d in table.items():
        where = f"drugs.toml [{TABLE}.{name}]"
        s = Stability(_ms(d, "fill", where), _ms(d, "first_fill", where),
                      _ms(d, "undiluted", where), _ms(d, "diluted", where),
                      tuple(units.concentration_ng_per_ml(c, where)
                            for c in d.get("undiluted_concentrations", ())),
                      tuple(d.get("sources", ())))
        if s.fill_ms is None and None in (s.first_fill_ms, s.undiluted_ms, s.diluted_ms):
            raise InputError(where, d, "fill, or first_fill with undiluted and diluted")
        out[name] = s
    return out


def fill_stability(drug: str, conc_ng_per_ml: int, first_fill: bool) -> tuple[int, str]:
    """(ms this fill stays usable, a few words saying which rule gave it). A drug without an
    entry gives (0, ...): the pump then has no expiry to warn about."""
    s = load().get(druglib.get(drug).name)
    if s is None:
        return 0, "no stability data in drugs.toml"
    if s.fill_ms is not None:
        return s.fill_ms, "stability in the pump"
    if first_fill:
        return s.first_fill_ms or 0, "first fill of this pump"
    if conc_ng_per_ml in s.undiluted_ng_per_ml:
        return s.undiluted_ms or 0, "undiluted"
    return s.diluted_ms or 0, "diluted"
