"""Camera sources that push frames into the pipeline by themselves: Frigate, streams, folders, edge.

Each source turns what a camera system already produces (a Frigate event, an RTSP stream, a JPEG
an FTP camera dropped into a folder, an edge detector's MQTT message) into a ``Frame`` and hands it
to a ``FrameSink`` (the pipeline). Handing over never blocks: the pipeline answers at once whether
the frame was queued, so a slow machine drops frames instead of stalling a camera.

This module holds what the sources share: the ``sources`` configuration section, the sink
protocol, a small MQTT subscriber for sources whose broker differs from the app's, and
``ingest.start.start_sources``, which the app calls once at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp
import paho.mqtt.client as mqtt
import voluptuous as vol
from paho.mqtt.enums import CallbackAPIVersion

from ..types import CAMERA_NAME, Frame

if TYPE_CHECKING:
    pass

_LOGGER = logging.getLogger(__name__)

type MessageHandler = Callable[[str, bytes], None]


class FrameSink(Protocol):
    """Where sources deliver frames. Called on the event loop thread; must not block.

    Returns False when the frame was dropped (queue full, unknown camera): sources count it.
    A sink that also has ``submit(frame) -> awaitable`` (the pipeline does) gets watched-folder
    pictures through ``submit``, one at a time, so a backlog of files waits on disk instead of
    pushing frames out of the camera's queue.
    """

    def offer(self, frame: Frame) -> bool: ...


class SettingsLike(Protocol):
    """The validated settings (``config.Settings``): only their raw mapping is read here."""

    @property
    def raw(self) -> dict[str, Any]: ...


class MessageSubscriber(Protocol):
    """An MQTT connection that calls ``handler(topic, payload)`` on the event loop.

    The app's ``publish.Publisher`` satisfies it, so sources on the app's broker share its
    connection; ``MqttSubscriber`` below is the stand-alone version.
    """

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None: ...


# -- configuration ---------------------------------------------------------------------------


def finite_number(value: Any) -> float:
    """Voluptuous validator for payload numbers: a real int or float, finite (not bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise vol.Invalid(f"expected a finite number, got {value!r}")
    return float(value)


def camera_name(value: Any) -> str:
    """Voluptuous validator for a camera name (also used by the settings schema)."""
    name = str(value)
    if not CAMERA_NAME.match(name):
        raise vol.Invalid(
            f"camera name {name!r} must be 1-64 characters of a-z, 0-9 and _ (e.g. front_door)"
        )
    return name


def _http_url(value: Any) -> str:
    url = str(value).rstrip("/")
    if not re.match(r"^https?://[^\s/]+", url):
        raise vol.Invalid(f"{value!r} must be an http:// or https:// URL, e.g. http://frigate:5000")
    return url


def _topic_filter(value: Any) -> str:
    topic = str(value)
    if not topic or " " in topic or "#" in topic[:-1]:
        raise vol.Invalid(f"{value!r} is not a valid MQTT topic filter")
    return topic


def _positive(maximum: float) -> vol.All:
    return vol.All(vol.Coerce(float), vol.Range(min=0.0, min_included=False, max=maximum))


_PROBABILITY = vol.All(vol.Coerce(float), vol.Range(min=0.0, max=1.0))

# A broker other than the app's (mqtt section), e.g. the one Frigate publishes to.
MQTT_OVERRIDE_SCHEMA = vol.Schema(
    {
        vol.Required("host"): str,
        vol.Optional("port", default=1883): vol.All(int, vol.Range(min=1, max=65535)),
        vol.Optional("username", default=None): vol.Any(None, str),
        vol.Optional("password", default=None): vol.Any(None, str),
    }
)

FRIGATE_SCHEMA = vol.Schema(
    {
        vol.Required("url"): _http_url,
        vol.Optional("topic", default="frigate/events"): _topic_filter,
        vol.Optional("camera_map", default={}): {str: camera_name},
        vol.Optional("min_score", default=0.6): _PROBABILITY,
        # full: the whole frame plus Frigate's box (no second detection).
        # crop: Frigate's crop around the person; our detector finds the box in it.
        vol.Optional("snapshot", default="full"): vol.In(["full", "crop"]),
        vol.Optional("zones", default=[]): [str],
        vol.Optional("fetch_timeout_s", default=10.0): _positive(120.0),
        vol.Optional("max_snapshot_mb", default=20): vol.All(int, vol.Range(min=1, max=512)),
        vol.Optional("mqtt", default=None): vol.Any(None, MQTT_OVERRIDE_SCHEMA),
    }
)

STREAM_SCHEMA = vol.Schema(
    {
        vol.Required("camera"): camera_name,
        vol.Required("url"): vol.All(str, vol.Length(min=1)),
        # Kept out of the URL so /api/settings can redact the password.
        vol.Optional("username", default=None): vol.Any(None, str),
        vol.Optional("password", default=None): vol.Any(None, str),
        vol.Optional("sample_fps", default=2.0): _positive(60.0),
        vol.Optional("motion_gate", default=True): bool,
        # Share of the (downscaled) picture that must change to count as motion.
        vol.Optional("motion_threshold", default=0.002): _PROBABILITY,
        # None: network URLs are live (reconnect forever), local files are not.
        vol.Optional("live", default=None): vol.Any(None, bool),
        # Files only: start again at the end instead of stopping.
        vol.Optional("loop", default=False): bool,
        # Files only: pace decoding at the video's own speed, like a live camera.
        vol.Optional("realtime", default=True): bool,
        vol.Optional("rtsp_transport", default="tcp"): vol.In(["tcp", "udp"]),
        vol.Optional("timeout_s", default=10.0): _positive(300.0),
    }
)

FOLDER_SCHEMA = vol.Schema(
    {
        vol.Required("root"): vol.All(str, vol.Length(min=1)),
        vol.Optional("poll_interval_s", default=1.0): _positive(3600.0),
        # A file counts as complete when its size and mtime did not change for this long.
        vol.Optional("settle_s", default=2.0): vol.All(vol.Coerce(float), vol.Range(min=0.0)),
        vol.Optional("extensions", default=["jpg", "jpeg", "png"]): [
            vol.All(str, lambda ext: ext.lower().lstrip("."))
        ],
        vol.Optional("delete_after", default=False): bool,
        # Files older than this (by mtime) when first seen are ignored: a backlog is not news.
        vol.Optional("max_age_s", default=3600.0): vol.Any(None, _positive(10 * 365 * 86400.0)),
        vol.Optional("max_image_mb", default=20): vol.All(int, vol.Range(min=1, max=512)),
    }
)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, Mapping) else value


