"""Every text a user can see exists in English and German, with the same placeholders.

Home Assistant shows a raw key (or nothing) for a missing translation, so a gap is a visible
bug; these checks read the integration's own files and code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from custom_components.smart_reid.binary_sensor import (
    CAMERA_BINARY_SENSORS,
    PERSON_BINARY_SENSORS,
    SERVER_CONNECTIVITY,
)
from custom_components.smart_reid.calendar import VISITS
from custom_components.smart_reid.const import EVENT_TYPES
from custom_components.smart_reid.device_trigger import TRIGGERS
from custom_components.smart_reid.event import VISIT_STARTED
from custom_components.smart_reid.image import THUMBNAIL
from custom_components.smart_reid.sensor import CAMERA_SENSORS, HUB_SENSORS, PERSON_SENSORS

from .conftest import REPO

COMPONENT = REPO / "custom_components" / "smart_reid"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _flatten(node: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        flat: dict[str, str] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): str(node)}


STRINGS = _flatten(_load(COMPONENT / "strings.json"))


def test_english_is_strings() -> None:
    assert _load(COMPONENT / "translations" / "en.json") == _load(COMPONENT / "strings.json")


@pytest.mark.parametrize("language", ["de"])
def test_translation_complete(language: str) -> None:
    translated = _flatten(_load(COMPONENT / "translations" / f"{language}.json"))
    assert translated.keys() == STRINGS.keys()
    for key, text in STRINGS.items():
        assert set(PLACEHOLDER.findall(translated[key])) == set(PLACEHOLDER.findall(text)), key
        assert translated[key].strip(), key


def test_entities_and_triggers_have_names() -> None:
    for platform, descriptions in {
        "sensor": (*HUB_SENSORS, *CAMERA_SENSORS, *PERSON_SENSORS),
        "binary_sensor": (SERVER_CONNECTIVITY, *CAMERA_BINARY_SENSORS, *PERSON_BINARY_SENSORS),
        "event": (VISIT_STARTED,),
        "image": (THUMBNAIL,),
        "calendar": (VISITS,),
    }.items():
        for description in descriptions:
            assert f"entity.{platform}.{description.translation_key}.name" in STRINGS
    for event_type in EVENT_TYPES:
        key = f"entity.event.visit_started.state_attributes.event_type.state.{event_type}"
        assert key in STRINGS
    for trigger in TRIGGERS:
        assert f"device_automation.trigger_type.{trigger}" in STRINGS


def test_code_keys_are_translated() -> None:
    """Exceptions, issues, flow errors and aborts named in the code all have texts."""
    code = "\n".join(
        (COMPONENT / name).read_text(encoding="utf-8")
        for name in (
            "__init__.py",
            "config_flow.py",
            "coordinator.py",
            "digest.py",
            "services.py",
        )
    )
    for key in re.findall(r'translation_key="(\w+)"', code):
        assert f"exceptions.{key}.message" in STRINGS or f"issues.{key}.title" in STRINGS, key
    for issue in (
        "server_unreachable_offline",
        "server_unreachable_mqtt",
        "non_reid_model",
        "unsupported_contract",
    ):
        assert f"issues.{issue}.title" in STRINGS
    assert "issues.server_unreachable_http.title" in STRINGS
    for error in re.findall(r'errors\[[^\]]+\] = "(\w+)"', code):
        assert f"config.error.{error}" in STRINGS or f"options.error.{error}" in STRINGS, error
    for reason in re.findall(r'reason="(\w+)"', code):
        assert f"config.abort.{reason}" in STRINGS, reason
    # Texts looked up by key rather than raised (the daily digest without its server).
    looked_up = re.findall(r"\{prefix\}(\w+)\.message", code)
    assert len(looked_up) == 2
    for key in [*looked_up, "calendar_failed"]:  # the calendar's error (calendar.py)
        assert f"exceptions.{key}.message" in STRINGS, key


def test_services_documented() -> None:
    services = yaml.safe_load((COMPONENT / "services.yaml").read_text(encoding="utf-8"))
    for service, spec in services.items():
        assert f"services.{service}.name" in STRINGS
        for field in spec.get("fields", {}):
            assert f"services.{service}.fields.{field}.name" in STRINGS, (service, field)


def test_manifest() -> None:
    manifest = _load(COMPONENT / "manifest.json")
    assert manifest["domain"] == "smart_reid"
    assert manifest["iot_class"] == "local_push"
    assert set(manifest["dependencies"]) == {"http", "mqtt", "websocket_api"}
    assert manifest["after_dependencies"] == ["frontend"]  # the dashboard cards
    assert "smart_reid/info" in manifest["mqtt"]
    assert manifest["requirements"] == []
    for key in ("version", "documentation", "issue_tracker", "codeowners"):
        assert manifest[key]
    hacs = _load(REPO / "hacs.json")
    assert hacs["homeassistant"] == "2025.4.0"


def test_brand_images() -> None:
    from PIL import Image

    for name, size in (("icon.png", (256, 256)), ("icon@2x.png", (512, 512))):
        with Image.open(COMPONENT / "brand" / name) as image:
            assert image.size == size
    with Image.open(COMPONENT / "brand" / "logo.png") as image:
        assert image.height == 256
