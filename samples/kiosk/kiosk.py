"""Kiosk dashboard: the annotated camera, the model's results and device telemetry in a browser.

    python samples/kiosk/kiosk.py                            # built-in clip + virtual device
    python samples/kiosk/kiosk.py --source cam:0             # a real camera
    python samples/kiosk/kiosk.py --device serial:///dev/ttyACM0?baud=921600
    python samples/kiosk/kiosk.py --port 0 --max-seconds 30  # a free port; stop after 30 s

The first line printed is the dashboard's URL; open it in any browser, or in Chromium's kiosk
mode on the board's screen (``chromium --kiosk http://127.0.0.1:8080/``).

Two worker threads feed one aiohttp server. The vision thread runs an edgekit pipeline
(detect -> annotate -> encode) over the camera and keeps the newest JPEG with its faces and
latency; the telemetry thread reads the board's IMU stream over the bridge and keeps the newest
sample, tilt, link state and device info. The page gets both over one WebSocket. A browser gets
a new frame only after it has shown the previous one, so a slow screen skips frames instead of
falling behind.

Without ``--source`` a looping clip is built at run time from scikit-image's astronaut
photograph, panning in a slow circle; without ``--device`` the C virtual device is started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from aiohttp import WSCloseCode, WSMsgType, web

import edgekit
from edgekit import EdgekitError
from edgekit.media import Frame, FrameSource, open_source
from edgekit.media.synthetic import write_pan_clip
from edgekit.pipeline import Pipeline, PipelineStats, Stage
from edgekit.tasks import Detection, TaskHead, head_for
from firmware_bridge import Bridge, BridgeError, BridgeTimeout, Disconnected, Sample, Stream
from firmware_bridge.virtual import start_virtual_device

Image = npt.NDArray[np.uint8]

STATIC = Path(__file__).resolve().parent / "static"
CLIP_FRAMES = 60
CLIP_FPS = 15.0
#: the clip pans the photograph around a circle of this many pixels, once per loop.
PAN_RADIUS = 14
BOX_COLOR = (0, 255, 0)
KEYPOINT_COLOR = (0, 200, 255)
IMU_FORMAT = "<6h"  # ax, ay, az in milli-g; gx, gy, gz in centi-degrees per second
#: |pitch| or |roll| above this shows the board as tilted.
TILT_DEG = 45.0
#: how often the pipeline's stage statistics and the telemetry go out to the browsers.
STATS_EVERY_S = 0.5
TELEMETRY_EVERY_S = 0.1
PING_EVERY_S = 1.0

log = logging.getLogger("kiosk")


class KioskError(EdgekitError):
    """The kiosk cannot do what was asked; the message names the fix."""


@dataclass(frozen=True)
class Settings:
    """What one run serves, and where."""

    source: str | None = None  # None: the built-in clip
    device: str | None = None  # None: start the virtual device; "none": no board
    host: str = "127.0.0.1"
    port: int = 8080
    stream_fps: float = 15.0
    quality: int = 80
    imu_rate: int = 100
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.stream_fps <= 0:
            raise KioskError(f"--stream-fps must be positive, got {self.stream_fps}")
        if not 1 <= self.quality <= 100:
            raise KioskError(f"--quality must be between 1 and 100, got {self.quality}")
        if self.imu_rate < 1:
            raise KioskError(f"--imu-rate must be at least 1 Hz, got {self.imu_rate}")
        if not 0 <= self.port <= 65535:
            raise KioskError(f"--port must be between 0 and 65535, got {self.port}")


# ----------------------------------------------------------------------------- the built-in clip


def pan_offset(index: int, frames: int = CLIP_FRAMES) -> tuple[int, int]:
    """How far (x, y) frame ``index`` of the clip shifts the photograph: one circle per loop."""
    angle = 2 * math.pi * index / frames
    return round(PAN_RADIUS * math.cos(angle)), round(PAN_RADIUS * math.sin(angle))


def make_clip(path: Path, frames: int = CLIP_FRAMES, fps: float = CLIP_FPS) -> Path:
    """Encode the astronaut photograph, panning in a circle, to an MJPG ``.avi`` at ``path``.

    The last frame leads back into the first, so the clip loops without a jump.
    """
    try:
        from skimage import data as photos
    except ImportError as e:
        raise KioskError(
            "the built-in clip is made from scikit-image's sample photographs: "
            "pip install scikit-image, or give a camera with --source cam:0"
        ) from e
    still = cv2.cvtColor(photos.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]
    return write_pan_clip(path, still, frames, fps, pan_offset)


# ----------------------------------------------------------------------------- vision


@dataclass(frozen=True)
class View:
    """One frame on its way through the pipeline (an owned copy of the image)."""

    seq: int
    t_capture_ns: int
    image: Image
    faces: tuple[Detection, ...]
    jpeg: bytes | None = None


@dataclass(frozen=True)
class FramePacket:
    """An encoded frame with what was found in it, ready to go to every browser.

    ``payload`` is the WebSocket message: a 4-byte big-endian length, that many bytes of JSON
    (``meta``), then the JPEG.
    """

    seq: int
    meta: dict[str, Any]
    jpeg: bytes
    payload: bytes

    @classmethod
    def build(cls, meta: dict[str, Any], jpeg: bytes) -> FramePacket:
        head = json.dumps(meta, separators=(",", ":")).encode()
        return cls(int(meta["seq"]), meta, jpeg, struct.pack(">I", len(head)) + head + jpeg)


class RateMeter:
    """Events per second over a sliding window of the last ``window`` events."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float | None = None, count: int = 1) -> None:
        stamp = time.monotonic() if now is None else now
        for _ in range(count):
            self._times.append(stamp)

    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def detect_faces(model: edgekit.Model, head: TaskHead, image: Image) -> tuple[Detection, ...]:
    """Faces in a BGR image, in its pixels, best first."""
    feeds, context = head.prepare(image)
    return tuple(head.decode(model.run(feeds), context))


