"""Video streams (RTSP, HTTP, files) as camera sources, sampled and motion-gated.

A camera streams 10-30 frames a second; re-identifying people needs a couple. Each stream is
decoded with PyAV in a thread of its own (decoding is CPU work and FFmpeg releases the GIL), and
only frames that are due at ``sample_fps`` by their presentation time are looked at; the others
are decoded (the codec needs them as references) but never converted to pixels we keep.

When the camera sends at least three frames per sample, frames no other frame refers to
(B-frames) are not decoded at all.

A due frame first goes through a motion gate on a tiny grey copy of the picture, which FFmpeg's
scaler produces straight from the decoded YUV planes: when nothing in view moved against a
slowly updated background, the frame is not offered at all, so an idle camera costs decode time
only, not detection. A camera is never muted for long after motion: the gate stays open for
``MOTION_HOLD_S`` after the last movement, so someone who stops at the door is still seen.

Live sources (by default anything with a URL scheme other than ``file:``; ``live`` overrides)
reconnect after errors and after the stream ends, waiting 1 s, 2 s, 4 s ... up to 60 s between
attempts; the wait starts again at 1 s once frames flow. Each change of state is logged once.
Live frames are sampled by arrival time, because many cameras' timestamps are not to be trusted
(MJPEG over HTTP has none: FFmpeg invents 25 fps); files are sampled by presentation time, play
once (or ``loop``) and, with ``realtime`` (the default), at their own speed like a camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

import av
import cv2
import numpy as np
import numpy.typing as npt

from ..types import Frame
from .sources import FrameSink, SourceStats, offer

_LOGGER = logging.getLogger(__name__)

MOTION_WIDTH_PX = 96
MOTION_PIXEL_DELTA = 20.0  # grey levels a pixel must differ from the background
MOTION_BACKGROUND_ALPHA = 0.05  # how fast the background follows the picture
MOTION_HOLD_S = 2.0
MAX_DECODE_ERRORS = 50  # in a row, before a live stream is reopened


class MotionGate:
    """Says whether a small grey picture differs from the scene's running background.

    The first picture always passes (someone may be standing there already) and becomes the
    background. ``threshold`` is the share of pixels that must change.
    """

    def __init__(self, threshold: float, *, hold_s: float = MOTION_HOLD_S) -> None:
        self.threshold = threshold
        self.hold_s = hold_s
        self.last_fraction = 0.0
        self._background: npt.NDArray[np.float32] | None = None
        self._open_until = -1.0

    def reset(self) -> None:
        self._background = None

    def moving(self, grey: npt.NDArray[np.uint8], media_time: float) -> bool:
        picture: npt.NDArray[np.float32] = np.asarray(
            cv2.GaussianBlur(grey.astype(np.float32), (3, 3), 0), dtype=np.float32
        )
        background = self._background
        if background is None or background.shape != picture.shape:
            self._background = picture
            return True
        changed = np.abs(picture - background) > MOTION_PIXEL_DELTA
        self.last_fraction = float(changed.mean())
        cv2.accumulateWeighted(picture, background, MOTION_BACKGROUND_ALPHA)
        if self.last_fraction >= self.threshold:
            self._open_until = media_time + self.hold_s
            return True
        return media_time < self._open_until


def is_live(url: str) -> bool:
    """Network sources reconnect forever; local files end."""
    scheme = urlparse(url).scheme.lower()
    return scheme not in {"", "file"} and len(scheme) > 1


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``rtsp://cam/x`` + user + password -> ``rtsp://user:password@cam/x`` (escaped)."""
    parts = urlparse(url)
    if not username or not parts.netloc or "@" in parts.netloc:
        return url
    user = quote(username, safe="")
    login = f"{user}:{quote(password, safe='')}" if password else user
    return urlunparse(parts._replace(netloc=f"{login}@{parts.netloc}"))


def _local_path(url: str) -> str:
    return urlparse(url).path if url.startswith("file:") else url


