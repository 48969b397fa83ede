"""A network camera for real: an MJPEG-over-HTTP server in the test, read by OpenCV's FFmpeg,
dropped and restarted to exercise reconnection with backoff."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np
import pytest

from edgekit.media import MediaTimeout, SourceOpenError, open_source
from edgekit.media.synthetic import embed_counter, read_counter

pytestmark = pytest.mark.usefixtures("no_thread_leak")


class MjpegCamera:
    """Serves ``frames_per_connection`` JPEG frames per client at ``fps``, then hangs up."""

    def __init__(self, frames_per_connection: int, fps: float = 50.0, port: int = 0) -> None:
        self.counter = 0
        self.connections = 0
        self.sockets: list[socket.socket] = []
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                camera.connections += 1
                camera.sockets.append(self.connection)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for _ in range(frames_per_connection):
                    image = np.full((96, 320, 3), 100, dtype=np.uint8)
                    embed_counter(image, camera.counter)
                    camera.counter += 1
                    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                    part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                    try:
                        self.wfile.write(part % len(jpeg) + jpeg + b"\r\n")
                    except OSError:
                        return
                    time.sleep(1 / fps)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut every open stream, like a camera losing power."""
        self.server.shutdown()
        self.server.server_close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    cam = MjpegCamera(frames_per_connection=10)
    yield cam
    cam.stop()


def test_network_stream_reconnects_after_each_hang_up(camera: MjpegCamera) -> None:
    with open_source(camera.url, policy="block", maxsize=64) as source:
        seen = []
        for _ in range(25):
            with source.read(timeout=10) as frame:
                seen.append((frame.seq, read_counter(frame.image)))
        stats = source.stats()
    assert [seq for seq, _ in seen] == list(range(25))
    counters = [c for _, c in seen]
    assert counters == sorted(counters) and len(set(counters)) == 25
    assert stats.reconnects >= 2 and camera.connections >= 3


def test_network_stream_survives_the_camera_going_away(camera: MjpegCamera) -> None:
    camera.stop()
    with pytest.raises(SourceOpenError, match="Check the address"):
        open_source(camera.url)
    restarted = MjpegCamera(frames_per_connection=1000, port=camera.port)
    try:
        source = open_source(restarted.url, policy="latest")
        with source:
            with source.read(timeout=10):
                pass
            restarted.stop()  # the camera is unplugged...
            with pytest.raises(MediaTimeout):
                for _ in range(100):
                    source.read(timeout=0.5).release()
            back = MjpegCamera(frames_per_connection=1000, port=camera.port)  # ...and back
            try:
                with source.read(timeout=15) as frame:
                    assert read_counter(frame.image) < 50, "a frame from the new connection"
                assert source.stats().reconnects >= 1
            finally:
                back.stop()
    finally:
        restarted.stop()
