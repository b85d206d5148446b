"""`smart_reid.summarize` with Home Assistant's own AI Task (Home Assistant 2025.7 and later).

The summary goes through the real `ai_task.generate_data` service of Home Assistant's AI Task
integration, with the structure (title, summary) the integration asks for. The AI Task entity
is a small test-only platform: it stands in for a cloud or local LLM, which cannot run here,
and writes its answer from the facts it was given, so the test can check that the facts reached
it. Bad answers (too long, empty, a failing entity) must fall back to the server's summary.

Runs on the newest Home Assistant (./scripts/test-ha-newest); skipped on 2025.4.4, which has
no AI Task.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

from custom_components.smart_reid.const import DOMAIN

from .conftest import FakeServer, visit_payload

ai_task = pytest.importorskip(
    "homeassistant.components.ai_task",
    reason="Home Assistant's AI Task arrived in 2025.7; run ./scripts/test-ha-newest",
)
conversation = pytest.importorskip("homeassistant.components.conversation")


class FactsWriter(ai_task.AITaskEntity):  # type: ignore[misc,name-defined]
    """Answers from the visits in the instructions; `mode` makes it misbehave."""

    _attr_supported_features = ai_task.AITaskEntityFeature.GENERATE_DATA

    def __init__(self, name: str, mode: str = "good") -> None:
        self._attr_name = name
        self._attr_unique_id = name
        self.mode = mode
        self.tasks: list[Any] = []

    async def _async_generate_data(self, task: Any, chat_log: Any) -> Any:
        self.tasks.append(task)
        if self.mode == "error":
            raise RuntimeError("the model is overloaded")
        found = re.search(r"Visits \(JSON[^)]*\): (\[.*\])", task.instructions, re.S)
        facts = json.loads(found.group(1)) if found else []
        people = ", ".join(f"{f['person']} ({f['level']})" for f in facts)
        data: dict[str, Any] = {
            "title": f"{len(facts)} visits today",
            "summary": f"Seen: {people}.",
        }
        if self.mode == "long":
            data["summary"] = "x" * 1500
        elif self.mode == "empty":
            data["title"] = "  "
        return ai_task.GenDataTaskResult(conversation_id=chat_log.conversation_id, data=data)


@pytest.fixture
async def writers(hass: HomeAssistant) -> dict[str, FactsWriter]:
    """ai_task.<name> entities of a test integration, set up through a config entry."""
    entities = {
        mode: FactsWriter(f"Writer {mode}", mode) for mode in ("good", "long", "empty", "error")
    }

    async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, [Platform.AI_TASK])
        return True

    async def add_entities(
        hass: HomeAssistant, entry: ConfigEntry, add: AddConfigEntryEntitiesCallback
    ) -> None:
        add(list(entities.values()))

    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "ai_task", {})
    mock_integration(hass, MockModule("writer", async_setup_entry=setup_entry))
    mock_platform(hass, "writer.ai_task", MockPlatform(async_setup_entry=add_entities))
    mock_platform(hass, "writer.config_flow")
    entry = MockConfigEntry(domain="writer")
    entry.add_to_hass(hass)
    with mock_config_flow("writer", ConfigFlow):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entities


async def _summarize(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, "summarize", {"use_ai_task": entity_id}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


@pytest.fixture
def day(server: FakeServer) -> None:
    now = dt_util.now().timestamp()
    server.visits = [
        visit_payload("000000000001", now - 120, 60, level="high"),
        visit_payload("000000000002", now - 60, 30, label="Alice", known=True, level="low"),
    ]


async def test_the_ai_task_writes_the_summary(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    writers: dict[str, FactsWriter],
    day: None,
) -> None:
    response = await _summarize(hass, "ai_task.writer_good")
    assert response["source"] == "ai_task"
    assert response["title"] == "2 visits today"
    assert response["summary"].startswith("Seen: ")
    assert "Visitor 3 (high)" in response["summary"] and "Alice (low)" in response["summary"]
    assert "ai_task_error" not in response
    # Level, counts and pictures still come from the server.
    assert response["highest_level"] == "high"
    assert response["counts"]["visits"] == 2
    assert response["highlights"][0]["snapshot_url"].startswith("/api/smart_reid/")
    task = writers["good"].tasks[0]
    assert task.name == "Smart ReID summary"
    assert set(task.structure.schema) == {"title", "summary"}
    assert "never invent" in task.instructions


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("long", "has 1500 characters, more than 1000"),
        ("empty", "title is missing or empty"),
        ("error", "the model is overloaded"),
    ],
)
async def test_a_bad_answer_falls_back_to_the_server(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    writers: dict[str, FactsWriter],
    day: None,
    mode: str,
    why: str,
) -> None:
    response = await _summarize(hass, f"ai_task.writer_{mode}")
    assert writers[mode].tasks, "the AI Task was not asked"
    assert response["source"] == "rules"
    assert response["title"] == "2 visits, 1 strangers"
    assert why in response["ai_task_error"]


async def test_no_visits_no_ai(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    writers: dict[str, FactsWriter],
) -> None:
    """With nothing to tell, the model is not asked (it could only invent something)."""
    response = await _summarize(hass, "ai_task.writer_good")
    assert writers["good"].tasks == []
    assert response["source"] == "rules"
    assert "no visits" in response["ai_task_error"]


async def test_an_unknown_ai_task_entity_falls_back(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    writers: dict[str, FactsWriter],
    day: None,
) -> None:
    response = await _summarize(hass, "ai_task.gone")
    assert response["source"] == "rules"
    assert "ai_task.gone does not exist" in response["ai_task_error"]
