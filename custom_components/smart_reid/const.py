"""Constants shared by the Smart ReID integration's modules."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Final

DOMAIN: Final = "smart_reid"
LOGGER = logging.getLogger(__package__)

CONF_BASE_TOPIC: Final = "base_topic"
CONF_URL: Final = "url"
CONF_TOKEN: Final = "token"

# Options: one entry per camera entity whose frames Home Assistant sends to the server.
CONF_FORWARD: Final = "forward"
CONF_CAMERA_ENTITY: Final = "camera_entity"
CONF_TRIGGER_ENTITY: Final = "trigger_entity"
CONF_INTERVAL_S: Final = "interval_s"

DEFAULT_BASE_TOPIC: Final = "smart_reid"
DEFAULT_PORT: Final = 8756
DEFAULT_INTERVAL_S: Final = 1.0
MIN_INTERVAL_S: Final = 0.2
MAX_INTERVAL_S: Final = 60.0

# The only contract version this integration reads (docs/contract.md, info.contract).
SUPPORTED_CONTRACT: Final = 1

CAMERA_NAME: Final = re.compile(r"^[a-z0-9_]{1,64}$")
BASE_TOPIC: Final = re.compile(r"^[^#+\s]+$")

STATUS_ONLINE: Final = "online"
STATUS_OFFLINE: Final = "offline"
LOCATION_AWAY: Final = "away"
# The risk level sensors' state while no visit is going on.
RISK_NONE: Final = "none"

EVENT_NEW_PERSON: Final = f"{DOMAIN}.new_person"
EVENT_PERSON_SEEN: Final = f"{DOMAIN}.person_seen"
EVENT_VISIT_UPDATED: Final = f"{DOMAIN}.visit_updated"
EVENT_VISIT_ENDED: Final = f"{DOMAIN}.visit_ended"
EVENT_PERSON_MERGED: Final = f"{DOMAIN}.person_merged"
EVENT_RISK_ASSESSED: Final = f"{DOMAIN}.risk_assessed"
EVENT_ZONE: Final = f"{DOMAIN}.zone_event"

# Event entity types on each camera: who started a visit there.
EVENT_TYPE_NEW: Final = "new_person"
EVENT_TYPE_RETURNING: Final = "returning_person"
EVENT_TYPE_KNOWN: Final = "known_person"
EVENT_TYPES: Final = (EVENT_TYPE_NEW, EVENT_TYPE_RETURNING, EVENT_TYPE_KNOWN)

# Signed image links in bus events must outlive a phone fetching the attachment a little
# late, but not stay valid for anyone who later finds them in a log.
SIGNED_URL_TTL: Final = timedelta(hours=1)
IMAGE_VIEW_PREFIX: Final = "/api/smart_reid"

# A "last seen" time that followed every sighting would write a database row per sighting:
# while people stay in view it moves forward in steps of this many seconds (it is exact when
# someone arrives, when a visit changes and when everyone has left).
LAST_SEEN_STEP_S: Final = 60.0

# Options: fire smart_reid.person_seen for every sighting even when no automation listens.
CONF_SIGHTING_EVENTS: Final = "sighting_events"

# Options: hours an unnamed identity that is not marked known (a stranger) keeps its device and
# entities after it was last seen; 0 gives strangers no devices at all. Household and named
# people always have theirs.
CONF_STRANGER_HOURS: Final = "stranger_hours"
DEFAULT_STRANGER_HOURS: Final = 24
MAX_STRANGER_HOURS: Final = 720
# Options: at most this many strangers have a device at a time, the most recently seen ones (a
# busy street camera sees hundreds within the hours above); 0 gives strangers no devices.
CONF_STRANGER_DEVICES: Final = "stranger_devices"
DEFAULT_STRANGER_DEVICES: Final = 25
MAX_STRANGER_DEVICES: Final = 500
# How often devices of strangers no longer seen within that time are looked for and removed.
STRANGER_CHECK_INTERVAL: Final = timedelta(minutes=10)

# What to do while the server is offline (the repair issue's "Learn more").
OFFLINE_DOCS_URL: Final = (
    "https://github.com/smart-reid/smart-reid/blob/main/docs/integration.md"
    "#when-the-server-is-offline"
)

# Offline this long before a repair issue appears: restarts and updates should not nag.
UNREACHABLE_GRACE: Final = timedelta(minutes=3)
# How often the HTTP API is asked (with the token) whether it still answers.
HTTP_CHECK_INTERVAL: Final = timedelta(minutes=1)

HTTP_TIMEOUT_S: Final = 10.0
# GET /api/summary may wait for the server's LLM (which gives up on its own after its timeout).
SUMMARY_TIMEOUT_S: Final = 60.0
# How many visit ids are remembered to fire smart_reid.new_person at most once per visit.
SEEN_VISITS_MEMORY: Final = 2048

ISSUE_UNREACHABLE: Final = "server_unreachable"
ISSUE_NOT_REID: Final = "non_reid_model"
ISSUE_UNSUPPORTED_CONTRACT: Final = "unsupported_contract"

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_PERSON_ID: Final = "person_id"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_FROM_PERSON_ID: Final = "from_person_id"
ATTR_FROM_DEVICE_ID: Final = "from_device_id"
ATTR_NAME: Final = "name"
ATTR_KNOWN: Final = "known"
ATTR_CAMERA: Final = "camera"
ATTR_CAMERA_ENTITY_ID: Final = "camera_entity_id"
ATTR_LIMIT: Final = "limit"
ATTR_START: Final = "start"
ATTR_END: Final = "end"
ATTR_USE_AI_TASK: Final = "use_ai_task"

EVENT_DAILY_DIGEST: Final = f"{DOMAIN}.daily_digest"
# Options: local time of day ("HH:MM:SS") of the daily digest; absent or empty: no digest.
CONF_DIGEST_TIME: Final = "digest_time"

# The server answers at most this long a period per request (docs/contract.md).
MAX_PERIOD: Final = timedelta(days=31)
