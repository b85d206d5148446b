"""Starting the configured frame sources (``start_sources``, called once by the app at start-up).

Kept apart from ``sources.py`` (the shared plumbing every source imports) so that module does not
import the sources built on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from .edge import EdgeSource
from .folder import FolderSource
from .frigate import FrigateSource
from .sources import (
    SOURCES_SCHEMA,
    FrameSink,
    MessageSubscriber,
    MqttSubscriber,
    SettingsLike,
    Sources,
)
from .stream import StreamSource

if TYPE_CHECKING:
    from ..vision.decode import BoxBudget

_LOGGER = logging.getLogger(__name__)


def _subscriber_for(
    override: Mapping[str, Any] | None,
    app_mqtt: Mapping[str, Any],
    app_subscriber: MessageSubscriber | None,
    name: str,
    running: Sources,
) -> MessageSubscriber | None:
    """The app's connection, or a new (not yet started) one for a broker of the source's own."""
    if override is None and app_subscriber is not None:
        return app_subscriber
    settings = override or app_mqtt
    if override is None and not app_mqtt.get("enabled", True):
        _LOGGER.error(
            "%s needs MQTT but mqtt.enabled is false; enable mqtt or give sources.%s.mqtt",
            name,
            name,
        )
        return None
    subscriber = MqttSubscriber(
        host=str(settings["host"]),
        port=int(settings.get("port", 1883)),
        username=settings.get("username"),
        password=settings.get("password"),
        name=name,
    )
    running.subscribers.append(subscriber)
    return subscriber


async def start_sources(
    settings: SettingsLike,
    sink: FrameSink,
    *,
    subscriber: MessageSubscriber | None = None,
    session: aiohttp.ClientSession | None = None,
    boxes: BoxBudget | None = None,
    streams: bool = True,
) -> Sources:
    """Start every configured source; they run until ``Sources.stop()``.

    ``sink``: the pipeline (``offer(frame) -> bool``, called on the event loop).
    ``subscriber``: the app's MQTT connection (``publish.Publisher``); Frigate and edge sources
    share it unless their section names a broker of its own. ``session``: an aiohttp session
    to reuse for snapshot fetches (one is made otherwise). ``boxes``: the app's limit on boxes
    supplied with a frame (edge envelopes). ``streams``: False on a cluster's matcher, where
    the worker holding each stream's camera decodes it (cluster/feeds.py); the cameras are
    still declared. A source that cannot start logs why and the others start anyway.
    """
    config: dict[str, Any] = settings.raw.get("sources") or SOURCES_SCHEMA({})
    app_mqtt = settings.raw.get("mqtt") or {}
    loop = asyncio.get_running_loop()
    running = Sources()
    needs_http = config["frigate"] is not None or config["edge"]["enabled"]
    if needs_http:
        running.session = session or aiohttp.ClientSession()
        running.owns_session = session is None

    frigate_cfg = config["frigate"]
    if frigate_cfg is not None:
        assert running.session is not None
        mqtt_link = _subscriber_for(frigate_cfg["mqtt"], app_mqtt, subscriber, "frigate", running)
        if mqtt_link is not None:
            frigate = FrigateSource(frigate_cfg, sink, running.session)
            frigate.attach(mqtt_link)
            running.sources.append(frigate)
            running.declared_cameras.extend(frigate_cfg["camera_map"].values())

    for stream_cfg in config["streams"]:
        running.declared_cameras.append(stream_cfg["camera"])
        if not streams:
            continue
        stream = StreamSource(stream_cfg, sink, loop)
        stream.start()
        running.sources.append(stream)

    for folder_cfg in config["folders"]:
        folder = FolderSource(folder_cfg, sink, data_dir=Path(settings.raw.get("data_dir", ".")))
        try:
            await folder.start()
        except OSError as err:
            _LOGGER.error(
                "watched folder %s cannot be used (%s); fix sources.folders.root",
                folder_cfg["root"],
                err,
            )
            continue
        running.sources.append(folder)

    edge_cfg = config["edge"]
    if edge_cfg["enabled"]:
        assert running.session is not None
        mqtt_link = _subscriber_for(edge_cfg["mqtt"], app_mqtt, subscriber, "edge", running)
        if mqtt_link is not None:
            topic = edge_cfg["topic"] or f"{app_mqtt.get('base_topic', 'smart_reid')}/edge/+"
            edge = EdgeSource(edge_cfg, sink, running.session, topic=topic, boxes=boxes)
            edge.attach(mqtt_link)
            running.sources.append(edge)

    for own in running.subscribers:
        own.start(loop)  # after every source subscribed, so none misses the first connect
    if running.sources:
        _LOGGER.info("camera sources started: %s", ", ".join(s.name for s in running.sources))
    if config["streams"] and not streams:
        _LOGGER.info(
            "video streams run on the workers (cluster): %s",
            ", ".join(c["camera"] for c in config["streams"]),
        )
    return running
