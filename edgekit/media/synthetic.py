"""Deterministic test patterns with the frame counter written into the pixels.

``synthetic:bars`` (colour bars) and ``synthetic:noise`` (noise seeded by the frame number), with
options ``width``, ``height``, ``fps`` (paced when given, default 30; ``fps=0`` is not allowed)
and ``frames`` (end after that many; unlimited by default). The counter is drawn as 32 black or
white cells across the top rows, so it survives video compression and :func:`read_counter` gets
it back from a decoded frame.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgekit.errors import InputError
from edgekit.media.base import Image, SourceURL
from edgekit.media.errors import CaptureError, UnknownSourceError

COUNTER_BITS = 32
_BARS = np.array(
    [  # BGR: white, yellow, cyan, green, magenta, red, blue, black
        [235, 235, 235],
        [16, 235, 235],
        [235, 235, 16],
        [16, 235, 16],
        [235, 16, 235],
        [16, 16, 235],
        [235, 16, 16],
        [16, 16, 16],
    ],
    dtype=np.uint8,
)


def counter_cell(width: int) -> int:
    """Side in pixels of one counter cell for an image this wide (8, or less for narrow ones)."""
    return min(8, width // COUNTER_BITS)


def embed_counter(image: Image, value: int) -> None:
    """Write ``value`` (mod 2**32) into the top rows of ``image`` in place."""
    cell = counter_cell(image.shape[1])
    if cell < 2 or image.shape[0] < cell:
        raise InputError(
            f"an image of {image.shape[1]}x{image.shape[0]} is too small for a counter"
        )
    bits = (int(value) >> np.arange(COUNTER_BITS - 1, -1, -1)) & 1
    row = np.repeat((bits * 255).astype(np.uint8), cell)
    image[:cell, : COUNTER_BITS * cell] = row[None, :, None] if image.ndim == 3 else row[None, :]


def read_counter(image: npt.NDArray[np.uint8]) -> int:
    """The counter :func:`embed_counter` wrote, read back from a (possibly decoded) image."""
    cell = counter_cell(image.shape[1])
    band = image[:cell, : COUNTER_BITS * cell].astype(np.float32)
    if band.ndim == 3:
        band = band.mean(axis=2)
    cells = band.reshape(cell, COUNTER_BITS, cell).mean(axis=(0, 2))
    value = 0
    for bit in cells > 127.5:
        value = (value << 1) | int(bit)
    return value


class SyntheticGrabber:
    """Frames drawn in memory; paced at ``fps`` by the capture thread."""

    live = False
    paced = True

    def __init__(
        self, url: str, pattern: str, width: int, height: int, fps: float, frames: int | None
    ) -> None:
        if pattern not in ("bars", "noise"):
            raise UnknownSourceError(
                f"{url}: unknown synthetic pattern {pattern!r}: use synthetic:bars or "
                "synthetic:noise"
            )
        if counter_cell(width) < 2 or height < 2:
            raise UnknownSourceError(
                f"{url}: {width}x{height} is too small; synthetic frames are at least 64x2 so "
                "the frame counter fits"
            )
        self.url = url
        self.pattern = pattern
        self.width, self.height = width, height
        self.fps: float | None = fps
        self.frames = frames
        self._count = 0
        columns = np.arange(width) * len(_BARS) // width
        self._bars = np.ascontiguousarray(np.broadcast_to(_BARS[columns], (height, width, 3)))

    def open(self) -> None:
        self._count = 0

    def grab(self, out: Image | None) -> Image | None:
        if self.frames is not None and self._count >= self.frames:
            return None
        shape = (self.height, self.width, 3)
        if out is None or out.shape != shape or out.dtype != np.uint8:
            out = np.empty(shape, dtype=np.uint8)
        if self.pattern == "bars":
            np.copyto(out, self._bars)
        else:
            noise = np.random.default_rng(self._count).bytes(out.size)
            np.copyto(out, np.frombuffer(noise, dtype=np.uint8).reshape(shape))
        embed_counter(out, self._count)
        self._count += 1
        return out

    def close(self) -> None:
        pass


def open_synthetic(url: SourceURL) -> SyntheticGrabber:
    url.option_names(("width", "height", "fps", "frames"))
    return SyntheticGrabber(
        url.url,
        url.target,
        url.int_option("width", 640) or 640,
        url.int_option("height", 480) or 480,
        url.float_option("fps", 30.0) or 30.0,
        url.int_option("frames", None),
    )


def write_pan_clip(
    path: str | Path,
    still: Image,
    frames: int,
    fps: float,
    offset: Callable[[int, int], tuple[float, float]],
) -> Path:
    """Encode a camera panning over ``still`` as an MJPG ``.avi``: frame ``i`` is ``still``
    shifted by ``offset(i, frames)`` pixels (x, y), edges mirrored.

    Samples and tests read it back with ``open_source("file:PATH")``, so its frames take the
    same decode path as a recorded video. Raises :class:`CaptureError` when OpenCV cannot
    write ``path``.
    """
    import cv2

    out = Path(path)
    if frames < 1 or fps <= 0:
        raise InputError(f"a clip needs frames >= 1 and fps > 0, got {frames} and {fps}")
    height, width = still.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise CaptureError(f"OpenCV cannot write {out}: give a writable .avi path")
    try:
        for index in range(frames):
            dx, dy = offset(index, frames)
            shift = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
            writer.write(
                cv2.warpAffine(still, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
            )
    finally:
        writer.release()
    return out
