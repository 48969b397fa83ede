"""Turn raw data into model inputs as a manifest's input contract says.

These are the generic steps (colour order, resize, normalise, layout, batch); task heads in
:mod:`edgekit.tasks` add what is specific to a task.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.errors import BackendUnavailable, InputError
from edgekit.manifest import InputContract
from edgekit.tensor import TensorSpec

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed into the model input: ``model = image * scale + (pad_x, pad_y)``."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    width: int
    height: int

    def to_image(self, x: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[Any, Any]:
        """Model-input pixel coordinates back to original image pixels."""
        return (x - self.pad_x) / self.scale_x, (y - self.pad_y) / self.scale_y


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError as e:
        raise BackendUnavailable(
            "OpenCV is not installed, so images cannot be read or resized: "
            "pip install 'edgekit[vision]'"
        ) from e
    return cv2


def read_image(path: Path, color: str = "RGB") -> npt.NDArray[np.uint8]:
    """Read an image file as HWC uint8 in the given colour order (``RGB``, ``BGR`` or ``GRAY``)."""
    cv2 = import_cv2()
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"{path} is not an image OpenCV can decode (PNG, JPEG, BMP, ...)")
    return convert_color(image, "BGR", color)


def convert_color(image: npt.NDArray[Any], source: str, target: str) -> npt.NDArray[Any]:
    source, target = source.upper(), target.upper()
    if source == target:
        return image
    if target == "GRAY":
        weights = np.array([0.299, 0.587, 0.114] if source == "RGB" else [0.114, 0.587, 0.299])
        gray: npt.NDArray[Any] = (image[..., :3] @ weights).astype(image.dtype)
        return gray[..., None]
    if source == "GRAY":
        return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    return image[..., ::-1]


def target_size(
    contract: InputContract, spec: TensorSpec, height: int, width: int
) -> tuple[int, int]:
    """The (height, width) an image should be resized to for this model."""
    if contract.size is not None:
        return int(contract.size[0]), int(contract.size[1])
    layout = contract.layout or spec.layout or "NCHW"
    h_axis, w_axis = (2, 3) if layout == "NCHW" else (1, 2)
    fixed_h, fixed_w = spec.shape[h_axis], spec.shape[w_axis]
    if isinstance(fixed_h, int) and isinstance(fixed_w, int):
        return fixed_h, fixed_w
    multiple = contract.size_multiple or 1
    limit = contract.max_side or max(height, width)
    ratio = min(1.0, limit / max(height, width))
    new_h = max(multiple, round(height * ratio / multiple) * multiple)
    new_w = max(multiple, round(width * ratio / multiple) * multiple)
    return new_h, new_w


def resize(
    image: npt.NDArray[Any], size: tuple[int, int], mode: str = "stretch"
) -> tuple[npt.NDArray[Any], Letterbox]:
    """Resize to (height, width): ``stretch``, ``letterbox`` (centred) or ``keep-aspect-pad``."""
    cv2 = import_cv2()
    height, width = image.shape[:2]
    out_h, out_w = size
    if mode == "stretch":
        resized = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        return _keep_channels(resized, image), Letterbox(
            out_w / width, out_h / height, 0.0, 0.0, width, height
        )
    if mode not in ("letterbox", "keep-aspect-pad"):
        raise InputError(f"unknown resize mode {mode!r}: stretch, letterbox or keep-aspect-pad")
    scale = min(out_w / width, out_h / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = _keep_channels(
        cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), image
    )
    canvas = np.zeros((out_h, out_w, *image.shape[2:]), dtype=image.dtype)
    pad_x = (out_w - new_w) // 2 if mode == "letterbox" else 0
    pad_y = (out_h - new_h) // 2 if mode == "letterbox" else 0
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, Letterbox(new_w / width, new_h / height, pad_x, pad_y, width, height)


def _keep_channels(resized: npt.NDArray[Any], original: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if original.ndim == 3 and resized.ndim == 2:
        return resized[..., None]
    return resized


def normalise(image: npt.NDArray[Any], contract: InputContract) -> npt.NDArray[np.float32]:
    """``(pixel * scale - mean) / std`` as float32, each step only if the contract has it."""
    x = image.astype(np.float32)
    if contract.scale is not None:
        x *= np.float32(contract.scale)
    if contract.mean is not None:
        x -= np.asarray(contract.mean, dtype=np.float32)
    if contract.std is not None:
        x /= np.asarray(contract.std, dtype=np.float32)
    return x


def image_to_tensor(
    image: npt.NDArray[Any], contract: InputContract, spec: TensorSpec, color: str = "RGB"
) -> tuple[npt.NDArray[Any], Letterbox]:
    """An HWC uint8 image (in ``color`` order) -> a batched input tensor for ``spec``."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise InputError(f"expected an HxWxC image, got an array of shape {list(image.shape)}")
    image = convert_color(image, color, contract.color or color)
    size = target_size(contract, spec, image.shape[0], image.shape[1])
    resized, box = resize(image, size, contract.resize)
    x: npt.NDArray[Any] = normalise(resized, contract)
    if (contract.layout or spec.layout) == "NCHW":
        x = x.transpose(2, 0, 1)
    x = np.ascontiguousarray(x[None]).astype(spec.dtype, copy=False)
    return x, box


def read_wav(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """A PCM WAV file as float32 mono samples in [-1, 1] and its sample rate."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise InputError(f"{path} is not a PCM WAV file: {e}") from e
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 4:
        samples = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        raise InputError(f"{path}: {8 * width}-bit WAV is not supported (use 8, 16 or 32-bit PCM)")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples.astype(np.float32), rate


def resample(samples: npt.NDArray[np.float32], rate: int, target: int) -> npt.NDArray[np.float32]:
    """Linear-interpolation resampling (good enough for VAD-style models)."""
    if rate == target or samples.size == 0:
        return samples
    duration = samples.size / rate
    n = max(1, round(duration * target))
    positions = np.arange(n, dtype=np.float64) * (rate / target)
    return np.interp(positions, np.arange(samples.size), samples).astype(np.float32)
