"""Unavailable while the server is offline or MQTT is down; repairs when that lasts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smart_reid.const import CONF_URL, DOMAIN, OFFLINE_DOCS_URL

from .conftest import (
    BASE,
    REPO,
    Broker,
    FakeServer,
    entry_for,
    free_port,
    info_payload,
    publish,
    wait_for,
)

GRACE = timedelta(minutes=4)


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


def _issues(registry: ir.IssueRegistry) -> dict[str, str | None]:
    return {
        issue.issue_id: issue.translation_key
        for issue in registry.issues.values()
        if issue.domain == DOMAIN
    }


async def test_server_offline_and_back(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Offline: values unavailable, the connectivity sensor off, one log line; then back."""
    await publish(hass, f"{BASE}/status", "offline", retain=True)
    await wait_for(
        hass,
        lambda: _state(hass, "sensor.smart_reid_people_present") == STATE_UNAVAILABLE,
        "entities to become unavailable",
    )
    assert _state(hass, "binary_sensor.smart_reid_server") == STATE_OFF
    assert _state(hass, "sensor.visitor_3_location") == STATE_UNAVAILABLE
    assert _state(hass, "event.front_visit_started") == STATE_UNAVAILABLE

    # A short outage (a restart) raises no repair issue.
    assert _issues(issue_registry) == {}
    async_fire_time_changed(hass, dt_util.utcnow() + GRACE)
    await hass.async_block_till_done()
    issue_id = f"server_unreachable_{loaded_entry.entry_id}"
    assert _issues(issue_registry) == {issue_id: "server_unreachable_offline"}

    await publish(hass, f"{BASE}/status", "online", retain=True)
    await wait_for(
        hass,
        lambda: _state(hass, "sensor.smart_reid_people_present") == "2",
        "entities to come back",
    )
    assert _state(hass, "binary_sensor.smart_reid_server") == STATE_ON
    await wait_for(hass, lambda: _issues(issue_registry) == {}, "the issue to be removed")
    unavailable = [r for r in caplog.records if "entities are unavailable" in r.getMessage()]
    back = [r for r in caplog.records if "is available again" in r.getMessage()]
    assert len(unavailable) == 1 and len(back) == 1


