"""Frame grabbers on OpenCV's ``VideoCapture``: cameras, files, network streams, GStreamer.

OpenCV is imported when a grabber is created, never at ``import edgekit.media``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from edgekit.errors import BackendUnavailable
from edgekit.media.base import Image, SourceURL
from edgekit.media.errors import (
    MediaBackendUnavailable,
    SourceNotFound,
    SourceOpenError,
    UnknownSourceError,
)

log = logging.getLogger(__name__)

#: how long OpenCV may wait to open or read a network stream before giving up.
NETWORK_TIMEOUT_MS = 5000


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError as e:
        raise BackendUnavailable(
            "OpenCV is not installed, so camera, video file and stream sources cannot be "
            "opened: pip install 'edgekit[vision]'"
        ) from e
    return cv2


class OpenCVGrabber:
    """A ``cv2.VideoCapture`` opened from a device index, path or URL with a fixed backend."""

    def __init__(
        self,
        url: str,
        target: int | str,
        api: int,
        *,
        live: bool,
        paced: bool = False,
        loop: bool = False,
        params: tuple[int, ...] = (),
        props: tuple[tuple[int, float], ...] = (),
        hint: str = "",
    ) -> None:
        self.url = url
        self.live = live
        self.paced = paced
        self.fps: float | None = None
        self._target = target
        self._api = api
        self._loop = loop
        self._params = list(params)
        self._props = props
        self._hint = hint
        self._cap: Any = None

    def open(self) -> None:
        cv2 = import_cv2()
        cap = cv2.VideoCapture(self._target, self._api, self._params)
        if not cap.isOpened():
            cap.release()
            raise SourceOpenError(f"{self.url}: OpenCV cannot open it. {self._hint}".strip())
        for prop, value in self._props:
            if not cap.set(prop, value):
                log.warning("%s: the device ignored property %d=%s", self.url, prop, value)
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if 0.0 < fps < 1000.0 else None
        self._cap = cap

    def grab(self, out: Image | None) -> Image | None:
        cap = self._cap
        if cap is None:
            return None
        ok, image = cap.read(out) if out is not None else cap.read()
        if not ok and self._loop:
            cv2 = import_cv2()
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read(out) if out is not None else cap.read()
        if not ok or image is None:
            return None
        result: Image = image
        return result

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def _require_backend(url: SourceURL, api_name: str, fix: str) -> int:
    cv2 = import_cv2()
    api = int(getattr(cv2, f"CAP_{api_name}"))
    if not cv2.videoio_registry.hasBackend(api):
        raise MediaBackendUnavailable(
            f"{url.url}: this OpenCV build ({cv2.__version__}) has no {api_name} video backend. "
            f"{fix}"
        )
    return api


def open_camera(url: SourceURL) -> OpenCVGrabber:
    """``cam:0`` or ``cam:/dev/video0`` with ``width``, ``height``, ``fps`` and ``fourcc``."""
    url.option_names(("width", "height", "fps", "fourcc"))
    cv2 = import_cv2()
    target: int | str
    if re.fullmatch(r"\d+", url.target):
        target = int(url.target)
        node = f"/dev/video{target}"
    elif url.target:
        target = node = url.target
    else:
        raise UnknownSourceError(f"{url.url}: name a camera, e.g. cam:0 or cam:/dev/video0")
    if os.name == "posix" and not os.path.exists(node):
        raise SourceNotFound(
            f"{url.url}: there is no camera at {node}. List the cameras with "
            "`v4l2-ctl --list-devices` (v4l-utils) or `ls /dev/video*`, and check the user is in "
            "the video group"
        )
    props: list[tuple[int, float]] = []
    fourcc = url.options.get("fourcc")
    if fourcc is not None:
        if len(fourcc) != 4:
            raise UnknownSourceError(f"{url.url}: fourcc must be four characters, e.g. MJPG")
        props.append((cv2.CAP_PROP_FOURCC, float(cv2.VideoWriter.fourcc(*fourcc))))
    for name, prop in (
        ("width", cv2.CAP_PROP_FRAME_WIDTH),
        ("height", cv2.CAP_PROP_FRAME_HEIGHT),
        ("fps", cv2.CAP_PROP_FPS),
    ):
        value = url.float_option(name, None)
        if value is not None:
            props.append((prop, value))
    api = int(cv2.CAP_V4L2) if os.name == "posix" else int(cv2.CAP_ANY)
    return OpenCVGrabber(
        url.url,
        target,
        api,
        live=True,
        props=tuple(props),
        hint="The camera may be busy in another program, or not a capture device.",
    )


def open_file(url: SourceURL) -> OpenCVGrabber:
    """``file:PATH`` with ``loop=1`` (start again at the end) and ``pace=1`` (real time)."""
    url.option_names(("loop", "pace"))
    path = Path(url.target).expanduser()
    if not url.target:
        raise UnknownSourceError(f"{url.url}: name a file, e.g. file:clip.mp4")
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise SourceNotFound(f"{url.url}: {path} {what}; give the path of a video file")
    api = _require_backend(
        url, "FFMPEG", "Install opencv-python-headless from PyPI, which bundles FFmpeg."
    )
    return OpenCVGrabber(
        url.url,
        str(path),
        api,
        live=False,
        paced=url.flag("pace"),
        loop=url.flag("loop"),
        hint="It is not a video file FFmpeg can decode (check it plays, e.g. with ffprobe).",
    )


def open_network(url: SourceURL) -> OpenCVGrabber:
    """``rtsp://host/path`` or ``http://host/stream.mjpg`` (IP cameras): FFmpeg with open and
    read timeouts, reconnected with backoff when the stream is lost."""
    api = _require_backend(
        url, "FFMPEG", "Install opencv-python-headless from PyPI, which bundles FFmpeg."
    )
    cv2 = import_cv2()
    params = (
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        NETWORK_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        NETWORK_TIMEOUT_MS,
    )
    return OpenCVGrabber(
        url.url,
        url.url,
        api,
        live=True,
        params=params,
        hint="Check the address and that the stream is up (e.g. ffprobe URL).",
    )


def open_gstreamer(url: SourceURL) -> OpenCVGrabber:
    """``gst:PIPELINE`` ending in ``appsink``; needs an OpenCV built with GStreamer."""
    if not url.target:
        raise UnknownSourceError(
            f"{url.url}: give a pipeline, e.g. gst:videotestsrc ! videoconvert ! appsink"
        )
    api = _require_backend(
        url,
        "GSTREAMER",
        "Use an OpenCV built with GStreamer (e.g. the distribution's python3-opencv instead of "
        "the PyPI wheel), or open RTSP streams as rtsp://, which goes through FFmpeg.",
    )
    return OpenCVGrabber(
        url.url,
        url.target,
        api,
        live=True,
        hint="Check the pipeline with gst-launch-1.0 and that it ends in appsink.",
    )


def video_backends() -> dict[str, bool]:
    """Which OpenCV video I/O backends this build has: ``FFMPEG``, ``GSTREAMER``, ``V4L2``."""
    cv2 = import_cv2()
    return {
        name: bool(cv2.videoio_registry.hasBackend(getattr(cv2, f"CAP_{name}")))
        for name in ("FFMPEG", "GSTREAMER", "V4L2")
    }
