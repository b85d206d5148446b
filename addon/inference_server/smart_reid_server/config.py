"""Configuration: one YAML file, then environment variables, then command-line overrides.

Every key is validated with voluptuous; an error names the key path and what is wrong
("mqtt.port: expected int"), so a user can fix the file without reading code.

Environment variables: ``SMART_REID_<SECTION>__<KEY>`` (double underscore between levels),
for example ``SMART_REID_MQTT__HOST=broker.lan`` or ``SMART_REID_VISITS__WINDOW_S=90``.
Values are parsed as YAML scalars, so numbers and booleans come out typed.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from .ingest.sources import SOURCES_SCHEMA, camera_name
from .models.devices import REQUESTABLE as DEVICES
from .risk.rules import LEVEL_DEFAULTS, LEVELS, WEIGHT_DEFAULTS, parse_clock
from .types import CAMERA_NAME

ENV_PREFIX = "SMART_REID_"
# Variables with the prefix that are not settings: the config file, and the repository's own
# scripts (scripts/setup, scripts/test), which must not make the server refuse to start.
_NOT_SETTINGS = frozenset(
    {"SMART_REID_CONFIG", "SMART_REID_PYTHON", "SMART_REID_SHARED", "SMART_REID_SKIP_NEWEST_HA"}
)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the problem."""


def _probability(value: Any) -> float:
    return float(vol.All(vol.Coerce(float), vol.Range(min=0.0, max=1.0))(value))


# A cosine similarity (tracks' thresholds compare raw or centred unit vectors).
_cosine = vol.All(vol.Coerce(float), vol.Range(min=-1.0, max=1.0))


def _seconds(most: float) -> vol.All:
    """A duration in seconds from 0 up to ``most``."""
    return vol.All(vol.Coerce(float), vol.Range(min=0.0, max=most))


