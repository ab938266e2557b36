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
class Titration:
    """How fast a drug's daily basal may rise (drugs.toml [<drug>.titration]); None: no limit."""
    max_start_ng_day: int | None = None
    max_step_ng_day: int | None = None
    max_increase_ppm: int | None = None
    percent_window_s: int = 86_400
    max_increases: int | None = None
    increase_window_s: int = 7 * 86_400
    min_interval_s: int | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Drug:
    name: str
    soft_concentration_ng_per_ml: int
    hard_concentration_ng_per_ml: int
    soft_daily_ng: int
    hard_daily_ng: int
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    titration: Titration | None = None


def _seconds(text, key) -> int:
    ms = units.duration_ms(text, key)
    if ms <= 0 or ms % 1000:
        raise InputError(key, text, "a duration of whole seconds above zero")
    return ms // 1000


def _titration(t: dict, k: str) -> Titration:
    known = ("max_start_rate", "max_step", "max_increase", "percent_window", "max_increases",
             "increase_window", "min_interval", "sources")
    for name in t:
        if name not in known:
            raise InputError(f"{k}.{name}", t[name], "one of " + ", ".join(known))
    n = t.get("max_increases")
    if n is not None and (type(n) is not int or n < 1):
        raise InputError(f"{k}.max_increases", n, "a whole number of at least 1")
    opt = t.get
    return Titration(
        max_start_ng_day=(units.dose_rate_ng_per_day(opt("max_start_rate"), f"{k}.max_start_rate")
                          if "max_start_rate" in t else None),
        max_step_ng_day=(units.dose_rate_ng_per_day(opt("max_step"), f"{k}.max_step")
                         if "max_step" in t else None),
        max_increase_ppm=(units.percent_ppm(opt("max_increase"), f"{k}.max_increase")
                          if "max_increase" in t else None),
        percent_window_s=_seconds(opt("percent_window", "24 h"), f"{k}.percent_window"),
        max_increases=n,
        increase_window_s=_seconds(opt("increase_window", "7 d"), f"{k}.increase_window"),
        min_interval_s=(_seconds(opt("min_interval"), f"{k}.min_interval")
                        if "min_interval" in t else None),
        sources=tuple(opt("sources", ())),
    )


@lru_cache(maxsize=1)
def load() -> dict[str, Drug]:
    with open(LIBRARY, "rb") as f:
        table = tomllib.load(f)
    drugs = {}
    for name, d in table.items():
        if name == "stability":
            continue  # the drug-stability table at the end (host_tools/stability.py)
        k = f"drugs.toml [{name}]"
        drugs[name] = Drug(
            name=name,
            soft_concentration_ng_per_ml=units.concentration_ng_per_ml(d["soft_concentration"], k),
            hard_concentration_ng_per_ml=units.concentration_ng_per_ml(d["hard_concentration"], k),
            soft_daily_ng=units.mass_ng(d["soft_daily_dose"], k),
            hard_daily_ng=units.mass_ng(d["hard_daily_dose"], k),
            sources=tuple(d["sources"]),
            aliases=tuple(d.get("aliases", ())),
            titration=_titration(d["titration"], k + ".titration") if "titration" in d else None,
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
