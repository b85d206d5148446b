"""The rule assessor: a visit's facts -> score 0-100, level, and the reasons that add up to it.

Deterministic and cheap (no I/O: the facts are collected beforehand). Every point of the score
comes from a reason, so a user can see why a visit was rated as it was and which weight to
change (config section ``risk``, docs/server.md "Risk assessment"):

- who: an unknown person, a returning one, or a named one (``weights.new_stranger`` ...);
- where: the most sensitive camera or zone reached, ``weights.place`` x its sensitivity (0-1,
  per camera in ``risk.cameras``, per zone in ``zones``; 0 means public ground such as the
  street); a zone is named only when it is more sensitive than every camera of the visit;
- when: night hours add ``weights.night`` once the person is on the property (a camera with
  sensitivity above 0); walking past on the street at night is not suspicious by itself;
- how: ``weights.path`` per camera beyond the second, ``weights.loiter`` for staying at least
  ``risk.loiter_s`` on a camera or in a zone (scaled between half and all of it by its
  sensitivity; the highest counts once), and
  ``weights.group`` per other person in the frame with them (at most two counted);
- how often: ``weights.repeat_24h`` per earlier visit in the last 24 h (at most three counted),
  ``weights.repeat_7d`` per earlier visit in the week before that (at most five counted).

Household members and people marked known, and by default anyone seen with them, are capped at
``risk.trusted_max_level`` (default ``low``); the cap is itself a reason with negative points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from .facts import IdentityStatus, TimeOfDay, VisitFacts

LEVELS = ("low", "medium", "high", "critical")
SOURCE = "rules"

# Points per reason (docs/server.md lists what each one means).
WEIGHT_DEFAULTS: dict[str, float] = {
    "new_stranger": 20.0,
    "returning_stranger": 15.0,
    "named": -10.0,
    "known": 0.0,
    "household": 0.0,
    "place": 50.0,
    "night": 30.0,
    "path": 5.0,
    "loiter": 20.0,
    "repeat_24h": 10.0,
    "repeat_7d": 2.0,
    "group": 8.0,
}
# Lowest score of each level above low.
LEVEL_DEFAULTS: dict[str, int] = {"medium": 40, "high": 60, "critical": 80}

_PATH_FREE_CAMERAS = 2  # walking to the door passes a camera or two
_PATH_MAX_EXTRA = 3
_GROUP_MAX = 2
_REPEAT_24H_MAX = 3
_REPEAT_7D_MAX = 5


def parse_clock(text: str) -> int:
    """ "22:00" -> minutes after midnight; ValueError names the problem."""
    parts = str(text).strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"time {text!r} must be HH:MM, e.g. 22:00")
    hours, minutes = int(parts[0]), int(parts[1])
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError(f"time {text!r} is not a time of day (00:00-23:59)")
    return hours * 60 + minutes


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """The ``risk`` section, parsed (``from_section``); defaults are the documented ones."""

    enabled: bool = True
    interim_s: float = 90.0
    clock: TimeOfDay = field(default_factory=TimeOfDay)
    household: frozenset[str] = frozenset()  # person ids and case-folded labels
    trusted_max_level: str | None = "low"
    trust_companions: bool = True
    default_sensitivity: float = 0.5
    sensitivity: Mapping[str, float] = field(default_factory=dict)
    loiter_s: float = 120.0
    levels: Mapping[str, int] = field(default_factory=lambda: dict(LEVEL_DEFAULTS))
    weights: Mapping[str, float] = field(default_factory=lambda: dict(WEIGHT_DEFAULTS))

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> RiskConfig:
        """From the validated config section (config.py checks types and ranges)."""
        night = section.get("night") or {}
        zone_name = section.get("timezone")
        clock = TimeOfDay(
            ZoneInfo(str(zone_name)) if zone_name else None,
            parse_clock(str(night.get("start", "22:00"))),
            parse_clock(str(night.get("end", "06:00"))),
            (float(sun["latitude"]), float(sun["longitude"]))
            if (sun := night.get("sun"))
            else None,
        )
        return cls(
            enabled=bool(section.get("enabled", True)),
            interim_s=float(section.get("interim_s", 90.0)),
            clock=clock,
            household=frozenset(str(h).strip().casefold() for h in section.get("household", [])),
            trusted_max_level=section.get("trusted_max_level", "low"),
            trust_companions=bool(section.get("trust_companions", True)),
            default_sensitivity=float(section.get("default_sensitivity", 0.5)),
            sensitivity={str(k): float(v) for k, v in (section.get("cameras") or {}).items()},
            loiter_s=float(section.get("loiter_s", 120.0)),
            levels={**LEVEL_DEFAULTS, **(section.get("levels") or {})},
            weights={**WEIGHT_DEFAULTS, **(section.get("weights") or {})},
        )

    def camera_sensitivity(self, camera: str) -> float:
        return float(self.sensitivity.get(camera, self.default_sensitivity))

    def level_of(self, score: int) -> str:
        level = LEVELS[0]
        for name in LEVELS[1:]:
            if score >= self.levels[name]:
                level = name
        return level


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str
    points: int

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "points": self.points}


@dataclass(frozen=True, slots=True)
class Assessment:
    """One assessment of a visit (the contract's "Risk assessment" payload)."""

    facts: VisitFacts
    score: int
    level: str
    reasons: tuple[Reason, ...]
    final: bool
    timestamp: float
    source: str = SOURCE

    @property
    def visit_id(self) -> str:
        return self.facts.visit_id

    def to_json(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "visit_id": facts.visit_id,
            "person_id": facts.person_id,
            "label": facts.label,
            "level": self.level,
            "score": self.score,
            "reasons": [r.to_json() for r in self.reasons],
            "final": self.final,
            "source": self.source,
            "timestamp": round(self.timestamp, 3),
            "facts": facts.to_json(),
        }


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _duration(seconds: float) -> str:
    return f"{round(seconds)} s" if seconds < 120 else f"{round(seconds / 60)} min"


_IDENTITY_TEXT = {
    IdentityStatus.NEW: "unknown person",
    IdentityStatus.RETURNING: "returning unknown person",
    IdentityStatus.NAMED: "named person, not marked known",
    IdentityStatus.KNOWN: "known person",
    IdentityStatus.HOUSEHOLD: "household member",
}
_IDENTITY_WEIGHT = {
    IdentityStatus.NEW: "new_stranger",
    IdentityStatus.RETURNING: "returning_stranger",
    IdentityStatus.NAMED: "named",
    IdentityStatus.KNOWN: "known",
    IdentityStatus.HOUSEHOLD: "household",
}


def assess(facts: VisitFacts, config: RiskConfig, *, final: bool, timestamp: float) -> Assessment:
    """Score ``facts`` by the rules in the module docstring."""
    w = config.weights
    reasons: list[Reason] = []

    def add(code: str, text: str, points: float) -> None:
        rounded = round(points)
        if rounded != 0:
            reasons.append(Reason(code, text, rounded))

    add("identity", _IDENTITY_TEXT[facts.status], w[_IDENTITY_WEIGHT[facts.status]])

    deepest, depth = "", 0.0
    for stay in facts.path:
        sensitivity = config.camera_sensitivity(stay.camera)
        if not deepest or sensitivity > depth:
            deepest, depth = stay.camera, sensitivity
    place = f"reached {deepest} (sensitivity {depth:g})"
    for zone in facts.zones:
        if zone.sensitivity > depth:
            depth = zone.sensitivity
            place = f"reached zone {zone.zone} (sensitivity {depth:g}) on {zone.camera}"
    if deepest:
        add("place", place, w["place"] * depth)
    if facts.night and depth > 0:
        add("night", f"{facts.local_time} at night", w["night"])
    cameras = facts.cameras
    if len(cameras) > _PATH_FREE_CAMERAS:
        extra = min(len(cameras) - _PATH_FREE_CAMERAS, _PATH_MAX_EXTRA)
        add("path", f"{len(cameras)} cameras: {' -> '.join(cameras)}", w["path"] * extra)

    loiter: tuple[float, str, float] | None = None  # (points, camera, dwell)
    for stay in facts.path:
        if stay.dwell_s >= config.loiter_s:
            points = w["loiter"] * (0.5 + 0.5 * config.camera_sensitivity(stay.camera))
            if loiter is None or points > loiter[0]:
                loiter = (points, stay.camera, stay.dwell_s)
    for zone in facts.zones:
        if zone.dwell_s >= config.loiter_s:
            points = w["loiter"] * (0.5 + 0.5 * zone.sensitivity)
            if loiter is None or points > loiter[0]:
                loiter = (points, f"zone {zone.zone} on {zone.camera}", zone.dwell_s)
    if loiter is not None:
        add("loiter", f"stayed {_duration(loiter[2])} at {loiter[1]}", loiter[0])

    earlier_day = min(facts.visits_24h - 1, _REPEAT_24H_MAX)
    if earlier_day > 0:
        add(
            "repeat_24h",
            f"{_ordinal(facts.visits_24h)} visit in 24 h",
            w["repeat_24h"] * earlier_day,
        )
    earlier_week = min(facts.visits_7d - facts.visits_24h, _REPEAT_7D_MAX)
    if earlier_week > 0:
        add("repeat_7d", f"{facts.visits_7d} visits in 7 days", w["repeat_7d"] * earlier_week)

    trusted_company = any(s.trusted for s in facts.companions)
    strangers = facts.group_size if not trusted_company else 0
    if strangers > 0:
        noun = "person" if strangers == 1 else "people"
        add("group", f"with {strangers} other {noun}", w["group"] * min(strangers, _GROUP_MAX))

    raw = sum(r.points for r in reasons)
    score = max(0, min(100, raw))
    level = config.level_of(score)
    cap = config.trusted_max_level
    trusted = facts.status.trusted or (config.trust_companions and trusted_company)
    if trusted and cap is not None and LEVELS.index(level) > LEVELS.index(cap):
        above = LEVELS[LEVELS.index(cap) + 1]
        capped = int(config.levels[above]) - 1
        who = (
            _IDENTITY_TEXT[facts.status]
            if facts.status.trusted
            else "with a household member or known person"
        )
        reasons.append(Reason("trusted", f"{who}: at most {cap}", capped - score))
        score, level = capped, cap
    return Assessment(facts, score, level, tuple(reasons), final, timestamp)
