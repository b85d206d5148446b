"""The App's options against the server's settings, one version everywhere, the install lint.

Option files and the server's own schema are read for real; nothing here needs Docker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from smart_reid_server import __version__
from smart_reid_server.config import validate
from smart_reid_server.hassio_entry import (
    ADVANCED,
    APP_MANAGED,
    OPTION_BY_NAME,
    OPTIONS,
    OptionsError,
    build_config,
    read_advanced,
    settings_from,
)
from smart_reid_server.models.devices import REQUESTABLE
from smart_reid_server.models.registry import REGISTRY

REPO = Path(__file__).resolve().parents[2]
APP_CONFIG: dict[str, Any] = yaml.safe_load((REPO / "addon" / "config.yaml").read_text("utf-8"))


def server_leaves() -> set[str]:
    """Every leaf setting of the server (dotted), from its schema's defaults."""
    leaves: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node and prefix not in ("risk.levels", "risk.weights"):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        else:
            leaves.add(prefix)

    walk(validate({}).raw, "")
    return leaves


def covered_by(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def app_build(options: dict[str, Any], advanced: dict[str, Any] | None = None) -> dict[str, Any]:
    return build_config(
        options,
        advanced or {},
        data_dir=Path("/data"),
        http_port=8756,
        public_host="local-smart-reid",
        mqtt={"host": "core-mosquitto", "port": 1883, "username": "addons", "password": "pw"},
        token="t0ken",
    )


def test_every_app_option_is_a_server_setting_and_every_setting_is_reachable() -> None:
    schema, options = APP_CONFIG["schema"], APP_CONFIG["options"]
    # config.yaml <-> the entry point's table, both ways.
    assert set(schema) == set(OPTION_BY_NAME)
    assert set(options) <= set(schema)
    leaves = server_leaves()
    for option in OPTIONS:
        assert option.setting in leaves, f"option {option.name} -> unknown {option.setting}"
    # Server -> App: each setting is an option, set by the App, or in smart_reid.yaml; exactly one.
    option_settings = tuple(o.setting for o in OPTIONS)
    for leaf in sorted(leaves):
        homes = [
            covered_by(leaf, option_settings),
            covered_by(leaf, APP_MANAGED) and leaf not in option_settings,
            covered_by(leaf, ADVANCED),
        ]
        assert sum(homes) == 1, f"server setting {leaf}: decide whether it is an App option"
    for prefix in (*APP_MANAGED, *ADVANCED):
        assert any(covered_by(leaf, (prefix,)) for leaf in leaves), f"{prefix} is no setting"


def test_app_defaults_are_the_servers_and_choices_are_valid() -> None:
    options = APP_CONFIG["options"]
    settings = settings_from(app_build(options))
    server = validate({}).raw
    differs_on_purpose = {"auto_add_cameras"}  # the integration forwards whichever cameras
    for option in OPTIONS:
        if option.name not in options or option.name in differs_on_purpose:
            continue
        node_app: Any = settings.raw
        node_server: Any = server
        for key in option.setting.split("."):
            node_app, node_server = node_app[key], node_server[key]
        assert node_app == node_server, f"default of {option.name} differs from the server's"
    assert settings.raw["auto_add_cameras"] is True

    def choices(name: str) -> set[str]:
        found = re.fullmatch(r"list\((.+)\)\??", APP_CONFIG["schema"][name])
        assert found, name
        return set(found[1].split("|"))

    assert choices("device") <= set(REQUESTABLE)
    assert "cuda" not in choices("device")  # Apps cannot use the NVIDIA runtime
    assert choices("detector") == {s.name for s in REGISTRY.values() if s.kind == "detector"}
    assert choices("reid_model") == {s.name for s in REGISTRY.values() if s.kind == "reid"}
    assert choices("log_level") == {"debug", "info", "warning", "error"}


def test_options_and_advanced_file_build_the_server_configuration(tmp_path: Path) -> None:
    advanced_file = tmp_path / "smart_reid.yaml"
    advanced_file.write_text(
        "risk:\n  cameras: {street: 0.0, garden: 0.8}\n  household: [Overridden]\n"
        "sources:\n  frigate:\n    url: http://ccab4aaf-frigate:5000\n"
    )
    advanced = read_advanced(advanced_file)
    options = {
        **APP_CONFIG["options"],
        "household": ["Alice", "Bob"],
        "visit_window_s": 90,
        "mqtt_base_topic": "home_reid",
    }
    raw = settings_from(app_build(options, advanced)).raw
    assert raw["risk"]["household"] == ["Alice", "Bob"]  # options win over the file
    assert raw["risk"]["cameras"] == {"street": 0.0, "garden": 0.8}  # the file's extras stay
    assert raw["visits"]["window_s"] == 90.0
    assert raw["mqtt"]["base_topic"] == "home_reid"
    assert (raw["mqtt"]["host"], raw["mqtt"]["username"]) == ("core-mosquitto", "addons")
    assert (raw["http"]["host"], raw["http"]["port"], raw["http"]["token"]) == (
        "0.0.0.0",
        8756,
        "t0ken",
    )
    assert raw["http"]["public_url"] == "http://local-smart-reid:8756"
    assert raw["data_dir"] == "/data"
    # A user's own broker replaces the Supervisor's.
    own = {**APP_CONFIG["options"], "mqtt_host": "10.0.0.5", "mqtt_port": 1884}
    raw = settings_from(
        build_config(
            own,
            {},
            data_dir=Path("/data"),
            http_port=8756,
            public_host="x",
            mqtt=None,
            token="t",
        )
    ).raw
    assert (raw["mqtt"]["host"], raw["mqtt"]["port"]) == ("10.0.0.5", 1884)


def test_bad_values_name_the_option() -> None:
    with pytest.raises(OptionsError, match=r"option night_start \(risk.night.start\)"):
        settings_from(app_build({**APP_CONFIG["options"], "night_start": "25:00"}))
    with pytest.raises(OptionsError, match=r"option household \(risk.household.0\)"):
        settings_from(app_build({**APP_CONFIG["options"], "household": ["x" * 65]}))


def test_one_version_everywhere() -> None:
    manifest = (REPO / "custom_components/smart_reid/manifest.json").read_text("utf-8")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    assert APP_CONFIG["version"] == __version__
    assert f'"version": "{__version__}"' in manifest
    assert pyproject["project"]["version"] == __version__
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/bump-version"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_image_requirements_match_pyproject() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    wanted = {name(r) for r in pyproject["project"]["dependencies"]}
    lines = (REPO / "addon/requirements.txt").read_text("utf-8").splitlines()
    pinned = [line for line in lines if line.strip() and not line.startswith("#")]
    assert {name(line) for line in pinned} == wanted
    assert all("==" in line for line in pinned)


def test_cluster_image_requirements_match_the_cluster_extra() -> None:
    """The Docker images carry the `cluster` extra pinned, so compose.cluster.yaml runs."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()

    wanted = {name(r) for r in pyproject["project"]["optional-dependencies"]["cluster"]}
    lines = (REPO / "docker/requirements-cluster.txt").read_text("utf-8").splitlines()
    pinned = [line for line in lines if line.strip() and not line.startswith("#")]
    assert {name(line) for line in pinned} == wanted
    assert all("==" in line for line in pinned)
    assert "requirements-cluster.txt" in (REPO / "docker/Dockerfile").read_text("utf-8")


def test_check_install_passes() -> None:
    """scripts/check-install: manifest, translations, images, Dockerfiles, Compose, versions."""
    result = subprocess.run(
        [str(REPO / "scripts/check-install")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "addon/inference_server")},
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"failed": 0' in result.stdout


def test_compose_environment_is_a_valid_server_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What docker-compose.yml hands the container (with .env.example's values filled in) and
    the image's command line make a valid server configuration, read the way `serve` reads it."""
    from smart_reid_server.cli import build_parser, settings_from_args

    compose = yaml.safe_load((REPO / "docker/docker-compose.yml").read_text("utf-8"))
    example = dict(
        re.findall(
            r"(?m)^([A-Z][A-Z0-9_]*)=(.*)$", (REPO / "docker/.env.example").read_text("utf-8")
        )
    )
    example["SMART_REID_HTTP__TOKEN"] = "0123456789abcdef"  # the one value a user must add

    def substitute(value: Any) -> str:
        def one(match: re.Match[str]) -> str:
            return example.get(match[1]) or (match[3] if match[2] == ":-" else "")

        return re.sub(r"\$\{([A-Z0-9_]+)(:-|:\?)?([^}]*)\}", one, str(value))

    dockerfile = (REPO / "docker/Dockerfile").read_text("utf-8")
    cmd = json.loads(re.findall(r"(?m)^CMD (\[.*\])$", dockerfile)[0])
    assert cmd[:4] == ["python", "-m", "smart_reid_server", "serve"]
    for name in ("smart-reid", "smart-reid-nvidia", "smart-reid-intel"):
        for key in [k for k in os.environ if k.startswith("SMART_REID_")]:
            monkeypatch.delenv(key)
        for key, value in compose["services"][name]["environment"].items():
            monkeypatch.setenv(key, substitute(value))
        settings = settings_from_args(build_parser().parse_args(cmd[3:]))
        assert settings.section("http")["token"] == "0123456789abcdef"
        assert (settings.section("http")["host"], settings.section("http")["port"]) == (
            "0.0.0.0",
            8756,
        )
        assert settings.raw["data_dir"] == "/data"
        assert settings.section("mqtt")["host"] == "mosquitto"
        assert settings.section("models")["device"] == "auto"
        assert settings.raw["auto_add_cameras"] is True


def test_check_install_catches_broken_artefacts(tmp_path: Path) -> None:
    """A copy of the repository with one mistake in each artefact: every one is named."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".cache", "*.pyc", "eval"),
    )

    def edit(rel: str, old: str, new: str) -> None:
        path = copy / rel
        text = path.read_text("utf-8")
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1), "utf-8")

    edit("addon/translations/de.yaml", "  workers:\n", "  retired_option:\n")
    edit("addon/config.yaml", "  log_level: list(", "  frame_rate: int\n  log_level: list(")
    edit(
        "custom_components/smart_reid/manifest.json",
        f'"version": "{__version__}"',
        '"version": "9.9.9"',
    )
    edit("docker/Dockerfile", "COPY bench/bench_gpu.py", "COPY bench/missing.py")
    edit("docker/docker-compose.yml", "    gpus: all\n", "")
    edit("docker/docker-compose.yml", "  read_only: true\n  tmpfs:", "  tmpfs:")
    (copy / "addon/icon.png").write_bytes(b"not a picture")
    result = subprocess.run(
        [sys.executable, str(copy / "scripts/check_install.py")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SMART_REID_CHECK_ROOT": str(copy)},
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    expected = [
        "addon/translations/de.yaml: option workers needs a name and a description",
        "addon/translations/de.yaml: translations for unknown options ['retired_option']",
        "only in config.yaml ['frame_rate']",
        "custom_components/smart_reid/manifest.json has '9.9.9', expected",
        "docker/Dockerfile: COPY source bench/missing.py is not in .",
        "smart-reid-nvidia needs gpus: all",
        "smart-reid must have read_only: true",
        "addon/icon.png is not a PNG",
    ]
    for line in expected:
        assert line in out, f"{line!r} not reported:\n{out}"
