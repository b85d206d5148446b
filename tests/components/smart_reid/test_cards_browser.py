"""The dashboard cards in a real browser against a real Home Assistant.

A real `hass` process (onboarded over REST, with a YAML dashboard holding both cards and
trusted-network login for 127.0.0.1), a real Mosquitto, the real inference server fed with CUHK03
crops, and headless Chromium driven by playwright-core (frontend/e2e/dashboard.mjs). Checked as a
person sees it: people with pictures, a visit in the timeline, a rename done through the detail
view showing the new name, and a new visit appearing without a reload. Screenshots (light, dark,
phone width) go to a temporary folder, or to `SMART_REID_SCREENSHOTS` (docs/ for the README).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from homeassistant.core import HomeAssistant

from .conftest import CUHK03, REPO, Broker, free_port
from .test_e2e import TOKEN, ServerProcess, _pick_people, _upload
from .test_e2e import inference_server as inference_server  # a fixture

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

FRONTEND = REPO / "frontend"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NODE = shutil.which("node") or "/usr/bin/node"
HA_FRONTEND_CACHE = REPO / ".cache" / "ha-frontend"
CLIENT_ID = "http://127.0.0.1/"


def _require_browser() -> dict[str, str]:
    """Environment for the hass process; skips with the reason when a part is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    if not (FRONTEND / "node_modules" / "playwright-core").is_dir():
        pytest.skip("frontend/node_modules is missing: run `npm ci` in frontend/ (scripts/setup)")
    env = dict(os.environ)
    try:
        import hass_frontend  # noqa: F401
    except ImportError:
        if not (HA_FRONTEND_CACHE / "hass_frontend").is_dir():
            pytest.skip("home-assistant-frontend is not installed: run ./scripts/setup")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HA_FRONTEND_CACHE), env.get("PYTHONPATH")) if p
        )
    return env


DASHBOARD = """\
title: Home
views:
  - title: Smart ReID
    path: reid
    cards:
      - type: custom:smart-reid-people-card
      - type: custom:smart-reid-visits-card
"""