def _transit(value: Any) -> Any:
    """A neighbour's walking time: null (unknown), at most N seconds, or [fastest, slowest]."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise vol.Invalid("transit must be [fastest, slowest] seconds")
        low, high = (float(vol.Coerce(float)(v)) for v in value)
        if not 0.0 <= low <= high:
            raise vol.Invalid(f"transit {list(value)} must satisfy 0 <= fastest <= slowest")
        return [low, high]
    seconds = float(vol.Coerce(float)(value))
    if seconds < 0:
        raise vol.Invalid(f"transit {value} must be positive seconds")
    return seconds


def _neighbours(value: Any) -> Any:
    if isinstance(value, list):
        return [camera_name(v) for v in value]
    if isinstance(value, dict):
        return {camera_name(k): _transit(v) for k, v in value.items()}
    raise vol.Invalid("neighbours must be a list of cameras or a mapping camera: transit seconds")


def _clock_time(value: Any) -> str:
    """ "22:00" (HH:MM). YAML reads an unquoted 22:00 as a number of minutes: take that too."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        value = f"{value // 60:02d}:{value % 60:02d}"
    try:
        parse_clock(str(value))
    except ValueError as err:
        raise vol.Invalid(str(err)) from None
    return str(value).strip()


def _http_url(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("http://", "https://")) or len(text) < 10:
        raise vol.Invalid(
            f"{text!r} is not an http(s) URL; give the server's base URL, "
            "e.g. http://127.0.0.1:8080/v1 (llama.cpp) or http://ollama:11434/v1"
        )
    return text


def _store_url(value: Any) -> str:
    """A PostgreSQL URL for the shared identity store (the value is never echoed: it may hold a
    password)."""
    text = str(value).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres") or not rest:
        raise vol.Invalid(
            "must be a PostgreSQL URL such as postgresql://smart_reid@db.lan:5432/smart_reid, "
            "or null for the SQLite file in data_dir"
        )
    return text


def _timezone(value: Any) -> str | None:
    """An IANA zone name; None: the server's local time."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value is None:
        return None
    name = str(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise vol.Invalid(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return name


def _risk_levels(value: Any) -> dict[str, int]:
    levels = {
        **LEVEL_DEFAULTS,
        **vol.Schema({vol.In(LEVELS[1:]): vol.All(int, vol.Range(1, 100))})(value),
    }
    if not levels["medium"] < levels["high"] < levels["critical"]:
        raise vol.Invalid(f"must rise: medium < high < critical, got {levels}")
    return levels


_RISK = {
    vol.Optional("enabled", default=True): bool,
    vol.Optional("interim_s", default=90.0): vol.All(
        vol.Coerce(float), vol.Range(min=5.0, max=86400.0)
    ),
    vol.Optional("timezone", default=None): _timezone,
    vol.Optional("night", default={}): {
        vol.Optional("start", default="22:00"): _clock_time,
        vol.Optional("end", default="06:00"): _clock_time,
        # Sunset to sunrise at this place instead of the fixed hours.
        vol.Optional("sun", default=None): vol.Any(
            None,
            {
                vol.Required("latitude"): vol.All(vol.Coerce(float), vol.Range(min=-90, max=90)),
                vol.Required("longitude"): vol.All(vol.Coerce(float), vol.Range(min=-180, max=180)),
            },
        ),
    },
    vol.Optional("household", default=[]): [vol.All(str, vol.Length(min=1, max=64))],
    vol.Optional("trusted_max_level", default="low"): vol.Any(None, vol.In(LEVELS)),
    vol.Optional("trust_companions", default=True): bool,
    vol.Optional("default_sensitivity", default=0.5): _probability,
    vol.Optional("cameras", default={}): {camera_name: _probability},
    vol.Optional("loiter_s", default=120.0): vol.All(vol.Coerce(float), vol.Range(min=1.0)),
    vol.Optional("levels", default=dict(LEVEL_DEFAULTS)): _risk_levels,
    vol.Optional("weights", default={}): {
        vol.Optional(name): vol.All(vol.Coerce(float), vol.Range(min=-100.0, max=100.0))
        for name in WEIGHT_DEFAULTS
    },
    # The optional LLM narrative (risk/llm.py); off without a url.
    vol.Optional("llm", default={}): {
        vol.Optional("url", default=None): vol.Any(None, _http_url),
        vol.Optional("model", default="default"): vol.All(str, vol.Length(min=1, max=200)),
        vol.Optional("api_key", default=None): vol.Any(None, str),
        vol.Optional("timeout_s", default=30.0): vol.All(
            vol.Coerce(float), vol.Range(min=1.0, max=600.0)
        ),
        vol.Optional("max_tokens", default=300): vol.All(int, vol.Range(min=32, max=8192)),
        vol.Optional("temperature", default=0.2): vol.All(
            vol.Coerce(float), vol.Range(min=0.0, max=2.0)
        ),
        vol.Optional("images", default=False): bool,
        vol.Optional("schema_mode", default="json_object"): vol.In(["json_object", "json_schema"]),
        vol.Optional("prompt", default=None): vol.Any(None, vol.All(str, vol.Length(min=20))),
        vol.Optional("summary_prompt", default=None): vol.Any(
            None, vol.All(str, vol.Length(min=20))
        ),
        vol.Optional("min_level", default="medium"): vol.In(LEVELS),
        vol.Optional("queue", default=16): vol.All(int, vol.Range(min=1, max=1000)),
        vol.Optional("concurrency", default=1): vol.All(int, vol.Range(min=1, max=16)),
        vol.Optional("rate_per_min", default=10): vol.All(int, vol.Range(min=1, max=10000)),
        vol.Optional("daily_tokens", default=200000): vol.All(int, vol.Range(min=100)),
    },
}


def _zone_name(value: Any) -> str:
    name = str(value)
    if not CAMERA_NAME.match(name):
        raise vol.Invalid(
            f"name {name!r} must be 1-64 characters of a-z, 0-9 and _ (e.g. back_door)"
        )
    return name


def _point(value: Any) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise vol.Invalid(f"point {value!r} must be [x, y]")
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise vol.Invalid(f"point {value!r} must be two numbers [x, y]") from None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise vol.Invalid(
            f"point {list(value)} is outside the picture: x and y are fractions of its width "
            "and height, 0-1 (0, 0 is the top left corner)"
        )
    return [x, y]


def _polygon(value: Any) -> list[list[float]]:
    from .vision.zones import polygon_area

    if not isinstance(value, list) or len(value) < 3:
        raise vol.Invalid("polygon must be a list of at least 3 points [x, y]")
    points = [_point(v) for v in value]
    if polygon_area([(p[0], p[1]) for p in points]) < 1e-6:
        raise vol.Invalid("polygon has no area: its points lie on one line or coincide")
    return points


def _zone_sensitivity(value: Any) -> float | None:
    """0 (public ground) to 1 (inside the house); None: the camera's (risk.cameras)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise vol.Invalid(
            f"sensitivity {value!r} must be a number from 0 (public ground) to 1 (inside)"
        )
    return number


