"""Typed records for the payloads of docs/contract.md, parsed strictly but tolerantly.

Unknown keys are ignored (the contract lets the server add fields without a version bump);
a wrong type or a missing required key raises PayloadError naming the key, so the log line
tells a user which message was bad instead of an entity silently showing nonsense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

import voluptuous as vol
from homeassistant.util.json import json_loads

ID_PATTERN = re.compile(r"^[0-9a-z_-]{1,64}$")
# The label the server gives a new identity until someone names it (docs/contract.md).
AUTOMATIC_LABEL = re.compile(r"^Visitor [0-9]+$")


def is_stranger(label: str | None, known: bool, named: bool | None = None) -> bool:
    """Not marked known and not named by a user.

    `named` is the server's own word for it; servers that do not send it (before the key was
    added to the contract) leave only a guess: a label still of the automatic "Visitor N" form.
    """
    if known:
        return False
    if named is not None:
        return not named
    return not label or AUTOMATIC_LABEL.match(label) is not None


class PayloadError(ValueError):
    """A message did not match the contract; the text names the offending key."""


def _id(value: Any) -> str:
    text = str(value)
    if not ID_PATTERN.match(text):
        raise vol.Invalid(f"{text!r} is not an id (lowercase letters, digits, _ and -)")
    return text


_NUMBER = vol.All(vol.Any(int, float), vol.Coerce(float))
_COUNT = vol.All(vol.Any(int, float), vol.Coerce(int))
_OPT_STR = vol.Any(None, str)
_OPT_NUMBER = vol.Any(None, _NUMBER)

_MODEL = vol.Schema(
    {
        vol.Optional("name", default=None): _OPT_STR,
        vol.Optional("runtime", default=None): _OPT_STR,
        vol.Optional("device", default=None): _OPT_STR,
        vol.Optional("dim", default=None): vol.Any(None, _COUNT),
        vol.Optional("is_reid", default=True): bool,
    },
    extra=vol.ALLOW_EXTRA,
)

_INFO = vol.Schema(
    {
        vol.Required("contract"): int,
        vol.Required("server_id"): _id,
        vol.Optional("name", default="Smart ReID"): str,
        vol.Optional("version", default=None): _OPT_STR,
        vol.Optional("http_url", default=None): _OPT_STR,
        vol.Optional("started_at", default=None): _OPT_NUMBER,
        vol.Optional("models", default={}): vol.Schema(
            {vol.Optional("detector"): _MODEL, vol.Optional("reid"): _MODEL},
            extra=vol.ALLOW_EXTRA,
        ),
        vol.Optional("cameras", default=[]): [str],
        vol.Optional("settings", default={}): dict,
    },
    extra=vol.ALLOW_EXTRA,
)

_HUB_STATE = vol.Schema(
    {
        vol.Optional("people_present", default=0): _COUNT,
        vol.Optional("person_ids_present", default=[]): [_id],
        vol.Optional("distinct_people_today", default=0): _COUNT,
        vol.Optional("visits_today", default=0): _COUNT,
        vol.Optional("frames_processed", default=0): _COUNT,
        vol.Optional("frames_dropped", default=0): _COUNT,
        vol.Optional("updated_at", default=None): _OPT_NUMBER,
    },
    extra=vol.ALLOW_EXTRA,
)

_CAMERA_STATE = _HUB_STATE.extend(
    {
        vol.Required("camera"): str,
        vol.Optional("unknown_present", default=False): bool,
        vol.Optional("last_person_id", default=None): vol.Any(None, _id),
        vol.Optional("last_label", default=None): _OPT_STR,
        vol.Optional("last_seen", default=None): _OPT_NUMBER,
        vol.Optional("sightings_today", default=0): _COUNT,
        # Names of the camera's zones and lines (servers before zones send neither).
        vol.Optional("zones", default=[]): [vol.Match(r"^[a-z0-9_]{1,64}$")],
        vol.Optional("lines", default=[]): [vol.Match(r"^[a-z0-9_]{1,64}$")],
    }
)

_PERSON = vol.Schema(
    {
        vol.Required("person_id"): _id,
        vol.Optional("label", default=None): _OPT_STR,
        # Servers before the key was added do not send it (None: guess from the label).
        vol.Optional("named", default=None): vol.Any(None, bool),
        vol.Optional("known", default=False): bool,
        vol.Optional("first_seen", default=None): _OPT_NUMBER,
        vol.Optional("last_seen", default=None): _OPT_NUMBER,
        vol.Optional("visit_count", default=0): _COUNT,
        vol.Optional("cameras", default=[]): [str],
        vol.Optional("present", default=False): bool,
        vol.Optional("camera", default=None): _OPT_STR,
        vol.Optional("visit_id", default=None): vol.Any(None, _id),
        vol.Optional("exemplars", default=0): _COUNT,
        vol.Optional("thumbnail_url", default=None): _OPT_STR,
    },
    extra=vol.ALLOW_EXTRA,
)

_DECISION = vol.Schema(
    {
        vol.Required("camera"): str,
        vol.Optional("timestamp", default=None): _OPT_NUMBER,
        vol.Required("person_id"): _id,
        vol.Optional("label", default=None): _OPT_STR,
        vol.Optional("known", default=False): bool,
        vol.Optional("new_person", default=False): bool,
        vol.Optional("is_new_identity", default=False): bool,
        vol.Optional("match", default=None): _OPT_STR,
        vol.Optional("similarity", default=0.0): _NUMBER,
        vol.Optional("candidate_id", default=None): vol.Any(None, _id),
        vol.Optional("candidate_similarity", default=0.0): _NUMBER,
        vol.Required("visit_id"): _id,
        vol.Optional("visit_cameras", default=[]): [str],
        vol.Optional("first_camera", default=None): _OPT_STR,
        vol.Optional("frame_id", default=None): _OPT_STR,
        vol.Optional("source", default=None): _OPT_STR,
        vol.Optional("extra", default={}): dict,
        vol.Optional("snapshot_url", default=None): _OPT_STR,
        vol.Optional("thumbnail_url", default=None): _OPT_STR,
    },
    extra=vol.ALLOW_EXTRA,
)

_VISIT = vol.Schema(
    {
        vol.Required("visit_id"): _id,
        vol.Required("person_id"): _id,
        vol.Optional("label", default=None): _OPT_STR,
        vol.Optional("known", default=False): bool,
        vol.Optional("is_new_identity", default=False): bool,
        vol.Optional("started_at", default=None): _OPT_NUMBER,
        vol.Optional("last_seen", default=None): _OPT_NUMBER,
        vol.Optional("ended_at", default=None): _OPT_NUMBER,
        vol.Optional("cameras", default=[]): [str],
        vol.Optional("first_camera", default=None): _OPT_STR,
        vol.Optional("last_camera", default=None): _OPT_STR,
        vol.Optional("sightings", default=0): _COUNT,
        vol.Optional("snapshot_url", default=None): _OPT_STR,
        vol.Optional("thumbnail_url", default=None): _OPT_STR,
    },
    extra=vol.ALLOW_EXTRA,
)

_VISIT_EVENT = vol.Schema(
    {
        vol.Required("reason"): str,
        vol.Optional("camera", default=None): _OPT_STR,
        vol.Required("visit"): _VISIT,
    },
    extra=vol.ALLOW_EXTRA,
)

_MERGED = vol.Schema(
    {
        vol.Required("person_id"): str,
        vol.Required("merged_person_id"): str,
        vol.Optional("visit_id", default=None): _OPT_STR,
        vol.Optional("merged_visit_id", default=None): _OPT_STR,
        vol.Optional("label", default=None): _OPT_STR,
        vol.Optional("known", default=False): bool,
        vol.Optional("camera", default=None): _OPT_STR,
        vol.Optional("similarity", default=0.0): _OPT_NUMBER,
        vol.Optional("timestamp", default=None): _OPT_NUMBER,
        vol.Optional("reason", default="same_person"): str,
    },
    extra=vol.ALLOW_EXTRA,
)

RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
# Scores and points are whole numbers on the server; a float is rounded, not refused.
_WHOLE = vol.All(vol.Any(int, float), vol.Coerce(float), vol.Coerce(round))

_REASON = vol.Schema(
    {
        vol.Optional("code", default=None): _OPT_STR,
        vol.Required("text"): str,
        vol.Optional("points", default=0): _WHOLE,
    },
    extra=vol.ALLOW_EXTRA,
)

_RISK = vol.Schema(
    {
        vol.Required("visit_id"): _id,
        vol.Required("person_id"): _id,
        vol.Optional("label", default=None): _OPT_STR,
        vol.Required("level"): vol.In(RISK_LEVELS),
        vol.Required("score"): vol.All(_WHOLE, vol.Range(min=0, max=100)),
        vol.Optional("reasons", default=[]): [_REASON],
        vol.Optional("final", default=False): bool,
        vol.Optional("source", default="rules"): str,
        vol.Optional("summary", default=None): _OPT_STR,
        vol.Optional("timestamp", default=None): _OPT_NUMBER,
        vol.Optional("facts", default={}): vol.Schema(
            {vol.Optional("cameras", default=[]): [str]}, extra=vol.ALLOW_EXTRA
        ),
    },
    extra=vol.ALLOW_EXTRA,
)


def _validate(schema: vol.Schema | vol.All, data: Any, what: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema(data)
    except vol.Invalid as err:
        where = ".".join(str(p) for p in err.path) or "(top level)"
        raise PayloadError(f"{what}: {where}: {err.msg}") from None
    return result


def decode_json(payload: str | bytes | bytearray, what: str) -> Any:
    """Decode one JSON message; the error says which message was not JSON."""
    try:
        return json_loads(payload)
    except ValueError as err:
        raise PayloadError(f"{what}: not valid JSON ({err})") from None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One of the server's models, as shown on diagnostic sensors."""

    name: str | None
    runtime: str | None
    device: str | None
    dim: int | None = None
    is_reid: bool = True


