"""Calibration and held-out data for quantization, fed through the model's own preprocessing.

A calibration source is a folder of images, a video file, a folder of WAV files, a folder (or
glob) of ``.npy`` files, or a live edgekit source URL (``cam:0``, ``synthetic:bars``, ...), so
quantization can run on the device with the device's own sensor data.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgekit.errors import InputError
from edgekit.preprocess import IMAGE_SUFFIXES, image_to_tensor, read_image, read_wav, resample

if TYPE_CHECKING:
    from edgekit.model import Model

log = logging.getLogger(__name__)

Feeds = dict[str, npt.NDArray[Any]]
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mjpeg", ".mjpg"}


@dataclass(frozen=True)
class CalibrationData:
    """Model feeds for calibration and a disjoint held-out set for the accuracy report."""

    calibration: list[Feeds]
    held_out: list[Feeds]
    source: str

    def __post_init__(self) -> None:
        if not self.calibration:
            raise InputError(f"calibration source {self.source} produced no samples")


def _image_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def iter_images(source: str, limit: int) -> Iterator[npt.NDArray[np.uint8]]:
    """RGB uint8 images from a folder, a video file, or a live source URL."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise InputError(f"{path} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for file in files[:limit]:
            yield read_image(file, "RGB")
        return
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        yield from _video_frames(path, limit)
        return
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        yield read_image(path, "RGB")
        return
    if ":" in source and not path.exists():
        yield from _live_frames(source, limit)
        return
    raise InputError(
        f"calibration source {source!r} is not an image folder, a video file, a WAV folder, "
        ".npy files, or a source URL (cam:0, file:clip.mp4, synthetic:bars)"
    )


def _video_frames(path: Path, limit: int) -> Iterator[npt.NDArray[np.uint8]]:
    from edgekit.preprocess import import_cv2

    cv2 = import_cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"OpenCV cannot open the video {path}")
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or limit
        step = max(1, total // limit)
        index = 0
        produced = 0
        while produced < limit:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                produced += 1
                yield np.ascontiguousarray(frame[..., ::-1])
            index += 1
    finally:
        capture.release()


def _live_frames(url: str, limit: int) -> Iterator[npt.NDArray[np.uint8]]:
    try:
        from edgekit.media import open_source
    except ImportError as e:  # pragma: no cover - media ships with edgekit
        raise InputError(f"live calibration sources need edgekit.media: {e}") from e
    with open_source(url, policy="queue") as source:
        for _ in range(limit):
            with source.read(timeout=10.0) as frame:
                image = np.array(frame.image, copy=True)
            yield image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def image_feeds(model: Model, size: tuple[int, int] | None = None) -> Callable[[Any], Feeds]:
    """RGB image -> feeds, by the manifest's input contract (``size`` overrides its size)."""
    from edgekit.manifest import InputContract

    contract = model.manifest.input if model.manifest is not None else InputContract()
    if size is not None:
        contract = replace(contract, size=size, resize="stretch")
    spec = model.inputs[0]
    if len(model.inputs) != 1:
        raise InputError(
            f"{model.name} has {len(model.inputs)} inputs; calibrate it from .npy files "
            "holding one dict of arrays each (np.savez) instead of images"
        )

    def convert(image: npt.NDArray[np.uint8]) -> Feeds:
        tensor, _ = image_to_tensor(image, contract, spec, color="RGB")
        return {spec.name: tensor}

    return convert


def audio_feeds(model: Model, folder: Path, limit: int) -> list[Feeds]:
    """Chunks of WAV files as the model's streaming input (silero-style: chunk, state, rate)."""
    if model.manifest is None or model.manifest.input.kind != "audio":
        raise InputError(f"{model.name} is not an audio model (its manifest says no kind=audio)")
    contract = model.manifest.input
    rate = contract.sample_rate or 16000
    chunk = (contract.chunk or 512) + (contract.context or 0)
    files = sorted(folder.glob("*.wav"))
    if not files:
        raise InputError(f"{folder} has no .wav files")
    feeds: list[Feeds] = []
    names = [s.name for s in model.inputs]
    state_spec = next((s for s in model.inputs if s.name == "state"), None)
    for file in files:
        samples, file_rate = read_wav(file)
        samples = resample(samples, file_rate, rate)
        state = (
            np.zeros([d if isinstance(d, int) else 1 for d in state_spec.shape], np.float32)
            if state_spec is not None
            else None
        )
        for start in range(0, max(0, samples.size - chunk), contract.chunk or 512):
            window = samples[start : start + chunk][None].astype(np.float32)
            item: Feeds = {names[0]: window}
            if state is not None:
                item["state"] = state
            if "sr" in names:
                item["sr"] = np.array(rate, dtype=np.int64)
            outputs = model.run(item)
            if state is not None:
                state = list(outputs.values())[-1]
            feeds.append(item)
            if len(feeds) >= limit:
                return feeds
    return feeds


def npy_feeds(model: Model, pattern: str, limit: int) -> list[Feeds]:
    """Feeds from ``.npy`` files (the first input) or ``.npz`` files (inputs by name)."""
    path = Path(pattern).expanduser()
    files = (
        sorted([*path.glob("*.npy"), *path.glob("*.npz")])
        if path.is_dir()
        else sorted(Path(p) for p in glob.glob(pattern))
    )
    if not files:
        raise InputError(f"no .npy or .npz files match {pattern}")
    feeds: list[Feeds] = []
    first = model.inputs[0]
    for file in files[:limit]:
        if file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                feeds.append({name: archive[name] for name in archive.files})
        else:
            array = np.load(file, allow_pickle=False)
            if array.ndim == len(first.shape) - 1:
                array = array[None]
            feeds.append({first.name: array.astype(first.dtype, copy=False)})
    return feeds


def load_calibration(
    model: Model,
    source: str,
    *,
    count: int = 32,
    held_out: int = 16,
    size: tuple[int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CalibrationData:
    """Read ``count + held_out`` samples from ``source`` and split them (held-out last)."""
    total = count + held_out
    path = Path(source).expanduser()
    feeds: list[Feeds]
    if path.is_dir() and any(path.glob("*.wav")):
        feeds = audio_feeds(model, path, total)
    elif (path.is_dir() and any(path.glob("*.np[yz]"))) or source.endswith((".npy", ".npz")):
        feeds = npy_feeds(model, source, total)
    else:
        convert = image_feeds(model, size)
        feeds = []
        for image in iter_images(source, total):
            feeds.append(convert(image))
            if progress is not None:
                progress(len(feeds), total)
    if len(feeds) < 2:
        raise InputError(
            f"calibration source {source} gave {len(feeds)} sample(s); give it at least 2 "
            f"(ideally {total}: {count} to calibrate, {held_out} to check accuracy)"
        )
    if len(feeds) < total:
        # Fewer samples than asked: keep a quarter (at least one) for the accuracy check.
        split = max(1, len(feeds) // 4)
        return CalibrationData(feeds[:-split], feeds[-split:], source)
    return CalibrationData(feeds[:count], feeds[count:total], source)
