"""The one object that listens to the server: MQTT subscriptions, parsed state, bus events.

Smart ReID pushes everything over MQTT (docs/contract.md), so this plays the role a
DataUpdateCoordinator plays for polling integrations: it owns the subscriptions, keeps the latest
hub, camera and person records, tells exactly the entities whose part changed, creates and
removes the devices of cameras and identities as they come and go, fires the documented bus
events, and raises or clears the repair issues about the server.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.components import mqtt
from homeassistant.components.http.auth import async_sign_path
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.util import dt as dt_util

from .api import SmartReidApi, SmartReidAuthError, SmartReidError
from .const import (
    ATTR_CONFIG_ENTRY_ID,
    CONF_BASE_TOPIC,
    CONF_SIGHTING_EVENTS,
    CONF_STRANGER_DEVICES,
    CONF_STRANGER_HOURS,
    DEFAULT_STRANGER_DEVICES,
    DEFAULT_STRANGER_HOURS,
    DOMAIN,
    EVENT_NEW_PERSON,
    EVENT_PERSON_MERGED,
    EVENT_PERSON_SEEN,
    EVENT_RISK_ASSESSED,
    EVENT_VISIT_ENDED,
    EVENT_VISIT_UPDATED,
    EVENT_ZONE,
    HTTP_CHECK_INTERVAL,
    IMAGE_VIEW_PREFIX,
    ISSUE_NOT_REID,
    ISSUE_UNREACHABLE,
    ISSUE_UNSUPPORTED_CONTRACT,
    LOGGER,
    OFFLINE_DOCS_URL,
    SEEN_VISITS_MEMORY,
    SIGNED_URL_TTL,
    STATUS_ONLINE,
    STRANGER_CHECK_INTERVAL,
    SUPPORTED_CONTRACT,
    UNREACHABLE_GRACE,
)
from .devices import find_device, get_or_create_device
from .models import (
    CameraState,
    Decision,
    HubState,
    Info,
    Merged,
    PayloadError,
    Person,
    RiskAssessment,
    VisitEvent,
    ZoneEvent,
    decode_json,
    is_stranger,
)

if TYPE_CHECKING:
    from .forwarder import CameraForwarder

MANUFACTURER = "Smart ReID"

# Listener keys: entities subscribe to the part of the state they show.
HUB = "hub"


def camera_key(camera: str) -> str:
    return f"camera:{camera}"


def person_key(person_id: str) -> str:
    return f"person:{person_id}"


def camera_event_key(camera: str) -> str:
    return f"camera_event:{camera}"


def risk_key(camera: str | None) -> str:
    """Listener key of a camera's risk level; `None`: the whole home's."""
    return f"risk:{camera or ''}"


@dataclass(kw_only=True)
class SmartReidRuntimeData:
    """What a loaded entry keeps: the server's API, the live state, the frame forwarder."""

    api: SmartReidApi
    coordinator: SmartReidCoordinator
    forwarder: CameraForwarder
    options: dict[str, Any]


type SmartReidConfigEntry = ConfigEntry[SmartReidRuntimeData]


def server_path_to_view(entry_id: str, path: str | None) -> str | None:
    """Map a server image path (`/api/visits/<id>/snapshot.jpg`) onto our proxy view."""
    if not path or not path.startswith("/api/"):
        return None
    return f"{IMAGE_VIEW_PREFIX}/{entry_id}/{path[len('/api/') :]}"