@dataclass(frozen=True, slots=True)
class Info:
    """Who the server is and what it runs (retained `B/info`, `GET /api/info`)."""

    contract: int
    server_id: str
    name: str
    version: str | None
    http_url: str | None
    started_at: float | None
    detector: ModelInfo | None
    reid: ModelInfo | None
    cameras: tuple[str, ...]
    settings: dict[str, Any]
    # A scaled-out server's topology (workers, their cameras, lag), shown in diagnostics.
    cluster: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Any) -> Info:
        raw = _validate(_INFO, data, "info")
        models = raw["models"]

        def model(key: str) -> ModelInfo | None:
            if (entry := models.get(key)) is None:
                return None
            return ModelInfo(
                entry["name"], entry["runtime"], entry["device"], entry["dim"], entry["is_reid"]
            )

        return cls(
            contract=raw["contract"],
            server_id=raw["server_id"],
            name=raw["name"],
            version=raw["version"],
            http_url=raw["http_url"],
            started_at=raw["started_at"],
            detector=model("detector"),
            reid=model("reid"),
            cameras=tuple(raw["cameras"]),
            settings=dict(raw["settings"]),
            cluster=dict(raw["cluster"]) if isinstance(raw.get("cluster"), dict) else None,
        )


def _build[T](cls: type[T], raw: dict[str, Any], **given: Any) -> T:
    """``cls`` from a validated payload: each field from the key of its name (lists become
    tuples, objects are copied), except those ``given``. Every display label falls back to the
    person id."""
    values: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        value = given[item.name] if item.name in given else raw[item.name]
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = dict(value)
        values[item.name] = value
    if "label" in values and not values["label"]:
        values["label"] = values["person_id"]
    return cls(**values)


