"""The `smart_reid.summarize` action: "what happened between A and B", as response data.

The server side is conftest's FakeServer answering `GET /api/summary` as docs/contract.md
agrees; the action runs through Home Assistant's real service registry. The AI Task path
(Home Assistant 2025.7 and later) is in test_summarize_ai_task.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_reid.const import DOMAIN

from .conftest import TOKEN, FakeServer, visit_payload


async def _summarize(hass: HomeAssistant, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, "summarize", data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


def _asked(server: FakeServer) -> dict[str, float]:
    """start and end of the server's last GET /api/summary."""
    path = next(p for m, p in reversed(server.requests) if p.startswith("/api/summary"))
    query = parse_qs(urlsplit(path).query)
    return {"start": float(query["start"][0]), "end": float(query["end"][0])}


async def test_today_by_default(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """Without a period the action tells today since midnight (Home Assistant's time zone)
    until now, with the server's pictures re-signed for Home Assistant and no token."""
    await hass.config.async_set_time_zone("Pacific/Auckland")
    now = dt_util.now()
    midnight = dt_util.start_of_local_day()
    server.visits = [
        # Half-way into today: also when the test runs minutes after midnight there.
        visit_payload("000000000001", (midnight + (now - midnight) / 2).timestamp(), level="low"),
        visit_payload(
            "000000000002",
            (midnight - timedelta(hours=3)).timestamp(),  # yesterday: not asked for
            level="critical",
        ),
    ]
    if now - midnight > timedelta(minutes=10):
        server.visits.append(
            visit_payload(
                "000000000003", (now - timedelta(minutes=2)).timestamp(), None, level="high"
            )
        )
    response = await _summarize(hass)

    asked = _asked(server)
    assert asked["start"] == pytest.approx(midnight.timestamp(), abs=0.01)
    assert asked["end"] == pytest.approx(now.timestamp(), abs=5)
    assert response["source"] == "rules"
    assert response["title"] and response["summary"]
    visits = {h["visit_id"] for h in response["highlights"]}
    assert "000000000002" not in visits and "000000000001" in visits
    expected_highest = "high" if len(server.visits) == 3 else "low"
    assert response["highest_level"] == expected_highest
    assert response["counts"]["visits"] == len(visits)
    first = response["highlights"][0]
    assert first["level"] == expected_highest
    url = first["snapshot_url"]
    assert url.startswith(f"/api/smart_reid/{loaded_entry.entry_id}/visits/{first['visit_id']}/")
    assert "authSig=" in url
    assert TOKEN not in str(response) and server.url not in str(response)
    assert datetime.fromisoformat(response["start"]) == midnight
    assert "facts" not in response


async def test_a_chosen_period_and_the_servers_llm(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """A period given without a time zone is in Home Assistant's; an LLM-written summary
    of the server says so in `source`."""
    await hass.config.async_set_time_zone("Europe/Berlin")
    server.summary = {
        "source": "llm",
        "title": "A stranger at night",
        "summary": "At 02:47 a stranger went from the street to the back garden.",
        "counts": {"visits": 1},
        "highest_level": "critical",
        "highlights": [],
        "facts": [],
    }
    response = await _summarize(hass, start="2026-11-20 00:00:00", end="2026-11-21 06:00:00")
    berlin = dt_util.get_time_zone("Europe/Berlin")
    assert _asked(server) == {
        "start": datetime(2026, 11, 20, tzinfo=berlin).timestamp(),
        "end": datetime(2026, 11, 21, 6, tzinfo=berlin).timestamp(),
    }
    assert response["source"] == "llm"
    assert response["title"] == "A stranger at night"
    assert response["highest_level"] == "critical"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"start": "2026-11-21 10:00:00", "end": "2026-11-21 09:00:00"}, "summary_period"),
        ({"start": "2026-10-01 00:00:00", "end": "2026-11-21 00:00:00"}, "summary_period_too_long"),
    ],
)
async def test_a_bad_period_names_the_problem(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    data: dict[str, str],
    key: str,
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await _summarize(hass, **data)
    assert err.value.translation_key == key
    assert not any(p.startswith("/api/summary") for _, p in server.requests)


async def test_server_offline_is_a_clear_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    await server.stop()
    with pytest.raises(HomeAssistantError) as err:
        await _summarize(hass)
    assert err.value.translation_key == "cannot_connect"
    assert "Cannot reach the Smart ReID server Smart ReID" in str(err.value)


async def test_a_server_without_summaries_says_update(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """A server from before GET /api/summary answers 404: the message says to update it."""
    server.summary_status = 404
    with pytest.raises(HomeAssistantError) as err:
        await _summarize(hass)
    assert err.value.translation_key == "summary_unsupported"


async def test_ai_task_not_available_falls_back_with_the_reason(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """Asking for an AI Task where Home Assistant has none (before 2025.7, or no AI
    integration set up): the server's summary, and the response says why."""
    server.visits = [visit_payload("000000000001", dt_util.now().timestamp() - 60)]
    response = await _summarize(hass, use_ai_task="ai_task.openai")
    assert response["source"] == "rules"
    assert "2025.7" in response["ai_task_error"]


async def test_a_summary_without_text_is_a_server_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """A server answering a summary without its title is refused with the reason."""
    server.summary = {"source": "rules", "title": " ", "summary": "Nobody came."}
    with pytest.raises(HomeAssistantError) as err:
        await _summarize(hass)
    assert err.value.translation_key == "server_error"
    assert "title is missing or empty" in str(err.value)