def _line_points(value: Any) -> list[list[float]]:
    if not isinstance(value, list) or len(value) != 2:
        raise vol.Invalid("points must be exactly 2 points [[x1, y1], [x2, y2]]")
    a, b = _point(value[0]), _point(value[1])
    if abs(a[0] - b[0]) + abs(a[1] - b[1]) < 1e-6:
        raise vol.Invalid("the line's two points are the same point")
    return [a, b]


_ZONE = vol.Schema(
    {
        vol.Required("polygon"): _polygon,
        vol.Optional("sensitivity", default=None): _zone_sensitivity,
    }
)
_LINE = vol.Schema(
    {
        vol.Required("points"): _line_points,
        vol.Required("in"): vol.In(
            ["left", "right"],
            msg="must be left or right: the side that counts as in, seen on the picture "
            "walking from the first point to the second",
        ),
    }
)
_ZONES = {
    vol.Optional("margin", default=0.02): vol.All(vol.Coerce(float), vol.Range(min=0.0, max=0.25)),
    vol.Optional("lost_after_s", default=4.0): vol.All(
        vol.Coerce(float), vol.Range(min=0.5, max=600.0)
    ),
    vol.Optional("cameras", default={}): {
        camera_name: {
            vol.Optional("zones", default={}): {_zone_name: _ZONE},
            vol.Optional("lines", default={}): {_zone_name: _LINE},
        }
    },
}

_CUSTOM_REID = vol.Schema(
    {
        vol.Required("path"): str,
        vol.Optional("input_height", default=256): vol.All(int, vol.Range(min=8, max=2048)),
        vol.Optional("input_width", default=128): vol.All(int, vol.Range(min=8, max=2048)),
        vol.Optional("color_order", default="bgr"): vol.In(["bgr", "rgb"]),
        vol.Optional("scale", default=1.0): vol.Coerce(float),
        vol.Optional("mean", default=[0.0, 0.0, 0.0]): [vol.Coerce(float)],
        vol.Optional("std", default=[1.0, 1.0, 1.0]): [vol.Coerce(float)],
        vol.Optional("output_dim"): vol.All(int, vol.Range(min=1)),
        vol.Optional("threshold"): _probability,
        vol.Optional("is_reid", default=True): bool,
    }
)

SCHEMA = vol.Schema(
    {
        vol.Optional("data_dir", default="./data"): str,
        # Identities in PostgreSQL instead of SQLite (identity/store_pg.py, docs/server.md).
        vol.Optional("store", default={}): {
            vol.Optional("url", default=None): vol.Any(None, _store_url),
        },
        vol.Optional("log_level", default="info"): vol.In(["debug", "info", "warning", "error"]),
        vol.Optional("models", default={}): {
            # A local directory laid out like ../shared/models (tests, offline installs).
            vol.Optional("dir", default=None): vol.Any(None, str),
            vol.Optional("download", default=True): bool,
            # Fetch model files from <mirror>/<path> (laid out like models.dir) instead of
            # their upstream URLs: a local mirror for offline sites; sha256 is checked the same.
            vol.Optional("mirror", default=None): vol.Any(
                None, vol.Match(r"^https?://\S+$", msg="must be an http:// or https:// URL")
            ),
            vol.Optional("verify", default=True): bool,
            vol.Optional("detector", default="yolox_nano_416"): str,
            vol.Optional("reid", default="person-reidentification-retail-0277"): str,
            vol.Optional("custom_reid", default=None): vol.Any(None, _CUSTOM_REID),
            vol.Optional("runtime", default="auto"): vol.In(["auto", "openvino", "onnxruntime"]),
            # auto: the fastest of tensorrt, cuda, openvino_gpu, cpu (models/devices.py).
            vol.Optional("device", default="auto"): vol.In(list(DEVICES)),
            vol.Optional("threads", default=0): vol.All(int, vol.Range(min=0, max=256)),
            vol.Optional("flip_tta", default=False): bool,
        },
        vol.Optional("detect", default={}): {
            vol.Optional("score_threshold", default=0.6): _probability,
            vol.Optional("nms_iou", default=0.45): _probability,
            vol.Optional("max_persons", default=32): vol.All(int, vol.Range(min=1, max=500)),
        },
        vol.Optional("quality", default={}): {
            vol.Optional("min_height_px", default=64): vol.All(int, vol.Range(min=0)),
            vol.Optional("min_width_px", default=24): vol.All(int, vol.Range(min=0)),
            vol.Optional("min_aspect", default=1.0): vol.Coerce(float),  # height / width
            vol.Optional("max_aspect", default=5.0): vol.Coerce(float),
            vol.Optional("min_score", default=0.5): _probability,
            vol.Optional("min_sharpness", default=20.0): vol.Coerce(float),
        },
        vol.Optional("match", default={}): {
            # None: the per-model default from the model registry.
            vol.Optional("threshold", default=None): vol.Any(None, _probability),
            vol.Optional("uncertain_margin", default=0.1): _probability,
            vol.Optional("max_exemplars", default=8): vol.All(int, vol.Range(min=1, max=64)),
            # A new exemplar is stored only when it differs from all stored ones by this much.
            vol.Optional("exemplar_min_distance", default=0.08): _probability,
            # Two-tier matching (match.py): first the people on an active visit, with time and
            # place; then the gallery. Measured gains: docs/quality.md "Dedup scenarios".
            vol.Optional("active_tier", default=True): bool,
            # Per-camera embedding centring (match.CameraCentering): each camera's running mean
            # is subtracted before both tiers; thresholds default to match.CENTERED_THRESHOLDS.
            # None (auto): on for the models with calibrated centred thresholds.
            vol.Optional("camera_centering", default=None): vol.Any(None, bool),
            # Tier-1 threshold; None: per model (match.DEFAULT_ACTIVE_THRESHOLDS), for models
            # without an entry the match threshold minus active_margin.
            vol.Optional("active_threshold", default=None): vol.Any(None, _probability),
            vol.Optional("active_margin", default=0.2): _probability,
            vol.Optional("visit_bank", default=12): vol.All(int, vol.Range(min=0, max=256)),
            vol.Optional("time_weight", default=0.05): _probability,
            vol.Optional("place_weight", default=0.05): _probability,
            vol.Optional("min_transit_s", default=2.0): vol.All(
                vol.Coerce(float), vol.Range(min=0.0)
            ),
            vol.Optional("learn_transit", default=True): bool,
            # Seen on another, non-overlapping camera less than this ago: tier 1's fused score
            # is vetoed (0: never).
            vol.Optional("veto_within_s", default=1.0): vol.All(
                vol.Coerce(float), vol.Range(min=0.0, max=60.0)
            ),
            # {front: [drive, garden]} or {front: {drive: [5, 40], garden: null}} (seconds).
            vol.Optional("adjacency", default={}): {camera_name: _neighbours},
        },
        # Per-track decisions on video (tracklets.py, docs/server.md "Tracks").
        vol.Optional("tracks", default={}): {
            vol.Optional("identity", default=True): bool,
            vol.Optional("decide_looks", default=3): vol.All(int, vol.Range(min=1, max=8)),
            vol.Optional("decide_after_s", default=1.0): _seconds(30.0),
            vol.Optional("poor_create_after_s", default=1.0): _seconds(600.0),
            vol.Optional("continuous_gap_s", default=2.0): _seconds(60.0),
            vol.Optional("split_threshold", default=0.25): _cosine,
            vol.Optional("split_looks", default=3): vol.All(int, vol.Range(min=1, max=8)),
            vol.Optional("merge_threshold", default=None): vol.Any(None, _probability),
            vol.Optional("active_threshold", default=0.5): vol.Any(None, _probability),
            vol.Optional("overlap_share", default=0.3): _probability,
            vol.Optional("reacquire_s", default=6.0): _seconds(60.0),
            vol.Optional("handover_s", default=1.0): _seconds(10.0),
            vol.Optional("handover_threshold", default=0.5): _cosine,
            vol.Optional("crossing_margin", default=0.1): vol.All(
                vol.Coerce(float), vol.Range(min=0.0, max=2.0)
            ),
            vol.Optional("departure_s", default=8.0): _seconds(60.0),
            vol.Optional("departure_threshold", default=0.4): _cosine,
        },
        vol.Optional("visits", default={}): {
            vol.Optional("window_s", default=60.0): vol.All(vol.Coerce(float), vol.Range(min=1.0)),
            vol.Optional("presence_s", default=2.0): vol.All(
                vol.Coerce(float), vol.Range(min=0.5, max=3600.0)
            ),
        },
        # Risk assessment per visit (risk/, docs/server.md "Risk assessment").
        vol.Optional("risk", default={}): _RISK,
        # Zones and lines per camera (zones.py, docs/server.md "Zones and lines").
        vol.Optional("zones", default={}): _ZONES,
        vol.Optional("retention_days", default=90): vol.All(int, vol.Range(min=1)),
        vol.Optional("cameras", default=[]): [camera_name],
        # Accept frames from cameras not listed above (they are added on first frame).
        vol.Optional("auto_add_cameras", default=False): bool,
        vol.Optional("queue", default={}): {
            vol.Optional("per_camera", default=4): vol.All(int, vol.Range(min=1, max=1000)),
            vol.Optional("workers", default=2): vol.All(int, vol.Range(min=1, max=64)),
        },
        # Scale-out (cluster/, docs/server.md "Scaling out"): all = one process, as always.
        vol.Optional("cluster", default={}): {
            vol.Optional("role", default="all"): vol.In(["all", "worker", "matcher"]),
            vol.Optional("redis_url", default="redis://127.0.0.1:6379/0"): vol.Match(
                r"^rediss?://", msg="must be a redis:// or rediss:// URL"
            ),
            vol.Optional("prefix", default="smart_reid"): vol.Match(
                r"^[A-Za-z0-9_.-]+$", msg="letters, digits, _ . - only"
            ),
            vol.Optional("lease_s", default=10.0): vol.All(
                vol.Coerce(float), vol.Range(min=1.0, max=300.0)
            ),
            # Frames kept per camera stream while no worker reads them (oldest trimmed).
            vol.Optional("backlog", default=200): vol.All(int, vol.Range(min=4, max=100000)),
            vol.Optional("feedback_timeout_s", default=5.0): vol.All(
                vol.Coerce(float), vol.Range(min=0.1, max=120.0)
            ),
            vol.Optional("worker_id", default=None): vol.Any(None, vol.Match(r"^[A-Za-z0-9_.-]+$")),
            # PostgreSQL URL for matcher/standby leadership; default: store.url when PostgreSQL.
            vol.Optional("leader_url", default=None): vol.Any(None, str),
        },
        vol.Optional("mqtt", default={}): {
            vol.Optional("enabled", default=True): bool,
            vol.Optional("host", default="127.0.0.1"): str,
            vol.Optional("port", default=1883): vol.All(int, vol.Range(min=1, max=65535)),
            vol.Optional("username", default=None): vol.Any(None, str),
            vol.Optional("password", default=None): vol.Any(None, str),
            vol.Optional("base_topic", default="smart_reid"): vol.Match(
                r"^[^#+\s]+$", msg="must be a topic without spaces, # or +"
            ),
            vol.Optional("client_id", default=None): vol.Any(None, str),
            vol.Optional("ingest", default=True): bool,
            vol.Optional("publish_sightings", default=True): bool,
            vol.Optional("buffer_size", default=1000): vol.All(int, vol.Range(min=10)),
        },
        vol.Optional("sources", default={}): SOURCES_SCHEMA,
        vol.Optional("http", default={}): {
            vol.Optional("enabled", default=True): bool,
            vol.Optional("host", default="127.0.0.1"): str,
            vol.Optional("port", default=8756): vol.All(int, vol.Range(min=0, max=65535)),
            vol.Optional("token", default=None): vol.Any(None, str),
            # URL announced in info.http_url; default http://<host>:<port>.
            vol.Optional("public_url", default=None): vol.Any(None, str),
            vol.Optional("max_upload_mb", default=20): vol.All(int, vol.Range(min=1, max=512)),
        },
    },
    extra=vol.PREVENT_EXTRA,
)

