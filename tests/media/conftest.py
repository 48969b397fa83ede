"""Fixtures for the media tests: real encoded video files, thread-leak checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.media.synthetic import embed_counter


def write_video(
    path: Path, frames: int, fps: float = 25.0, size: tuple[int, int] = (320, 240)
) -> Path:
    """An MJPG .avi whose frame i shows a gradient and the counter i (read back by read_counter)."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), f"this OpenCV build cannot write MJPG to {path}"
    base = np.zeros((height, width, 3), dtype=np.uint8)
    base[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    try:
        for index in range(frames):
            image = base.copy()
            image[height // 2 :, :, 2] = (index * 7) % 256
            embed_counter(image, index)
            writer.write(image)
    finally:
        writer.release()
    assert path.stat().st_size > 0
    return path


@pytest.fixture(scope="session")
def video_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    cache: dict[tuple[int, float, tuple[int, int]], Path] = {}

    def make(frames: int, fps: float = 25.0, size: tuple[int, int] = (320, 240)) -> Path:
        key = (frames, fps, size)
        if key not in cache:
            name = f"clip_{frames}_{fps:g}_{size[0]}x{size[1]}.avi"
            cache[key] = write_video(tmp_path_factory.mktemp("video") / name, frames, fps, size)
        return cache[key]

    return make


def edgekit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("edgekit-")]


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fails the test if an edgekit thread outlives it."""
    before = set(edgekit_threads())
    yield
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and set(edgekit_threads()) - before:
        time.sleep(0.01)
    leaked = set(edgekit_threads()) - before
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


# -- sound devices -------------------------------------------------------------------------------
