"""Image checks and geometry shared by the vision heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgekit.tasks.errors import TaskInputError

ColorOrder = Literal["RGB", "BGR"]
"""Channel order of a colour image: ``"RGB"`` (PIL, scikit-image, most cameras through a
converter) or ``"BGR"`` (OpenCV's ``imread`` and ``VideoCapture``)."""


def to_order(image: npt.NDArray[np.uint8], given: ColorOrder, wanted: ColorOrder) -> Any:
    """Return ``image`` in the channel order ``wanted`` (a view when the order must flip)."""
    if given not in ("RGB", "BGR"):
        raise TaskInputError(f"color order must be 'RGB' or 'BGR', got {given!r}")
    return image if given == wanted else image[..., ::-1]


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a model input, to map results back.

    Attributes:
        src_width: Original image width in pixels.
        src_height: Original image height in pixels.
        dst_width: Model input width.
        dst_height: Model input height.
        scale_x: Model-input pixels per original pixel, horizontally.
        scale_y: Model-input pixels per original pixel, vertically.
        pad_left: Padding columns on the left of the model input.
        pad_top: Padding rows above the image in the model input.
    """

    src_width: int
    src_height: int
    dst_width: int
    dst_height: int
    scale_x: float
    scale_y: float
    pad_left: int
    pad_top: int

    def to_source(self, xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map ``[..., 2]`` points, normalised to the model input, to original-image pixels."""
        pts = np.asarray(xy, dtype=np.float64)
        x = (pts[..., 0] * self.dst_width - self.pad_left) / self.scale_x
        y = (pts[..., 1] * self.dst_height - self.pad_top) / self.scale_y
        return np.stack([x, y], axis=-1)


def check_image(image: Any, what: str = "image", channels: int = 3) -> npt.NDArray[np.uint8]:
    """Check that ``image`` is a ``[H, W, channels]`` uint8 array and return it."""
    if not isinstance(image, np.ndarray):
        raise TaskInputError(
            f"{what} must be a numpy array [H, W, {channels}] uint8, got {type(image).__name__}"
        )
    if image.ndim == 2:
        raise TaskInputError(
            f"{what} is a [H, W] grey image; stack it to [H, W, 3] with "
            "np.repeat(image[..., None], 3, axis=2)"
        )
    if image.ndim != 3 or image.shape[2] != channels:
        hint = (
            " (drop alpha with image[..., :3])" if image.ndim == 3 and image.shape[2] == 4 else ""
        )
        raise TaskInputError(
            f"{what} must have shape [H, W, {channels}], got {list(image.shape)}{hint}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise TaskInputError(f"{what} is empty ({list(image.shape)}); pass a non-empty image")
    if image.dtype != np.uint8:
        raise TaskInputError(
            f"{what} must be uint8 (0-255), got {image.dtype}; "
            "for floats in [0, 1] use (image * 255).round().astype(np.uint8)"
        )
    return image


def letterbox(
    image: npt.NDArray[np.uint8], width: int, height: int
) -> tuple[npt.NDArray[np.uint8], Letterbox]:
    """Resize ``image`` to fit ``width`` x ``height`` keeping its aspect ratio, pad with black.

    The image is centred; the padding is split evenly between both sides.
    """
    import cv2

    src = check_image(image)
    src_h, src_w = src.shape[:2]
    scale = min(width / src_w, height / src_h)
    new_w = max(1, min(width, round(src_w * scale)))
    new_h = max(1, min(height, round(src_h * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(src, (new_w, new_h), interpolation=interp)
    pad_left = (width - new_w) // 2
    pad_top = (height - new_h) // 2
    pad_bottom, pad_right = height - new_h - pad_top, width - new_w - pad_left
    canvas = cv2.copyMakeBorder(
        resized, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_CONSTANT, value=0
    )
    info = Letterbox(src_w, src_h, width, height, new_w / src_w, new_h / src_h, pad_left, pad_top)
    return np.asarray(canvas, dtype=np.uint8), info


def normalize_chw(
    image: npt.NDArray[Any],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """``(image / 255 - mean) / std`` per channel, as a float32 ``[3, H, W]`` array.

    Written channel by channel into ``out`` (allocated when ``None``; it may be wider than the
    image, the rest is left as it is), which avoids the float copies and the transposed copy of
    the obvious expression.
    """
    h, w = image.shape[:2]
    if out is None:
        out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        target = out[c, :h, :w]
        np.multiply(image[:, :, c], np.float32(1.0 / (255.0 * std[c])), out=target)
        target -= np.float32(mean[c] / std[c])
    return out


__all__ = ["ColorOrder", "Letterbox", "check_image", "letterbox", "normalize_chw", "to_order"]
