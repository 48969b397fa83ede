"""Calibration data for quantization tests: real photographs and rendered text, never noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

WORDS = [
    "edge",
    "kit",
    "robot",
    "glasses",
    "hello",
    "world",
    "sensor",
    "camera",
    "toy",
    "kiosk",
    "speak",
    "read",
    "this",
    "line",
    "model",
    "quant",
    "2026",
    "board",
]


def text_line(rng: np.random.Generator, height: int = 48, width: int = 192) -> np.ndarray:
    """A rendered text line on a plain or photographic background (BGR, uint8)."""
    import cv2
    from skimage import data as photos

    if rng.random() < 0.5:
        image = np.full((height, width, 3), rng.integers(170, 256, 3), np.uint8)
    else:
        photo = photos.coffee() if rng.random() < 0.5 else photos.astronaut()
        y = int(rng.integers(0, photo.shape[0] - height))
        x = int(rng.integers(0, photo.shape[1] - width))
        image = (photo[y : y + height, x : x + width, ::-1] * 0.35 + 160).astype(np.uint8)
    text = " ".join(rng.choice(WORDS, 2))
    scale = float(rng.uniform(0.6, 0.9))
    cv2.putText(image, text, (4, 34), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 2, cv2.LINE_AA)
    if rng.random() < 0.5:
        image = np.ascontiguousarray(image[::-1, ::-1])  # upside down: the classifier's other class
    return image


@pytest.fixture(scope="session")
def text_lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("text-lines")
    rng = np.random.default_rng(7)
    for i in range(40):
        cv2.imwrite(str(folder / f"{i:03d}.png"), text_line(rng))
    return folder


@pytest.fixture(scope="session")
def shape_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images from the project's own shapes generator (models/shapes.py), as PNG files."""
    import sys

    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
    import shapes

    folder = tmp_path_factory.mktemp("shapes")
    images, _ = shapes.make_dataset(64, seed=2024)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.ascontiguousarray(image[..., ::-1]))
    return folder