@dataclass(frozen=True, slots=True)
class HubState:
    """Counts over all cameras (retained `B/state`)."""

    people_present: int
    person_ids_present: tuple[str, ...]
    distinct_people_today: int
    visits_today: int
    frames_processed: int
    frames_dropped: int
    updated_at: float | None

    @classmethod
    def from_json(cls, data: Any) -> HubState:
        raw = _validate(_HUB_STATE, data, "state")
        return _build(cls, raw)


@dataclass(frozen=True, slots=True)
class CameraState:
    """What one camera sees now and saw today (retained `B/camera/<camera>/state`)."""

    camera: str
    people_present: int
    person_ids_present: tuple[str, ...]
    unknown_present: bool
    last_person_id: str | None
    last_label: str | None
    last_seen: float | None
    sightings_today: int
    distinct_people_today: int
    frames_processed: int
    frames_dropped: int
    updated_at: float | None
    zones: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> CameraState:
        raw = _validate(_CAMERA_STATE, data, "camera state")
        return _build(cls, raw)


@dataclass(frozen=True, slots=True)
class Person:
    """One identity in the server's gallery (retained `B/person/<id>/state`)."""

    person_id: str
    label: str
    known: bool
    first_seen: float | None
    last_seen: float | None
    visit_count: int
    cameras: tuple[str, ...]
    present: bool
    camera: str | None
    visit_id: str | None
    exemplars: int
    thumbnail_url: str | None
    # A user chose the label; None from a server that does not say (see `is_stranger`).
    named: bool | None = None

    @property
    def is_stranger(self) -> bool:
        """Neither household (known) nor named: shown as a device only while recent."""
        label = None if self.label == self.person_id else self.label
        return is_stranger(label, self.known, self.named)

    @classmethod
    def from_json(cls, data: Any) -> Person:
        raw = _validate(_PERSON, data, "person")
        return _build(cls, raw)


