"""The small HTML page at ``/``: what a person opening the server in a browser wants to know.

Home Assistant's device page links here ("Visit"). The page shows the version, health, the
models and the device they run on, the cameras and links to the documentation; nothing about
people (no names, ids, pictures or counts of who is home) and no setting that could be a secret.
It is public like ``/api/health``, because a browser following a link cannot send the API's
bearer token; with a token configured, camera names are left out too (only their number is
shown). Every value is HTML-escaped, and the page loads nothing (no scripts, images or styles
from elsewhere: its Content-Security-Policy says so).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from .host import ApiHost

REPOSITORY = "https://github.com/smart-reid/smart-reid"
DOCS: tuple[tuple[str, str], ...] = (
    ("Server: configuration and operation", "docs/server.md"),
    ("Home Assistant integration", "docs/integration.md"),
    ("MQTT and HTTP contract", "docs/contract.md"),
    ("Security", "docs/security.md"),
    ("Recognition quality", "docs/quality.md"),
)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:46em;padding:0 1em;"
    "color:#222}h1{font-size:1.5em}h2{font-size:1.1em;margin-top:1.5em}"
    "table{border-collapse:collapse}td,th{text-align:left;padding:.2em 1em .2em 0;"
    "vertical-align:top}.ready{color:#176b1c}.degraded{color:#a15c00}.starting{color:#555}"
    "code{background:#f3f3f3;padding:0 .2em}"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _rows(rows: Iterable[tuple[str, object]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)


def _uptime(seconds: float) -> str:
    minutes = int(max(seconds, 0.0) // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    return f"{days} d {hours} h {minutes} min" if days else f"{hours} h {minutes} min"


def _model_rows(info: dict[str, Any]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for role, title in (("detector", "Person detector"), ("reid", "Re-identification model")):
        model = info.get("models", {}).get(role)
        if not model:
            rows.append((title, "not loaded yet"))
            continue
        what = f"{model.get('name')} ({model.get('runtime')}, device {model.get('device')})"
        if role == "reid" and not model.get("is_reid", True):
            what += " - not a person ReID model: identities will be unreliable"
        rows.append((title, what))
    return rows


def _cluster_rows(state: str, cluster: Any, *, names: bool) -> list[tuple[str, object]]:
    """Scale-out ("Scaling out" in docs/server.md): which matcher this is, and its workers."""
    if state == "standby":
        return [("Cluster", "standby matcher: takes over when the leading matcher stops")]
    if not isinstance(cluster, dict):
        return []
    workers = [w for w in cluster.get("workers") or [] if isinstance(w, dict)]
    text = f"leading matcher, {len(workers)} worker{'' if len(workers) == 1 else 's'}"
    if names and workers:
        text += ": " + "; ".join(
            f"{w.get('worker_id')} ({', '.join(w.get('cameras') or []) or 'no camera'})"
            for w in workers
        )
    if not cluster.get("broker_ok", True):
        text += " (Redis unreachable)"
    return [("Cluster", text)]


def render(app: ApiHost) -> str:
    """The page for ``app`` as it is now (cheap: no executor, no database)."""
    status, reasons = app.health()
    info = app.info()
    settings = info.get("settings", {})
    cameras = list(info.get("cameras", []))
    if app.token is None:
        camera_text = ", ".join(cameras) if cameras else "none yet"
    else:
        camera_text = f"{len(cameras)} (names need the API token)"
    stats = app.cameras
    summary = _rows(
        [
            ("Version", __version__),
            ("Health", status),
            ("Running for", _uptime(time.time() - app.started_at)),
            *_model_rows(info),
            ("Cameras", camera_text),
            ("Frames processed", stats.frames_processed),
            ("Frames dropped (overload)", stats.frames_dropped),
            ("Match threshold", settings.get("match_threshold")),
            ("Camera centering", "on" if settings.get("camera_centering") else "off"),
            ("API token required", "yes" if app.token is not None else "no (loopback only)"),
            *_cluster_rows(app.state, info.get("cluster"), names=app.token is None),
        ]
    )
    reason_items = "".join(f"<li>{_e(r)}</li>" for r in reasons)
    doc_items = "".join(
        f'<li><a href="{_e(f"{REPOSITORY}/blob/main/{path}")}">{_e(title)}</a></li>'
        for title, path in DOCS
    )
    api_items = "".join(
        f'<li><a href="{_e(path)}"><code>{_e(path)}</code></a>{_e(note)}</li>'
        for path, note in (
            ("/api/health", ": health as JSON (public)"),
            ("/api/info", ": models, cameras and thresholds as JSON"),
            ("/api/stats", ": counters and latency as JSON"),
        )
    )
    token_note = (
        "<p>Every <code>/api/*</code> route except <code>/api/health</code> needs the header "
        "<code>Authorization: Bearer &lt;http.token&gt;</code>.</p>"
        if app.token is not None
        else ""
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Smart ReID {_e(__version__)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>Smart ReID <span class="{_e(status)}">{_e(status)}</span></h1>'
        f"<table>{summary}</table>"
        + (f"<h2>Needs attention</h2><ul>{reason_items}</ul>" if reason_items else "")
        + f"<h2>Documentation</h2><ul>{doc_items}</ul>"
        f"<h2>JSON API</h2><ul>{api_items}</ul>{token_note}"
        "<p>People, names and pictures are shown in Home Assistant, not here.</p>"
        "</body></html>\n"
    )
