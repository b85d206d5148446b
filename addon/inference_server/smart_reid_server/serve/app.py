"""The running server: builds every part in a safe order, wires them, and takes them down again.

Start-up order matters for what a user sees when something is wrong: the data dir and the models
come first (a missing or corrupt model is a clear start-up error, not a half-working server),
then the identity store, then MQTT (never waits for the broker), the pipeline and its inputs,
and the HTTP API last, so ``/api/health`` only answers once frames can be processed.

Shutdown (SIGTERM/SIGINT) runs the other way round: stop taking frames, finish the ones in
flight, publish ``offline``, close the store. Nothing committed to the store is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from aiohttp import web

from .. import __version__
from ..config import Settings
from ..errors import EXIT_LOST_LEADERSHIP, StartupError
from ..identity.identities import (
    Identities,
    ObserveResult,
    SearchHit,
    VisitEvent,
    VisitEventReason,
)
from ..identity.match import centering_enabled, gallery_threshold
from ..identity.outages import before_identity_work, store_outage
from ..identity.store import IdentityStore, StoreError, StoreUnavailableError
from ..identity.stores import open_store
from ..ingest.mqtt import MqttIngest
from ..models.devices import DeviceChoice
from ..models.download import ModelManager
from ..models.errors import ModelError
from ..models.loading import inference_threads, load_models
from ..pipeline import FrameResult, IdentityThread, Pipeline, quality_crops
from ..risk import RiskConfig, RiskMonitor
from ..risk.llm import LlmConfig, NarrativeError, Narrator
from ..risk.summary import list_visits, narrate, rules_summary
from ..types import Decision, Detection, Frame, Image
from ..vision.crops import bounded_crops, extract_crops
from ..vision.decode import BoxBudget
from ..vision.detect import Detector
from ..vision.embed import Embedder
from ..vision.snapshots import Marker, render_jpeg
from ..vision.tracker import Tracks
from ..vision.zones import ZoneConfig, ZoneEvent, ZoneWatcher, foot_point
from .publish import Publisher, decision_json
from .states import StatePublisher, StateView, gather
from .stats import CameraBook, LatencyStats

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

CONTRACT_VERSION = 1
SERVER_ID_FILE = "server_id"
STATE_REFRESH_S = 2.0
OVERLOAD_WINDOW_S = 60.0
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})
# Interfaces of containers and VM bridges: not where Home Assistant reaches the server.
_VIRTUAL_PREFIXES = ("lo", "docker", "veth", "br-", "virbr", "hassio", "cni", "flannel")


def load_server_id(data_dir: Path) -> str:
    """A stable id for this installation (the integration keys its config entry on it)."""
    path = data_dir / SERVER_ID_FILE
    with contextlib.suppress(OSError):
        text = path.read_text("ascii").strip()
        if len(text) == 12 and all(c in "0123456789abcdef" for c in text):
            return text
    server_id = secrets.token_hex(6)
    path.write_text(server_id + "\n", "ascii")
    return server_id


def machine_address() -> str:
    """An address of this machine that other hosts can reach, for ``info.http_url``.

    The hostname's address first; when that is loopback (common in containers and on Debian,
    where /etc/hosts maps the hostname to 127.0.1.1), the first non-loopback IPv4 address of a
    physical-looking interface (Linux); the bare hostname as the last resort. No packet is sent.
    """
    hostname = socket.gethostname()
    with contextlib.suppress(OSError):
        address = socket.gethostbyname(hostname)
        if not ipaddress.ip_address(address).is_loopback:
            return address
    addresses = _interface_addresses()
    return addresses[0] if addresses else hostname


def _interface_addresses() -> list[str]:
    """Non-loopback IPv4 addresses of the machine's interfaces (empty where unsupported)."""
    try:
        import fcntl
        import struct

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError, AttributeError):
        return []
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            if name.startswith(_VIRTUAL_PREFIXES):
                continue
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(sock.fileno(), 0x8915, request)  # SIOCGIFADDR
            except OSError:
                continue  # no IPv4 address on this interface
            address = socket.inet_ntoa(reply[20:24])
            if not ipaddress.ip_address(address).is_loopback:
                found.append(address)
    return found