@dataclass(frozen=True, slots=True)
class Decision:
    """One person in one frame (`B/events/sighting`, `B/events/new_person`)."""

    camera: str
    timestamp: float | None
    person_id: str
    label: str
    known: bool
    new_person: bool
    is_new_identity: bool
    match: str | None
    similarity: float
    candidate_id: str | None
    visit_id: str
    visit_cameras: tuple[str, ...]
    first_camera: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    snapshot_url: str | None = None
    thumbnail_url: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Decision:
        raw = _validate(_DECISION, data, "decision")
        return _build(cls, raw)


@dataclass(frozen=True, slots=True)
class Visit:
    """A person's stay, from the first sighting until the visit window passed without one."""

    visit_id: str
    person_id: str
    label: str
    known: bool
    is_new_identity: bool
    started_at: float | None
    last_seen: float | None
    ended_at: float | None
    cameras: tuple[str, ...]
    first_camera: str | None
    last_camera: str | None
    sightings: int
    snapshot_url: str | None
    thumbnail_url: str | None


@dataclass(frozen=True, slots=True)
class VisitEvent:
    """A change to a running visit (`B/events/visit_updated`, `B/events/visit_ended`)."""

    reason: str
    camera: str | None
    visit: Visit

    @classmethod
    def from_json(cls, data: Any) -> VisitEvent:
        raw = _validate(_VISIT_EVENT, data, "visit event")
        return cls(
            reason=raw["reason"],
            camera=raw["camera"],
            visit=_build(Visit, raw["visit"]),
        )


@dataclass(frozen=True, slots=True)
class Merged:
    """The server found a new identity to be someone it knew and merged them
    (`B/events/merged`): `merged_person_id` is gone. `reason` `same_person`: someone already on
    a visit, `merged_visit_id`'s notification is stale; `returning`: someone seen on an earlier
    visit, whose visit (`visit_id` = `merged_visit_id`) goes on under their name."""

    person_id: str
    merged_person_id: str
    visit_id: str | None
    merged_visit_id: str | None
    label: str
    known: bool
    camera: str | None
    similarity: float | None
    timestamp: float | None
    reason: str

    @classmethod
    def from_json(cls, data: Any) -> Merged:
        return _build(cls, _validate(_MERGED, data, "merged"))


