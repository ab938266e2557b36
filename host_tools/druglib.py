"""The drug library (drugs.toml): hard limits refuse, soft limits warn, every number has a source.

`load()` reads the `[drugs.*]` tables and the `[implant]` defaults (other tables in the file
belong to other readers and are left alone). Each limit is a pair [value, source]; the source
must name an entry of [sources]. `version()` names the file a prescription was checked against.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from host_tools import units
from host_tools.errors import InputError

LIBRARY = Path(__file__).with_name("drugs.toml")
PROJECT = "project"


@dataclass(frozen=True)
class Limit:
    """A soft (warns) and a hard (refuses above) limit, each with the key of its source."""
    soft: int
    hard: int
    soft_source: str
    hard_source: str


@dataclass(frozen=True)
class Floor:
    """The same from below: soft warns under it, hard refuses under it (hard <= soft)."""
    soft: int
    hard: int
    soft_source: str
    hard_source: str


@dataclass(frozen=True)
class Titration:
    """How fast a drug's daily basal may rise (drugs.toml [drugs.<name>.titration]); None: no
    limit. `sources` maps each rule's key to the key of its source."""
    max_start_ng_day: int | None = None
    max_step_ng_day: int | None = None
    max_increase_ppm: int | None = None
    percent_window_s: int = 86_400
    max_increases: int | None = None
    increase_window_s: int = 7 * 86_400
    min_interval_s: int | None = None
    start_per_screening: int | None = None
    start_per_screening_long: int | None = None   # after a screening effect longer than:
    trial_effect_s: int | None = None
    # The override's ceilings (None: only the library's hard limits bound it).
    max_start_override_ng_day: int | None = None
    max_step_override_ng_day: int | None = None
    max_increase_override_ppm: int | None = None
    min_interval_override_s: int | None = None
    sources: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Drug:
    name: str
    unit: str
    concentration: Limit          # ng/mL
    daily: Limit                  # ng
    patient_bolus: Limit          # ng
    patient_boluses_per_day: Limit
    clinician_bolus: Limit        # ng
    low_concentration: Floor      # ng/mL
    volume_rate: Limit            # nL/day: the basal's daily volume
    low_volume_rate: Floor        # nL/day
    aliases: tuple[str, ...] = ()
    needs_source: bool = False
    titration: Titration | None = None
    profiles: dict = field(default_factory=dict)   # profile name -> Titration

    # The names older callers use.
    @property
    def soft_concentration_ng_per_ml(self) -> int:
        return self.concentration.soft

    @property
    def hard_concentration_ng_per_ml(self) -> int:
        return self.concentration.hard

    @property
    def soft_daily_ng(self) -> int:
        return self.daily.soft

    @property
    def hard_daily_ng(self) -> int:
        return self.daily.hard

    @property
    def sources(self) -> tuple[str, ...]:
        keys = []
        for lim in (self.concentration, self.low_concentration, self.daily, self.patient_bolus,
                    self.patient_boluses_per_day, self.clinician_bolus, self.volume_rate,
                    self.low_volume_rate):
            keys += [lim.soft_source, lim.hard_source]
        return tuple(dict.fromkeys(keys))

    def titration_for(self, profile: str | None) -> Titration | None:
        if profile is None:
            return self.titration
        if profile not in self.profiles:
            raise InputError("titration.profile", profile, f"a titration profile of {self.name}: "
                             + (", ".join(sorted(self.profiles)) or "it has none"))
        return self.profiles[profile]


def _count(value, key) -> int:
    if type(value) is not int or value < 1:
        raise InputError(key, value, "a whole number of at least 1")
    return value


def _seconds(text, key) -> int:
    ms = units.duration_ms(text, key)
    if ms <= 0 or ms % 1000:
        raise InputError(key, text, "a duration of whole seconds above zero")
    return ms // 1000


def _pair(value, key, parse, sources) -> tuple[int, str]:
    """[value, source] -> (parsed value, source key)."""
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
        raise InputError(key, value, '[value, "source"], e.g. ["20 mg/mL", "project"]')
    if value[1] not in sources:
        raise InputError(key, value[1], "a key of [sources]: " + ", ".join(sorted(sources)))
    return parse(value[0], key), value[1]