def annotate(image: Image, faces: Sequence[Detection], seq: int, fps: float) -> Image:
    """Draw face boxes, their keypoints and a one-line banner on ``image`` in place."""
    for face in faces:
        p1 = (round(face.box.x1), round(face.box.y1))
        p2 = (round(face.box.x2), round(face.box.y2))
        cv2.rectangle(image, p1, p2, BOX_COLOR, 2)
        for x, y in face.keypoints:
            cv2.circle(image, (round(x), round(y)), 2, KEYPOINT_COLOR, -1)
        at = (p1[0], max(14, p1[1] - 6))
        label = f"face {face.score:.2f}"
        cv2.putText(image, label, at, cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_COLOR, 1, cv2.LINE_AA)
    banner = image[:26]
    banner[:] = banner // 3  # darken, so the lettering stays legible on any scene
    text = f"#{seq}  faces {len(faces)}  {fps:4.1f} fps"
    cv2.putText(image, text, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, BOX_COLOR, 1, cv2.LINE_AA)
    return image


def encode_jpeg(image: Image, quality: int) -> bytes:
    """``image`` as JPEG bytes."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise KioskError(f"OpenCV could not JPEG-encode a {image.shape} image")
    return bytes(data)


def stats_message(stats: PipelineStats, fps: float) -> dict[str, Any]:
    """The pipeline's per-stage figures as the page shows them."""
    source = stats.source
    return {
        "type": "stats",
        "fps": round(fps, 2),
        "results": stats.results,
        "latency_p50_ms": round(stats.latency_p50_ms, 2),
        "latency_p99_ms": round(stats.latency_p99_ms, 2),
        "source": None
        if source is None
        else {"url": source.url, "fps": round(source.fps, 2), "dropped": source.dropped},
        "stages": [
            {
                "name": st.name,
                "fps": round(st.fps, 2),
                "p50_ms": round(st.latency_p50_ms, 2),
                "p99_ms": round(st.latency_p99_ms, 2),
                "processed": st.processed,
                "dropped": st.dropped,
            }
            for st in stats.stages
        ],
    }


class Vision:
    """Camera -> detect -> annotate -> encode on an edgekit pipeline, into the hub."""

    def __init__(
        self,
        frames: FrameSource,
        model: edgekit.Model,
        head: TaskHead,
        hub: Hub,
        stream_fps: float,
        quality: int,
    ) -> None:
        self.hub = hub
        self.quality = quality
        self._model, self._head = model, head
        self._gap_ns = int(1e9 / stream_fps)
        self._next_encode_ns = 0
        self._shown = RateMeter()
        self._results = RateMeter()
        self.frames = 0
        self.frames_with_faces = 0
        self.latencies_ms: deque[float] = deque(maxlen=4096)
        self.stats: PipelineStats | None = None
        self._stopping = threading.Event()
        stages = [
            Stage("detect", self._detect),
            Stage("annotate", self._annotate),
            Stage("encode", self._encode),
        ]
        self.pipeline = Pipeline(frames, stages, close_source=False)

    def _detect(self, frame: Frame) -> View:
        faces = detect_faces(self._model, self._head, frame.image)
        return View(frame.seq, frame.t_capture_ns, frame.copy(), faces)

    def _annotate(self, view: View) -> View:
        return replace(view, image=annotate(view.image, view.faces, view.seq, self._shown.rate()))

    def _encode(self, view: View) -> View:
        now = time.monotonic_ns()
        if now < self._next_encode_ns:
            return view  # over the stream's rate cap: results only, no picture
        # Due times advance by the gap, not from now, so a camera at exactly the cap with some
        # jitter keeps every frame; after a stall at most one frame goes early.
        self._next_encode_ns = max(self._next_encode_ns + self._gap_ns, now - self._gap_ns)
        self._shown.tick(now / 1e9)
        return replace(view, jpeg=encode_jpeg(view.image, self.quality))

    def run(self) -> None:
        """Consume the pipeline until it ends or is closed; publish every result."""
        last_stats = 0.0
        with self.pipeline:
            for result in self.pipeline:
                view: View = result.value
                self.frames += 1
                self.frames_with_faces += bool(view.faces)
                self.latencies_ms.append(result.latency_ms)
                self._results.tick()
                if view.jpeg is not None:
                    height, width = view.image.shape[:2]
                    meta = {
                        "type": "frame",
                        "seq": view.seq,
                        "width": width,
                        "height": height,
                        "latency_ms": round(result.latency_ms, 2),
                        "faces": [face_dict(face) for face in view.faces],
                    }
                    self.hub.publish_frame(FramePacket.build(meta, view.jpeg))
                now = time.monotonic()
                if now - last_stats >= STATS_EVERY_S:
                    last_stats = now
                    self.stats = self.pipeline.stats()
                    self.hub.publish_stats(stats_message(self.stats, self._results.rate()))
        self.stats = self.pipeline.stats()
        if not self._stopping.is_set():  # the source ended (a file without loop=1)
            self.hub.publish_stats({**stats_message(self.stats, 0.0), "ended": True})

    def stop(self) -> None:
        """Stop the pipeline (from any thread); ``run`` returns soon after."""
        self._stopping.set()
        self.pipeline.close()


def face_dict(face: Detection) -> dict[str, Any]:
    box = face.box
    return {
        "box": [round(box.x1, 1), round(box.y1, 1), round(box.x2, 1), round(box.y2, 1)],
        "score": round(face.score, 3),
    }


# ----------------------------------------------------------------------------- telemetry


def tilt_deg(ax: int, ay: int, az: int) -> tuple[float, float]:
    """Pitch and roll in degrees from the gravity vector (x forward, y left, z up).

    Pitch is the nose up (ax = -g sin(pitch)), within +-90 degrees; roll is about the x axis.
    """
    return math.degrees(math.atan2(-ax, math.hypot(ay, az))), math.degrees(math.atan2(ay, az))


def imu_dict(imu: tuple[int, ...], timestamp_us: int) -> dict[str, Any]:
    """One raw IMU sample in g and degrees per second, with its tilt."""
    ax, ay, az, gx, gy, gz = imu
    pitch, roll = tilt_deg(ax, ay, az)
    return {
        "t_us": timestamp_us,
        "accel_g": [round(ax / 1000, 3), round(ay / 1000, 3), round(az / 1000, 3)],
        "gyro_dps": [round(gx / 100, 2), round(gy / 100, 2), round(gz / 100, 2)],
        "pitch_deg": round(pitch, 2),
        "roll_deg": round(roll, 2),
        "tilted": max(abs(pitch), abs(roll)) > TILT_DEG,
    }


class Telemetry:
    """The board's IMU stream, link state and identity, into the hub ten times a second."""

    def __init__(self, bridge: Bridge, hub: Hub, rate_hz: int) -> None:
        if "imu" not in bridge.info.streams:
            offered = ", ".join(sorted(bridge.info.streams)) or "none"
            raise KioskError(
                f"the device at {bridge.url} offers no 'imu' stream (it offers: {offered}); "
                "flash a firmware with the IMU service, or run with --device none"
            )
        self.bridge = bridge
        self.hub = hub
        self.rate_hz = rate_hz
        self.samples = 0
        self._stop = threading.Event()
        self._rate = RateMeter(window=2 * rate_hz)
        self._rtt_ms: float | None = None

    def run(self) -> None:
        """Read the stream until stopped; the bridge restarts it after a replug by itself."""
        stream = self._subscribe()
        if stream is None:
            return
        try:
            self._follow(stream)
        finally:
            try:
                stream.close()
            except BridgeError as e:  # the board went away as the kiosk stopped: nothing to stop
                log.warning("could not stop the IMU stream on %s: %s", self.bridge.url, e)

    def _subscribe(self) -> Stream | None:
        """Start the IMU stream, trying again while the board does not answer; None if stopped."""
        while not self._stop.is_set():
            try:
                return self.bridge.subscribe("imu", self.rate_hz)
            except (BridgeTimeout, Disconnected) as e:
                log.warning("starting the IMU stream on %s: %s; trying again", self.bridge.url, e)
                self._stop.wait(1.0)
        return None

    def _follow(self, stream: Stream) -> None:
        next_ping = next_publish = 0.0
        latest: dict[str, Any] | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + PING_EVERY_S
                self._ping()
            for sample in self._read(stream):
                values = sample.unpack(IMU_FORMAT)
                self.samples += len(values)
                self._rate.tick(count=len(values))
                if values:
                    step_us = round(1e6 * (len(values) - 1) / self.rate_hz)
                    latest = imu_dict(values[-1], sample.timestamp_us + step_us)
            if time.monotonic() >= next_publish:
                next_publish = time.monotonic() + TELEMETRY_EVERY_S
                self.hub.publish_telemetry(self._message(stream, latest))

    def _read(self, stream: Stream) -> list[Sample]:
        try:
            first = stream.get(timeout=TELEMETRY_EVERY_S)
        except BridgeTimeout:  # no sample in time: the link is down, or the board is slow
            return []
        except Disconnected:  # the stream was closed
            self._stop.set()
            return []
        return [first, *stream.drain()]

    def _ping(self) -> None:
        try:
            self._rtt_ms = self.bridge.ping(timeout=0.5) * 1e3
        except BridgeError:
            self._rtt_ms = None

    def _message(self, stream: Stream, imu: dict[str, Any] | None) -> dict[str, Any]:
        stats = stream.stats()
        message: dict[str, Any] = {
            "type": "telemetry",
            "url": self.bridge.url,
            "connected": self.bridge.connected,
            "reconnects": self.bridge.reconnects,
            "rtt_ms": None if self._rtt_ms is None else round(self._rtt_ms, 2),
            "rate_hz": round(self._rate.rate(), 1),
            "samples": stats.samples,
            "lost": stats.lost,
            "imu": imu,
        }
        with contextlib.suppress(Disconnected):
            info = self.bridge.info
            message["device"] = {
                "firmware": info.firmware_version,
                "uid": info.uid_hex,
                "epoch": info.epoch,
                "boot_reason": info.boot_reason_name,
                "frame_limit": info.frame_limit,
                "streams": sorted(info.streams),
            }
        return message

    def stop(self) -> None:
        self._stop.set()


# ----------------------------------------------------------------------------- the hub


@dataclass(eq=False)
class Client:
    """One connected browser: it may have one frame in flight, and wakes on any news."""

    ws: web.WebSocketResponse
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ready: bool = True  # the browser has shown the last frame it was sent
    sent_seq: int = -1
    sent_stats: int = 0
    sent_telemetry: int = 0
    frames_sent: int = 0


class Hub:
    """The newest frame, stage statistics and telemetry, from worker threads to web clients.

    Workers publish from their threads; each publish wakes every client's sender on the
    server's event loop. Nothing queues: a client that is behind gets the newest of each.
    """

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self._lock = threading.Lock()
        self._frame: FramePacket | None = None
        self._stats: tuple[int, str] = (0, "")
        self._telemetry: tuple[int, str] = (0, "")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[Client] = set()
        self._failed: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.clients_served = 0
        self.frames_sent = 0

    def bind(self, loop: asyncio.AbstractEventLoop, failed: asyncio.Event) -> None:
        """Attach the server's event loop; ``failed`` is set when a worker fails."""
        self._loop, self._failed = loop, failed

    # -- workers (any thread) -----------------------------------------------------------------
    def publish_frame(self, packet: FramePacket) -> None:
        with self._lock:
            self._frame = packet
        self._wake()

    def publish_stats(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._stats = (self._stats[0] + 1, json.dumps(message))
        self._wake()

    def publish_telemetry(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._telemetry = (self._telemetry[0] + 1, json.dumps(message))
        self._wake()

    def fail(self, error: BaseException) -> None:
        """A worker stopped with ``error``: the server shuts down and reports it."""
        self.error = self.error or error
        loop, failed = self._loop, self._failed
        if loop is not None and failed is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(failed.set)

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake_clients)

    # -- the event loop ---------------------------------------------------------------------
    def _wake_clients(self) -> None:
        for client in self._clients:
            client.wake.set()

    def attach(self, ws: web.WebSocketResponse) -> Client:
        client = Client(ws)
        self._clients.add(client)
        self.clients_served += 1
        return client

    def detach(self, client: Client) -> None:
        self._clients.discard(client)
        self.frames_sent += client.frames_sent

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def close_clients(self) -> None:
        """Tell every browser the server is going away (it reconnects when it comes back)."""
        for client in list(self._clients):
            await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    def latest(self) -> tuple[FramePacket | None, tuple[int, str], tuple[int, str]]:
        with self._lock:
            return self._frame, self._stats, self._telemetry

    def status(self) -> dict[str, Any]:
        """Everything the page shows, as one JSON-ready snapshot (``GET /api/status``)."""
        frame, (_, stats), (_, telemetry) = self.latest()
        return {
            **self.info,
            "uptime_s": round(time.monotonic() - self.started, 2),
            "clients": self.clients,
            "frame": None if frame is None else frame.meta,
            "stats": json.loads(stats) if stats else None,
            "telemetry": json.loads(telemetry) if telemetry else None,
        }


# ----------------------------------------------------------------------------- the web server

HUB = web.AppKey("hub", Hub)


async def _send_news(ws: web.WebSocketResponse, hub: Hub, client: Client) -> None:
    """Send each client the newest frame (once it is ready), stats and telemetry as they change."""
    while not ws.closed:
        await client.wake.wait()
        client.wake.clear()
        frame, (stats_version, stats), (telemetry_version, telemetry) = hub.latest()
        if stats_version != client.sent_stats:
            client.sent_stats = stats_version
            await ws.send_str(stats)
        if telemetry_version != client.sent_telemetry:
            client.sent_telemetry = telemetry_version
            await ws.send_str(telemetry)
        if frame is not None and client.ready and frame.seq != client.sent_seq:
            client.ready = False
            client.sent_seq = frame.seq
            client.frames_sent += 1
            await ws.send_bytes(frame.payload)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """``GET /ws``: frames (binary), stats and telemetry (JSON) out; "ready" acks in."""
    hub: Hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096, compress=False)
    await ws.prepare(request)
    client = hub.attach(ws)
    await ws.send_str(json.dumps({"type": "hello", **hub.info}))
    client.wake.set()  # whatever is already there goes out at once
    sender = asyncio.create_task(_send_news(ws, hub, client))
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT and message.data == "ready":
                client.ready = True
                client.wake.set()
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        hub.detach(client)
    return ws


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def status(request: web.Request) -> web.Response:
    """``GET /api/status``: the dashboard's state as JSON, for scripts and health checks."""
    return web.json_response(request.app[HUB].status())


async def latest_jpeg(request: web.Request) -> web.Response:
    """``GET /frame.jpg``: the newest annotated frame."""
    frame, _, _ = request.app[HUB].latest()
    if frame is None:
        return web.json_response({"error": "no frame yet; try again in a moment"}, status=503)
    return web.Response(body=frame.jpeg, content_type="image/jpeg")


def make_app(hub: Hub) -> web.Application:
    """The dashboard: the page, its static files, the WebSocket and two plain endpoints."""
    app = web.Application()
    app[HUB] = hub
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/status", status)
    app.router.add_get("/frame.jpg", latest_jpeg)
    app.router.add_static("/static", STATIC)

    async def close_clients(app: web.Application) -> None:
        await app[HUB].close_clients()

    app.on_shutdown.append(close_clients)
    return app


async def serve(
    hub: Hub,
    settings: Settings,
    on_listening: Callable[[str], None],
    workers: Sequence[Worker],
) -> str:
    """Serve until Ctrl-C, SIGTERM, ``max_seconds`` or a failed worker; why it stopped."""
    loop = asyncio.get_running_loop()
    stop, failed = asyncio.Event(), asyncio.Event()
    hub.bind(loop, failed)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        make_app(hub), handle_signals=False, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as e:
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            raise KioskError(
                f"cannot listen on {settings.host}:{settings.port}: {reason}; choose a --host "
                "this machine has and a free --port (0 takes one)"
            ) from e
        host, port = runner.addresses[0][:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        on_listening(f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/")
        for worker in workers:
            worker.start()
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(failed.wait())]
        await asyncio.wait(waits, timeout=settings.max_seconds, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if failed.is_set():
            return "failed"
        return "signal" if stop.is_set() else "time"
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await asyncio.to_thread(_stop_all, workers)
        await runner.cleanup()


# ----------------------------------------------------------------------------- the run


class Worker:
    """A thread running ``target``; an exception stops the kiosk through the hub."""

    def __init__(
        self, name: str, target: Callable[[], None], stop: Callable[[], None], hub: Hub
    ) -> None:
        self.name = name
        self._target, self._stop, self._hub = target, stop, hub
        self._thread = threading.Thread(target=self._run, name=f"kiosk-{name}", daemon=True)

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as e:
            log.debug("the %s worker failed", self.name, exc_info=e)
            self._hub.fail(e)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop()
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the %s worker did not stop within %.0f s", self.name, timeout)


def _stop_all(workers: Sequence[Worker]) -> None:
    for worker in workers:
        worker.stop()


@dataclass(frozen=True)
class Summary:
    """The outcome of a run."""

    url: str
    seconds: float
    stopped_by: str  # signal, time, failed
    frames: int
    frames_with_faces: int
    fps: float
    latency_p50_ms: float
    imu_samples: int
    clients: int
    frames_sent: int

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["fps"] = round(self.fps, 2)
        out["latency_p50_ms"] = round(self.latency_p50_ms, 2)
        return out

    def describe(self) -> str:
        return (
            f"served {self.url} for {self.seconds:.1f} s (stopped by {self.stopped_by}): "
            f"{self.frames} frames at {self.fps:.1f} fps, p50 latency "
            f"{self.latency_p50_ms:.1f} ms, a face in {self.frames_with_faces}; "
            f"{self.imu_samples} IMU samples; {self.frames_sent} frames to "
            f"{self.clients} browser(s)"
        )


def run(settings: Settings, on_listening: Callable[[str], None] = print) -> Summary:
    """Serve the dashboard until stopped; ``on_listening`` gets the URL once it answers."""
    url = ""

    def listening(address: str) -> None:
        nonlocal url
        url = address
        on_listening(address)

    with contextlib.ExitStack() as stack:
        source = settings.source
        if source is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-")))
            # loop=1 and pace=1: an endless clip at its frame rate, like a camera.
            source = f"file:{make_clip(folder / 'kiosk-clip.avi')}?loop=1&pace=1"
        model = edgekit.load("face-detection-short-range")
        stack.callback(model.close)
        head = head_for(model, color_order="BGR")
        frames = stack.enter_context(contextlib.closing(open_source(source, policy="latest")))
        device_url = settings.device
        if device_url is None:
            device_url = stack.enter_context(start_virtual_device()).url
        bridge = None
        if device_url != "none":
            bridge = stack.enter_context(Bridge.open(device_url, timeout=5.0))
        hub = Hub(
            {
                "source": source if settings.source is not None else "built-in clip",
                "device": None if bridge is None else device_url,
                "virtual_device": settings.device is None,
                "model": "face-detection-short-range",
                "stream_fps": settings.stream_fps,
            }
        )
        vision = Vision(frames, model, head, hub, settings.stream_fps, settings.quality)
        workers = [Worker("vision", vision.run, vision.stop, hub)]
        telemetry = None
        if bridge is not None:
            telemetry = Telemetry(bridge, hub, settings.imu_rate)
            workers.append(Worker("telemetry", telemetry.run, telemetry.stop, hub))
        stopped_by = asyncio.run(serve(hub, settings, listening, workers))
        if hub.error is not None:
            error = hub.error
            if isinstance(error, EdgekitError | BridgeError):
                raise error
            raise KioskError(f"the dashboard stopped: {type(error).__name__}: {error}") from error
    latencies = sorted(vision.latencies_ms)
    return Summary(
        url=url,
        seconds=round(time.monotonic() - hub.started, 2),
        stopped_by=stopped_by,
        frames=vision.frames,
        frames_with_faces=vision.frames_with_faces,
        fps=vision.stats.fps if vision.stats is not None else 0.0,
        latency_p50_ms=latencies[len(latencies) // 2] if latencies else math.nan,
        imu_samples=0 if telemetry is None else telemetry.samples,
        clients=hub.clients_served,
        frames_sent=hub.frames_sent,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", help="frame source URL (cam:0, file:clip.avi); default: a clip")
    parser.add_argument(
        "--device",
        help="the board, e.g. serial:///dev/ttyACM0?baud=921600, or none "
        "(default: start the virtual device)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080; 0 picks a free one)")
    parser.add_argument("--stream-fps", type=float, default=15.0, help="JPEG frames a second (15)")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality, 1-100 (80)")
    parser.add_argument("--imu-rate", type=int, default=100, help="IMU rate in Hz (100)")
    parser.add_argument("--max-seconds", type=float, help="stop after this long (default: never)")
    parser.add_argument("--json", action="store_true", help="JSON lines: the URL, then a summary")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    def listening(url: str) -> None:
        print(json.dumps({"url": url}) if args.json else f"kiosk: {url}", flush=True)

    try:
        settings = Settings(
            source=args.source,
            device=args.device,
            host=args.host,
            port=args.port,
            stream_fps=args.stream_fps,
            quality=args.quality,
            imu_rate=args.imu_rate,
            max_seconds=args.max_seconds,
        )
        summary = run(settings, listening)
    except (EdgekitError, BridgeError) as e:
        print(f"kiosk: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"summary": summary.as_dict()}))
    else:
        print(f"kiosk: {summary.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