@dataclass(frozen=True, slots=True)
class RiskReason:
    """One line of an assessment's explanation and what it added to the score."""

    code: str | None
    text: str
    points: int

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "points": self.points}


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """How worrying a visit is (`B/events/risk_assessed`); a later one of the same visit
    replaces an earlier one, `final` comes once after the visit ended."""

    visit_id: str
    person_id: str
    label: str
    level: str
    score: int
    reasons: tuple[RiskReason, ...]
    final: bool
    source: str
    summary: str | None
    timestamp: float | None
    cameras: tuple[str, ...]
    facts: dict[str, Any]

    @property
    def rank(self) -> int:
        """Position of the level in `RISK_LEVELS` (higher is more worrying)."""
        return RISK_LEVELS.index(self.level)

    @classmethod
    def from_json(cls, data: Any) -> RiskAssessment:
        raw = _validate(_RISK, data, "risk assessment")
        facts = raw["facts"]
        return cls(
            visit_id=raw["visit_id"],
            person_id=raw["person_id"],
            label=raw["label"] or raw["person_id"],
            level=raw["level"],
            score=raw["score"],
            reasons=tuple(RiskReason(r["code"], r["text"], r["points"]) for r in raw["reasons"]),
            final=raw["final"],
            source=raw["source"],
            summary=raw["summary"],
            timestamp=raw["timestamp"],
            cameras=tuple(facts["cameras"]),
            facts=dict(facts),
        )


ZONE_EVENT_TYPES: tuple[str, ...] = ("enter", "exit", "cross")
_ZONE_NAME = vol.Match(r"^[a-z0-9_]{1,64}$", msg="must be a zone or line name (a-z, 0-9, _)")


def _zone_event_shape(raw: dict[str, Any]) -> dict[str, Any]:
    """A cross names a line and its direction; an enter or exit names a zone and no direction."""
    if raw["type"] == "cross":
        if raw["kind"] != "line" or raw["direction"] not in ("in", "out"):
            raise vol.Invalid("a cross needs kind line and direction in or out", path=["direction"])
    elif raw["kind"] != "zone" or raw["direction"] is not None:
        raise vol.Invalid(f"an {raw['type']} needs kind zone and no direction", path=["kind"])
    return raw


_ZONE_EVENT = vol.All(
    vol.Schema(
        {
            vol.Required("type"): vol.In(ZONE_EVENT_TYPES),
            vol.Required("camera"): vol.Match(r"^[a-z0-9_]{1,64}$"),
            vol.Required("kind"): vol.In(("zone", "line")),
            vol.Required("name"): _ZONE_NAME,
            vol.Optional("direction", default=None): vol.Any(None, "in", "out"),
            vol.Optional("reason", default=None): vol.Any(None, "left", "lost"),
            vol.Optional("dwell_s", default=None): vol.Any(
                None, vol.All(_NUMBER, vol.Range(min=0.0))
            ),
            vol.Required("person_id"): _id,
            vol.Optional("label", default=None): _OPT_STR,
            vol.Optional("known", default=False): bool,
            vol.Required("visit_id"): _id,
            vol.Optional("timestamp", default=None): _OPT_NUMBER,
            vol.Optional("point", default=None): vol.Any(
                None,
                vol.All(
                    vol.ExactSequence([_NUMBER, _NUMBER]),
                    [vol.Range(min=0.0, max=1.0)],
                ),
            ),
        },
        extra=vol.ALLOW_EXTRA,
    ),
    _zone_event_shape,
)


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    """Someone entered or left a camera's zone, or crossed one of its lines
    (`B/events/zone`)."""

    type: str  # enter | exit | cross
    camera: str
    kind: str  # zone | line
    name: str
    direction: str | None  # cross: in | out
    reason: str | None  # exit: left | lost
    dwell_s: float | None
    person_id: str
    label: str
    known: bool
    visit_id: str
    timestamp: float | None
    point: tuple[float, ...] | None

    @classmethod
    def from_json(cls, data: Any) -> ZoneEvent:
        return _build(cls, _validate(_ZONE_EVENT, data, "zone event"))