def _limit(d: dict, name: str, k: str, parse, sources) -> Limit:
    t = d.get(name)
    if not isinstance(t, dict) or set(t) != {"soft", "hard"}:
        raise InputError(f"{k}.{name}", t, "{ soft = [value, source], hard = [value, source] }")
    soft, ss = _pair(t["soft"], f"{k}.{name}.soft", parse, sources)
    hard, hs = _pair(t["hard"], f"{k}.{name}.hard", parse, sources)
    if not 0 < soft < hard:
        raise InputError(f"{k}.{name}", t, "a soft limit above zero and below the hard one")
    return Limit(soft, hard, ss, hs)


def _floor(d: dict, name: str, k: str, parse, sources, above: Limit) -> Floor:
    """A lower limit: { hard = [...] } refuses under it, an optional soft warns under it; both
    below the upper limit's soft one."""
    t = d.get(name)
    if not isinstance(t, dict) or "hard" not in t or not set(t) <= {"soft", "hard"}:
        raise InputError(f"{k}.{name}", t, "{ hard = [value, source] } and optionally "
                         "soft = [value, source] above it")
    hard, hs = _pair(t["hard"], f"{k}.{name}.hard", parse, sources)
    soft, ss = _pair(t["soft"], f"{k}.{name}.soft", parse, sources) if "soft" in t else (hard, hs)
    if not 0 < hard <= soft < above.soft:
        raise InputError(f"{k}.{name}", t, "a hard lower limit above zero, at most the soft one, "
                         "and both below the soft upper limit")
    return Floor(soft, hard, ss, hs)


_RULES = {
    "max_start_rate": ("max_start_ng_day", units.dose_rate_ng_per_day),
    "max_step": ("max_step_ng_day", units.dose_rate_ng_per_day),
    "max_increase": ("max_increase_ppm", units.percent_ppm),
    "percent_window": ("percent_window_s", _seconds),
    "max_increases": ("max_increases", _count),
    "increase_window": ("increase_window_s", _seconds),
    "min_interval": ("min_interval_s", _seconds),
    "start_per_screening": ("start_per_screening", _count),
    "start_per_screening_long": ("start_per_screening_long", _count),
    "trial_effect": ("trial_effect_s", _seconds),
    "max_start_override": ("max_start_override_ng_day", units.dose_rate_ng_per_day),
    "max_step_override": ("max_step_override_ng_day", units.dose_rate_ng_per_day),
    "max_increase_override": ("max_increase_override_ppm", units.percent_ppm),
    "min_interval_override": ("min_interval_override_s", _seconds),
}

# (guard, its override's ceiling, the ceiling must be at least the guard: True, at most: False)
_CEILINGS = (("max_start_ng_day", "max_start_override_ng_day", True),
             ("max_step_ng_day", "max_step_override_ng_day", True),
             ("max_increase_ppm", "max_increase_override_ppm", True),
             ("min_interval_s", "min_interval_override_s", False))


def _titration(t: dict, k: str, sources: dict, base: Titration | None = None) -> Titration:
    if not isinstance(t, dict):
        raise InputError(k, t, "a table of titration rules")
    values = {} if base is None else {a: getattr(base, a) for a, _ in _RULES.values()}
    cited = {} if base is None else dict(base.sources)
    for name, value in t.items():
        if name not in _RULES:
            raise InputError(f"{k}.{name}", value, "one of " + ", ".join(_RULES))
        attr, parse = _RULES[name]
        values[attr], cited[name] = _pair(value, f"{k}.{name}", parse, sources)
    rule = Titration(**values, sources=cited)
    _coherent(rule, k)
    return rule


def _coherent(rule: Titration, k: str) -> None:
    """An override's ceiling lies beyond its guard (a ceiling without its guard means
    nothing); the start rule after a trial needs all three of its numbers."""
    for guard, ceiling, above in _CEILINGS:
        g, c = getattr(rule, guard), getattr(rule, ceiling)
        if c is not None and (g is None or (c < g if above else c > g)):
            raise InputError(f"{k}.{ceiling}", c, f"an override ceiling "
                             f"{'at least' if above else 'at most'} its guard {guard} (which "
                             "must be given)")
    long, per, effect = (rule.start_per_screening_long, rule.start_per_screening,
                         rule.trial_effect_s)
    if (long is None) != (effect is None) or (long is not None and per is None):
        raise InputError(f"{k}.trial_effect", effect, "trial_effect, start_per_screening_long "
                         "and start_per_screening together")
    if long is not None and per is not None and long > per:
        raise InputError(f"{k}.start_per_screening_long", long,
                         "at most start_per_screening (the start rule's ceiling)")