class StreamSource:
    """One camera stream decoded in its own thread (see the module docstring)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        sink: FrameSink,
        loop: asyncio.AbstractEventLoop,
        *,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        self.camera: str = str(config["camera"])
        self.name = f"stream:{self.camera}"
        self.url: str = _with_credentials(
            str(config["url"]), config.get("username"), config.get("password")
        )
        live = config.get("live")
        self.live = is_live(self.url) if live is None else bool(live)
        self.local = not is_live(self.url)
        self.sample_interval_s = 1.0 / float(config.get("sample_fps", 2.0))
        self.loop_file = bool(config.get("loop", False))
        self.realtime = bool(config.get("realtime", True))
        self.timeout_s = float(config.get("timeout_s", 10.0))
        self.rtsp_transport = str(config.get("rtsp_transport", "tcp"))
        self.gate = (
            MotionGate(float(config.get("motion_threshold", 0.002)))
            if config.get("motion_gate", True)
            else None
        )
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.stats = SourceStats(extra={"decoded": 0, "sampled": 0, "motionless": 0, "connects": 0})
        self.finished = asyncio.Event()
        self._sink = sink
        self._loop = loop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame_number = 0
        self._reported_problem: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"smart-reid-{self.name}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, self.timeout_s + 5)
        if self.stats.state not in {"finished", "failed"}:
            self._set_state("stopped", None)

    # -- decoding thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_until_done()
        except Exception:
            _LOGGER.exception("camera %s: the stream reader failed", self.camera)
            self._set_state("failed", "the stream reader failed; see the log")
        finally:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.finished.set)

    def _run_until_done(self) -> None:
        backoff = self.backoff_min_s
        while not self._stop.is_set():
            try:
                container = self._open()
            except (av.FFmpegError, OSError) as err:
                if not self.live:
                    self._give_up(f"cannot open {self.url}: {err}")
                    return
                self._lost(f"cannot open stream: {err}", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            self._connected()
            try:
                got_frames, reason = self._decode(container)
            finally:
                with contextlib.suppress(Exception):
                    container.close()
            if self._stop.is_set():
                break
            if not self.live:
                if self.loop_file and got_frames:
                    continue
                if got_frames:
                    self._set_state("finished", None)
                else:
                    self._give_up(f"{self.url} has no decodable video ({reason})")
                return
            if got_frames:
                backoff = self.backoff_min_s
            self._lost(reason, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _open(self) -> av.container.InputContainer:
        options: dict[str, str] = {}
        if self.url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.rtsp_transport
        target = _local_path(self.url) if self.local else self.url
        if self.local and not Path(target).is_file():
            raise OSError(f"no such file {target}")
        return av.open(target, options=options, timeout=(self.timeout_s, self.timeout_s))

    def _decode(self, container: av.container.InputContainer) -> tuple[bool, str]:
        """Decode until the stream ends, fails or we are stopped; (any frame seen, why it ended)."""
        if not container.streams.video:
            return False, "the source has no video track"
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 0)
        if rate >= 3.0 / self.sample_interval_s:
            # Frames nothing else refers to (B-frames) are never needed when we keep one frame
            # in three or fewer: not decoding them saves about a quarter of H.264 decoding.
            stream.codec_context.skip_frame = "NONREF"
        got_frames = False
        next_due: float | None = None
        first_media: float | None = None
        wall_start = time.time()
        mono_start = time.monotonic()
        errors = 0
        if self.gate is not None:
            self.gate.reset()
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return got_frames, "stopped"
                try:
                    frames = packet.decode()
                except av.InvalidDataError as err:
                    errors += 1
                    if errors >= MAX_DECODE_ERRORS:
                        return got_frames, f"{errors} undecodable packets in a row ({err})"
                    continue
                errors = 0
                for frame in frames:
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    got_frames = True
                    self.stats.extra["decoded"] += 1
                    media = frame.time
                    if media is None or self.live:
                        media = time.monotonic() - mono_start
                    if first_media is None:
                        first_media = media
                    if next_due is not None and media < next_due:
                        if media >= next_due - self.sample_interval_s * 10:
                            continue
                        next_due = None  # the clock jumped back: a new stream epoch
                    next_due = self._next_due(next_due, media)
                    if self.realtime and not self.live:
                        delay = (media - first_media) - (time.monotonic() - mono_start)
                        if delay > 0 and self._stop.wait(delay):
                            return got_frames, "stopped"
                    self._sample(frame, media, wall_start + (media - first_media))
        except av.EOFError:
            pass
        except (av.FFmpegError, OSError) as err:
            return got_frames, f"stream error: {err}"
        return got_frames, "the stream ended"

    def _next_due(self, previous: float | None, media: float) -> float:
        """Keep the sampling phase (2 fps of a 29.97 fps video stays 2 fps), unless behind."""
        if previous is None:
            return media + self.sample_interval_s
        due = previous + self.sample_interval_s
        return due if due > media else media + self.sample_interval_s

    def _sample(self, frame: av.VideoFrame, media: float, file_time: float) -> None:
        self.stats.extra["sampled"] += 1
        if self.gate is not None:
            height = max(1, round(MOTION_WIDTH_PX * frame.height / max(1, frame.width)))
            grey = np.asarray(
                frame.to_ndarray(width=MOTION_WIDTH_PX, height=height, format="gray"),
                dtype=np.uint8,
            )
            if not self.gate.moving(grey, media):
                self.stats.extra["motionless"] += 1
                return
        image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
        self._frame_number += 1
        out = Frame(
            camera=self.camera,
            image=image,
            timestamp=time.time() if self.live else file_time,
            source="stream",
            frame_id=f"{self.camera}-{self._frame_number:06d}",
        )
        self._loop.call_soon_threadsafe(self._deliver, out)

    def _deliver(self, frame: Frame) -> None:
        self.stats.received += 1
        offer(self._sink, frame, self.stats)

    # -- state changes, logged once ----------------------------------------------------------

    def _connected(self) -> None:
        self.stats.extra["connects"] += 1
        if self._reported_problem is not None:
            _LOGGER.info("camera %s: stream %s is back", self.camera, self._redacted())
        self._reported_problem = None
        self._set_state("streaming", None)

    def _lost(self, reason: str, retry_in_s: float) -> None:
        problem = f"stream unavailable: {reason}"
        if self._reported_problem is None:
            _LOGGER.warning(
                "camera %s: %s (%s); reconnecting with back-off up to %.0f s",
                self.camera,
                problem,
                self._redacted(),
                self.backoff_max_s,
            )
        else:
            _LOGGER.debug("camera %s: %s; next try in %.1f s", self.camera, problem, retry_in_s)
        self._reported_problem = problem
        self._set_state("reconnecting", problem)

    def _give_up(self, problem: str) -> None:
        _LOGGER.error("camera %s: %s; this source stops", self.camera, problem)
        self._set_state("failed", problem)

    def _set_state(self, state: str, problem: str | None) -> None:
        self.stats.state = state
        self.stats.problem = problem

    def _redacted(self) -> str:
        """The URL without a password, for logs."""
        parts = urlparse(self.url)
        if parts.password:
            return self.url.replace(f":{parts.password}@", ":***@")
        return self.url
