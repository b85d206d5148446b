"""Configuration: file, environment and --set overrides, and errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import pytest
from smart_reid_server.config import ConfigError, load, parse_assignments


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_complete_without_a_file() -> None:
    settings = load(None, environ={})
    assert settings.section("mqtt")["port"] == 1883
    assert settings.section("http")["port"] == 8756
    assert settings.section("visits")["window_s"] == 60.0
    assert settings.section("queue") == {"per_camera": 4, "workers": 2}
    assert settings.section("match")["threshold"] is None
    assert settings.cameras == []


def test_environment_beats_the_file_and_set_beats_both(tmp_path: Path) -> None:
    path = _write(tmp_path, "mqtt:\n  host: file.lan\n  port: 1884\nvisits:\n  window_s: 30\n")
    env = {"SMART_REID_MQTT__HOST": "env.lan", "SMART_REID_VISITS__WINDOW_S": "45"}
    settings = load(path, environ=env, overrides=parse_assignments(["visits.window_s=90"]))
    assert settings.section("mqtt")["host"] == "env.lan"
    assert settings.section("mqtt")["port"] == 1884
    assert settings.section("visits")["window_s"] == 90.0


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "cameras: [front, back]\n")
    settings = load(None, environ={"SMART_REID_CONFIG": str(path)})
    assert settings.cameras == ["front", "back"]


def test_set_values_are_typed_like_yaml() -> None:
    tree = parse_assignments(["cameras=[front, garden]", "mqtt.enabled=false", "queue.workers=3"])
    settings = load(None, environ={}, overrides=tree)
    assert settings.cameras == ["front", "garden"]
    assert settings.section("mqtt")["enabled"] is False
    assert settings.section("queue")["workers"] == 3


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"mqtt": {"port": "many"}}, "mqtt.port"),
        ({"visits": {"window_s": 0.5}}, "visits.window_s"),
        ({"cameras": ["Front Door"]}, "camera name 'Front Door'"),
        ({"mqtt": {"base_topic": "a/#"}}, "mqtt.base_topic"),
        ({"queue": {"wrokers": 2}}, "queue.wrokers"),
        ({"match": {"threshold": 1.5}}, "match.threshold"),
    ],
)
def test_errors_name_the_key(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(None, environ={}, overrides=overrides)
    assert words in str(err.value)


def test_bad_env_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load(None, environ={"SMART_REID_HTTP__PORT": "eighty"})
    assert "http.port" in str(err.value)


def test_exposing_the_api_without_a_token_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        load(None, environ={}, overrides={"http": {"host": "0.0.0.0"}})
    assert "http.token" in str(err.value)
    opened = load(None, environ={}, overrides={"http": {"host": "0.0.0.0", "token": "s3cret"}})
    assert opened.section("http")["host"] == "0.0.0.0"


def test_missing_or_broken_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "nope.yaml", environ={})
    assert "nope.yaml does not exist" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(_write(tmp_path, "mqtt: [unclosed\n"), environ={})
    assert "not valid YAML" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_assignments(["visits.window_s"])
    assert "key.path=value" in str(err.value)


def test_secrets_are_redacted_for_the_api() -> None:
    settings = load(
        None, environ={}, overrides={"mqtt": {"password": "pw"}, "http": {"token": "tok"}}
    )
    redacted = settings.redacted()
    assert redacted["mqtt"]["password"] == "**redacted**"
    assert redacted["http"]["token"] == "**redacted**"
    assert settings.section("http")["token"] == "tok"


def test_the_repositorys_own_environment_variables_are_not_settings() -> None:
    """scripts/test documents SMART_REID_SKIP_NEWEST_HA=1; it must not break the server."""
    from smart_reid_server.config import env_overrides

    environ = {
        "SMART_REID_SKIP_NEWEST_HA": "1",
        "SMART_REID_SHARED": "/somewhere",
        "SMART_REID_MQTT__HOST": "broker.lan",
    }
    assert env_overrides(environ) == {"mqtt": {"host": "broker.lan"}}