SECRET_KEYS = frozenset({"password", "token", "api_key"})
_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@/\s]*@")
# postgresql://host/db?password=...: a password in a URL's query.
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.IGNORECASE)


@dataclass(slots=True)
class Settings:
    """Validated configuration. Sections are plain dicts as voluptuous returns them."""

    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw[name]
        assert isinstance(value, dict)
        return value

    @property
    def data_dir(self) -> Path:
        return Path(self.raw["data_dir"])

    @property
    def cameras(self) -> list[str]:
        return list(self.raw["cameras"])

    def redacted(self) -> dict[str, Any]:
        """The configuration with passwords and tokens replaced, for APIs and diagnostics."""

        def scrub(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    k: ("**redacted**" if k in SECRET_KEYS and v else scrub(v))
                    for k, v in node.items()
                }
            if isinstance(node, list):
                return [scrub(v) for v in node]
            if isinstance(node, str):
                # rtsp://user:password@camera/...: the password is a secret wherever it sits.
                node = _URL_PASSWORD.sub(r"\1**redacted**@", node)
                return _QUERY_PASSWORD.sub(r"\1**redacted**", node) if "://" in node else node
            return node

        return scrub(copy.deepcopy(self.raw))  # type: ignore[no-any-return]


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = [k for k in dotted.split(".") if k]
    if not keys:
        raise ConfigError(f"empty configuration key in override {dotted!r}")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {key} is not a section")
    node[keys[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``SMART_REID_MQTT__HOST=x`` -> ``{"mqtt": {"host": "x"}}``."""
    tree: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        _set_path(tree, dotted, yaml.safe_load(text) if text != "" else None)
    return tree


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``["visits.window_s=90", "cameras=[front, back]"]`` -> nested dict (values as YAML)."""
    tree: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, text = item.split("=", 1)
        _set_path(tree, key.strip(), yaml.safe_load(text))
    return tree


def validate(data: Mapping[str, Any]) -> Settings:
    try:
        validated = SCHEMA(dict(data))
    except vol.MultipleInvalid as err:
        problems = []
        for error in err.errors:
            path = ".".join(str(p) for p in error.path) or "(top level)"
            problems.append(f"{path}: {error.msg}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    settings = Settings(validated)
    for camera, spec in settings.section("zones")["cameras"].items():
        both = set(spec["zones"]) & set(spec["lines"])
        if both:
            raise ConfigError(
                f"zones.cameras.{camera}: {', '.join(sorted(both))} is both a zone and a line; "
                "give them different names"
            )
    token = settings.section("http")["token"]
    if token is not None and not token.strip():
        # An empty token would switch authentication off while passing the check below.
        raise ConfigError("http.token: must not be empty; remove it or set a real secret")
    if token is None and settings.section("http")["enabled"]:
        host = settings.section("http")["host"]
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ConfigError(
                f"http.host: {host} exposes the API without authentication; "
                "set http.token or listen on 127.0.0.1"
            )
    return settings


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """File, then environment, then explicit overrides (command-line flags)."""
    data: dict[str, Any] = {}
    environ = os.environ if environ is None else environ
    path = path or environ.get("SMART_REID_CONFIG")
    if path:
        file = Path(path)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"configuration file {file} does not exist") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"configuration file {file} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"configuration file {file} must contain a mapping at top level")
        data = loaded
    _merge(data, env_overrides(environ))
    if overrides:
        _merge(data, overrides)
    return validate(data)
