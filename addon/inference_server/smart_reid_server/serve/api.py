"""The HTTP API of docs/contract.md (aiohttp).

Every error is JSON ``{"error": "<code>", "message": "<what happened and what to do>"}`` with the
status the contract names, including aiohttp's own (unknown route, wrong method, body too big),
so the integration and scripts never have to parse HTML error pages. With ``http.token`` set,
every route but ``/api/health`` and ``/`` needs ``Authorization: Bearer <token>`` (compared in
constant time). Handlers never do CPU work on the event loop: decoding, rendering and identity
queries run in executors.

``/`` is the one HTML page (status_page.py: version, health, models, cameras, links; public,
nothing about people). Browsers are kept out of the rest (docs/security.md): a state-changing
request that a browser marks as coming from another site (``Origin``, ``Sec-Fetch-Site``) is
refused with 403, JSON bodies must be sent as ``application/json`` (which a plain HTML form or a
"simple" cross-site request cannot do), and without a token only requests naming a loopback or
configured host in ``Host`` are answered, so a DNS-rebinding page cannot read the API either.
Ids that end up in file names are checked against their strict format before use.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from yarl import URL

from .. import __version__
from ..identity.store import StoreUnavailableError, UnknownPersonError
from ..ingest.sources import QuietLog
from ..pipeline import FrameDroppedError
from ..risk.rules import LEVELS
from ..types import CAMERA_NAME, Detection, Frame, Image
from ..vision.decode import (
    BadFrameError,
    BoxBudget,
    decode_image,
    parse_detections,
    parse_timestamp,
)
from .host import ApiHost
from .publish import decision_json
from .states import StateView
from .status_page import HEADERS as STATUS_PAGE_HEADERS
from .status_page import render as render_status_page

_LOGGER = logging.getLogger(__name__)

APP_KEY: web.AppKey[ApiHost] = web.AppKey("smart_reid_app", object)  # type: ignore[arg-type]
# Refused uploads are logged through this, so a misbehaving client cannot flood the log.
QUIET_KEY: web.AppKey[QuietLog] = web.AppKey("smart_reid_quiet_log", QuietLog)
_UPLOAD_CAMERA = "smart_reid_upload_camera"  # the camera a form named, for the refusal log
_MULTIPART_SLACK = 1 << 20
# person_id and visit_id: 12 lowercase hex characters (docs/contract.md). Checked before any
# lookup, so an id can never become a path outside the data directory.
ENTITY_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_FRAME_ID = 128
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Answered without the token: health, and the status page a browser opens (status_page.py).
_PUBLIC_PATHS = frozenset({"/api/health", "/"})
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Fetch metadata a browser sets: only a request the user made directly (typed URL, bookmark)
# or one from a page of this server (there are none) may change anything.
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "internal_error",
    503: "not_ready",
}

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error answered as the contract's JSON error body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _json_error(status: int, message: str, code: str | None = None) -> web.Response:
    body = {"error": code or _STATUS_CODES.get(status, "error"), "message": message}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return _json_error(err.status, err.message, err.code)
    except StoreUnavailableError as err:  # PostgreSQL away: health says so, the store logged it
        return _json_error(503, str(err))
    except web.HTTPException as err:
        if err.status_code < 400:
            raise
        message = {
            404: f"no such route {request.method} {request.path}; see docs/contract.md",
            405: f"{request.method} is not allowed on {request.path}",
            413: "request body is too large; frames may be at most http.max_upload_mb MiB",
        }.get(err.status_code, err.reason)
        return _json_error(err.status_code, message)
    except asyncio.CancelledError:
        raise
    except Exception:
        _LOGGER.exception("%s %s failed", request.method, request.path)
        return _json_error(500, "internal error; see the server log")


def _auth(token: str | None) -> Any:
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or request.path in _PUBLIC_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _json_error(
                401, "missing or wrong token: send the header 'Authorization: Bearer <http.token>'"
            )
        return await handler(request)

    return check


def _host_name(value: str) -> str | None:
    """The host name in a ``Host`` header (without port, brackets or trailing dot)."""
    try:
        host = URL(f"http://{value}").raw_host
    except ValueError:
        return None
    return host.rstrip(".").lower() if host else None


def _hosts_allowed(app: ApiHost) -> set[str]:
    """Host names a request may name when the API has no token (DNS rebinding defence)."""
    allowed = set(_LOOPBACK_HOSTS)
    http = app.settings.section("http")
    for value in (str(http["host"]), app.http_url().split("://", 1)[-1].split("/", 1)[0]):
        name = _host_name(value)
        if name:
            allowed.add(name)
    if http["public_url"]:
        name = _host_name(str(http["public_url"]).split("://", 1)[-1].split("/", 1)[0])
        if name:
            allowed.add(name)
    return allowed


def _guard(app: ApiHost) -> Any:
    """Refuse what only a browser tricked by another web site would send (module docstring)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if app.token is None:
            name = _host_name(request.host)
            if name is None or name not in _hosts_allowed(app):
                return _json_error(
                    403,
                    f"Host {request.host[:100]!r} is not an address of this server; without "
                    "http.token only loopback and the configured host or public_url are "
                    "answered (a web page may be trying DNS rebinding)",
                    "forbidden_host",
                )
        if request.method not in _SAFE_METHODS:
            site = request.headers.get("Sec-Fetch-Site")
            origin = request.headers.get("Origin")
            cross_origin = origin is not None and (
                origin == "null" or not _same_origin(origin, request.host)
            )
            if (site is not None and site.lower() not in _ALLOWED_FETCH_SITES) or cross_origin:
                return _json_error(
                    403,
                    f"cross-site {request.method} refused (Origin {origin or '-'}, "
                    f"Sec-Fetch-Site {site or '-'}): this API changes nothing on behalf of "
                    "web pages; call it from Home Assistant, a script or curl",
                    "cross_origin",
                )
        return await handler(request)

    return check


def _same_origin(origin: str, host: str) -> bool:
    """Whether ``Origin`` names this server as the request reached it (``Host``)."""
    try:
        given = URL(origin)
        reached = URL(f"{given.scheme}://{host}")
    except ValueError:
        return False
    if not given.raw_host or not reached.raw_host:
        return False
    return (given.raw_host.lower(), given.port) == (reached.raw_host.lower(), reached.port)


def create_api(app: ApiHost) -> web.Application:
    """The aiohttp application serving ``app``."""
    web_app = web.Application(
        middlewares=[_errors, _guard(app), _auth(app.token)],
        client_max_size=app.max_upload_bytes + _MULTIPART_SLACK,
    )
    web_app[APP_KEY] = app
    web_app[QUIET_KEY] = QuietLog(_LOGGER)
    r = web_app.router
    r.add_get("/", status_page)
    r.add_get("/api/health", health)
    r.add_get("/api/info", info)
    r.add_get("/api/settings", settings)
    r.add_get("/api/stats", stats)
    r.add_post("/api/frames", upload_frame)
    r.add_post("/api/search", search_person)
    r.add_get("/api/persons", list_persons)
    r.add_get("/api/persons/{person_id}", get_person)
    r.add_patch("/api/persons/{person_id}", patch_person)
    r.add_delete("/api/persons/{person_id}", delete_person)
    r.add_post("/api/persons/{person_id}/merge", merge_person)
    r.add_get("/api/persons/{person_id}/thumbnail.jpg", person_thumbnail)
    r.add_post("/api/reset", reset)
    r.add_get("/api/visits", list_visits)
    r.add_get("/api/summary", get_summary)
    r.add_get("/api/visits/{visit_id}", get_visit)
    r.add_get("/api/visits/{visit_id}/snapshot.jpg", visit_snapshot)
    r.add_get("/api/cameras", list_cameras)
    r.add_get("/api/cameras/{camera}", get_camera)
    r.add_get("/api/cameras/{camera}/snapshot.jpg", camera_snapshot)
    return web_app


def _app(request: web.Request) -> ApiHost:
    return request.app[APP_KEY]


def _running(request: web.Request) -> ApiHost:
    app = _app(request)
    if app.state == "standby":
        raise ApiError(
            503,
            "this is the standby matcher: it answers once the leading matcher stops; "
            "use the leading matcher's address (its /api/health answers 200)",
        )
    if app.state != "running":
        raise ApiError(503, f"server is {app.state}; try again in a moment")
    return app


