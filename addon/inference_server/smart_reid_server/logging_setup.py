"""One log line per event, ``key=value`` style, so add-on logs can be grepped and parsed.

Quiet by default: our loggers log at the configured ``log_level`` (INFO shows only lifecycle),
noisy libraries are held at WARNING unless the level is ``debug``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

_NOISY = ("aiohttp.access", "paho", "urllib3", "asyncio", "openvino", "PIL")


def _quote(text: str) -> str:
    if text and not any(c in text for c in ' "=\n\r\t\\'):
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=warning logger=smart_reid_server.pipeline msg="..."`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        parts = [
            f"ts={stamp}.{int(record.msecs):03d}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class _CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when it was made.

    A handler that kept the ``sys.stderr`` of the moment ``setup_logging`` ran would write to a
    closed stream once that object is swapped out and closed (pytest's capture does that after
    every test that calls the CLI in-process), printing "Logging error ... I/O operation on
    closed file" for every later record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """StreamHandler assigns the stream; the current ``sys.stderr`` is used instead."""


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Install the single-line formatter on the root logger (idempotent); records go to
    ``stream``, or to the process's current ``sys.stderr``."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_smart_reid", False):
            root.removeHandler(old)
    handler: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    )
    handler.setFormatter(KeyValueFormatter())
    handler._smart_reid = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _NOISY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