def url_host(host: str) -> str:
    """``host`` as it goes into a URL (IPv6 literals in brackets)."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    return host


class SmartReidApp:
    """One Smart ReID server instance (see the module docstring)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        # Frame-time clock for visit expiry and presence (the demo replays video time).
        self.clock = clock
        # Told (frame time, kept id, dropped id) of every automatic merge (evaluations).
        self.on_merged: Callable[[float, str, str], None] | None = None
        self.state = "starting"
        self.started_at = time.time()
        self.server_id = ""
        self.latency = LatencyStats()
        # One frame costs at most detect.max_persons embeddings, however its boxes came in.
        self.boxes = BoxBudget(max_persons=int(settings.section("detect")["max_persons"]))
        self.cameras = CameraBook(
            settings.cameras, auto_add=bool(settings.raw.get("auto_add_cameras", False))
        )
        self.cameras.on_added = self._camera_added
        self.publisher = Publisher(settings.section("mqtt"))
        self.states = StatePublisher(self.publisher, self.cameras)
        # Used only on the identity thread (it reads the store); results travel in StateView.
        self.risk = RiskMonitor(RiskConfig.from_section(settings.section("risk")))
        # Zones and lines (zones.py): also used only on the identity thread.
        self.zones = ZoneWatcher(ZoneConfig.from_section(settings.section("zones")))
        self.risk.zones.gap_s = self.zones.config.lost_after_s
        self.cameras.layout = self.zones.config.layout
        # The optional LLM narrative: after the rule assessment went out, never before.
        self.narrator = Narrator(
            LlmConfig.from_section(settings.section("risk").get("llm")),
            self.risk.config.levels,
            self._publish_narrative,
            self._llm_snapshot,
            day=lambda t: self.risk.config.clock.local(t).date().isoformat(),
        )
        self.detector: Detector | None = None
        self.embedder: Embedder | None = None
        self.device_choice: DeviceChoice | None = None
        self.threshold = 0.0
        self.centering_on = False
        self.identity_thread: CheckedIdentityThread | None = None
        self.pipeline: Pipeline | None = None
        # Where frames go in: the pipeline, or in a cluster the workers' queue (cluster/).
        self.intake: Any = None
        self.role = str(settings.section("cluster")["role"])
        self.cluster: Any = None  # cluster.matcher.ClusterMatcher on the matcher
        self.leadership: Any = None
        self.exit_code = 0  # what ``smart-reid serve`` exits with after ``run`` returns
        self.ingest: MqttIngest | None = None
        self.sources: Any = None
        self.http_port: int | None = None
        self._announced_host: str | None = None  # http.host, or this machine's for a wildcard
        self._runner: web.AppRunner | None = None
        self._latest: dict[str, tuple[Image, list[Decision], float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_event: asyncio.Event | None = None
        self._refresher: asyncio.Task[None] | None = None

    # -- properties the API reads ------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def max_upload_bytes(self) -> int:
        return int(self.settings.section("http")["max_upload_mb"]) * 1048576

    @property
    def token(self) -> str | None:
        token = self.settings.section("http")["token"]
        return str(token) if token else None

    @property
    def uncertain_threshold(self) -> float:
        margin = float(self.settings.section("match")["uncertain_margin"])
        return max(0.0, self.threshold - margin)

    def http_url(self) -> str:
        """``info.http_url``: ``http.public_url``, else an address other machines can use."""
        http = self.settings.section("http")
        if http["public_url"]:
            return str(http["public_url"]).rstrip("/")
        port = self.http_port if self.http_port is not None else http["port"]
        host = self._announced_host or str(http["host"])
        return f"http://{url_host(host)}:{port}"

    def info(self) -> dict[str, Any]:
        """The contract's Info object."""
        detector, embedder = self.detector, self.embedder
        models: dict[str, Any] = {}
        if detector is not None:
            models["detector"] = {
                "name": detector.name,
                "runtime": detector.runtime,
                "device": detector.device,
            }
        if embedder is not None:
            models["reid"] = {
                "name": embedder.name,
                "runtime": embedder.runtime,
                "device": embedder.device,
                "dim": embedder.dim,
                "is_reid": embedder.is_reid,
            }
        return {
            "contract": CONTRACT_VERSION,
            "server_id": self.server_id,
            "name": "Smart ReID",
            "version": __version__,
            "http_url": self.http_url(),
            "started_at": round(self.started_at, 3),
            "models": models,
            "cameras": self.cameras.names,
            "settings": {
                "visit_window_s": float(self.settings.section("visits")["window_s"]),
                "match_threshold": round(self.threshold, 4),
                "uncertain_threshold": round(self.uncertain_threshold, 4),
                "camera_centering": self.centering_on,
                "retention_days": int(self.settings.raw["retention_days"]),
                "auth_required": self.token is not None,
                "device": self.device_choice.as_info() if self.device_choice else None,
            },
            **({"cluster": self.cluster.info()} if self.cluster is not None else {}),
        }

    def health(self) -> tuple[str, list[str]]:
        """("ready" | "degraded" | "starting", reasons a user can act on)."""
        if self.state == "starting":
            return "starting", ["starting: loading models and identities"]
        if self.state == "standby":
            return "starting", ["standby: another matcher leads; this one takes over if it stops"]
        if self.state in ("stopping", "stopped"):
            return "starting", ["shutting down"]  # the contract knows no other not-ready state
        reasons = list(self.publisher.health_reasons())
        if self.embedder is not None and not self.embedder.is_reid:
            reasons.append(
                f"model: reid fallback {self.embedder.name} is not a person ReID model; "
                "identities will be unreliable (set models.reid to a ReID model)"
            )
        dropped = self.cameras.recent_drops(OVERLOAD_WINDOW_S)
        if dropped:
            reasons.append(
                f"queue: {dropped} frames dropped in the last minute (overloaded); lower the "
                "camera frame rate or raise queue.workers"
            )
        if self.sources is not None:
            reasons.extend(self.sources.health_reasons())
        if self.cluster is not None:
            reasons.extend(self.cluster.health_reasons())
        if self.identity_thread is not None and self.identity_thread.identities is not None:
            outage = store_outage(self.identity_thread.identities.store)
            if outage is not None:
                reasons.append(outage)
        return ("degraded" if reasons else "ready"), reasons

    # -- start-up ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring everything up; raises StartupError / ModelError with a message to act on."""
        loop = asyncio.get_running_loop()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.server_id = load_server_id(self.data_dir)
        except OSError as err:
            raise StartupError(
                f"data_dir {self.data_dir} is not usable ({err.strerror}); "
                "set data_dir to a writable folder"
            ) from err
        manager = ModelManager.from_config(self.settings.section("models"), self.data_dir)
        detector, embedder = await loop.run_in_executor(None, self._load_models, manager)
        self.detector, self.embedder = detector, embedder
        if self.role == "matcher":
            from ..cluster.roles import become_leader

            await become_leader(self)  # a standby waits here (HTTP up, health: standby)
        _LOGGER.info("starting Smart ReID %s (server_id %s)", __version__, self.server_id)
        match_cfg = self.settings.section("match")
        self.centering_on = centering_enabled(match_cfg.get("camera_centering"), embedder.name)
        self.threshold = gallery_threshold(
            match_cfg["threshold"],
            embedder.name,
            embedder.default_threshold,
            centered=self.centering_on,
        )
        await self._open_identities()
        self._seed_states(await self._call(self._gather_all))
        self.publisher.start(loop)
        self._publish_risk(await self._call(self._recover_risk))
        self._start_pipeline()
        self.intake = self.pipeline
        if self.role == "matcher":
            from ..cluster.roles import start_matcher

            self.intake = await start_matcher(self)
        if self.publisher.enabled and self.settings.section("mqtt")["ingest"]:
            self.ingest = MqttIngest(
                self.intake,
                self.cameras,
                base_topic=self.publisher.base,
                max_bytes=self.max_upload_bytes,
                max_pending_per_camera=int(self.settings.section("queue")["per_camera"]),
                latency=self.latency,
                boxes=self.boxes,
            )
            self.ingest.attach(self.publisher)
        await self._start_sources()
        self._check_zone_cameras()
        if self.settings.section("http")["enabled"] and self._runner is None:
            await self._start_http()
        self.publisher.set_retained("info", self.info())  # now that the HTTP port is known
        self.state = "running"
        self.publisher.set_ready()  # `online` only now, after info and every input is up
        self._refresher = loop.create_task(self._refresh_states(), name="state-refresh")
        self.narrator.start()
        _LOGGER.info(
            "ready: %d cameras, threshold %.2f, HTTP %s, MQTT %s",
            len(self.cameras.names),
            self.threshold,
            self.http_url() if self._runner else "off",
            f"{self.publisher.host}:{self.publisher.port}" if self.publisher.enabled else "off",
        )

    def _check_zone_cameras(self) -> None:
        """Zones of a camera the server will never see are almost always a typo: say so."""
        if self.cameras.auto_add:
            return
        for camera in self.zones.config.cameras:
            if camera not in self.cameras:
                _LOGGER.warning(
                    "zones.cameras.%s: there is no camera %s (cameras: %s); its zones and lines "
                    "are never used: fix the name or add the camera",
                    camera,
                    camera,
                    ", ".join(self.cameras.names) or "none",
                )

    def _load_models(self, manager: ModelManager) -> tuple[Detector, Embedder]:
        detector, embedder, self.device_choice = load_models(self.settings, manager)
        return detector, embedder

    async def _open_identities(self) -> None:
        assert self.embedder is not None
        embedder = self.embedder
        settings = self.settings

        # A single server reconnects to PostgreSQL after a restart; a cluster matcher steps down
        # instead (the standby may lead meanwhile: cluster.matcher.step_down).
        reconnect = self.role != "matcher"
        # A matcher with a standby fences its store: once the standby leads, this one's writes
        # are refused and it steps down at once (identity.store_pg "Fencing").
        fence = self.leadership.key if self.leadership is not None else None
        loop = asyncio.get_running_loop()

        def fenced(why: str) -> None:
            from ..cluster.matcher import step_down

            loop.call_soon_threadsafe(step_down, self, why)

        def build(_: Any) -> Identities:
            identities = Identities.from_settings(
                open_store(
                    settings.data_dir,
                    settings.section("store")["url"],
                    reconnect=reconnect,
                    fence=fence,
                    on_fenced=fenced,
                ),
                settings,
                model_name=embedder.name,
                dim=embedder.dim,
                threshold=self.threshold,
            )
            identities.load()
            if self.role == "matcher":
                # Taking over from a matcher that died: its open visits go on (no second
                # new_person for people still in view); only the others get a final assessment.
                store = identities.store
                resumed = set(identities.resume_visits(store.closed_at_start))
                store.closed_at_start[:] = [v for v in store.closed_at_start if v not in resumed]
            return identities

        thread = CheckedIdentityThread(None)
        try:
            thread.identities = await thread.call(build)
        except StoreError as err:
            thread.shutdown()
            raise StartupError(str(err)) from err
        self.identity_thread = thread

    def _start_pipeline(self) -> None:
        assert self.detector is not None and self.embedder is not None
        assert self.identity_thread is not None
        queue = self.settings.section("queue")
        self.pipeline = Pipeline(
            detector=self.detector,
            embedder=self.embedder,
            crops=bounded_crops(
                quality_crops(extract_crops, self.settings.section("quality")), self.boxes
            ),
            identity_thread=self.identity_thread,
            cameras=self.cameras,
            per_camera=int(queue["per_camera"]),
            workers=int(queue["workers"]),
            on_result=self._on_result,
            on_visit_events=self._on_expired,
            after_observe=self._after_observe,
            after_expire=self._after_expire,
            on_purged=self._on_purged,
            after_purge=self._after_purge,
            latency=self.latency,
            tracks=Tracks(),
            retention_days=int(self.settings.raw["retention_days"]),
            clock=self.clock,
        )
        self.pipeline.start()

    def now(self) -> float:
        """Time for presence and visits: the pipeline's frame clock (``Pipeline.now``)."""
        return self.pipeline.now() if self.pipeline is not None else self.clock()

    async def _start_sources(self) -> None:
        if not self.settings.raw.get("sources"):
            return
        from ..ingest.start import start_sources

        self.sources = await start_sources(
            self.settings,
            self.intake,
            subscriber=self.publisher if self.publisher.enabled else None,
            boxes=self.boxes,
            streams=self.role != "matcher",  # a cluster's workers decode the streams
        )
        for camera in getattr(self.sources, "declared_cameras", []):
            self.cameras.add(camera)

    async def _start_http(self) -> None:
        from .api import create_api

        http = self.settings.section("http")
        runner = web.AppRunner(create_api(self), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, http["host"], int(http["port"]))
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise StartupError(
                f"cannot listen on {http['host']}:{http['port']} ({err.strerror}); "
                "set http.port to a free port"
            ) from err
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = int(sockets[0].getsockname()[1]) if sockets else int(http["port"])
        host = str(http["host"])
        if host in WILDCARD_HOSTS and not http["public_url"]:
            loop = asyncio.get_running_loop()
            self._announced_host = await loop.run_in_executor(None, machine_address)
            _LOGGER.warning(
                "http.host %s listens on every interface; announcing http://%s:%d in info. "
                "Set http.public_url to the URL Home Assistant should use if that is wrong",
                host or "(all)",
                url_host(self._announced_host),
                self.http_port,
            )

    # -- shutdown ----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Finish in-flight frames, say offline, close the store. Safe to call twice."""
        if self.state == "stopped":
            return
        self.state = "stopping"
        _LOGGER.info("shutting down")
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.sources is not None:
            await self.sources.stop()
        if self.ingest is not None:
            await self.ingest.drain()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.leadership is not None:
            with contextlib.suppress(Exception):
                await self.leadership.release()
        if self.pipeline is not None:
            await self.pipeline.stop()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.narrator.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.publisher.stop()
        if self.identity_thread is not None:
            with contextlib.suppress(Exception):
                await self.identity_thread.call_unchecked(_close_identities)
            self.identity_thread.shutdown()
        self.state = "stopped"
        _LOGGER.info("stopped")

    async def run(self, *, install_signals: bool = True) -> None:
        """Start, serve until SIGTERM/SIGINT (or ``request_stop``), stop."""
        self._stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._stop_event.set)
        try:
            await self.start()
            await self._stop_event.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    # -- search ------------------------------------------------------------------------------

    async def search(
        self,
        image: Image,
        detections: list[Detection] | None,
        camera: str | None,
        limit: int,
    ) -> tuple[Detection, bool, list[SearchHit], bool]:
        """The largest person in ``image`` (or in ``detections``) against the gallery: their
        box, whether the crop passes the quality gates, the people most like them and whether
        they were re-ranked.
        Raises LookupError when the picture shows nobody."""
        if self.detector is None or self.embedder is None:
            raise RuntimeError("the models are not loaded yet")
        detector, embedder = self.detector, self.embedder
        quality = self.settings.section("quality")

        def look() -> tuple[Detection, bool, np.ndarray[Any, Any]]:
            found = detections if detections is not None else detector.detect(image)
            frame = Frame(camera or "search", image, self.clock(), source="search")
            crops = extract_crops(frame, found, quality)
            if not crops:
                raise LookupError("no person found in the picture; send a picture of one person")
            crop = max(crops, key=lambda c: c.detection.box.area)
            return crop.detection, crop.quality.ok, embedder.embed([crop.image])

        loop = asyncio.get_running_loop()
        detection, quality_ok, vectors = await loop.run_in_executor(None, look)
        hits, reranked = await self._call(lambda ids: ids.search(vectors[0], camera, limit))
        return detection, quality_ok, hits, reranked

    # -- identity-thread helpers -------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.identity_thread is None:
            raise RuntimeError("identities are not open yet")
        return await self.identity_thread.call(fn, *args)

    def _gather_all(self, identities: Identities) -> StateView:
        ids = [p.person_id for p in identities.persons()]
        return gather(identities, person_ids=ids, cameras=self.cameras.names, now=self.now())

    def _seed_states(self, view: StateView) -> None:
        self.states.apply(view, force=True)

    def _after_observe(self, identities: Identities, observed: ObserveResult, frame: Frame) -> Any:
        changed = set(observed.changed_person_ids)
        merges = list(getattr(observed, "merges", []))
        view = gather(
            identities,
            person_ids=changed | {m.kept for m in merges},
            forgotten=[m.dropped for m in merges],
            cameras=[frame.camera],
            now=self.now(),
        )
        view.merges = [m.to_json(_view_or_none(identities, m.kept)) for m in merges]
        for decision in observed.decisions:
            if decision.person_id not in view.thumbnails:
                with contextlib.suppress(KeyError):
                    view.thumbnails[decision.person_id] = identities.person(
                        decision.person_id
                    ).thumbnail_url
        for event in observed.visit_events:
            view.thumbnails.setdefault(event.visit.person_id, event.thumbnail_url)
        view.zones = self._watch_zones(identities, observed, frame)
        view.risk = self._assess(
            identities,
            lambda store: self.risk.on_frame(
                store,
                identities.visits,
                [d.person_id for d in observed.decisions if d.person_id],
                frame.timestamp,
                _ended(observed.visit_events),
            ),
        )
        return view

    def _after_expire(self, identities: Identities, events: list[VisitEvent]) -> StateView:
        ids = {event.visit.person_id for event in events}
        view = gather(identities, person_ids=ids, cameras=self.cameras.names, now=self.now())
        view.zones = self._zone_json(identities, self.zones.end(v.visit_id for v in _ended(events)))
        view.risk = self._assess(
            identities, lambda store: self.risk.on_ended(store, _ended(events))
        )
        return view

    def _watch_zones(
        self, identities: Identities, observed: ObserveResult, frame: Frame
    ) -> list[dict[str, Any]]:
        """Zone events of one frame (ended visits leave their zones first), and the zones each
        person in it is in, for the risk facts. A failure is logged and never stops the frame."""
        try:
            events = self.zones.end(v.visit_id for v in _ended(observed.visit_events))
            if self.zones.watches(frame.camera):
                sightings = [
                    (
                        d.person_id,
                        d.visit_id,
                        foot_point(
                            (d.box.x1, d.box.y1, d.box.x2, d.box.y2), frame.width, frame.height
                        ),
                    )
                    for d in observed.decisions
                    if d.person_id and d.visit_id
                ]
                events += self.zones.frame(frame.camera, frame.timestamp, sightings)
                spec = self.zones.config.cameras[frame.camera]
                for person_id, visit_id, _point in sightings:
                    for name in self.zones.inside(frame.camera, person_id):
                        zone = spec.zone(name)
                        assert zone is not None
                        sensitivity = (
                            zone.sensitivity
                            if zone.sensitivity is not None
                            else self.risk.config.camera_sensitivity(frame.camera)
                        )
                        self.risk.zones.saw(
                            visit_id, frame.camera, name, sensitivity, frame.timestamp
                        )
            return self._zone_json(identities, events, observed.decisions)
        except Exception:
            _LOGGER.exception("zone evaluation failed on camera %s", frame.camera)
            return []

    @staticmethod
    def _zone_json(
        identities: Identities, events: list[ZoneEvent], decisions: Iterable[Decision] = ()
    ) -> list[dict[str, Any]]:
        """The contract's Zone event payloads, with each person's label as it is now."""
        people = {d.person_id: (d.label, d.known) for d in decisions}
        out = []
        for event in events:
            if event.person_id not in people:
                record = identities.store.person(event.person_id)
                people[event.person_id] = (
                    (str(record.label), bool(record.known))
                    if record is not None
                    else (event.person_id, False)
                )
            label, known = people[event.person_id]
            out.append(event.to_json(label=label, known=known))
        return out

    def _zone_tick(self, identities: Identities, now: float) -> list[dict[str, Any]]:
        """``exit`` of people no camera has shown for ``zones.lost_after_s``."""
        try:
            return self._zone_json(identities, self.zones.expire(now))
        except Exception:
            _LOGGER.exception("zone expiry failed")
            return []

    def _risk_tick(self, identities: Identities, now: float) -> list[dict[str, Any]]:
        return self._assess(identities, lambda store: self.risk.tick(store, identities.visits, now))

    @staticmethod
    def _assess(
        identities: Identities, run: Callable[[IdentityStore], list[Any]]
    ) -> list[dict[str, Any]]:
        """Risk assessments as payloads; a failure is logged and never stops the frame."""
        try:
            return [assessment.to_json() for assessment in run(identities.store)]
        except Exception:
            _LOGGER.exception("risk assessment failed")
            return []

    def _after_purge(self, identities: Identities, gone: list[str]) -> StateView:
        return gather(identities, forgotten=gone, cameras=self.cameras.names, now=self.now())

    # -- results -> MQTT ---------------------------------------------------------------------

    # Order on the wire: a person's retained state always goes out before any event naming
    # them, so Home Assistant has the person's device before it handles the event.

    async def _on_result(self, result: FrameResult) -> None:
        view: StateView = result.extra if isinstance(result.extra, StateView) else StateView()
        if view.merges:
            # The dropped identities' retained states are cleared in this same apply.
            self.cameras.forget([m["merged_person_id"] for m in view.merges])
        self.states.apply(view, force=bool(view.merges))
        for merge in view.merges:
            self.publisher.event("merged", merge)
            if self.on_merged is not None:
                self.on_merged(merge["timestamp"], merge["person_id"], merge["merged_person_id"])
        for decision in result.decisions:
            self.publisher.sighting(decision_json(decision, view.thumbnails))
        self._publish_zones(view.zones)  # after new_person, exits before visit_ended
        self._publish_visit_events(result.visit_events)
        self._publish_risk(view.risk)
        self._latest[result.frame.camera] = (
            result.frame.image,
            list(result.decisions),
            result.frame.timestamp,
        )

    async def _on_expired(self, events: list[Any], extra: Any) -> None:
        if isinstance(extra, StateView):
            self.states.apply(extra)
            self._publish_zones(extra.zones)  # exits before the visit's end
        self._publish_visit_events(events)
        if isinstance(extra, StateView):
            self._publish_risk(extra.risk)

    def _publish_zones(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.publisher.event("zone", event)

    def _publish_risk(self, assessments: Iterable[dict[str, Any]]) -> None:
        for assessment in assessments:
            self.publisher.event("risk_assessed", assessment)
            self.narrator.offer(assessment)

    def _recover_risk(self, identities: Identities) -> list[dict[str, Any]]:
        """Final assessments of the visits the last run left open (Store closed them)."""
        store = identities.store
        return self._assess(identities, lambda _: self.risk.recover(store, store.closed_at_start))

    async def _publish_narrative(self, payload: dict[str, Any]) -> None:
        await self._call(_save_risk, payload["visit_id"], payload)
        self.publisher.event("risk_assessed", payload)

    async def _llm_snapshot(self, visit_id: str) -> bytes | None:
        found = await self.visit_snapshot(visit_id)
        return found.read_bytes() if isinstance(found, Path) else found

    async def _on_purged(self, gone: list[str], extra: Any) -> None:
        """Retention deleted ``gone``: clear their retained states like a forget does."""
        self.cameras.forget(gone)
        if isinstance(extra, StateView):
            self.states.apply(extra, force=True)

    def _publish_visit_events(self, events: Iterable[VisitEvent]) -> None:
        for event in events:
            name = "visit_ended" if event.reason is VisitEventReason.ENDED else "visit_updated"
            self.publisher.event(name, event.to_json())
            if event.reason is VisitEventReason.ENDED and event.snapshot is not None:
                self._spawn(self._save_snapshot(event))

    async def _save_snapshot(self, event: VisitEvent) -> None:
        snapshot = event.snapshot
        assert snapshot is not None
        loop = asyncio.get_running_loop()
        markers = [Marker.from_decision(d) for d in snapshot.decisions]
        try:
            jpeg = await loop.run_in_executor(None, render_jpeg, snapshot.image, markers)
            await self._call(_save_visit_snapshot, snapshot.visit_id, jpeg)
        except Exception as err:
            _LOGGER.warning("could not save the snapshot of visit %s: %s", snapshot.visit_id, err)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _camera_added(self, camera: str) -> None:
        _LOGGER.info("camera %s added (auto_add_cameras)", camera)
        if self.state == "running":
            self.publisher.set_retained("info", self.info())

    async def _refresh_states(self) -> None:
        """Presence fades without frames (visit window); midnight resets today's counters."""
        while True:
            await asyncio.sleep(STATE_REFRESH_S)
            try:
                self.cameras.rollover()
                view = await self._call(_gather_cameras, self.cameras.names, self.now())
                self.states.apply(view)
                self._publish_zones(await self._call(self._zone_tick, self.now()))
                self._publish_risk(await self._call(self._risk_tick, self.now()))
            except asyncio.CancelledError:
                raise
            except StoreUnavailableError:
                pass  # the store logged it once and health says so; states refresh once it is back
            except Exception:
                _LOGGER.exception("refreshing camera states failed")

    # -- snapshots ---------------------------------------------------------------------------

    async def camera_snapshot(self, camera: str) -> bytes | None:
        latest = self._latest.get(camera)
        if latest is None:
            return None
        image, decisions, _ = latest
        markers = [Marker.from_decision(d) for d in decisions]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, render_jpeg, image, markers)

    async def visit_snapshot(self, visit_id: str) -> bytes | Path | None:
        """The saved JPEG of an ended visit, or the best frame of a live one rendered now."""
        found = await self._call(_find_visit_snapshot, visit_id)
        if found is None or isinstance(found, Path):
            return found
        loop = asyncio.get_running_loop()
        markers = [Marker.from_decision(d) for d in found.decisions]
        return await loop.run_in_executor(None, render_jpeg, found.image, markers)

    # -- operations (HTTP) -------------------------------------------------------------------

    async def update_person(
        self, person_id: str, label: str | None, known: bool | None
    ) -> dict[str, Any]:
        view = await self._call(_update_person, person_id, label, known, self.cameras.names)
        person = view.persons[person_id]
        assert person is not None
        self.cameras.relabel(person_id, str(person["label"]))
        self.states.apply(view, force=True)
        return person

    async def forget(self, person_id: str) -> None:
        view = await self._call(_forget, person_id, self.cameras.names)
        self.cameras.forget([person_id])
        self.states.apply(view, force=True)

    async def merge(self, keep: str, drop: str) -> dict[str, Any]:
        view = await self._call(_merge, keep, drop, self.cameras.names)
        self.cameras.forget([drop])
        self.states.apply(view, force=True)
        person = view.persons[keep]
        assert person is not None
        return person

    async def reset(self, camera: str | None) -> int:
        gone, view = await self._call(_reset, camera, self.cameras.names)
        self.cameras.forget(gone)
        self.states.apply(view, force=True)
        return len(gone)

    async def persons(
        self, camera: str | None, known: bool | None, present: bool | None
    ) -> list[dict[str, Any]]:
        return await self._call(_persons, camera, known, present)

    async def person(self, person_id: str) -> dict[str, Any]:
        return await self._call(_person, person_id)

    async def visit(self, visit_id: str) -> dict[str, Any] | None:
        return await self._call(_visit, visit_id)

    async def visits(
        self, start: float, end: float, **filters: Any
    ) -> tuple[list[dict[str, Any]], bool]:
        return await self._call(lambda ids: list_visits(ids, start, end, **filters))

    async def summary(self, start: float, end: float, narrative: str) -> dict[str, Any]:
        """``GET /api/summary``: rules text, or the LLM's when asked, configured and valid."""
        visits, _ = await self.visits(start, end, limit=1000)
        config = self.risk.config
        answer = rules_summary(
            visits, start, end, config.clock, config.household, config.camera_sensitivity
        )
        narrator = self.narrator
        if narrative != "auto" or not narrator.enabled:
            return answer
        try:
            if narrator.tokens_left() < narrator.config.max_tokens:
                raise NarrativeError("budget", "today's risk.llm.daily_tokens are spent")
            return await narrate(
                answer, narrator.config, config.clock, narrator.client, narrator.spend
            )
        except Exception as err:  # NarrativeError and anything the model's server does
            kind = getattr(err, "kind", type(err).__name__)
            self.narrator.stats.failures[f"summary_{kind}"] = (
                self.narrator.stats.failures.get(f"summary_{kind}", 0) + 1
            )
            self.narrator.log.warn(
                f"summary_{kind}", "LLM summary not used (%s): %s; rules text sent", kind, err
            )
            return answer

    async def thumbnail(self, person_id: str) -> Path | None:
        return await self._call(_thumbnail, person_id)

    def camera_state(self, camera: str) -> dict[str, Any]:
        state = self.states.camera_states.get(camera)
        if state is None:
            state = self.cameras.camera_state(camera, [], False)
        return state

    async def camera_states(self) -> list[dict[str, Any]]:
        self.cameras.rollover()
        view = await self._call(_gather_cameras, self.cameras.names, self.now())
        self.states.apply(view)
        return [self.camera_state(camera) for camera in self.cameras.names]

    def stats(self) -> dict[str, Any]:
        pipeline = self.pipeline
        return {
            "latency": self.latency.summary(),
            "frames_processed": self.cameras.frames_processed,
            "frames_dropped": self.cameras.frames_dropped,
            "queued": pipeline.queued() if pipeline else 0,
            "failed": pipeline.counters.failed if pipeline else 0,
            "crops_embedded": pipeline.counters.embedded if pipeline else 0,
            "crops_reused_from_track": pipeline.counters.reused if pipeline else 0,
            "mqtt": self.publisher.stats(),
            "ingest": None if self.ingest is None else vars_of(self.ingest.stats),
            "supplied_boxes": self.boxes.stats(),
            "sources": {} if self.sources is None else source_stats(self.sources.status()),
            "risk_llm": self.narrator.snapshot_stats(),
            "cluster": None if self.cluster is None else self.cluster.info(),
        }


def source_stats(report: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per source (frigate, edge, stream, folder): what came in and what became of it.

    ``accepted`` is what the pipeline took; ``fetch_errors`` counts pictures that could not be
    downloaded (Frigate, edge URLs), so an operator can tell a broken source from a quiet one.
    """
    out: dict[str, dict[str, Any]] = {}
    for entry in report:
        name = str(entry["source"])
        if name in out:  # several streams or folders: number them in order
            name = f"{name}_{sum(1 for key in out if key.startswith(name))}"
        out[name] = {**entry, "accepted": entry.get("offered", 0)}
    return out


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in getattr(obj, "__slots__", ())}


# Functions run on the identity thread (first argument: the Identities facade).


class CheckedIdentityThread(IdentityThread):
    """The identity thread, with ``outages.before_identity_work`` before every job: while the
    store's database is unreachable, jobs fail with StoreUnavailableError without running, and
    the first one after it is back reloads the identities first."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await super().call(_checked, fn, *args)

    async def call_unchecked(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` even while the store is away (closing it)."""
        return await super().call(fn, *args)


def _checked[R](identities: Identities | None, fn: Callable[..., R], *args: Any) -> R:
    before_identity_work(identities)
    return fn(identities, *args)


def _close_identities(identities: Identities) -> None:
    identities.close()


def _save_visit_snapshot(identities: Identities, visit_id: str, jpeg: bytes) -> None:
    identities.save_visit_snapshot(visit_id, jpeg)


def _find_visit_snapshot(identities: Identities, visit_id: str) -> Any:
    path = identities.snapshot_path(visit_id)
    if path is not None:
        return path
    return identities.visit_snapshot(visit_id)


def _gather_cameras(identities: Identities, cameras: list[str], now: float) -> StateView:
    return gather(identities, cameras=cameras, now=now)


def _update_person(
    identities: Identities,
    person_id: str,
    label: str | None,
    known: bool | None,
    cameras: list[str],
) -> StateView:
    identities.person(person_id)
    if label is not None:
        identities.rename(person_id, label)
    if known is not None:
        identities.set_known(person_id, known)
    return gather(identities, person_ids=[person_id], cameras=cameras)


def _forget(identities: Identities, person_id: str, cameras: list[str]) -> StateView:
    identities.forget(person_id)
    return gather(identities, forgotten=[person_id], cameras=cameras)


def _merge(identities: Identities, keep: str, drop: str, cameras: list[str]) -> StateView:
    identities.merge(keep, drop)
    return gather(identities, person_ids=[keep], forgotten=[drop], cameras=cameras)


def _reset(
    identities: Identities, camera: str | None, cameras: list[str]
) -> tuple[list[str], StateView]:
    gone = identities.reset(camera)
    return gone, gather(identities, forgotten=gone, cameras=cameras)


def _view_or_none(identities: Identities, person_id: str) -> Any:
    try:
        return identities.person(person_id)
    except KeyError:
        return None


def _persons(
    identities: Identities, camera: str | None, known: bool | None, present: bool | None
) -> list[dict[str, Any]]:
    return [p.to_json() for p in identities.persons(camera=camera, known=known, present=present)]


def _person(identities: Identities, person_id: str) -> dict[str, Any]:
    return identities.person(person_id).to_json()


def _visit(identities: Identities, visit_id: str) -> dict[str, Any] | None:
    visit = identities.visit(visit_id)
    if visit is not None:
        visit["risk"] = identities.store.visit_risk(visit_id)
    return visit


def _save_risk(identities: Identities, visit_id: str, assessment: dict[str, Any]) -> None:
    identities.store.save_risk(visit_id, assessment)


def _ended(events: Iterable[VisitEvent]) -> list[Any]:
    return [e.visit for e in events if e.reason is VisitEventReason.ENDED]


def _thumbnail(identities: Identities, person_id: str) -> Path | None:
    return identities.thumbnail_path(person_id)


__all__ = [
    "EXIT_LOST_LEADERSHIP",
    "ModelError",
    "SmartReidApp",
    "StartupError",
    "bounded_crops",
    "decision_json",
    "inference_threads",
    "load_models",
    "load_server_id",
]
