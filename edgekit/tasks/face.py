"""MediaPipe (BlazeFace) face detection: letterbox in, SSD anchor decode and weighted NMS out.

The short-range model takes a ``[1, 128, 128, 3]`` float32 RGB image scaled to ``[-1, 1]`` and
returns ``regressors [1, 896, 16]`` (box centre and size, then six keypoints, in input pixels
relative to an anchor) and ``classificators [1, 896, 1]`` (logits). The anchors are not in the
model: they are generated from :class:`SsdAnchorOptions`, the data of MediaPipe's
``SsdAnchorsCalculator`` options.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgekit.errors import ManifestError
from edgekit.tasks._manifest import head_options, output_names
from edgekit.tasks.errors import TaskInputError
from edgekit.tasks.image import ColorOrder, Letterbox, letterbox, to_order
from edgekit.tasks.nms import weighted_nms
from edgekit.tasks.types import Box, Detection

if TYPE_CHECKING:
    from edgekit.manifest import Manifest

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

#: The model's input value of each uint8 level: the same floats as ``image / 127.5 - 1``, looked
#: up in one pass instead of computed in three.
_UNIT_RANGE: F32 = np.arange(256, dtype=np.float32) / 127.5 - 1.0


@dataclass(frozen=True)
class SsdAnchorOptions:
    """MediaPipe ``SsdAnchorsCalculatorOptions``: how a detector tiles its input with anchors.

    Consecutive layers that share a stride share one feature map, whose cells then carry the
    anchors of all of them (two per layer here: aspect ratio 1 and the interpolated scale).
    """

    input_width: int = 128
    input_height: int = 128
    strides: tuple[int, ...] = (8, 16, 16, 16)
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True
    reduce_boxes_in_lowest_layer: bool = False


SHORT_RANGE_ANCHORS = SsdAnchorOptions()
"""Anchors of ``face_detection_short_range.tflite``: 16x16 cells x 2 + 8x8 cells x 6 = 896."""

FULL_RANGE_ANCHORS = SsdAnchorOptions(
    input_width=192, input_height=192, strides=(4,), interpolated_scale_aspect_ratio=0.0
)
"""Anchors of ``face_detection_full_range.tflite``: 48x48 cells x 1 = 2304."""


def _layer_scale(options: SsdAnchorOptions, index: int) -> float:
    n = len(options.strides)
    if n == 1:
        return (options.min_scale + options.max_scale) / 2.0
    return options.min_scale + (options.max_scale - options.min_scale) * index / (n - 1)


def ssd_anchors(options: SsdAnchorOptions = SHORT_RANGE_ANCHORS) -> F32:
    """Generate anchors as ``[N, 4]`` rows ``(x_center, y_center, width, height)``, normalised.

    This follows MediaPipe's ``SsdAnchorsCalculator``: cells in row-major order, and inside a
    cell the anchors of every layer that shares the stride.
    """
    if not options.strides:
        raise TaskInputError("SsdAnchorOptions.strides is empty; give one stride per layer")
    rows: list[F32] = []
    n_layers = len(options.strides)
    layer = 0
    while layer < n_layers:
        widths: list[float] = []
        heights: list[float] = []
        last = layer
        while last < n_layers and options.strides[last] == options.strides[layer]:
            scale = _layer_scale(options, last)
            ratios: list[float] = []
            scales: list[float] = []
            if last == 0 and options.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                ratios += list(options.aspect_ratios)
                scales += [scale] * len(options.aspect_ratios)
                if options.interpolated_scale_aspect_ratio > 0.0:
                    following = 1.0 if last == n_layers - 1 else _layer_scale(options, last + 1)
                    scales.append(math.sqrt(scale * following))
                    ratios.append(options.interpolated_scale_aspect_ratio)
            for ratio, s in zip(ratios, scales, strict=True):
                widths.append(s * math.sqrt(ratio))
                heights.append(s / math.sqrt(ratio))
            last += 1
        stride = options.strides[layer]
        fh = math.ceil(options.input_height / stride)
        fw = math.ceil(options.input_width / stride)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        per_cell = len(widths)
        cx = np.repeat(((xs.ravel() + options.anchor_offset_x) / fw), per_cell)
        cy = np.repeat(((ys.ravel() + options.anchor_offset_y) / fh), per_cell)
        if options.fixed_anchor_size:
            w = np.ones_like(cx)
            h = np.ones_like(cx)
        else:
            w = np.tile(np.asarray(widths), fh * fw)
            h = np.tile(np.asarray(heights), fh * fw)
        rows.append(np.stack([cx, cy, w, h], axis=1).astype(np.float32))
        layer = last
    return np.concatenate(rows, axis=0)


@dataclass(frozen=True)
class FaceDetectorConfig:
    """Decoding settings, from MediaPipe's ``face_detection_short_range`` graph.

    Attributes:
        anchors: Anchor layout.
        num_keypoints: Keypoints after the 4 box values of each regressor row.
        box_scale: Input pixels per unit of the regressor outputs (the input size).
        score_clip: Logits are clipped to ``[-score_clip, score_clip]`` before the sigmoid.
        score_threshold: Detections scoring below this are dropped.
        iou_threshold: Weighted-NMS merge overlap.
        max_faces: Keep at most this many faces (``None``: all).
    """

    anchors: SsdAnchorOptions = SHORT_RANGE_ANCHORS
    num_keypoints: int = 6
    box_scale: float = 128.0
    score_clip: float = 100.0
    score_threshold: float = 0.5
    iou_threshold: float = 0.3
    max_faces: int | None = None


SHORT_RANGE = FaceDetectorConfig()
FULL_RANGE = FaceDetectorConfig(anchors=FULL_RANGE_ANCHORS, box_scale=192.0)


def sigmoid(logits: npt.ArrayLike, clip: float | None = None) -> F32:
    """Logistic function, optionally clipping the logits first (as MediaPipe does)."""
    x = np.asarray(logits, dtype=np.float64)
    if clip is not None:
        x = np.clip(x, -clip, clip)
    # exp of a large negative logit overflows float32 but not float64 (clip is at most ~700).
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


def _logit_floor(threshold: float) -> float:
    """A logit below which :func:`sigmoid` scores stay under ``threshold``.

    It sits a little (a relative 1e-6 of the score) below the exact boundary, so the float32
    rounding of the scores never lets a logit under it pass; ``-inf`` when any logit may pass.
    """
    below = min(threshold, float(np.float32(threshold))) * (1.0 - 1e-6)
    if not 0.0 < below < 1.0:
        return -math.inf
    return math.log(below / (1.0 - below))


def _regressor_rows(regressors: npt.ArrayLike, anchors: F32) -> F32:
    """``regressors`` as ``[N, 4 + 2K]`` float32 rows, checked against the ``N`` anchors."""
    raw = np.asarray(regressors, dtype=np.float32)
    if raw.ndim == 3 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.ndim != 2 or raw.shape[0] != anchors.shape[0] or raw.shape[1] < 4 or raw.shape[1] % 2:
        raise TaskInputError(
            f"regressors must have shape [1, {anchors.shape[0]}, 4 + 2K] to match "
            f"{anchors.shape[0]} anchors, got {list(np.shape(regressors))}; check that the "
            "anchor options belong to this model"
        )
    return raw


def _decode_rows(raw: F32, anchors: F32, box_scale: float) -> F32:
    # (x, y) pairs: box centre, box size, then the keypoints; all scale with the anchor size.
    pairs = raw.reshape(len(raw), -1, 2) / box_scale * anchors[:, None, 2:4]
    pairs[:, 0] += anchors[:, 0:2]
    pairs[:, 2:] += anchors[:, None, 0:2]
    centre, half = pairs[:, 0], pairs[:, 1] / 2
    out = np.concatenate([centre - half, centre + half, pairs[:, 2:].reshape(len(raw), -1)], axis=1)
    return np.asarray(out, dtype=np.float32)


def decode_raw_boxes(regressors: npt.ArrayLike, anchors: F32, box_scale: float) -> F32:
    """Turn ``[N, 4 + 2K]`` regressor rows into ``[N, 4 + 2K]`` rows
    ``(x1, y1, x2, y2, kx0, ky0, ...)``, normalised to the model input."""
    return _decode_rows(_regressor_rows(regressors, anchors), anchors, box_scale)


def decode_faces(
    regressors: npt.ArrayLike,
    classificators: npt.ArrayLike,
    anchors: F32,
    config: FaceDetectorConfig = SHORT_RANGE,
    letterbox_info: Letterbox | None = None,
) -> list[Detection]:
    """Decode face detections from the two model outputs.

    Args:
        regressors: ``[1, N, 16]`` (or ``[N, 16]``) box and keypoint regressions.
        classificators: ``[1, N, 1]`` (or ``[N]``) score logits.
        anchors: ``[N, 4]`` from :func:`ssd_anchors`.
        config: Decoding settings.
        letterbox_info: When given, results are in pixels of the original image; otherwise they
            are normalised to the model input.

    Returns:
        Faces, best first, with six keypoints each.
    """
    raw = _regressor_rows(regressors, anchors)
    logits = np.asarray(classificators, dtype=np.float32).reshape(-1)
    if logits.shape[0] != raw.shape[0]:
        raise TaskInputError(
            f"classificators hold {logits.shape[0]} scores for {raw.shape[0]} anchors; "
            "pass the [1, N, 1] score output next to the [1, N, 16] regressors"
        )
    if raw.shape[1] != 4 + 2 * config.num_keypoints:
        raise TaskInputError(
            f"regressors rows have {raw.shape[1]} values, expected 4 + 2 x "
            f"{config.num_keypoints} keypoints; set FaceDetectorConfig.num_keypoints"
        )
    # Nearly every anchor scores far below the threshold: only those that may reach it get the
    # sigmoid and a box. Clipping cannot lift a logit over a floor above -score_clip.
    floor = _logit_floor(config.score_threshold)
    if floor <= -config.score_clip:
        floor = -math.inf
    picked = np.flatnonzero(logits >= floor)
    if not len(picked):
        return []
    rows = _decode_rows(raw[picked], anchors[picked], config.box_scale)
    scores = sigmoid(logits[picked], config.score_clip)
    valid = (
        (scores >= config.score_threshold) & (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
    )
    rows, scores = rows[valid], scores[valid]
    if not len(rows):
        return []
    keep, merged = weighted_nms(
        rows[:, :4],
        scores,
        config.iou_threshold,
        values=rows,
        max_detections=config.max_faces,
    )
    points = merged.reshape(len(merged), -1, 2)
    normalized = letterbox_info is None
    if letterbox_info is not None:
        points = letterbox_info.to_source(points)
    faces: list[Detection] = []
    for i, idx in enumerate(keep):
        (x1, y1), (x2, y2) = points[i, 0], points[i, 1]
        box = Box(float(x1), float(y1), float(x2), float(y2), normalized=normalized)
        kps = tuple((float(x), float(y)) for x, y in points[i, 2:])
        faces.append(Detection(box, float(scores[idx]), 0, "face", kps))
    log.debug("decoded %d faces from %d candidates", len(faces), len(rows))
    return faces


class FaceDetectionHead:
    """``face-detection``: uint8 image in, faces in original-image pixels out.

    Args:
        config: Decoding settings (defaults: the short-range model).
        color_order: Channel order of the images given to :meth:`prepare`.
        input_name: Name of the image input.
        regressors_name: Name of the ``[1, N, 16]`` output.
        scores_name: Name of the ``[1, N, 1]`` output.
    """

    task = "face-detection"

    def __init__(
        self,
        config: FaceDetectorConfig = SHORT_RANGE,
        *,
        color_order: ColorOrder = "RGB",
        input_name: str = "input",
        regressors_name: str = "regressors",
        scores_name: str = "classificators",
    ) -> None:
        self.config = config
        self.color_order: ColorOrder = color_order
        self.input_name = input_name
        self.regressors_name = regressors_name
        self.scores_name = scores_name
        self.anchors = ssd_anchors(config.anchors)

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, metadata: Mapping[str, str] | None = None, **overrides: Any
    ) -> FaceDetectionHead:
        """Build the head from a manifest's input size, output names and ``[head]`` table
        (``num_layers``, ``strides``, ``min_scale``, ``max_scale``, ``anchor_offset``,
        ``interpolated_scale_aspect_ratio``, ``score_threshold``, ``nms_threshold``,
        ``num_keypoints``, ``max_faces``, ``score_clip``)."""
        opts = head_options(
            manifest,
            (
                "num_layers", "strides", "min_scale", "max_scale", "anchor_offset",
                "interpolated_scale_aspect_ratio", "score_threshold", "nms_threshold",
                "num_keypoints", "max_faces", "score_clip",
            ),
        )  # fmt: skip
        height, width = manifest.input.size or (128, 128)
        strides = tuple(int(v) for v in opts.get("strides", SHORT_RANGE_ANCHORS.strides))
        if "num_layers" in opts and int(opts["num_layers"]) != len(strides):
            raise ManifestError(
                f"manifest {manifest.name}: [head] num_layers = {opts['num_layers']} but "
                f"strides lists {len(strides)} layers"
            )
        offset = float(opts.get("anchor_offset", 0.5))
        anchors = SsdAnchorOptions(
            input_width=int(width),
            input_height=int(height),
            strides=strides,
            min_scale=float(opts.get("min_scale", SHORT_RANGE_ANCHORS.min_scale)),
            max_scale=float(opts.get("max_scale", SHORT_RANGE_ANCHORS.max_scale)),
            anchor_offset_x=offset,
            anchor_offset_y=offset,
            interpolated_scale_aspect_ratio=float(opts.get("interpolated_scale_aspect_ratio", 1.0)),
        )
        config = FaceDetectorConfig(
            anchors=anchors,
            num_keypoints=int(opts.get("num_keypoints", 6)),
            box_scale=float(width),
            score_clip=float(opts.get("score_clip", 100.0)),
            score_threshold=float(opts.get("score_threshold", 0.5)),
            iou_threshold=float(opts.get("nms_threshold", 0.3)),
            max_faces=opts.get("max_faces"),
        )
        kwargs: dict[str, Any] = {"config": config}
        if manifest.input.name:
            kwargs["input_name"] = manifest.input.name
        names = output_names(manifest, 2)
        if names is not None:
            kwargs["regressors_name"], kwargs["scores_name"] = names
        kwargs.update(overrides)
        return cls(**kwargs)

    def prepare(self, image: npt.NDArray[np.uint8]) -> tuple[dict[str, F32], Letterbox]:
        """Letterbox an ``[H, W, 3]`` uint8 image into a ``[1, h, w, 3]`` RGB tensor in [-1, 1]."""
        import cv2

        opts = self.config.anchors
        canvas, info = letterbox(image, opts.input_width, opts.input_height)
        if to_order(canvas, self.color_order, "RGB") is not canvas:
            cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB, dst=canvas)  # the canvas is a new array
        tensor = np.asarray(cv2.LUT(canvas, _UNIT_RANGE), dtype=np.float32)[None]
        return {self.input_name: tensor}, info

    def decode(self, outputs: Mapping[str, npt.ArrayLike], context: Letterbox) -> list[Detection]:
        """Faces in pixels of the image given to :meth:`prepare`."""
        for name in (self.regressors_name, self.scores_name):
            if name not in outputs:
                raise TaskInputError(
                    f"model outputs have no {name!r} (got {sorted(outputs)}); "
                    "set the output names on FaceDetectionHead"
                )
        return decode_faces(
            outputs[self.regressors_name],
            outputs[self.scores_name],
            self.anchors,
            self.config,
            context,
        )


__all__ = [
    "FULL_RANGE",
    "FULL_RANGE_ANCHORS",
    "SHORT_RANGE",
    "SHORT_RANGE_ANCHORS",
    "FaceDetectionHead",
    "FaceDetectorConfig",
    "SsdAnchorOptions",
    "decode_faces",
    "decode_raw_boxes",
    "sigmoid",
]