class SmartReidCoordinator:
    """Live state of one server, fed by its MQTT topics."""

    def __init__(self, hass: HomeAssistant, entry: SmartReidConfigEntry, api: SmartReidApi) -> None:
        self.hass = hass
        self.entry = entry
        self.api = api
        self.base_topic: str = entry.data[CONF_BASE_TOPIC]
        assert entry.unique_id is not None
        self.server_id: str = entry.unique_id
        self.info: Info | None = None
        self.status: str | None = None
        self.hub: HubState | None = None
        self.cameras: dict[str, CameraState | None] = {}
        self.persons: dict[str, Person] = {}
        self.mqtt_connected = False
        self.http_ok = True
        self.last_decisions: dict[str, Decision] = {}
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        # Called after any change at all (the dashboard cards' people subscription).
        self._change_listeners: list[Callable[[], None]] = []
        self._camera_event_listeners: dict[str, list[Callable[[Decision], None]]] = {}
        self._new_camera_callbacks: list[Callable[[str], None]] = []
        self._new_person_callbacks: list[Callable[[str], None]] = []
        self._person_changed_callbacks: list[Callable[[str], None]] = []
        # Identities that have a device (and entities) now: household and named people, and
        # the `stranger_cap` most recently seen strangers of those seen within
        # `stranger_retention`.
        self.person_devices: set[str] = set()
        self.stranger_retention = timedelta(
            hours=float(entry.options.get(CONF_STRANGER_HOURS, DEFAULT_STRANGER_HOURS))
        )
        self.stranger_cap = int(entry.options.get(CONF_STRANGER_DEVICES, DEFAULT_STRANGER_DEVICES))
        # Strangers whose device the user deleted, with their last sighting then: the device
        # comes back only with a later sighting.
        self._dismissed: dict[str, float] = {}
        # When each identity's state first arrived, for states that carry no `last_seen`.
        self._heard_at: dict[str, float] = {}
        self._fired_visits: OrderedDict[str, None] = OrderedDict()
        # The latest risk assessment of each visit still going on; visits leave it when they
        # end (their `visit_ended` or final assessment), and are remembered as ended so a late
        # interim assessment does not bring them back.
        self.risks: dict[str, RiskAssessment] = {}
        self._ended_visits: OrderedDict[str, None] = OrderedDict()
        # Each recent visit's snapshot (server path), for the risk event's picture.
        self._visit_snapshots: OrderedDict[str, str] = OrderedDict()
        # Each recent visit's last assessed level, for the risk event's `previous_level`.
        self._visit_levels: OrderedDict[str, str] = OrderedDict()
        self.last_risk: RiskAssessment | None = None
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._was_available: bool | None = None
        self._logged_unavailable = False
        self._grace_timer: CALLBACK_TYPE | None = None
        self._checking_http = False
        self._reauth_requested = False
        self._contract_reported: int | None = None
        self._bad_topics: set[str] = set()

    # --- lifecycle -------------------------------------------------------------------------

    @callback
    def async_prepare(self) -> None:
        """Create the devices known so far, so entities link to named devices from the start."""
        self._ensure_hub_device()
        if self.info is not None:
            self._update_model_issue()
            self._update_contract_issue()
            for camera in self.info.cameras:
                self._ensure_camera(camera)

    async def async_start(self) -> None:
        """Subscribe to the server's topics; retained state arrives right after."""
        self.mqtt_connected = mqtt.is_connected(self.hass)
        self._unsubscribe.append(
            mqtt.async_subscribe_connection_status(self.hass, self._handle_mqtt_connection)
        )
        base = self.base_topic
        handlers: dict[str, Callable[[ReceiveMessage], None]] = {
            f"{base}/status": self._handle_status,
            f"{base}/info": self._handle_info,
            f"{base}/state": self._handle_hub_state,
            f"{base}/camera/+/state": self._handle_camera_state,
            f"{base}/person/+/state": self._handle_person_state,
            f"{base}/events/+": self._handle_event,
        }
        for topic, handler in handlers.items():
            self._unsubscribe.append(await mqtt.async_subscribe(self.hass, topic, handler, qos=1))
        self._unsubscribe.append(
            async_track_time_interval(
                self.hass,
                self._periodic_http_check,
                HTTP_CHECK_INTERVAL,
                name=f"{DOMAIN} HTTP check",
            )
        )
        self._unsubscribe.append(
            async_track_time_interval(
                self.hass,
                self._check_strangers,
                STRANGER_CHECK_INTERVAL,
                name=f"{DOMAIN} stranger devices",
            )
        )
        self._update_availability()

    @callback
    def async_stop(self) -> None:
        """Drop subscriptions and timers; entities are being unloaded with the entry."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self._cancel_grace_timer()
        for issue in (ISSUE_UNREACHABLE, ISSUE_NOT_REID, ISSUE_UNSUPPORTED_CONTRACT):
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(issue))

    # --- what entities use -----------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Entities show values only while the broker is connected and the server online."""
        return self.mqtt_connected and self.status == STATUS_ONLINE

    @callback
    def async_add_listener(self, key: str, update: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `update` whenever the part named by `key` (or availability) changes."""
        listeners = self._listeners.setdefault(key, [])
        listeners.append(update)
        return lambda: listeners.remove(update)

    @callback
    def async_add_change_listener(self, changed: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `changed` after every change of any part (or of availability)."""
        self._change_listeners.append(changed)
        return lambda: self._change_listeners.remove(changed)

    @callback
    def async_add_camera_event_listener(
        self, camera: str, handler: Callable[[Decision], None]
    ) -> CALLBACK_TYPE:
        """Hand every visit start on `camera` to `handler` (the camera's event entity)."""
        listeners = self._camera_event_listeners.setdefault(camera, [])
        listeners.append(handler)
        return lambda: listeners.remove(handler)

    @callback
    def async_add_new_camera_callback(self, new_camera: Callable[[str], None]) -> CALLBACK_TYPE:
        """Platforms add a camera's entities when the server first mentions the camera."""
        self._new_camera_callbacks.append(new_camera)
        return lambda: self._new_camera_callbacks.remove(new_camera)

    @callback
    def async_add_new_person_callback(self, new_person: Callable[[str], None]) -> CALLBACK_TYPE:
        """Platforms add an identity's entities when it gets a device: with its first retained
        state for household and named people, and again each time a stranger comes back."""
        self._new_person_callbacks.append(new_person)
        return lambda: self._new_person_callbacks.remove(new_person)

    @callback
    def async_add_person_changed_callback(self, changed: Callable[[str], None]) -> CALLBACK_TYPE:
        """Call `changed` after every state of an identity that has a device (the picture
        platform waits for the first thumbnail this way)."""
        self._person_changed_callbacks.append(changed)
        return lambda: self._person_changed_callbacks.remove(changed)

    def hub_identifier(self) -> tuple[str, str]:
        return (DOMAIN, self.server_id)

    def camera_identifier(self, camera: str) -> tuple[str, str]:
        return (DOMAIN, f"{self.server_id}_camera_{camera}")

    def person_identifier(self, person_id: str) -> tuple[str, str]:
        return (DOMAIN, f"{self.server_id}_person_{person_id}")

    def sign_image(self, server_path: str | None) -> str | None:
        """A short-lived link to a server picture that a phone can fetch without a login."""
        if (path := server_path_to_view(self.entry.entry_id, server_path)) is None:
            return None
        return async_sign_path(self.hass, path, SIGNED_URL_TTL, use_content_user=True)

    # --- MQTT handlers ---------------------------------------------------------------------

    @callback
    def _handle_mqtt_connection(self, connected: bool) -> None:
        self.mqtt_connected = connected
        self._update_availability()

    @callback
    def _handle_status(self, msg: ReceiveMessage) -> None:
        status = str(msg.payload).strip()
        if status == self.status:
            return
        went_online = status == STATUS_ONLINE and self.status != STATUS_ONLINE
        self.status = status
        if went_online and self.risks:
            # Visits that ended while the server was away (or with it) would never end here;
            # those still going on come back with their next interim assessment.
            self.risks.clear()
            self._notify_all()
        self._update_availability()
        self._notify(HUB)
        if went_online:
            self.entry.async_create_background_task(
                self.hass, self._async_back_online(), f"{DOMAIN} back online"
            )

    @callback
    def _handle_info(self, msg: ReceiveMessage) -> None:
        if (data := self._decode(msg)) is None:
            return
        try:
            info = Info.from_json(data)
        except PayloadError as err:
            self._bad_payload(msg.topic, err)
            return
        if info.server_id != self.server_id:
            self._bad_payload(
                msg.topic,
                PayloadError(
                    f"info is from server {info.server_id}, this entry belongs to "
                    f"{self.server_id}; give each server its own base topic"
                ),
            )
            return
        self.info = info
        self._ensure_hub_device()
        self._update_model_issue()
        self._update_contract_issue()
        for camera in info.cameras:
            self._ensure_camera(camera)
        self._notify(HUB)

    @callback
    def _handle_hub_state(self, msg: ReceiveMessage) -> None:
        if (data := self._decode(msg)) is None:
            return
        try:
            self.hub = HubState.from_json(data)
        except PayloadError as err:
            self._bad_payload(msg.topic, err)
            return
        self._notify(HUB)

    @callback
    def _handle_camera_state(self, msg: ReceiveMessage) -> None:
        if (data := self._decode(msg)) is None:
            return
        try:
            state = CameraState.from_json(data)
        except PayloadError as err:
            self._bad_payload(msg.topic, err)
            return
        self._ensure_camera(state.camera)
        self.cameras[state.camera] = state
        self._notify(camera_key(state.camera))

    @callback
    def _handle_person_state(self, msg: ReceiveMessage) -> None:
        person_id = msg.topic.split("/")[-2]
        if not msg.payload:
            self._forget_person(person_id)
            return
        if (data := self._decode(msg)) is None:
            return
        try:
            person = Person.from_json(data)
            if person.person_id != person_id:
                raise PayloadError(f"person: person_id {person.person_id} does not match the topic")
        except PayloadError as err:
            self._bad_payload(msg.topic, err)
            return
        previous = self.persons.get(person.person_id)
        self.persons[person.person_id] = person
        self._heard_at.setdefault(person.person_id, dt_util.utcnow().timestamp())
        self._forgotten.pop(person.person_id, None)
        if person.camera:
            self._ensure_camera(person.camera)
        self._sync_person_device(person, previous)
        self._notify(person_key(person.person_id))
        if person.person_id in self.person_devices:
            for changed in list(self._person_changed_callbacks):
                changed(person.person_id)

    @callback
    def _handle_event(self, msg: ReceiveMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind not in (
            "sighting",
            "new_person",
            "visit_updated",
            "visit_ended",
            "merged",
            "risk_assessed",
            "zone",
        ):
            return
        if (data := self._decode(msg)) is None:
            return
        try:
            if kind in ("sighting", "new_person"):
                self._handle_decision(kind, Decision.from_json(data))
            elif kind == "merged":
                self._handle_merged(Merged.from_json(data))
            elif kind == "risk_assessed":
                self._handle_risk(RiskAssessment.from_json(data))
            elif kind == "zone":
                self._handle_zone(ZoneEvent.from_json(data))
            else:
                self._handle_visit_event(kind, VisitEvent.from_json(data))
        except PayloadError as err:
            self._bad_payload(msg.topic, err)

    # --- events ----------------------------------------------------------------------------

    @callback
    def _handle_decision(self, kind: str, decision: Decision) -> None:
        self._ensure_camera(decision.camera)
        self._ensure_event_person(decision.person_id, decision.label, decision.known)
        if kind == "sighting":
            self.last_decisions[decision.camera] = decision
            if self._sighting_events_wanted():
                self.hass.bus.async_fire(EVENT_PERSON_SEEN, self._decision_data(decision))
            return
        if decision.visit_id in self._fired_visits:
            LOGGER.debug("Visit %s was already announced; ignoring a repeat", decision.visit_id)
            return
        self._fired_visits[decision.visit_id] = None
        while len(self._fired_visits) > SEEN_VISITS_MEMORY:
            self._fired_visits.popitem(last=False)
        self._remember_snapshot(decision.visit_id, decision.snapshot_url)
        self.hass.bus.async_fire(EVENT_NEW_PERSON, self._decision_data(decision))
        for handler in list(self._camera_event_listeners.get(decision.camera, [])):
            handler(decision)

    def _sighting_events_wanted(self) -> bool:
        """smart_reid.person_seen comes several times a second on a busy camera, and every
        event fired is a row in the recorder's database. So it is fired only while something
        listens for it by name (an automation's event or device trigger, a websocket
        subscription to it) or when the user asked for it in the options (for listeners of
        all events, such as Node-RED's)."""
        if self.entry.options.get(CONF_SIGHTING_EVENTS, False):
            return True
        return EVENT_PERSON_SEEN in self.hass.bus.async_listeners()

    @callback
    def _handle_visit_event(self, kind: str, event: VisitEvent) -> None:
        visit = event.visit
        camera = event.camera or visit.last_camera
        if camera:
            self._ensure_camera(camera)
        self._ensure_event_person(visit.person_id, visit.label, visit.known)
        self._remember_snapshot(visit.visit_id, visit.snapshot_url)
        if kind == "visit_ended":
            self._end_visit_risk(visit.visit_id)
        data: dict[str, Any] = {
            ATTR_CONFIG_ENTRY_ID: self.entry.entry_id,
            "device_id": self._device_id(self.camera_identifier(camera)) if camera else None,
            "person_device_id": self._device_id(self.person_identifier(visit.person_id)),
            "reason": event.reason,
            "camera": camera,
            "visit_id": visit.visit_id,
            "person_id": visit.person_id,
            "label": visit.label,
            "known": visit.known,
            "is_new_identity": visit.is_new_identity,
            "returning": not visit.is_new_identity,
            "cameras": list(visit.cameras),
            "first_camera": visit.first_camera,
            "last_camera": visit.last_camera,
            "started_at": visit.started_at,
            "last_seen": visit.last_seen,
            "ended_at": visit.ended_at,
            "sightings": visit.sightings,
            "snapshot_url": self.sign_image(visit.snapshot_url),
            "thumbnail_url": self.sign_image(visit.thumbnail_url),
        }
        self.hass.bus.async_fire(
            EVENT_VISIT_ENDED if kind == "visit_ended" else EVENT_VISIT_UPDATED, data
        )

    @callback
    def _handle_risk(self, risk: RiskAssessment) -> None:
        """Fire `smart_reid.risk_assessed` and move the risk level sensors.

        Every assessment is an event (interim ones too: a notification can be updated with
        the rising level). The sensors show visits still going on: a final assessment, or
        one of a visit that already ended, only passes through as an event.
        """
        for camera in risk.cameras:
            self._ensure_camera(camera)
        known = risk.facts.get("status") in ("household", "known")
        self._ensure_event_person(risk.person_id, risk.label, known)
        self.last_risk = risk
        previous_level = self._visit_levels.pop(risk.visit_id, None)
        self._visit_levels[risk.visit_id] = risk.level
        while len(self._visit_levels) > SEEN_VISITS_MEMORY:
            self._visit_levels.popitem(last=False)
        data: dict[str, Any] = {
            ATTR_CONFIG_ENTRY_ID: self.entry.entry_id,
            "person_device_id": self._device_id(self.person_identifier(risk.person_id)),
            "visit_id": risk.visit_id,
            "person_id": risk.person_id,
            "label": risk.label,
            "level": risk.level,
            "previous_level": previous_level,
            "known": known,
            "status": risk.facts.get("status"),
            "score": risk.score,
            "reasons": [reason.as_dict() for reason in risk.reasons],
            "final": risk.final,
            "source": risk.source,
            "cameras": list(risk.cameras),
            "camera_device_ids": [
                device_id
                for camera in risk.cameras
                if (device_id := self._device_id(self.camera_identifier(camera)))
            ],
            "timestamp": risk.timestamp,
            "snapshot_url": self.sign_image(self._visit_snapshots.get(risk.visit_id)),
        }
        if risk.summary:
            data["summary"] = risk.summary
        self.hass.bus.async_fire(EVENT_RISK_ASSESSED, data)
        if risk.final:
            self._end_visit_risk(risk.visit_id)
        elif risk.visit_id not in self._ended_visits:
            previous = self.risks.get(risk.visit_id)
            self.risks[risk.visit_id] = risk
            self._notify_risk(risk, previous)

    @callback
    def _handle_zone(self, event: ZoneEvent) -> None:
        """Fire `smart_reid.zone_event` on the camera's device (docs/integration.md)."""
        self._ensure_camera(event.camera)
        self._ensure_event_person(event.person_id, event.label, event.known)
        self.hass.bus.async_fire(
            EVENT_ZONE,
            {
                ATTR_CONFIG_ENTRY_ID: self.entry.entry_id,
                "device_id": self._device_id(self.camera_identifier(event.camera)),
                "person_device_id": self._device_id(self.person_identifier(event.person_id)),
                "type": event.type,
                "camera": event.camera,
                "kind": event.kind,
                "name": event.name,
                "direction": event.direction,
                "reason": event.reason,
                "dwell_s": event.dwell_s,
                "person_id": event.person_id,
                "label": event.label,
                "known": event.known,
                "visit_id": event.visit_id,
                "timestamp": event.timestamp,
            },
        )

    @callback
    def _end_visit_risk(self, visit_id: str) -> None:
        """The visit is over: its level no longer counts for the sensors."""
        self._ended_visits[visit_id] = None
        while len(self._ended_visits) > SEEN_VISITS_MEMORY:
            self._ended_visits.popitem(last=False)
        if (risk := self.risks.pop(visit_id, None)) is not None:
            self._notify_risk(risk, None)

    @callback
    def _notify_risk(self, risk: RiskAssessment, previous: RiskAssessment | None) -> None:
        cameras = set(risk.cameras) | set(previous.cameras if previous else ())
        self._notify(risk_key(None))
        for camera in sorted(cameras):
            self._notify(risk_key(camera))

    def current_risk(self, camera: str | None = None) -> RiskAssessment | None:
        """The most worrying assessment of the visits going on (on `camera`, if given):
        highest level, then highest score, then the latest."""
        best: RiskAssessment | None = None
        for risk in self.risks.values():
            if camera is not None and camera not in risk.cameras:
                continue
            if best is None or (risk.rank, risk.score) >= (best.rank, best.score):
                best = risk
        return best

    @callback
    def _remember_snapshot(self, visit_id: str, path: str | None) -> None:
        if not path:
            return
        self._visit_snapshots[visit_id] = path
        self._visit_snapshots.move_to_end(visit_id)
        while len(self._visit_snapshots) > SEEN_VISITS_MEMORY:
            self._visit_snapshots.popitem(last=False)

    @callback
    def _handle_merged(self, merged: Merged) -> None:
        """The server merged a new identity into the person it really was: tell automations,
        so a notification sent for a duplicate visit can be withdrawn (`same_person`), or the
        notification of a returning person's visit updated to name them (`returning`). The
        dropped identity's device goes with its cleared retained state, as after a manual
        merge."""
        if merged.camera:
            self._ensure_camera(merged.camera)
        self.hass.bus.async_fire(
            EVENT_PERSON_MERGED,
            {
                ATTR_CONFIG_ENTRY_ID: self.entry.entry_id,
                "person_id": merged.person_id,
                "person_device_id": self._device_id(self.person_identifier(merged.person_id)),
                "merged_person_id": merged.merged_person_id,
                "visit_id": merged.visit_id,
                "merged_visit_id": merged.merged_visit_id,
                "label": merged.label,
                "known": merged.known,
                "camera": merged.camera,
                "similarity": merged.similarity,
                "reason": merged.reason,
                # The visit's picture, for a notification updated in place (reason returning).
                "snapshot_url": self.sign_image(
                    self._visit_snapshots.get(merged.visit_id) if merged.visit_id else None
                ),
            },
        )

    @callback
    def _ensure_event_person(self, person_id: str, label: str, known: bool) -> None:
        """Give an event's person a device even if the event beat its retained state.

        The contract promises no order across topics, so a first-time visitor's new_person
        event can arrive before `person/<id>/state`; automations still need `person_device_id`.
        The entities follow when the state arrives. Identities forgotten a moment ago are left
        alone: a late event must not bring their device back. A stranger seen now gets one
        only when strangers get devices at all.
        """
        if person_id in self.persons or person_id in self._forgotten:
            return
        automatic = None if label == person_id else label  # no label: the id stands in
        if is_stranger(automatic, known) and not self._strangers_get_devices():
            return
        self._ensure_person_device(person_id, label)

    def _decision_data(self, decision: Decision) -> dict[str, Any]:
        data: dict[str, Any] = {
            ATTR_CONFIG_ENTRY_ID: self.entry.entry_id,
            "device_id": self._device_id(self.camera_identifier(decision.camera)),
            "person_device_id": self._device_id(self.person_identifier(decision.person_id)),
            "person_id": decision.person_id,
            "label": decision.label,
            "known": decision.known,
            "is_new_identity": decision.is_new_identity,
            "returning": not decision.is_new_identity,
            "camera": decision.camera,
            "visit_id": decision.visit_id,
            "visit_cameras": list(decision.visit_cameras),
            "match": decision.match,
            "similarity": decision.similarity,
            "candidate_id": decision.candidate_id,
            "timestamp": decision.timestamp,
            "snapshot_url": self.sign_image(decision.snapshot_url),
            "thumbnail_url": self.sign_image(decision.thumbnail_url),
        }
        if frigate_event_id := decision.extra.get("frigate_event_id"):
            data["frigate_event_id"] = frigate_event_id
        return data

    # --- devices ---------------------------------------------------------------------------

    def device(self, identifier: tuple[str, str]) -> dr.DeviceEntry | None:
        """This entry's device with the identifier (hub, camera or person identifier)."""
        return find_device(dr.async_get(self.hass), identifier, self.entry.entry_id)

    def _device_id(self, identifier: tuple[str, str]) -> str | None:
        device = self.device(identifier)
        return device.id if device else None

    @callback
    def _ensure_hub_device(self) -> None:
        info = self.info
        get_or_create_device(
            dr.async_get(self.hass),
            self.entry.entry_id,
            self.hub_identifier(),
            manufacturer=MANUFACTURER,
            model="Smart ReID server",
            name=info.name if info else self.entry.title,
            sw_version=info.version if info else None,
            configuration_url=self.api.url,
            entry_type=dr.DeviceEntryType.SERVICE,
        )

    @callback
    def _ensure_camera(self, camera: str) -> None:
        if camera in self.cameras:
            return
        self.cameras[camera] = None
        get_or_create_device(
            dr.async_get(self.hass),
            self.entry.entry_id,
            self.camera_identifier(camera),
            via=self.hub_identifier(),
            manufacturer=MANUFACTURER,
            model="Camera",
            name=camera.replace("_", " ").capitalize(),
        )
        for new_camera in list(self._new_camera_callbacks):
            new_camera(camera)

    @callback
    def _ensure_person_device(self, person_id: str, label: str) -> None:
        get_or_create_device(
            dr.async_get(self.hass),
            self.entry.entry_id,
            self.person_identifier(person_id),
            via=self.hub_identifier(),
            manufacturer=MANUFACTURER,
            model="Identity",
            name=label,
            serial_number=person_id,
        )

    def _last_sighting(self, person: Person) -> float:
        """Unix time of the person's last sighting (when first heard of, if the state says
        nothing)."""
        if person.last_seen is not None:
            return person.last_seen
        if person.first_seen is not None:
            return person.first_seen
        return self._heard_at.get(person.person_id, dt_util.utcnow().timestamp())

    def wants_device(self, person: Person, now: datetime | None = None) -> bool:
        """Household and named people always have a device; strangers while recent.

        A stranger whose device the user deleted gets it back only with a later sighting.
        """
        if not person.is_stranger:
            return True
        if not self._strangers_get_devices():
            return False
        seen = self._last_sighting(person)
        if (dismissed := self._dismissed.get(person.person_id)) is not None and seen <= dismissed:
            return False
        now = now or dt_util.utcnow()
        return now.timestamp() - seen < self.stranger_retention.total_seconds()

    def _strangers_get_devices(self) -> bool:
        return self.stranger_retention > timedelta(0) and self.stranger_cap > 0

    def _stranger_devices(self) -> list[Person]:
        """Strangers that have a device now, least recently seen first."""
        strangers = [
            person
            for person_id in self.person_devices
            if (person := self.persons.get(person_id)) is not None and person.is_stranger
        ]
        return sorted(strangers, key=self._last_sighting)

    def _outranked(self, person: Person) -> bool:
        """A stranger without a device while the strangers' devices are all taken by people
        seen more recently: giving them one would only take it from someone else."""
        if not person.is_stranger or person.person_id in self.person_devices:
            return False
        strangers = self._stranger_devices()
        return len(strangers) >= self.stranger_cap and self._last_sighting(
            person
        ) <= self._last_sighting(strangers[0])

    @callback
    def _enforce_stranger_cap(self) -> None:
        """Only the `stranger_cap` most recently seen strangers keep their devices."""
        strangers = self._stranger_devices()
        for person in strangers[: max(0, len(strangers) - self.stranger_cap)]:
            self._drop_person_device(person.person_id, "strangers seen more recently")

    @callback
    def _sync_person_device(self, person: Person, previous: Person | None) -> None:
        """Create, rename or remove the person's device to match `wants_device` and the cap
        on strangers' devices."""
        person_id = person.person_id
        if not self.wants_device(person) or self._outranked(person):
            if person_id in self.person_devices or previous is None:
                # The first state after a start may find a device left from before it.
                self._drop_person_device(person_id)
            return
        self._dismissed.pop(person_id, None)
        if person_id not in self.person_devices:
            self._ensure_person_device(person_id, person.label)
            self.person_devices.add(person_id)
            for new_person in list(self._new_person_callbacks):
                new_person(person_id)
        elif previous is not None and previous.label != person.label:
            self._ensure_person_device(person_id, person.label)
        if person.is_stranger:
            self._enforce_stranger_cap()

    @callback
    def _drop_person_device(self, person_id: str, why: str = "not seen recently") -> None:
        """Remove an identity's device and with it its entities; its state is kept."""
        self.person_devices.discard(person_id)
        if device := self.device(self.person_identifier(person_id)):
            LOGGER.debug("Removing the device of stranger %s (%s)", person_id, why)
            dr.async_get(self.hass).async_remove_device(device.id)

    @callback
    def _check_strangers(self, now: datetime) -> None:
        """Every few minutes: strangers not seen within the retention lose their device."""
        for person_id in list(self.person_devices):
            person = self.persons.get(person_id)
            if person is not None and not self.wants_device(person, now):
                self._drop_person_device(person_id)

    @callback
    def async_person_device_removed(self, person: Person) -> None:
        """The user deleted a stranger's device: it comes back only if they are seen again."""
        self._dismissed[person.person_id] = self._last_sighting(person)
        self.person_devices.discard(person.person_id)

    def person_id_of(self, device: dr.DeviceEntry) -> str | None:
        """The identity a device of this entry stands for, if it is an identity's device."""
        prefix = f"{self.server_id}_person_"
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier.startswith(prefix):
                return identifier[len(prefix) :]
        return None

    @callback
    def _forget_person(self, person_id: str) -> None:
        """An empty retained person message: the identity is gone, and so is its device."""
        self.persons.pop(person_id, None)
        self.person_devices.discard(person_id)
        self._dismissed.pop(person_id, None)
        self._heard_at.pop(person_id, None)
        self._forgotten[person_id] = None
        while len(self._forgotten) > SEEN_VISITS_MEMORY:
            self._forgotten.popitem(last=False)
        self._remove_person_device(person_id)
        self._notify(HUB)

    @callback
    def _remove_person_device(self, person_id: str) -> None:
        if device := self.device(self.person_identifier(person_id)):
            LOGGER.debug("Removing the device of forgotten identity %s", person_id)
            dr.async_get(self.hass).async_remove_device(device.id)

    async def _async_remove_stale_person_devices(self) -> None:
        """Identities forgotten while Home Assistant was not listening left devices behind,
        and so did strangers whose time ran out meanwhile."""
        try:
            listed = await self.api.persons()
        except SmartReidError as err:
            LOGGER.debug("Could not list identities to tidy up devices: %s", err)
            return
        current = {str(p.get("person_id")) for p in listed} | set(self.persons)
        listed_people: dict[str, Person] = {}
        for raw in listed:
            try:
                person = Person.from_json(raw)
            except PayloadError:
                continue
            listed_people[person.person_id] = person
        registry = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(registry, self.entry.entry_id):
            if (person_id := self.person_id_of(device)) is None:
                continue
            if person_id not in current:
                self._remove_person_device(person_id)
            elif person_id not in self.person_devices:
                found = self.persons.get(person_id) or listed_people.get(person_id)
                if found is not None and (not self.wants_device(found) or self._outranked(found)):
                    self._remove_person_device(person_id)

    # --- availability and repairs ----------------------------------------------------------

    @callback
    def _notify(self, key: str) -> None:
        for update in list(self._listeners.get(key, [])):
            update()
        for changed in list(self._change_listeners):
            changed()

    @callback
    def _notify_all(self) -> None:
        for listeners in list(self._listeners.values()):
            for update in list(listeners):
                update()
        for changed in list(self._change_listeners):
            changed()

    @callback
    def _update_availability(self) -> None:
        available = self.available
        if available and self._logged_unavailable:
            LOGGER.info("Smart ReID server on %s is available again", self.base_topic)
            self._logged_unavailable = False
        elif not available and not self._logged_unavailable:
            if not self.mqtt_connected:
                LOGGER.info("Smart ReID entities are unavailable: MQTT is not connected")
                self._logged_unavailable = True
            elif self.status is not None:
                LOGGER.info(
                    "Smart ReID server on %s is %s; its entities are unavailable until it is back",
                    self.base_topic,
                    self.status,
                )
                self._logged_unavailable = True
        if available != self._was_available:
            self._was_available = available
            self._notify_all()
        self._update_reachability()

    @callback
    def _update_reachability(self) -> None:
        if self.available and self.http_ok:
            self._cancel_grace_timer()
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(ISSUE_UNREACHABLE))
        elif self._grace_timer is None:
            self._grace_timer = async_call_later(self.hass, UNREACHABLE_GRACE, self._grace_expired)

    @callback
    def _cancel_grace_timer(self) -> None:
        if self._grace_timer:
            self._grace_timer()
            self._grace_timer = None

    @callback
    def _grace_expired(self, _now: datetime) -> None:
        self._grace_timer = None
        if self.available and self.http_ok:
            return
        if not self.mqtt_connected:
            reason = "mqtt"
        elif self.status != STATUS_ONLINE:
            reason = "offline"
        else:
            reason = "http"
        LOGGER.warning(
            "Smart ReID server at %s (topic %s) has been unreachable for %s (%s)",
            self.api.url,
            self.base_topic,
            UNREACHABLE_GRACE,
            reason,
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id(ISSUE_UNREACHABLE),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=f"{ISSUE_UNREACHABLE}_{reason}",
            translation_placeholders={
                "name": self.entry.title,
                "url": self.api.url,
                "base_topic": self.base_topic,
            },
            # Without the server (or the broker) nobody is announced: the page says how the
            # notification blueprint falls back to person-detection sensors meanwhile.
            learn_more_url=OFFLINE_DOCS_URL if reason != "http" else None,
        )

    async def async_check_http(self) -> bool:
        """Ask the server who it is with the token: that proves both reachability and auth.

        `/api/health` needs no token, so it would call a server that refuses every picture and
        action "fine". A rejected token is not an outage: the server answers, and the
        re-authentication flow (not the "unreachable" repair) tells the user what to do.
        """
        try:
            await self.api.info()
        except SmartReidAuthError:
            self.async_set_http_state(True)
        except SmartReidError as err:
            self.async_set_http_state(False, str(err))
        else:
            self.async_set_http_state(True)
        return self.http_ok

    @callback
    def async_set_http_state(self, reachable: bool, error: str | None = None) -> None:
        """Record whether the HTTP API answers; the periodic check keeps this current."""
        if reachable and not self.http_ok:
            LOGGER.info("Smart ReID HTTP API at %s answers again", self.api.url)
        elif not reachable and self.http_ok:
            LOGGER.info("Smart ReID HTTP API at %s is unreachable: %s", self.api.url, error)
        self.http_ok = reachable
        self._update_reachability()

    @callback
    def _periodic_http_check(self, _now: datetime) -> None:
        """Every minute: MQTT alone cannot tell that pictures and actions stopped working."""
        if self._checking_http:
            return
        self._checking_http = True
        self.entry.async_create_background_task(
            self.hass, self._async_periodic_http_check(), f"{DOMAIN} HTTP check"
        )

    async def _async_periodic_http_check(self) -> None:
        try:
            await self.async_check_http()
        finally:
            self._checking_http = False

    @callback
    def async_auth_failed(self) -> None:
        """The server rejected the token after set-up: ask the user for the new one, once."""
        if self._reauth_requested:
            return
        self._reauth_requested = True
        LOGGER.warning(
            "Smart ReID server at %s rejected the token; asking for the current one", self.api.url
        )
        self.entry.async_start_reauth(self.hass)

    async def _async_back_online(self) -> None:
        if await self.async_check_http():
            await self._async_remove_stale_person_devices()

    @callback
    def _update_model_issue(self) -> None:
        reid = self.info.reid if self.info else None
        if reid is not None and not reid.is_reid:
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self._issue_id(ISSUE_NOT_REID),
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key=ISSUE_NOT_REID,
                translation_placeholders={"name": self.entry.title, "model": reid.name or "?"},
            )
        else:
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(ISSUE_NOT_REID))

    @callback
    def _update_contract_issue(self) -> None:
        """A server on another contract version may publish what this integration misreads."""
        if self.info is not None and self.info.contract != SUPPORTED_CONTRACT:
            if self._contract_reported != self.info.contract:
                self._contract_reported = self.info.contract
                LOGGER.warning(
                    "Smart ReID server on %s speaks contract version %s, this integration "
                    "understands %s; update the older of the two",
                    self.base_topic,
                    self.info.contract,
                    SUPPORTED_CONTRACT,
                )
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self._issue_id(ISSUE_UNSUPPORTED_CONTRACT),
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key=ISSUE_UNSUPPORTED_CONTRACT,
                translation_placeholders={
                    "name": self.entry.title,
                    "contract": str(self.info.contract),
                    "supported": str(SUPPORTED_CONTRACT),
                },
            )
        else:
            self._contract_reported = None
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(ISSUE_UNSUPPORTED_CONTRACT))

    def _issue_id(self, issue: str) -> str:
        return f"{issue}_{self.entry.entry_id}"

    # --- bad input -------------------------------------------------------------------------

    def _decode(self, msg: ReceiveMessage) -> Any:
        try:
            return decode_json(msg.payload, msg.topic)
        except PayloadError as err:
            self._bad_payload(msg.topic, err)
            return None

    def _bad_payload(self, topic: str, err: PayloadError) -> None:
        """Log a bad message as a warning once per topic, then at debug level."""
        level = LOGGER.debug if topic in self._bad_topics else LOGGER.warning
        self._bad_topics.add(topic)
        level(
            "Ignoring a message on %s that does not follow the Smart ReID contract: %s "
            "(check that the server and the integration are up to date)",
            topic,
            err,
        )
