"""NMS against brute-force references written the obvious way, on generated boxes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.tasks import Box, TaskInputError
from edgekit.tasks import nms as nms_module
from edgekit.tasks.nms import box_iou, nms, weighted_nms


def ref_iou(a: list[float], b: list[float]) -> float:
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
    union = area_a + area_b - inter
    return inter / union if union > 0.0 else 0.0


def ref_nms(
    boxes: list[list[float]],
    scores: list[float],
    thr: float,
    score_thr: float | None = None,
    classes: list[int] | None = None,
) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    kept: list[int] = []
    for i in order:
        if score_thr is not None and scores[i] < score_thr:
            continue
        if all(
            ref_iou(boxes[i], boxes[k]) <= thr
            for k in kept
            if classes is None or classes[k] == classes[i]
        ):
            kept.append(i)
    return kept


def ref_weighted(
    boxes: list[list[float]], scores: list[float], thr: float
) -> tuple[list[int], list[list[float]]]:
    pool = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    merged: list[list[float]] = []
    while pool:
        best = pool[0]
        cluster = [i for i in pool if i == best or ref_iou(boxes[i], boxes[best]) > thr]
        total = sum(scores[i] for i in cluster)
        merged.append([sum(boxes[i][c] * scores[i] for i in cluster) / total for c in range(4)])
        keep.append(best)
        pool = [i for i in pool if i not in cluster]
    return keep, merged


# Coordinates on a quarter-pixel grid so that ties, touching edges and equal boxes happen.
coord = st.integers(0, 400).map(lambda v: v / 4)
extent = st.integers(0, 200).map(lambda v: v / 4)


score = st.integers(0, 20).map(lambda v: v / 20)


def box_sets(max_n: int = 25) -> st.SearchStrategy[tuple[list[list[float]], list[float]]]:
    rows = st.lists(st.tuples(coord, coord, extent, extent, score), max_size=max_n)
    return rows.map(lambda rs: ([[x, y, x + w, y + h] for x, y, w, h, _ in rs], [r[4] for r in rs]))


@contextmanager
def row_by_row() -> Iterator[None]:
    """Force the path used for large candidate sets (one IoU row per kept box)."""
    saved = nms_module._MATRIX_LIMIT
    nms_module._MATRIX_LIMIT = 0
    try:
        yield
    finally:
        nms_module._MATRIX_LIMIT = saved


def both_paths(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the all-pairs path and the row-by-row path; they must agree."""
    first = fn()
    with row_by_row():
        second = fn()
    if isinstance(first, tuple):
        for x, y in zip(first, second, strict=True):
            np.testing.assert_array_equal(x, y)
    else:
        np.testing.assert_array_equal(first, second)
    return first


def as_arrays(boxes: list[list[float]], scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(scores, dtype=np.float64)


@settings(max_examples=80, deadline=None)
@given(box_sets(), st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_nms_matches_brute_force(data: tuple[list[list[float]], list[float]], thr: float) -> None:
    boxes, scores = data
    b, s = as_arrays(boxes, scores)
    assert both_paths(lambda: nms(b, s, thr)).tolist() == ref_nms(boxes, scores, thr)


@settings(max_examples=50, deadline=None)
@given(box_sets(), st.sampled_from([0.3, 0.5]), st.sampled_from([0.0, 0.25, 0.5, 0.9]))
def test_nms_score_threshold_matches_brute_force(
    data: tuple[list[list[float]], list[float]], thr: float, score_thr: float
) -> None:
    boxes, scores = data
    b, s = as_arrays(boxes, scores)
    got = nms(b, s, thr, score_threshold=score_thr).tolist()
    assert got == ref_nms(boxes, scores, thr, score_thr)
    assert all(scores[i] >= score_thr for i in got)


@settings(max_examples=50, deadline=None)
@given(box_sets(), st.data())
def test_per_class_nms_matches_brute_force(
    data: tuple[list[list[float]], list[float]], draw: st.DataObject
) -> None:
    boxes, scores = data
    classes = draw.draw(st.lists(st.integers(0, 2), min_size=len(boxes), max_size=len(boxes)))
    b, s = as_arrays(boxes, scores)
    labels = np.array(classes, dtype=np.int64)
    got = both_paths(lambda: nms(b, s, 0.4, classes=labels)).tolist()
    assert got == ref_nms(boxes, scores, 0.4, classes=classes)


@settings(max_examples=50, deadline=None)
@given(box_sets(), st.integers(1, 5))
def test_max_detections_is_a_prefix(
    data: tuple[list[list[float]], list[float]], limit: int
) -> None:
    boxes, scores = data
    b, s = as_arrays(boxes, scores)
    full = nms(b, s, 0.5).tolist()
    assert both_paths(lambda: nms(b, s, 0.5, max_detections=limit)).tolist() == full[:limit]


@settings(max_examples=80, deadline=None)
@given(box_sets(), st.sampled_from([0.0, 0.3, 0.6]))
def test_weighted_nms_matches_brute_force(
    data: tuple[list[list[float]], list[float]], thr: float
) -> None:
    boxes, scores = data
    scores = [0.05 + v for v in scores]  # weights must not all be zero
    b, s = as_arrays(boxes, scores)
    keep, merged = both_paths(lambda: weighted_nms(b, s, thr))
    ref_keep, ref_merged = ref_weighted(boxes, scores, thr)
    assert keep.tolist() == ref_keep
    np.testing.assert_allclose(
        merged.reshape(-1, 4), np.array(ref_merged).reshape(-1, 4), rtol=1e-12, atol=1e-9
    )


def test_weighted_nms_averages_extra_values_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float64)
    scores = np.array([0.9, 0.3, 0.8])
    values = np.array([[0.0, 0.0], [4.0, 8.0], [7.0, 7.0]])
    keep, merged = weighted_nms(boxes, scores, 0.5, values=values)
    assert keep.tolist() == [0, 2]
    np.testing.assert_allclose(merged, [[1.0, 2.0], [7.0, 7.0]])


@settings(max_examples=60, deadline=None)
@given(box_sets(max_n=12), box_sets(max_n=12))
def test_box_iou_matrix_matches_box_iou(
    a: tuple[list[list[float]], list[float]], b: tuple[list[list[float]], list[float]]
) -> None:
    m = box_iou(np.array(a[0]).reshape(-1, 4), np.array(b[0]).reshape(-1, 4))
    assert m.shape == (len(a[0]), len(b[0]))
    for i, p in enumerate(a[0]):
        for j, q in enumerate(b[0]):
            assert m[i, j] == pytest.approx(Box(*p).iou(Box(*q)), abs=1e-12)
            assert m[i, j] == pytest.approx(ref_iou(p, q), abs=1e-12)


def test_empty_input_keeps_nothing() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []
    keep, merged = weighted_nms(np.zeros((0, 4)), np.zeros(0))
    assert keep.tolist() == [] and merged.shape == (0, 4)


@pytest.mark.parametrize(
    ("boxes", "scores", "needle"),
    [
        (np.zeros((3, 5)), np.zeros(3), "[N, 4]"),
        (np.zeros(4), np.zeros(1), "[N, 4]"),
        (np.zeros((3, 4)), np.zeros(2), "shape [3]"),
        (np.full((1, 4), np.nan), np.zeros(1), "NaN"),
        (np.zeros((1, 4)), np.array([np.nan]), "NaN"),
    ],
)
def test_bad_input_names_the_problem(boxes: np.ndarray, scores: np.ndarray, needle: str) -> None:
    with pytest.raises(TaskInputError, match=None) as info:
        nms(boxes, scores)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_classes_and_threshold() -> None:
    b = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    with pytest.raises(TaskInputError, match="classes must be integers"):
        nms(b, [0.5, 0.4], classes=[0.1, 0.2])
    with pytest.raises(TaskInputError, match="iou_threshold"):
        nms(b, [0.5, 0.4], 1.5)