class HassProcess:
    """`python -m homeassistant` on a config folder made for this test."""

    def __init__(self, config: Path, port: int, env: dict[str, str]) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.log = config / "hass.out"
        (config / "custom_components").mkdir(parents=True)
        (config / "custom_components" / "smart_reid").symlink_to(
            REPO / "custom_components" / "smart_reid"
        )
        (config / "configuration.yaml").write_text(
            "\n".join(
                [
                    "homeassistant:",
                    "  name: Home",
                    "  time_zone: Europe/Berlin",
                    "  auth_providers:",
                    "    - type: trusted_networks",
                    "      trusted_networks: [127.0.0.1/32]",
                    "      allow_bypass_login: true",
                    "    - type: homeassistant",
                    "http:",
                    "  server_host: 127.0.0.1",
                    f"  server_port: {port}",
                    "frontend:",
                    "lovelace:",
                    "  mode: yaml",
                    "logger:",
                    "  default: warning",
                    "",
                ]
            )
        )
        (config / "ui-lovelace.yaml").write_text(DASHBOARD)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "homeassistant", "-c", str(config), "--skip-pip"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.token = ""

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def wait_up(self, session: aiohttp.ClientSession, within: float = 90) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"hass exited with {self.process.returncode}:\n{self.tail()}")
            try:
                async with session.get(f"{self.url}/api/onboarding") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
        pytest.fail(f"hass did not answer in {within} s:\n{self.tail()}")

    async def onboard(self, session: aiohttp.ClientSession) -> None:
        """The owner account and the onboarding steps, as the first browser visit does."""
        async with session.post(
            f"{self.url}/api/onboarding/users",
            json={
                "client_id": CLIENT_ID,
                "name": "Owner",
                "username": "owner",
                "password": "owner-password-1",
                "language": "en",
            },
        ) as response:
            assert response.status == 200, await response.text()
            code = (await response.json())["auth_code"]
        async with session.post(
            f"{self.url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID},
        ) as response:
            assert response.status == 200, await response.text()
            self.token = (await response.json())["access_token"]
        for step, body in (
            ("core_config", {}),
            ("analytics", {}),
            ("integration", {"client_id": CLIENT_ID, "redirect_uri": CLIENT_ID}),
        ):
            async with session.post(
                f"{self.url}/api/onboarding/{step}", json=body, headers=self.auth
            ) as response:
                assert response.status == 200, (step, await response.text())

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def config_flow(
        self, session: aiohttp.ClientSession, handler: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Run a config flow through the REST API as the UI does; answers the created entry."""
        async with session.post(
            f"{self.url}/api/config/config_entries/flow",
            json={"handler": handler},
            headers=self.auth,
        ) as response:
            result = await response.json()
            assert response.status == 200, result
        while result.get("type") == "form":
            async with session.post(
                f"{self.url}/api/config/config_entries/flow/{result['flow_id']}",
                json={k: v for k, v in data.items() if _in_schema(result, k)},
                headers=self.auth,
            ) as response:
                previous, result = result, await response.json()
                assert response.status == 200, result
            if result.get("type") == "form" and result.get("step_id") == previous.get("step_id"):
                pytest.fail(f"{handler} flow refused {data}: {result.get('errors')}")
        assert result.get("type") == "create_entry", result
        return dict(result["result"])


def _in_schema(form: dict[str, Any], key: str) -> bool:
    return any(field.get("name") == key for field in form.get("data_schema", []))


@pytest.fixture
async def hass_process(tmp_path: Path) -> AsyncIterator[HassProcess]:
    env = _require_browser()
    process = HassProcess(tmp_path / "ha-config", free_port(), env)
    try:
        yield process
    finally:
        process.stop()


async def test_cards_in_a_real_browser(
    hass: HomeAssistant,
    broker: Broker,
    inference_server: ServerProcess,
    hass_process: HassProcess,
    tmp_path: Path,
) -> None:
    async with aiohttp.ClientSession() as session:
        await hass_process.wait_up(session)
        await hass_process.onboard(session)
        await hass_process.config_flow(
            session, "mqtt", {"broker": "127.0.0.1", "port": broker.port}
        )
        entry = await hass_process.config_flow(
            session,
            "smart_reid",
            {"url": inference_server.url, "base_topic": "smart_reid", "token": TOKEN},
        )
        assert entry["state"] == "loaded", entry

        # Someone walks past the front camera and on to the back one: one visit, two cameras.
        async with session.get(
            f"{inference_server.url}/api/info", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            info = await response.json()
        view_a, view_b, stranger = await hass.async_add_executor_job(
            _pick_people, info, tmp_path / "picker"
        )
        await asyncio.sleep(1.0)  # Home Assistant's MQTT subscriptions settle
        first = (await _upload(session, inference_server, "front", view_a))["decisions"][0]
        await asyncio.sleep(1.0)
        second = (await _upload(session, inference_server, "back", view_b))["decisions"][0]
        assert second["visit_id"] == first["visit_id"]

    stranger_frame = await hass.async_add_executor_job(_frame, stranger)
    shots = await hass.async_add_executor_job(_screenshot_folder, tmp_path)
    plan = {
        "ha": hass_process.url,
        "view": "/lovelace/reid",
        "chromium": CHROMIUM,
        "shots": str(shots),
        "rename": "Alice",
        "server": inference_server.url,
        "token": TOKEN,
        "stranger": {**stranger_frame, "camera": "front"},
    }
    browser = await asyncio.create_subprocess_exec(
        NODE,
        str(FRONTEND / "e2e" / "dashboard.mjs"),
        json.dumps(plan),
        cwd=FRONTEND,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(browser.communicate(), timeout=240)
    report = out.decode().strip().splitlines()
    assert browser.returncode == 0, (
        f"(the page as it was: {shots / 'failure.png'})\n{err.decode()}\n{report}\nhass log:\n{hass_process.tail()}\n"
        f"server log:\n{inference_server.tail()}"
    )
    findings = json.loads(report[-1])
    assert findings["people"] >= 1
    assert all(p["width"] > 0 for p in findings["pictures"])
    assert findings["visits"] >= 1
    assert "Front" in findings["first_visit"] and "Back" in findings["first_visit"]
    assert findings["visit_snapshot_width"] > 0
    assert findings["renamed"] is True
    assert findings["visits_after"] > findings["visits"]
    assert findings["phone_overflow"] is False
    # The first load ran the cards' module before Home Assistant's app bundle (held back on
    # purpose, the order that lost the cards' definitions); a reload runs it in the usual order.
    assert findings["after_reload"] >= 1
    assert findings["console_errors"] == []
    for name in ("cards-light.png", "cards-dark.png", "cards-phone.png"):
        assert await hass.async_add_executor_job(lambda n=name: (shots / n).stat().st_size) > 10_000


def _frame(name: str) -> dict[str, Any]:
    """A CUHK03 crop to upload as a whole frame with one box."""
    from PIL import Image

    path = CUHK03 / "val" / f"{name}.jpg"
    with Image.open(path) as image:
        width, height = image.size
    return {"path": str(path), "width": width, "height": height}


def _screenshot_folder(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("SMART_REID_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots
