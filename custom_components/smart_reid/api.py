"""The server's HTTP API (docs/contract.md), as the integration uses it.

One small async client on Home Assistant's shared aiohttp session: the config flow validates
with it, services call it, the image view and image entities fetch pictures through it, and the
camera forwarder posts frames with it. Errors become three exception types so every caller can
map them to the right user-facing message. A rejected token is also reported to `on_auth_error`
(the loaded entry starts re-authentication from there), so no caller can forget to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from homeassistant.util.json import json_loads
from yarl import URL

from .const import HTTP_TIMEOUT_S, SUMMARY_TIMEOUT_S
from .models import Info, PayloadError


class SmartReidError(Exception):
    """Any failure talking to the server."""


class SmartReidConnectionError(SmartReidError):
    """The server could not be reached or did not answer in time."""


class SmartReidAuthError(SmartReidError):
    """The server rejected the token (HTTP 401)."""


class SmartReidApiError(SmartReidError):
    """The server answered with an error; `code` and `message` come from its JSON body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Health:
    """`GET /api/health`: ready, degraded (works, with reasons) or starting."""

    status: str
    reasons: tuple[str, ...]
    version: str | None


def normalize_url(url: str) -> str:
    """Return the URL without a trailing slash, or raise ValueError when it is not http(s)."""
    parsed = URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return str(parsed.with_path(parsed.path.rstrip("/")).with_query(None).with_fragment(None))


class SmartReidApi:
    """Calls one server; stateless apart from where it is and the token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        token: str | None = None,
        *,
        timeout_s: float = HTTP_TIMEOUT_S,
        on_auth_error: Callable[[], None] | None = None,
    ) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.on_auth_error = on_auth_error

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        content_type: str | None = None,
        accept_503: bool = False,
        timeout_s: float | None = None,
    ) -> tuple[int, bytes, str]:
        headers = self._headers({"Content-Type": content_type} if content_type else None)
        try:
            async with self._session.request(
                method,
                f"{self.url}{path}",
                json=json,
                data=data,
                params=params,
                headers=headers,
                timeout=self._timeout
                if timeout_s is None
                else aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                body = await response.read()
                status = response.status
                ctype = response.content_type
        except (aiohttp.ClientError, TimeoutError) as err:
            raise SmartReidConnectionError(
                f"cannot reach {self.url}: {err or type(err).__name__}"
            ) from err
        if status == 401:
            if self.on_auth_error is not None:
                self.on_auth_error()
            raise SmartReidAuthError(f"{self.url} rejected the token (401)")
        if status >= 400 and not (accept_503 and status == 503):
            code, message = "http_error", body[:200].decode(errors="replace")
            if ctype == "application/json":
                try:
                    error = _json_object(body)
                    code = str(error.get("error", code))
                    message = str(error.get("message", message))
                except SmartReidError:
                    pass
            raise SmartReidApiError(status, code, message)
        return status, body, ctype

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        _, body, _ = await self._request(method, path, **kwargs)
        return _json_object(body)

    async def health(self) -> Health:
        """Readiness; 503 while starting is an answer, not an error."""
        _, body, _ = await self._request("GET", "/api/health", accept_503=True)
        data = _json_object(body)
        return Health(
            status=str(data.get("status", "unknown")),
            reasons=tuple(str(r) for r in data.get("reasons", []) or []),
            version=data.get("version"),
        )

    async def info(self) -> Info:
        data = await self._json("GET", "/api/info")
        try:
            return Info.from_json(data)
        except PayloadError as err:
            raise SmartReidApiError(200, "bad_info", str(err)) from err

    async def persons(self) -> list[dict[str, Any]]:
        data = await self._json("GET", "/api/persons")
        persons = data.get("persons", [])
        return [p for p in persons if isinstance(p, dict)] if isinstance(persons, list) else []

    async def update_person(
        self, person_id: str, *, label: str | None = None, known: bool | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if label is not None:
            body["label"] = label
        if known is not None:
            body["known"] = known
        return await self._json("PATCH", f"/api/persons/{person_id}", json=body)

    async def forget_person(self, person_id: str) -> dict[str, Any]:
        return await self._json("DELETE", f"/api/persons/{person_id}")

    async def merge_persons(self, person_id: str, from_person_id: str) -> dict[str, Any]:
        return await self._json(
            "POST", f"/api/persons/{person_id}/merge", json={"from": from_person_id}
        )

    async def reset(self, camera: str | None = None) -> dict[str, Any]:
        return await self._json("POST", "/api/reset", json={"camera": camera} if camera else {})

    async def image(self, path: str) -> tuple[bytes, str]:
        """Bytes and content type of one of the server's pictures (a contract `*_url` path)."""
        _, body, ctype = await self._request("GET", path)
        return body, ctype or "image/jpeg"

    async def post_frame(self, camera: str, image: bytes, content_type: str) -> dict[str, Any]:
        """Upload one camera frame as a raw image body; answers the frame's decisions."""
        return await self._json(
            "POST",
            "/api/frames",
            data=image,
            params={"camera": camera},
            content_type=content_type,
        )

    async def search(
        self, image: bytes, content_type: str, camera: str | None, limit: int
    ) -> dict[str, Any]:
        """Who is the largest person in ``image``? (``POST /api/search``; nothing is stored)."""
        params = {"limit": str(limit)}
        if camera:
            params["camera"] = camera
        return await self._json(
            "POST", "/api/search", data=image, params=params, content_type=content_type
        )

    async def visits(
        self,
        start: float,
        end: float,
        *,
        limit: int = 1000,
        min_level: str | None = None,
        person: str | None = None,
        camera: str | None = None,
    ) -> dict[str, Any]:
        """Visits overlapping ``start``..``end`` (Unix seconds, at most 31 days), newest first
        (``GET /api/visits``)."""
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}", "limit": str(limit)}
        for name, value in (("min_level", min_level), ("person", person), ("camera", camera)):
            if value:
                params[name] = value
        return await self._json("GET", "/api/visits", params=params)

    async def summary(self, start: float, end: float, narrative: str = "auto") -> dict[str, Any]:
        """What happened between ``start`` and ``end`` (``GET /api/summary``). The server may
        ask its own LLM first, so this waits longer than other calls."""
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}", "narrative": narrative}
        return await self._json("GET", "/api/summary", params=params, timeout_s=SUMMARY_TIMEOUT_S)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json_loads(body)
    except ValueError as err:
        raise SmartReidApiError(200, "bad_json", f"the server answered non-JSON: {err}") from None
    if not isinstance(data, dict):
        raise SmartReidApiError(200, "bad_json", "the server answered JSON that is not an object")
    return data