def _url_prefix(value: Any) -> str:
    text = str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise vol.Invalid(
            f"{value!r} must be an http:// or https:// URL prefix, e.g. http://jetson:8080/frames/"
        )
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise vol.Invalid(f"{value!r}: a URL prefix has no user, password, query or fragment")
    return text


EDGE_SCHEMA = vol.Schema(
    {
        vol.Optional("enabled", default=False): bool,
        # Where envelopes may point the server for their pictures (frame.url). Empty: URL
        # frames are refused, only inline base64 pictures are taken (docs/security.md).
        vol.Optional("allowed_url_prefixes", default=[]): [_url_prefix],
        # None: <mqtt.base_topic>/edge/+ (one sub-topic per device).
        vol.Optional("topic", default=None): vol.Any(None, _topic_filter),
        vol.Optional("max_frame_mb", default=10): vol.All(int, vol.Range(min=1, max=512)),
        vol.Optional("fetch_timeout_s", default=5.0): _positive(120.0),
        vol.Optional("mqtt", default=None): vol.Any(None, MQTT_OVERRIDE_SCHEMA),
    }
)

SOURCES_SCHEMA = vol.Schema(
    {
        vol.Optional("frigate", default=None): vol.Any(None, FRIGATE_SCHEMA),
        vol.Optional("streams", default=[]): [STREAM_SCHEMA],
        vol.Optional("folders", default=[]): vol.All(_one_or_many, [FOLDER_SCHEMA]),
        vol.Optional("edge", default={}): EDGE_SCHEMA,
    }
)


# -- shared helpers --------------------------------------------------------------------------