def _drug(name: str, d: dict, sources: dict, implant: dict) -> Drug:
    k = f"drugs.toml [drugs.{name}]"
    known = ("unit", "aliases", "needs_source", "concentration", "low_concentration",
             "volume_rate", "low_volume_rate", "daily_dose", "patient_bolus",
             "patient_boluses_per_day", "clinician_bolus", "titration")
    for key in d:
        if key not in known and not key.startswith("titration_"):
            raise InputError(f"{k}.{key}", d[key], "one of " + ", ".join(known))
    unit = d.get("unit")
    if unit not in ("mg", "mcg"):
        raise InputError(f"{k}.unit", unit, '"mg" or "mcg"')
    tit = _titration(d["titration"], f"{k}.titration", sources) if "titration" in d else None
    profiles = {key[len("titration_"):]: _titration(d[key], f"{k}.{key}", sources, tit)
                for key in d if key.startswith("titration_")}
    conc = _limit(d, "concentration", k, units.concentration_ng_per_ml, sources)
    daily = _limit(d, "daily_dose", k, units.mass_ng, sources)
    for rule in [tit, *profiles.values()]:
        top = rule.max_start_override_ng_day if rule else None
        if top is not None and top > daily.hard:
            raise InputError(f"{k}.titration.max_start_override", top, "at most the hard daily "
                             "dose: an override never goes past a hard limit")
    vk, vd = (k, d) if "volume_rate" in d else ("drugs.toml [implant]", implant)
    volume = _limit(vd, "volume_rate", vk, units.volume_rate_nl_per_day, sources)
    lk, ld = (k, d) if "low_volume_rate" in d else ("drugs.toml [implant]", implant)
    return Drug(
        name=name, unit=unit, concentration=conc,
        low_concentration=_floor(d, "low_concentration", k, units.concentration_ng_per_ml,
                                 sources, conc),
        volume_rate=volume,
        low_volume_rate=_floor(ld, "low_volume_rate", lk, units.volume_rate_nl_per_day,
                               sources, volume),
        daily=daily,
        patient_bolus=_limit(d, "patient_bolus", k, units.mass_ng, sources),
        patient_boluses_per_day=_limit(d, "patient_boluses_per_day", k, _count, sources),
        clinician_bolus=_limit(d, "clinician_bolus", k, units.mass_ng, sources),
        aliases=tuple(d.get("aliases", ())),
        needs_source=bool(d.get("needs_source", False)),
        titration=tit, profiles=profiles)


@lru_cache(maxsize=1)
def _table() -> dict:
    with open(LIBRARY, "rb") as f:
        return tomllib.load(f)


def sources() -> dict[str, str]:
    """Source key -> the citation (document and section, table or page)."""
    return dict(_table()["sources"])


@lru_cache(maxsize=1)
def load() -> dict[str, Drug]:
    table = _table()
    cited = table["sources"]
    implant = table.get("implant", {})
    return {name: _drug(name, d, cited, implant) for name, d in table["drugs"].items()}


def reload() -> None:
    """Read drugs.toml again at the next call (after LIBRARY was pointed elsewhere)."""
    for cached in (_table, load, version):
        cached.cache_clear()


@lru_cache(maxsize=1)
def version() -> str:
    """The library a prescription was checked against, as the pump keeps it with a program:
    [library] version, then + and the first 8 hex digits of the file's SHA-256 ("2+1a2b3c4d"),
    so an edit that forgot to raise the version still reads differently."""
    declared = (_table().get("library") or {}).get("version")
    if not isinstance(declared, str) or not declared.strip():
        raise InputError("drugs.toml [library].version", declared, 'a version string, e.g. "2"')
    digest = hashlib.sha256(LIBRARY.read_bytes()).hexdigest()[:8]
    return f"{declared.strip()}+{digest}"


def get(name, key: str = "drug") -> Drug:
    drugs = load()
    if isinstance(name, str):
        wanted = name.strip().lower()
        for drug in drugs.values():
            if wanted == drug.name or wanted in drug.aliases:
                return drug
    raise InputError(key, name, "a drug in the library: " + ", ".join(sorted(drugs)))


def cite(key: str, floor: bool = False) -> str:
    """A source key as a person reads it: the project's own limits say so (a floor: a lower
    limit)."""
    if key == PROJECT:
        return "project floor" if floor else "project ceiling"
    return sources().get(key, key)