# -- status ------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    status, reasons = _app(request).health()
    code = 503 if status == "starting" else 200
    return web.json_response(
        {"status": status, "reasons": reasons, "version": __version__}, status=code
    )


async def status_page(request: web.Request) -> web.Response:
    """``/``: a small HTML page for people (status_page.py); the JSON API is unchanged."""
    return web.Response(
        text=render_status_page(_app(request)),
        content_type="text/html",
        charset="utf-8",
        headers=STATUS_PAGE_HEADERS,
    )


async def info(request: web.Request) -> web.Response:
    return web.json_response(_running(request).info())


async def settings(request: web.Request) -> web.Response:
    return web.json_response(_app(request).settings.redacted())


async def stats(request: web.Request) -> web.Response:
    return web.json_response(_app(request).stats())


# -- frames ------------------------------------------------------------------------------------


async def upload_frame(request: web.Request) -> web.Response:
    """``POST /api/frames``; a refused upload is logged (one line, rate-limited, no bytes)."""
    try:
        return await _upload_frame(request)
    except ApiError as err:
        _log_refused(
            request, err.status, err.code or _STATUS_CODES.get(err.status, "error"), err.message
        )
        raise
    except web.HTTPException as err:
        if err.status_code >= 400:
            _log_refused(
                request, err.status_code, _STATUS_CODES.get(err.status_code, "error"), err.reason
            )
        raise


def _log_refused(request: web.Request, status: int, code: str, reason: str) -> None:
    given = str(request.query.get("camera") or request.get(_UPLOAD_CAMERA) or "-")[:64]
    camera = "".join(c if c.isprintable() and not c.isspace() else "?" for c in given)
    size = request.content_length
    request.app[QUIET_KEY].warning(
        f"upload:{status}:{camera}:{reason[:200]}",
        "frame upload refused: status=%d error=%s camera=%s peer=%s bytes=%s reason=%s",
        status,
        code,
        camera,
        request.remote or "-",
        "-" if size is None else size,
        reason,
    )


async def _upload_frame(request: web.Request) -> web.Response:
    app = _running(request)
    received = time.monotonic()
    fields, data = await _read_upload(request, app.max_upload_bytes)
    camera = str(fields.get("camera") or "")
    request[_UPLOAD_CAMERA] = camera
    if not camera:
        raise ApiError(400, "camera is missing: add ?camera=<name> or a 'camera' form field")
    if not CAMERA_NAME.match(camera):
        raise ApiError(400, f"camera name {camera!r} must be 1-64 characters of a-z, 0-9 and _")
    if not app.cameras.accepts(camera):
        raise ApiError(
            404,
            f"unknown camera {camera!r}; add it to `cameras` or set auto_add_cameras: true",
        )
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    try:
        timestamp = parse_timestamp(fields.get("timestamp"), time.time())
        image, detections = await loop.run_in_executor(
            None, _decode_upload, data, fields.get("detections"), app.max_upload_bytes, app.boxes
        )
    except BadFrameError as err:
        raise ApiError(err.code, err.message, err.error) from None
    app.latency.record("decode", (time.monotonic() - t0) * 1000.0)
    frame = Frame(
        camera=camera,
        image=image,
        timestamp=timestamp,
        source="http",
        frame_id=str(fields.get("frame_id") or "")[:MAX_FRAME_ID],
        detections=detections,
        received_monotonic=received,
    )
    pipeline = app.intake
    if pipeline is None:
        raise ApiError(503, "the pipeline is not running")
    try:
        result = await pipeline.process(frame)
    except FrameDroppedError as err:
        raise ApiError(503, f"{err}; retry later or send fewer frames", "overloaded") from None
    except StoreUnavailableError as err:
        raise ApiError(503, f"the frame was not stored: {err}") from None
    except (ValueError, RuntimeError) as err:
        raise ApiError(400, f"the frame could not be processed: {err}") from None

    view = result.extra if isinstance(result.extra, StateView) else StateView()
    return web.json_response(
        {
            "camera": camera,
            "frame_id": frame.frame_id or None,
            "timestamp": round(frame.timestamp, 3),
            "detections": len(result.detections),
            "decisions": [decision_json(d, view.thumbnails) for d in result.decisions],
            "latency_ms": round((time.monotonic() - received) * 1000.0, 1),
        }
    )


