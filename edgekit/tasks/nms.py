"""Non-maximum suppression over ``[N, 4]`` corner boxes ``(x1, y1, x2, y2)``.

Two flavours:

* :func:`nms`, the classic greedy hard suppression (optionally per class), and
* :func:`weighted_nms`, MediaPipe's variant that replaces each kept box by the score-weighted
  mean of the boxes it suppressed, which steadies the boxes of anchor-based detectors.

Both sort by score (ties keep input order), are vectorised over the candidates of each step,
and return indices into the input so the caller can gather any per-box data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.tasks.errors import TaskInputError

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


def _as_boxes(boxes: npt.ArrayLike, what: str = "boxes") -> FloatArray:
    arr = np.asarray(boxes)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise TaskInputError(
            f"{what} must have shape [N, 4] (x1, y1, x2, y2), got {list(arr.shape)}; "
            "reshape with boxes.reshape(-1, 4)"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TaskInputError(f"{what} must be real numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(out)):
        raise TaskInputError(f"{what} contain NaN or infinity; drop those rows before NMS")
    return out


def _as_scores(scores: npt.ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(scores)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise TaskInputError(
            f"scores must have shape [{n}] to match {n} boxes, got {list(arr.shape)}"
        )
    out = arr.astype(np.float64, copy=False)
    if np.any(np.isnan(out)):
        raise TaskInputError("scores contain NaN; the model output is broken or was misread")
    return out


def _areas(boxes: FloatArray) -> FloatArray:
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    return np.asarray(w * h, dtype=np.float64)


def _iou_one_to_many(box: FloatArray, area: float, others: FloatArray, areas: FloatArray) -> Any:
    iw = np.maximum(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0.0)
    ih = np.maximum(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0.0)
    inter = iw * ih
    union = area + areas - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0.0)
    return out


def box_iou(boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike) -> FloatArray:
    """Pairwise intersection over union, ``[N, 4] x [M, 4] -> [N, M]`` (0 where both are empty)."""
    a = _as_boxes(boxes_a, "boxes_a")
    b = _as_boxes(boxes_b, "boxes_b")
    area_a = _areas(a)
    area_b = _areas(b)
    iw = np.maximum(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[:, 0]), 0
    )
    ih = np.maximum(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[:, 1]), 0
    )
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0.0)
    return out


def _candidates(scores: FloatArray, score_threshold: float | None) -> IndexArray:
    order = np.argsort(-scores, kind="stable").astype(np.int64)
    if score_threshold is not None:
        order = order[scores[order] >= score_threshold]
    return order


# Up to this many candidates, the IoU of all pairs is computed at once (8 bytes a pair), which
# leaves one cheap numpy call per kept box; beyond it, one row at a time keeps memory bounded.
_MATRIX_LIMIT = 2048


def _iou_rows(boxes: FloatArray, areas: FloatArray, order: IndexArray) -> Any:
    """All-pairs IoU of ``boxes[order]``, computed in place to keep temporaries few."""
    b = boxes[order]
    a = areas[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    inter = np.minimum.outer(x2, x2)
    inter -= np.maximum.outer(x1, x1)
    np.maximum(inter, 0.0, out=inter)
    ih = np.minimum.outer(y2, y2)
    ih -= np.maximum.outer(y1, y1)
    np.maximum(ih, 0.0, out=ih)
    inter *= ih
    union = np.add.outer(a, a)
    union -= inter
    out = ih  # reuse the buffer
    out.fill(0.0)
    np.divide(inter, union, out=out, where=union > 0.0)
    return out


def _greedy(
    boxes: FloatArray,
    areas: FloatArray,
    order: IndexArray,
    iou_threshold: float,
    max_detections: int | None,
) -> list[int]:
    keep: list[int] = []
    if order.size <= _MATRIX_LIMIT:
        over = _iou_rows(boxes, areas, order) > iou_threshold
        alive = np.ones(order.size, dtype=bool)
        for pos in range(order.size):
            if not alive[pos]:
                continue
            keep.append(int(order[pos]))
            if max_detections is not None and len(keep) >= max_detections:
                break
            alive &= ~over[pos]
        return keep
    while order.size:
        best = int(order[0])
        keep.append(best)
        if max_detections is not None and len(keep) >= max_detections:
            break
        rest = order[1:]
        ious = _iou_one_to_many(boxes[best], float(areas[best]), boxes[rest], areas[rest])
        order = rest[ious <= iou_threshold]
    return keep


def nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_threshold: float = 0.5,
    *,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    classes: npt.ArrayLike | None = None,
) -> IndexArray:
    """Greedy hard non-maximum suppression.

    Args:
        boxes: ``[N, 4]`` corner boxes ``(x1, y1, x2, y2)``, any consistent unit.
        scores: ``[N]`` confidences.
        iou_threshold: A box is suppressed when its IoU with a kept box is above this.
        score_threshold: Boxes scoring below this are dropped first.
        max_detections: Stop after keeping this many boxes.
        classes: ``[N]`` integer labels; when given, boxes only suppress boxes of their class.

    Returns:
        Indices of the kept boxes, highest score first.
    """
    b = _as_boxes(boxes)
    s = _as_scores(scores, len(b))
    if not 0.0 <= iou_threshold <= 1.0:
        raise TaskInputError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if max_detections is not None and max_detections < 1:
        raise TaskInputError(f"max_detections must be at least 1, got {max_detections}")
    areas = _areas(b)
    order = _candidates(s, score_threshold)
    if classes is None:
        return np.asarray(_greedy(b, areas, order, iou_threshold, max_detections), dtype=np.int64)

    labels = np.asarray(classes)
    if labels.shape != (len(b),) or not np.issubdtype(labels.dtype, np.integer):
        raise TaskInputError(
            f"classes must be integers of shape [{len(b)}], got {labels.dtype} "
            f"{list(labels.shape)}; pass argmax indices, not scores"
        )
    kept: list[int] = []
    for label in np.unique(labels[order]):
        kept.extend(_greedy(b, areas, order[labels[order] == label], iou_threshold, None))
    result = np.asarray(kept, dtype=np.int64)
    # Highest score first; ties keep input order, as in the single-class case.
    result = result[np.lexsort((result, -s[result]))]
    if max_detections is not None:
        result = result[:max_detections]
    return result


def weighted_nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_threshold: float = 0.3,
    *,
    score_threshold: float | None = None,
    values: npt.ArrayLike | None = None,
    max_detections: int | None = None,
) -> tuple[IndexArray, FloatArray]:
    """MediaPipe's weighted non-maximum suppression.

    The best remaining box gathers every remaining box whose IoU with it is above
    ``iou_threshold`` (itself included); the cluster is replaced by the score-weighted mean of
    its rows of ``values`` and leaves the pool. The kept score is the best box's score.

    Args:
        boxes: ``[N, 4]`` corner boxes used for the overlap test.
        scores: ``[N]`` confidences, used for ordering and as weights.
        iou_threshold: Overlap above which boxes are merged.
        score_threshold: Boxes scoring below this are dropped first.
        values: ``[N, D]`` rows to average (for example boxes and keypoints); defaults to
            ``boxes``.
        max_detections: Stop after this many clusters.

    Returns:
        ``(keep, merged)``: indices of each cluster's best box (highest score first) and the
        ``[K, D]`` weighted means.
    """
    b = _as_boxes(boxes)
    s = _as_scores(scores, len(b))
    v = b if values is None else np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or len(v) != len(b):
        raise TaskInputError(
            f"values must have shape [{len(b)}, D] to match the boxes, got {list(v.shape)}"
        )
    if max_detections is not None and max_detections < 1:
        raise TaskInputError(f"max_detections must be at least 1, got {max_detections}")
    areas = _areas(b)
    order = _candidates(s, score_threshold)
    keep: list[int] = []
    merged: list[FloatArray] = []
    over = _iou_rows(b, areas, order) > iou_threshold if order.size <= _MATRIX_LIMIT else None
    alive = np.ones(order.size, dtype=bool)
    for pos in range(order.size):
        if not alive[pos]:
            continue
        best = int(order[pos])
        if over is not None:
            in_cluster = alive & over[pos]
        else:
            ious = _iou_one_to_many(b[best], float(areas[best]), b[order], areas[order])
            in_cluster = alive & (ious > iou_threshold)
        in_cluster[pos] = True  # an empty box still forms its own cluster
        cluster = order[in_cluster]
        weights = s[cluster]
        total = float(weights.sum())
        if total > 0.0:
            merged.append(np.asarray((v[cluster] * weights[:, None]).sum(axis=0) / total))
        else:
            merged.append(v[best].copy())
        keep.append(best)
        if max_detections is not None and len(keep) >= max_detections:
            break
        alive &= ~in_cluster
    width = v.shape[1]
    merged_arr = np.stack(merged) if merged else np.zeros((0, width), dtype=np.float64)
    return np.asarray(keep, dtype=np.int64), merged_arr


__all__ = ["box_iou", "nms", "weighted_nms"]