async def test_mqtt_drop(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    broker: Broker,
    issue_registry: ir.IssueRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the broker nothing is known, not even whether the server runs."""
    monkeypatch.setattr("homeassistant.components.mqtt.client.RECONNECT_INTERVAL_SECONDS", 0.2)
    broker.stop()
    await wait_for(
        hass,
        lambda: _state(hass, "binary_sensor.smart_reid_server") == STATE_UNAVAILABLE,
        "the connectivity sensor to become unavailable",
    )
    assert _state(hass, "sensor.front_people_present") == STATE_UNAVAILABLE
    async_fire_time_changed(hass, dt_util.utcnow() + GRACE)
    await hass.async_block_till_done()
    assert _issues(issue_registry) == {
        f"server_unreachable_{loaded_entry.entry_id}": "server_unreachable_mqtt"
    }

    broker.start()
    await wait_for(
        hass,
        lambda: _state(hass, "binary_sensor.smart_reid_server") == STATE_ON,
        "MQTT to reconnect",
        within=20,
    )
    assert _state(hass, "sensor.front_people_present") == "1"
    assert _issues(issue_registry) == {}


async def test_http_unreachable_then_back(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    server: FakeServer,
    issue_registry: ir.IssueRegistry,
) -> None:
    """MQTT works but the HTTP API does not: a repair explains it until the API answers."""
    await server.publish_basics()
    port = free_port()
    entry = entry_for(server, **{CONF_URL: f"http://127.0.0.1:{port}"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = entry.runtime_data.coordinator
    await wait_for(hass, lambda: coordinator.available, "the server to be online over MQTT")
    async_fire_time_changed(hass, dt_util.utcnow() + GRACE)
    await hass.async_block_till_done()
    issue_id = f"server_unreachable_{entry.entry_id}"
    assert _issues(issue_registry) == {issue_id: "server_unreachable_http"}
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["url"] == f"http://127.0.0.1:{port}"

    revived = FakeServer(hass)
    await revived.start(port)
    try:
        async_fire_time_changed(hass, dt_util.utcnow() + GRACE + timedelta(minutes=2))
        await wait_for(hass, lambda: coordinator.http_ok, "the health check to succeed")
        assert _issues(issue_registry) == {}
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await revived.stop()


async def test_non_reid_model_issue(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A generic image model as fallback is flagged, and the flag goes with a ReID model."""
    info = info_payload(http_url=loaded_entry.runtime_data.api.url)
    info["models"]["reid"].update(name="mobilenet_v3_small", is_reid=False)
    await publish(hass, f"{BASE}/info", info, retain=True)
    issue_id = f"non_reid_model_{loaded_entry.entry_id}"
    await wait_for(hass, lambda: issue_id in _issues(issue_registry), "the model issue")
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders == {"name": "Smart ReID", "model": "mobilenet_v3_small"}

    info["models"]["reid"].update(name="person-reidentification-retail-0277", is_reid=True)
    await publish(hass, f"{BASE}/info", info, retain=True)
    await wait_for(hass, lambda: issue_id not in _issues(issue_registry), "the issue to go")


async def test_issues_go_with_the_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """Unloading an entry leaves no repair issue about it behind."""
    await publish(hass, f"{BASE}/status", "offline", retain=True)
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_for(hass, lambda: not coordinator.available, "the server to go offline")
    async_fire_time_changed(hass, dt_util.utcnow() + GRACE)
    await hass.async_block_till_done()
    assert _issues(issue_registry)
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    assert _issues(issue_registry) == {}


async def test_http_checked_every_minute(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The HTTP API dying while MQTT still says "online" is found by the minutely check:
    after the grace time a repair says so, and it goes once the API answers again."""
    coordinator = loaded_entry.runtime_data.coordinator
    port = int(server.url.rsplit(":", 1)[1])
    await server.stop()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await wait_for(hass, lambda: not coordinator.http_ok, "the check to notice the outage")
    assert coordinator.available
    assert _issues(issue_registry) == {}
    async_fire_time_changed(hass, dt_util.utcnow() + GRACE)
    await wait_for(
        hass,
        lambda: (
            _issues(issue_registry)
            == {f"server_unreachable_{loaded_entry.entry_id}": "server_unreachable_http"}
        ),
        "the unreachable repair",
    )

    await server.start(port)
    async_fire_time_changed(hass, dt_util.utcnow() + GRACE + timedelta(minutes=2))
    await wait_for(hass, lambda: coordinator.http_ok, "the check to succeed again")
    assert _issues(issue_registry) == {}


async def test_http_check_stops_with_the_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """An unloaded entry asks the server nothing any more."""
    await hass.async_block_till_done(wait_background_tasks=True)
    checks = server.requests.count(("GET", "/api/info"))
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await wait_for(
        hass,
        lambda: server.requests.count(("GET", "/api/info")) == checks + 1,
        "the periodic check",
    )
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    before = len(server.requests)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=10))
    await hass.async_block_till_done()
    assert server.requests[before:] == []


async def test_newer_contract_is_a_repair(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server updated to a contract this integration does not know is flagged until fixed."""
    info = info_payload(http_url=loaded_entry.runtime_data.api.url, contract=2)
    await publish(hass, f"{BASE}/info", info, retain=True)
    issue_id = f"unsupported_contract_{loaded_entry.entry_id}"
    await wait_for(hass, lambda: issue_id in _issues(issue_registry), "the contract issue")
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "name": "Smart ReID",
        "contract": "2",
        "supported": "1",
    }
    assert "speaks contract version 2" in caplog.text

    await publish(hass, f"{BASE}/info", {**info, "contract": 1}, retain=True)
    await wait_for(hass, lambda: issue_id not in _issues(issue_registry), "the issue to go")


async def test_offline_repair_leads_to_the_fallback(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A server that stays offline (crashed, its GPU host down, its model missing) raises a
    repair that says nobody is being announced and links to what to do meanwhile (the
    blueprint's fallback sensors); it goes when the server is back."""
    await publish(hass, f"{BASE}/status", "offline", retain=True)
    await wait_for(
        hass, lambda: _state(hass, "binary_sensor.smart_reid_server") == STATE_OFF, "offline"
    )
    async_fire_time_changed(hass, dt_util.utcnow() + GRACE)
    await hass.async_block_till_done()
    issue = issue_registry.async_get_issue(DOMAIN, f"server_unreachable_{loaded_entry.entry_id}")
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.learn_more_url == OFFLINE_DOCS_URL
    anchor = OFFLINE_DOCS_URL.rsplit("#", 1)[1]
    docs = (REPO / "docs" / "integration.md").read_text(encoding="utf-8")
    assert f"## {anchor.replace('-', ' ').capitalize()}" in docs

    await publish(hass, f"{BASE}/status", "online", retain=True)
    await wait_for(hass, lambda: _issues(issue_registry) == {}, "the issue to be removed")