class QuietLog:
    """Logs a recurring problem once per ``every_s`` per key, with how often it was repeated.

    A camera that sends the same bad message ten times a second must not bury the log, and
    neither may one that sends a different bad message every time: beyond ``max_lines`` lines
    per ``every_s`` in all, further problems are only counted, and the count is reported once
    the window has passed.
    """

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, max_lines: int = 30) -> None:
        self._logger = logger
        self._every_s = every_s
        self._max_lines = max_lines
        self._last: dict[str, tuple[float, int]] = {}
        self._window_start = -math.inf
        self._window_lines = 0
        self._suppressed = 0

    def warning(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._every_s:
            self._last[key] = (last[0], last[1] + 1)
            return
        if now - self._window_start >= self._every_s:
            if self._suppressed:
                self._logger.warning(
                    "%d more problems were not logged in the last %.0f s (log rate limit)",
                    self._suppressed,
                    self._every_s,
                )
            self._window_start, self._window_lines, self._suppressed = now, 0, 0
        if self._window_lines >= self._max_lines:
            self._suppressed += 1
            return
        self._window_lines += 1
        repeats = last[1] if last else 0
        if repeats:
            message += " (repeated %d times since the last report)"
            args = (*args, repeats)
        self._logger.warning(message, *args, exc_info=exc_info)
        if len(self._last) > 4096:
            self._last.clear()
        self._last[key] = (now, 0)


@dataclass(slots=True)
class SourceStats:
    """What a source did, for health and diagnostics."""

    received: int = 0  # messages, files or sampled frames looked at
    offered: int = 0  # frames the sink accepted
    dropped: int = 0  # frames the sink refused
    rejected: int = 0  # bad input (logged)
    state: str = "starting"
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BackgroundTasks:
    """The work a message source has started on the event loop (downloads, decodes).

    MQTT handlers must return at once, so each message's work runs as a task; this keeps
    them referenced until done, and lets the source stop (cancel) or drain (wait) them.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopped = False

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Refuse new work and cancel what is running."""
        self.stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until everything started so far has finished (tests, shut-down)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def offer(sink: FrameSink, frame: Frame, stats: SourceStats) -> bool:
    """Hand a frame to the sink (event loop thread), stamping its arrival time."""
    frame.received_monotonic = time.monotonic()
    try:
        accepted = bool(sink.offer(frame))
    except Exception:
        _LOGGER.exception("the pipeline failed to accept a frame from %s", frame.camera)
        accepted = False
    if accepted:
        stats.offered += 1
    else:
        stats.dropped += 1
    return accepted


async def fetch_bytes(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    max_bytes: int,
    timeout_s: float,
) -> bytes:
    """GET a picture with a time limit and a size limit checked while reading.

    Redirects are never followed (a camera or Frigate that answers with one is misconfigured,
    and following it would let whoever controls the answer make this server fetch any URL).
    Raises ``FetchError`` with a message naming the URL and the problem.
    """
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.get(
            url, params=params, timeout=timeout, allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                raise FetchError(
                    f"{url} answered a redirect (HTTP {response.status}); redirects are not "
                    "followed: configure the final URL",
                    status=response.status,
                )
            if response.status != 200:
                raise FetchError(f"{url} answered HTTP {response.status}", status=response.status)
            if response.content_length is not None and response.content_length > max_bytes:
                raise FetchError(
                    f"{url} is {response.content_length} bytes, over the {max_bytes} byte limit"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url} is over the {max_bytes} byte limit")
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError:
        raise FetchError(f"{url} did not answer within {timeout_s:g} s") from None
    except (aiohttp.ClientError, ValueError) as err:  # ValueError: a URL yarl cannot parse
        raise FetchError(f"{url} could not be fetched: {err}") from None


def _origin(parts: Any) -> tuple[str, str, int]:
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def url_allowed(url: str, prefixes: Sequence[str]) -> bool:
    """Whether ``url`` lies under one of ``prefixes`` (same scheme, host and port, and a path
    below the prefix's). URLs with credentials, dot segments or encoded slashes are refused,
    so a path cannot climb out of the prefix after normalisation."""
    try:
        parts = urlsplit(url)
        origin = _origin(parts)
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or "\\" in url:
        return False
    raw_path = parts.path or "/"
    lowered = raw_path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%2e" in lowered:
        return False
    if any(segment in (".", "..") for segment in unquote(raw_path).split("/")):
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if _origin(allowed) != origin:
            continue
        base = allowed.path or "/"
        if raw_path == base or raw_path.startswith(base if base.endswith("/") else base + "/"):
            return True
    return False


class FetchError(Exception):
    """A picture could not be fetched; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MqttSubscriber:
    """A paho-mqtt connection that only subscribes, for sources on a broker of their own.

    paho runs its network thread with 1..60 s reconnect back-off; messages are moved onto the
    event loop so handlers never race with the rest of the server.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        name: str = "source",
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.connected = False
        self._username = username
        self._password = password
        self._handlers: dict[str, MessageHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._warned = False
        self._quiet = QuietLog(_LOGGER)
        self._unacked: set[int] = set()
        # Set once the broker acknowledged every subscription (messages published after that
        # reach us); cleared while disconnected.
        self.ready = asyncio.Event()

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Add a subscription; before ``start`` or at any time after (event loop thread)."""
        self._handlers[topic_filter] = handler
        if self._client is None:
            return
        # Not connected yet: paho refuses, and the on-connect callback subscribes it instead.
        rc, mid = self._client.subscribe(topic_filter, qos=1)
        if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._unacked.add(mid)
            self.ready.clear()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"smart-reid-{self.name}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self._username:
            client.username_pw_set(self._username, self._password)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_connect_fail = self._paho_connect_fail
        client.on_message = self._paho_message
        client.on_subscribe = self._paho_subscribe
        self._client = client
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        await asyncio.get_running_loop().run_in_executor(None, client.loop_stop)
        self.connected = False

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, *args)

    def _paho_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        mids: set[int] = set()
        if not reason.is_failure:
            for topic_filter in list(self._handlers):
                _rc, mid = client.subscribe(topic_filter, qos=1)
                if mid is not None:
                    mids.add(mid)
        self._to_loop(self._on_connect, bool(reason.is_failure), str(reason), mids)

    def _paho_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        self._to_loop(self._on_subscribed, mid)

    def _paho_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._to_loop(self._on_disconnect, str(reason))

    def _paho_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._to_loop(self._on_disconnect, "connection failed")

    def _paho_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._to_loop(self._on_message, message.topic, bytes(message.payload))

    def _on_connect(self, failed: bool, reason: str, mids: set[int]) -> None:
        if failed:
            _LOGGER.warning(
                "%s: MQTT broker %s:%d refused the connection (%s); check the credentials",
                self.name,
                self.host,
                self.port,
                reason,
            )
            return
        self.connected = True
        self._warned = False
        self._unacked |= mids
        if not self._unacked:
            self.ready.set()
        _LOGGER.info("%s: subscribed on MQTT broker %s:%d", self.name, self.host, self.port)

    def _on_disconnect(self, reason: str) -> None:
        self.connected = False
        self.ready.clear()
        if self._client is not None and not self._warned:
            self._warned = True
            _LOGGER.warning(
                "%s: MQTT broker %s:%d unreachable (%s); retrying with back-off",
                self.name,
                self.host,
                self.port,
                reason,
            )

    def _on_subscribed(self, mid: int) -> None:
        self._unacked.discard(mid)
        if self.connected and not self._unacked:
            self.ready.set()

    def _on_message(self, topic: str, payload: bytes) -> None:
        for topic_filter, handler in self._handlers.items():
            if mqtt.topic_matches_sub(topic_filter, topic):
                try:
                    handler(topic, payload)
                except Exception:
                    self._quiet.warning(
                        f"handler:{topic_filter}",
                        "%s: handling a message on %s failed",
                        self.name,
                        topic,
                        exc_info=True,
                    )


# -- start-up --------------------------------------------------------------------------------


class Source(Protocol):
    """What ``Sources`` needs from each running source."""

    name: str
    stats: SourceStats

    async def stop(self) -> None: ...


@dataclass(slots=True)
class Sources:
    """The running sources; the app keeps it to report health and to stop them at shut-down."""

    sources: list[Source] = field(default_factory=list)
    subscribers: list[MqttSubscriber] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None
    owns_session: bool = False
    declared_cameras: list[str] = field(default_factory=list)

    def status(self) -> list[dict[str, Any]]:
        """One entry per source: name, state, counters and the current problem if any."""
        report = []
        for source in self.sources:
            stats = source.stats
            report.append(
                {
                    "source": source.name,
                    "state": stats.state,
                    "problem": stats.problem,
                    "received": stats.received,
                    "offered": stats.offered,
                    "dropped": stats.dropped,
                    "rejected": stats.rejected,
                    **stats.extra,
                }
            )
        return report

    def health_reasons(self) -> list[str]:
        """Problems a user should see in /api/health (a camera that cannot be reached)."""
        return [
            f"{source.name}: {source.stats.problem}"
            for source in self.sources
            if source.stats.problem
        ]

    async def stop(self) -> None:
        for source in self.sources:
            try:
                await source.stop()
            except Exception:
                _LOGGER.exception("stopping %s failed", source.name)
        for subscriber in self.subscribers:
            await subscriber.stop()
        if self.session is not None and self.owns_session:
            await self.session.close()
        self.sources.clear()
        self.subscribers.clear()
