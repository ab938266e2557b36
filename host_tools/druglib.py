"""The drug library (drugs.toml): hard limits refuse, soft limits warn."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from host_tools import units
from host_tools.errors import InputError

LIBRARY = Path(__file__).with_name("drugs.toml")


@dataclass(frozen=True)
class Drug:
    name: str
    soft_concentration_ng_per_ml: int
    hard_concentration_ng_per_ml: int
    soft_daily_ng: int
    hard_daily_ng: int
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def load() -> dict[str, Drug]:
    with open(LIBRARY, "rb") as f:
        table = tomllib.load(f)
    drugs = {}
    for name, d in table.items():
        k = f"drugs.toml [{name}]"
        drugs[name] = Drug(
            name=name,
            soft_concentration_ng_per_ml=units.concentration_ng_per_ml(d["soft_concentration"], k),
            hard_concentration_ng_per_ml=units.concentration_ng_per_ml(d["hard_concentration"], k),
            soft_daily_ng=units.mass_ng(d["soft_daily_dose"], k),
            hard_daily_ng=units.mass_ng(d["hard_daily_dose"], k),
            sources=tuple(d["sources"]),
            aliases=tuple(d.get("aliases", ())),
        )
    return drugs


def get(name, key: str = "drug") -> Drug:
    drugs = load()
    if isinstance(name, str):
        wanted = name.strip().lower()
        for drug in drugs.values():
            if wanted == drug.name or wanted in drug.aliases:
                return drug
    raise InputError(key, name, "a drug in the library: " + ", ".join(sorted(drugs)))
