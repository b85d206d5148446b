"""MQTT side of the contract: retained states, events, the online/offline status and ingest.

The server must keep working while the broker is away, so nothing here ever blocks: paho-mqtt
runs its own network thread (with 1..60 s reconnect back-off), ``client.publish`` only queues,
and paho's callbacks are moved onto the asyncio loop with ``call_soon_threadsafe`` so all our
state lives on one thread. While disconnected, events are held in a bounded buffer (sightings
are given up first, because a later sighting says the same thing) and retained states are kept
as "latest per topic"; after every (re)connect info and every retained state are published
again, then the status, then the buffered events in their original order.

``online`` means "ready": it is held back until the app calls ``set_ready`` (models loaded,
inputs and HTTP up, ``info`` final), so Home Assistant never acts on a half-started server. The
broker keeps the previous ``offline`` (last will or clean stop) until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..ingest.sources import QuietLog
from ..types import Decision

_LOGGER = logging.getLogger(__name__)

QOS = 1
type MessageHandler = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class _Pending:
    topic: str
    payload: bytes
    droppable: bool


def to_payload(value: Any) -> bytes:
    """Compact UTF-8 JSON, the wire format of every JSON message in the contract."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Publisher:
    """One MQTT connection for everything the server publishes and the ingest subscription."""

    def __init__(self, cfg: Mapping[str, Any], *, client_id: str | None = None) -> None:
        self.enabled: bool = bool(cfg.get("enabled", True))
        self.host: str = str(cfg.get("host", "127.0.0.1"))
        self.port: int = int(cfg.get("port", 1883))
        self.base: str = str(cfg.get("base_topic", "smart_reid")).rstrip("/")
        self.publish_sightings: bool = bool(cfg.get("publish_sightings", True))
        self.buffer_size: int = int(cfg.get("buffer_size", 1000))
        self._username: str | None = cfg.get("username")
        self._password: str | None = cfg.get("password")
        self._client_id = cfg.get("client_id") or client_id or f"smart-reid-{uuid.uuid4().hex[:8]}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._retained: dict[str, bytes] = {}
        self._pending: deque[_Pending] = deque()
        self._subscriptions: dict[str, MessageHandler] = {}
        self._quiet = QuietLog(_LOGGER)
        self._unacked: set[int] = set()
        self._connected = False
        self._ever_connected = False
        self._problem: str | None = None
        self._stopping = False
        self._ready = False
        self.dropped_sightings = 0
        self.dropped_events = 0
        self.published = 0
        self.connects = 0

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def health_reasons(self) -> list[str]:
        """Why MQTT is not doing its job right now (empty when it is, or when disabled)."""
        if not self.enabled or self._connected:
            return []
        if self._problem:
            return [f"mqtt: {self._problem}"]
        return [f"mqtt: connecting to broker {self.host}:{self.port}"]

    def stats(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "connected": self._connected,
            "broker": f"{self.host}:{self.port}",
            "buffered": len(self._pending),
            "dropped_sightings": self.dropped_sightings,
            "dropped_events": self.dropped_events,
            "published": self.published,
            "connects": self.connects,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin connecting in paho's thread; returns at once even if the broker is down."""
        self._loop = loop
        if not self.enabled:
            return
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self._username:
            client.username_pw_set(self._username, self._password)
        client.will_set(self.topic("status"), b"offline", qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_connect_fail = self._paho_connect_fail
        client.on_subscribe = self._paho_subscribe
        for topic_filter in self._subscriptions:
            client.message_callback_add(topic_filter, self._paho_message)
        self._client = client
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()

    async def stop(self, grace_s: float = 3.0) -> None:
        """Say ``offline`` (retained), give queued messages a moment to leave, disconnect."""
        client, self._client = self._client, None
        self._stopping = True
        if client is None:
            return
        loop = asyncio.get_running_loop()
        if self._connected:
            info = client.publish(self.topic("status"), b"offline", qos=QOS, retain=True)
            await loop.run_in_executor(None, _wait_published, info, grace_s)
        self._connected = False
        client.disconnect()
        await loop.run_in_executor(None, client.loop_stop)

    def set_ready(self) -> None:
        """The server is fully up: publish ``online`` now and after every later (re)connect."""
        if self._ready:
            return
        self._ready = True
        if self._connected:
            self._send(self.topic("status"), b"online", retain=True)

    @property
    def ready(self) -> bool:
        return self._ready

    # -- publishing --------------------------------------------------------------------------

    def set_retained(self, suffix: str, value: Any | None) -> None:
        """Publish a retained state; ``None`` sends the empty payload that clears it."""
        topic = self.topic(suffix)
        payload = (
            b"" if value is None else (value if isinstance(value, bytes) else to_payload(value))
        )
        if self._retained.get(topic) == payload and payload:
            return
        self._retained[topic] = payload
        if self._connected and self._send(topic, payload, retain=True) and not payload:
            self._retained.pop(topic, None)

    def retained(self, suffix: str) -> bytes | None:
        return self._retained.get(self.topic(suffix))

    def event(self, name: str, value: Any, *, droppable: bool = False) -> None:
        """Publish ``B/events/<name>``; held in the buffer while disconnected."""
        if not self.enabled:
            return
        message = _Pending(self.topic(f"events/{name}"), to_payload(value), droppable)
        if self._connected and not self._pending and self._send(message.topic, message.payload):
            return
        self._hold(message)
        self._drain_pending()

    def sighting(self, value: Mapping[str, Any]) -> None:
        """A decision: always a sighting event, and a new_person event for a visit's first one."""
        if self.publish_sightings:
            self.event("sighting", value, droppable=True)
        if value.get("new_person"):
            self.event("new_person", value)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call ``handler(topic, payload)`` on the event loop for every message on the filter."""
        self._subscriptions[topic_filter] = handler
        if self._client is not None:
            self._client.message_callback_add(topic_filter, self._paho_message)
            if self._connected:
                self._track(self._client.subscribe(topic_filter, qos=QOS))

    def _hold(self, message: _Pending) -> None:
        if len(self._pending) >= self.buffer_size:
            victim = next((m for m in self._pending if m.droppable), None)
            if victim is not None:
                self._pending.remove(victim)
                self.dropped_sightings += 1
            else:
                self._pending.popleft()
                if self.dropped_events == 0:
                    _LOGGER.warning(
                        "MQTT buffer full (%d messages) while the broker is unreachable: "
                        "dropping the oldest events; raise mqtt.buffer_size to keep more",
                        self.buffer_size,
                    )
                self.dropped_events += 1
        self._pending.append(message)

    def _send(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.published += 1
            return True
        # NO_CONN: paho keeps QoS 1 messages and sends them after reconnecting by itself.
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            self.published += 1
            return True
        _LOGGER.debug("paho refused %s: %s", topic, mqtt.error_string(info.rc))
        return False

    def _flush(self) -> None:
        """After a (re)connect: info and every retained state, ``online`` (once ready), then
        the buffered events; a reader that sees ``online`` already has the full state."""
        client = self._client
        if client is None or not self._connected:
            return
        self._unacked.clear()
        for topic_filter in self._subscriptions:
            self._track(client.subscribe(topic_filter, qos=QOS))
        info_topic = self.topic("info")
        ordered = sorted(self._retained, key=lambda t: (t != info_topic, t))
        for topic in ordered:
            payload = self._retained[topic]
            if self._send(topic, payload, retain=True) and not payload:
                del self._retained[topic]
        if self._ready:
            self._send(self.topic("status"), b"online", retain=True)
        self._drain_pending()

    def _track(self, result: tuple[int, int | None]) -> None:
        if result[0] == mqtt.MQTT_ERR_SUCCESS and result[1] is not None:
            self._unacked.add(result[1])

    @property
    def subscribed(self) -> bool:
        """Connected and every subscription acknowledged by the broker (ingest is live)."""
        return self._connected and not self._unacked

    def _drain_pending(self) -> None:
        """Send held events from the oldest while connected; stop at the first refusal."""
        while self._pending and self._connected:
            message = self._pending[0]
            if not self._send(message.topic, message.payload):
                break
            self._pending.popleft()

    # -- paho callbacks (paho's thread) -> event loop ------------------------------------------

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, *args)

    def _paho_connect(
        self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._to_loop(self._on_connect, bool(reason.is_failure), str(reason))

    def _paho_disconnect(
        self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._to_loop(self._on_disconnect, str(reason))

    def _paho_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._to_loop(self._on_connect_fail)

    def _paho_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._to_loop(self._unacked.discard, mid)

    def _paho_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._to_loop(self._on_message, message.topic, bytes(message.payload))

    def _on_connect(self, failed: bool, reason: str) -> None:
        if failed:
            self._connected = False
            self._problem = f"broker {self.host}:{self.port} refused the connection: {reason}"
            _LOGGER.warning("MQTT %s; check mqtt.username/password", self._problem)
            return
        self._connected = True
        self._problem = None
        self.connects += 1
        level = logging.INFO
        _LOGGER.log(
            level,
            "MQTT %s to %s:%d",
            "reconnected" if self._ever_connected else "connected",
            self.host,
            self.port,
        )
        self._ever_connected = True
        self._flush()

    def _on_disconnect(self, reason: str) -> None:
        was = self._connected
        self._connected = False
        if self._stopping:
            return
        self._problem = f"broker {self.host}:{self.port} unreachable (disconnected: {reason})"
        if was:
            _LOGGER.warning("MQTT connection lost (%s); retrying with back-off", reason)

    def _on_connect_fail(self) -> None:
        self._connected = False
        if self._problem is None or "unreachable" not in self._problem:
            _LOGGER.warning(
                "MQTT broker %s:%d unreachable; processing continues, retrying with back-off",
                self.host,
                self.port,
            )
        self._problem = f"broker {self.host}:{self.port} unreachable"

    def _on_message(self, topic: str, payload: bytes) -> None:
        for topic_filter, handler in self._subscriptions.items():
            if mqtt.topic_matches_sub(topic_filter, topic):
                try:
                    handler(topic, payload)
                except Exception:
                    # Handlers catch their own input errors; this is a bug, logged with its
                    # traceback, but rate-limited so a flood of messages cannot flood the log.
                    self._quiet.warning(
                        f"handler:{topic_filter}", "handler for %s failed", topic, exc_info=True
                    )


def _wait_published(info: mqtt.MQTTMessageInfo, timeout: float) -> None:
    with contextlib.suppress(RuntimeError, ValueError):
        info.wait_for_publish(timeout)


def decision_json(decision: Decision, thumbnails: dict[str, str | None]) -> dict[str, Any]:
    """A Decision as published and answered: the contract adds the two image URLs."""
    payload = decision.to_json()
    payload["snapshot_url"] = f"/api/visits/{decision.visit_id}/snapshot.jpg"
    payload["thumbnail_url"] = thumbnails.get(decision.person_id)
    return payload