async def search_person(request: web.Request) -> web.Response:
    """Who is this? The largest person in an uploaded picture, ranked against the gallery."""
    app = _running(request)
    fields, data = await _read_upload(request, app.max_upload_bytes)
    camera = str(fields.get("camera") or "") or None
    if camera is not None and camera not in app.cameras:
        raise ApiError(404, f"unknown camera {camera!r}; leave camera out or use a configured one")
    try:
        limit = int(fields.get("limit") or 5)
    except ValueError:
        raise ApiError(400, "limit must be a whole number from 1 to 50") from None
    if not 1 <= limit <= 50:
        raise ApiError(400, "limit must be a whole number from 1 to 50")
    loop = asyncio.get_running_loop()
    try:
        image, detections = await loop.run_in_executor(
            None, _decode_upload, data, fields.get("detections"), app.max_upload_bytes, app.boxes
        )
    except BadFrameError as err:
        raise ApiError(err.code, err.message, err.error) from None
    try:
        detection, quality_ok, hits, reranked = await app.search(image, detections, camera, limit)
    except LookupError as err:
        raise ApiError(422, str(err), "no_person") from None
    box = detection.box
    return web.json_response(
        {
            "camera": camera,
            "box": [round(v, 1) for v in (box.x1, box.y1, box.x2, box.y2)],
            "quality_ok": quality_ok,
            "ranking": "reranked" if reranked else "cosine",
            "results": [hit.to_json() for hit in hits],
        }
    )


def _decode_upload(
    data: bytes, raw_detections: Any, max_bytes: int, boxes: BoxBudget
) -> tuple[Image, list[Detection] | None]:
    image = decode_image(data, max_bytes=max_bytes)
    detections = None
    if raw_detections not in (None, ""):
        detections = parse_detections(
            raw_detections, int(image.shape[1]), int(image.shape[0]), boxes
        )
    return image, detections


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """(fields, image bytes) from a multipart form or a raw image body with query fields.

    A malformed body (broken multipart framing, a body cut short) is the sender's error: 400.
    """
    try:
        return await _read_upload_body(request, max_bytes)
    except (ApiError, web.HTTPException, asyncio.CancelledError):
        raise
    except Exception as err:  # aiohttp's multipart reader raises ValueError, AssertionError, ...
        raise ApiError(
            400,
            f"the upload could not be read ({type(err).__name__}: {err}); send multipart/form-data "
            "with an 'image' file, or a raw image/jpeg or image/png body",
        ) from None


