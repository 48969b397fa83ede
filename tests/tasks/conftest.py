"""Fixtures for the task-head tests: real models from the model store, real images and speech."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgekit
from edgekit import models

ModelLoader = Callable[[str], Any]


@pytest.fixture(scope="session")
def load_model() -> ModelLoader:
    """Load a model of the store by manifest name (fetched and verified on first use), 1 thread.

    The model keeps its manifest, so ``edgekit.tasks.head_for(model)`` can configure a head.
    """
    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            models.fetch(name)
            cache[name] = edgekit.load(name, num_threads=1)
            assert cache[name].manifest is not None and cache[name].manifest.name == name
        return cache[name]

    return get


def _single(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        return next(iter(model.run(x).values()))  # type: ignore[no-any-return]

    return run


@pytest.fixture(scope="session")
def ocr_models(load_model: ModelLoader) -> dict[str, Any]:
    """The PP-OCR models, their one-tensor call functions and the recogniser's charset."""
    from edgekit.tasks.ocr import charset_from_metadata

    det = load_model("ppocr-v4-det")
    rec = load_model("ppocr-v4-rec")
    cls = load_model("ppocr-cls")
    return {
        "det": det,
        "rec": rec,
        "cls": cls,
        "det_run": _single(det),
        "rec_run": _single(rec),
        "cls_run": _single(cls),
        "charset": charset_from_metadata(rec.metadata()["character"]),
    }


@pytest.fixture(scope="session")
def skimage_data() -> Any:
    """scikit-image's bundled photographs (astronaut, coffee, rocket, ...)."""
    try:
        import skimage.data
    except ImportError as e:
        pytest.fail(f"scikit-image is missing ({e}): pip install -e '.[dev]'")
    return skimage.data


def render_lines(lines: list[str], scale: float = 1.3, size: tuple[int, int] = (360, 640)) -> Any:
    """Black text on white, one line every 90 px, drawn with OpenCV's Hershey simplex font."""
    import cv2

    img = np.full((*size, 3), 255, dtype=np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(
            img, text, (40 + 20 * i, 70 + 90 * i), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2,
            cv2.LINE_AA,
        )  # fmt: skip
    return img


@pytest.fixture(scope="session")
def text_image() -> Callable[..., Any]:
    return render_lines


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited resampling: windowed-sinc low-pass below the lower Nyquist, then linear
    interpolation onto the new grid (plenty for speech at 16 kHz)."""
    if src_rate == dst_rate:
        return audio.astype(np.float32)
    cutoff = 0.45 * min(src_rate, dst_rate) / src_rate
    taps = np.arange(-64, 65)
    kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
    filtered = np.convolve(audio, kernel / kernel.sum(), mode="same")
    n = round(len(audio) * dst_rate / src_rate)
    t = np.arange(n) * (src_rate / dst_rate)
    return np.interp(t, np.arange(len(audio)), filtered).astype(np.float32)


@pytest.fixture(scope="session")
def resampler() -> Callable[[np.ndarray, int, int], np.ndarray]:
    return resample


@pytest.fixture(scope="session")
def espeak_speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, float, float]:
    """Speech from espeak-ng, resampled to 16 kHz, between 1 s of silence on each side.

    Returns ``(audio, first_loud_s, last_loud_s)``: the clip and where its samples rise above
    1% of full scale.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is missing: apt-get install -y espeak-ng")
    out = tmp_path_factory.mktemp("speech") / "speech.wav"
    text = "Hello, this is edgekit speaking. The quick brown fox jumps over the lazy dog."
    subprocess.run([exe, "-w", str(out), text], check=True, capture_output=True, timeout=60)
    with wave.open(str(out)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    speech = resample(pcm.astype(np.float32) / 32768.0, rate, 16000)
    silence = np.zeros(16000, dtype=np.float32)
    audio = np.concatenate([silence, speech, silence])
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio, float(loud[0] / 16000), float(loud[-1] / 16000)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