async def _read_upload_body(request: web.Request, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    content_type = request.content_type
    if content_type.startswith("multipart/"):
        return await _read_multipart(request, max_bytes)
    if content_type in ("image/jpeg", "image/png", "image/jpg", "application/octet-stream"):
        if request.content_length is not None and request.content_length > max_bytes:
            raise ApiError(
                413,
                f"image is {request.content_length / 1048576:.1f} MiB, over the "
                f"{max_bytes / 1048576:.0f} MiB limit (http.max_upload_mb)",
            )
        data = await request.read()
        return dict(request.query), data
    raise ApiError(
        415,
        f"Content-Type {content_type or '(none)'} is not supported: send multipart/form-data "
        "with an 'image' file, or a raw image/jpeg or image/png body",
    )


async def _read_multipart(request: web.Request, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    fields: dict[str, Any] = dict(request.query)
    data: bytes | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if name == "image":
            data = await _read_part(part, max_bytes)
        elif name in ("camera", "timestamp", "frame_id", "detections", "limit"):
            fields[name] = (await _read_part(part, 1 << 20)).decode("utf-8", "replace").strip()
        else:
            await part.release()
    if data is None:
        raise ApiError(400, "multipart upload has no 'image' file field")
    return fields, data


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(1 << 16):
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413,
                f"form field {part.name!r} is over the {limit / 1048576:.0f} MiB limit "
                "(http.max_upload_mb)",
            )
        chunks.append(chunk)
    return b"".join(chunks)


# -- persons -----------------------------------------------------------------------------------


def _bool_query(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError(400, f"?{name}= must be true or false, got {value!r}")


async def _json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The JSON object body; sent as ``application/json``, or 415 (a cross-site form cannot)."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            f"Content-Type {request.content_type or '(none)'} is not supported: send the body as "
            "application/json",
        )
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "request body must be a JSON object")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise ApiError(400, f"request body is not valid UTF-8 JSON: {err}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _unknown_person(person_id: str) -> ApiError:
    return ApiError(404, f"unknown person {person_id[:64]!r} (forgotten, merged or never seen)")


def _person_id(request: web.Request, key: str = "person_id") -> str:
    """The person id in the URL; 404 unless it has the contract's format (12 hex)."""
    person_id = request.match_info[key]
    if not ENTITY_ID.match(person_id):
        raise _unknown_person(person_id)
    return person_id


def _visit_id(request: web.Request) -> str:
    visit_id = request.match_info["visit_id"]
    if not ENTITY_ID.match(visit_id):
        raise ApiError(404, f"unknown visit {visit_id[:64]!r}")
    return visit_id


async def list_persons(request: web.Request) -> web.Response:
    app = _running(request)
    camera = request.query.get("camera") or None
    known = _bool_query(request, "known")
    present = _bool_query(request, "present")
    persons = await app.persons(camera, known, present)
    return web.json_response({"persons": persons})


async def get_person(request: web.Request) -> web.Response:
    app = _running(request)
    person_id = _person_id(request)
    try:
        return web.json_response(await app.person(person_id))
    except UnknownPersonError:
        raise _unknown_person(person_id) from None


async def patch_person(request: web.Request) -> web.Response:
    app = _running(request)
    person_id = _person_id(request)
    body = await _json_body(request)
    label = body.get("label")
    known = body.get("known")
    if label is None and known is None:
        raise ApiError(400, 'send {"label": "Alice"} and/or {"known": true}')
    if label is not None and not isinstance(label, str):
        raise ApiError(400, f"label must be a string, got {label!r}")
    if known is not None and not isinstance(known, bool):
        raise ApiError(400, f"known must be true or false, got {known!r}")
    try:
        person = await app.update_person(person_id, label, known)
    except UnknownPersonError:
        raise _unknown_person(person_id) from None
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    return web.json_response(person)


async def delete_person(request: web.Request) -> web.Response:
    app = _running(request)
    person_id = _person_id(request)
    try:
        await app.forget(person_id)
    except UnknownPersonError:
        raise _unknown_person(person_id) from None
    return web.json_response({"forgotten": person_id})


async def merge_person(request: web.Request) -> web.Response:
    app = _running(request)
    keep = _person_id(request)
    body = await _json_body(request)
    drop = body.get("from")
    if not isinstance(drop, str) or not drop:
        raise ApiError(400, 'send {"from": "<person id to fold into this one>"}')
    if not ENTITY_ID.match(drop):
        raise _unknown_person(drop)
    try:
        person = await app.merge(keep, drop)
    except UnknownPersonError as err:
        raise _unknown_person(str(err.args[0]) if err.args else drop) from None
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    return web.json_response(person)


async def reset(request: web.Request) -> web.Response:
    app = _running(request)
    body = await _json_body(request, allow_empty=True)
    camera = body.get("camera")
    if camera is not None and (not isinstance(camera, str) or camera not in app.cameras):
        raise ApiError(404, f"unknown camera {camera!r}; known: {app.cameras.names}")
    forgotten = await app.reset(camera)
    return web.json_response({"forgotten": forgotten})


async def person_thumbnail(request: web.Request) -> web.StreamResponse:
    app = _running(request)
    person_id = _person_id(request)
    try:
        path = await app.thumbnail(person_id)
    except UnknownPersonError:
        raise _unknown_person(person_id) from None
    if path is None:
        raise ApiError(
            404, f"person {person_id} has no thumbnail yet (no crop passed the quality gates)"
        )
    return _jpeg_file(path)


def _jpeg_file(path: Path) -> web.FileResponse:
    return web.FileResponse(
        path, headers={"Content-Type": "image/jpeg", "Cache-Control": "no-cache"}
    )


# -- visits and cameras ------------------------------------------------------------------------


async def get_visit(request: web.Request) -> web.Response:
    app = _running(request)
    visit_id = _visit_id(request)
    visit = await app.visit(visit_id)
    if visit is None:
        raise ApiError(404, f"unknown visit {visit_id!r}")
    return web.json_response(visit)


DAY_S = 86400.0
MAX_PERIOD_S = 31 * DAY_S


def parse_when(value: str, name: str) -> float:
    """Unix seconds or ISO 8601 with a UTC offset ("2026-12-06T08:00:00+01:00", "...Z")."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if "T" in text and " " in text:  # an unencoded "+01:00" arrives as " 01:00"
        head, _, offset = text.rpartition(" ")
        text = f"{head}+{offset}"
    try:
        when: datetime | None = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ApiError(
            400,
            f"{name}={value[:40]!r} is neither Unix seconds nor ISO 8601 with an offset; "
            "e.g. 1765008000 or 2026-12-06T08:00:00+01:00 (URL-encode '+' as %2B)",
        )
    return when.timestamp()


def _period(request: web.Request) -> tuple[float, float]:
    """``start``/``end`` of a period query (default: the last 24 h); 400 when out of bounds."""
    query = request.query
    end = parse_when(query["end"], "end") if query.get("end") else time.time()
    start = parse_when(query["start"], "start") if query.get("start") else end - DAY_S
    if not math.isfinite(start) or not math.isfinite(end) or start >= end:
        raise ApiError(400, "start must be before end")
    if end - start > MAX_PERIOD_S:
        raise ApiError(
            400, f"the period is {(end - start) / DAY_S:.1f} days; ask for at most 31 at a time"
        )
    return start, end


async def list_visits(request: web.Request) -> web.Response:
    """Visits overlapping a period, newest first (docs/contract.md)."""
    app = _running(request)
    start, end = _period(request)
    query = request.query
    person_id = query.get("person") or None
    if person_id is not None and not ENTITY_ID.match(person_id):
        raise ApiError(400, f"person={person_id[:40]!r} is not a person id (12 hex characters)")
    min_level = query.get("min_level") or None
    if min_level is not None and min_level not in LEVELS:
        raise ApiError(400, f"min_level must be one of {', '.join(LEVELS)}")
    try:
        limit = int(query.get("limit") or 200)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit must be a whole number from 1 to 1000")
    visits, truncated = await app.visits(
        start,
        end,
        person_id=person_id,
        camera=query.get("camera") or None,
        min_level=min_level,
        limit=limit,
    )
    return web.json_response(
        {"start": round(start, 3), "end": round(end, 3), "truncated": truncated, "visits": visits}
    )


async def get_summary(request: web.Request) -> web.Response:
    """What happened between start and end, for people (docs/contract.md)."""
    app = _running(request)
    start, end = _period(request)
    narrative = request.query.get("narrative") or "auto"
    if narrative not in ("auto", "rules"):
        raise ApiError(400, "narrative must be auto or rules")
    return web.json_response(await app.summary(start, end, narrative))


async def visit_snapshot(request: web.Request) -> web.StreamResponse:
    app = _running(request)
    visit_id = _visit_id(request)
    found = await app.visit_snapshot(visit_id)
    if found is None:
        raise ApiError(404, f"no snapshot for visit {visit_id!r} (unknown or forgotten visit)")
    if isinstance(found, Path):
        return _jpeg_file(found)
    return web.Response(
        body=found, content_type="image/jpeg", headers={"Cache-Control": "no-cache"}
    )


def _camera(request: web.Request) -> tuple[ApiHost, str]:
    app = _running(request)
    camera = request.match_info["camera"]
    if camera not in app.cameras:
        raise ApiError(404, f"unknown camera {camera!r}; known: {app.cameras.names}")
    return app, camera


async def list_cameras(request: web.Request) -> web.Response:
    app = _running(request)
    return web.json_response({"cameras": await app.camera_states()})


async def get_camera(request: web.Request) -> web.Response:
    app, camera = _camera(request)
    await app.camera_states()
    return web.json_response(app.camera_state(camera))


async def camera_snapshot(request: web.Request) -> web.StreamResponse:
    app, camera = _camera(request)
    jpeg = await app.camera_snapshot(camera)
    if jpeg is None:
        raise ApiError(404, f"camera {camera} has not sent a frame yet")
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-cache"})
