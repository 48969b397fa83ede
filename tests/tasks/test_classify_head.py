"""Top-k classification: generated score vectors against a sort, and a real classifier (PP-OCR's
text direction model) through the registry head."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.tasks import Classification, TaskInputError, get_head
from edgekit.tasks.classify import ClassifierInput, softmax, top_k, top_k_batch
from edgekit.tasks.ocr import crop_text, db_postprocess, det_preprocess


def test_top_k_orders_and_labels() -> None:
    result = top_k([0.1, 2.0, -1.0, 2.0, 0.5], k=3, labels=["a", "b", "c", "d", "e"])
    assert result == [
        Classification(1, "b", 2.0),
        Classification(3, "d", 2.0),  # ties keep the lower index first
        Classification(4, "e", 0.5),
    ]
    assert [c.label for c in top_k(np.array([[3.0, 1.0, 2.0]]), k=5)] == ["0", "2", "1"]


def test_softmax_option_gives_probabilities() -> None:
    result = top_k([1.0, 2.0, 3.0], k=3, apply_softmax=True)
    e = np.exp([1.0, 2.0, 3.0])
    assert [c.score for c in result] == pytest.approx(list(e[::-1] / e.sum()))
    assert sum(c.score for c in result) == pytest.approx(1.0)
    assert top_k([1.0, 2.0, 3.0], k=3, apply_softmax=True, min_score=0.2)[-1].index == 1


@settings(max_examples=80, deadline=None)
@given(
    # Small integers make ties common; ties must keep the lower index first.
    st.lists(
        st.one_of(st.floats(-50, 50, allow_nan=False), st.integers(-3, 3).map(float)),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 40),
)
def test_top_k_matches_a_sort(scores: list[float], k: int) -> None:
    result = top_k(scores, k)
    expected = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    assert [c.index for c in result] == expected
    assert [c.score for c in result] == [scores[i] for i in expected]
    probs = [c.score for c in top_k(scores, k, apply_softmax=True)]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-30, 30, allow_nan=False), min_size=2, max_size=10), st.floats(-100, 100))
def test_softmax_ignores_a_shift(logits: list[float], shift: float) -> None:
    a = softmax(np.array(logits))
    b = softmax(np.array(logits) + shift)
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert a.sum() == pytest.approx(1.0)


def test_batch() -> None:
    rows = top_k_batch(np.array([[0.0, 1.0], [1.0, 0.0]]), k=1, labels=["up", "down"])
    assert [[c.label for c in row] for row in rows] == [["down"], ["up"]]


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: top_k(np.zeros((2, 3))), "top_k_batch"),
        (lambda: top_k([]), "empty"),
        (lambda: top_k([1.0, 2.0], k=0), "k must be"),
        (lambda: top_k([1.0, 2.0], labels=["a"]), "1 labels for 2 classes"),
        (lambda: top_k([1.0, float("nan")]), "NaN"),
        (lambda: top_k_batch(np.zeros(3)), "[N, C]"),
    ],
)
def test_bad_input_names_the_problem(call: Any, needle: str) -> None:
    with pytest.raises(TaskInputError) as info:
        call()
    assert needle in str(info.value)


def test_real_classifier_tells_upright_from_upside_down(
    ocr_models: dict[str, Any], text_image: Any
) -> None:
    image = text_image(["hello world"])
    tensor, context = det_preprocess(image)
    (box,) = db_postprocess(ocr_models["det_run"](tensor), context)
    crop = crop_text(image, box.quad)
    head = get_head(
        "classification",
        input_spec=ClassifierInput(
            width=192, height=48, mean=(0.5,) * 3, std=(0.5,) * 3, color_order="BGR"
        ),
        labels=["0", "180"],
        k=1,
        apply_softmax=False,  # the model ends in a softmax
        color_order="BGR",
        input_name="x",
    )
    for picture, expected in [(crop, "0"), (np.ascontiguousarray(crop[::-1, ::-1]), "180")]:
        feeds, context = head.prepare(picture)
        (answer,) = head.decode(ocr_models["cls"].run(feeds), context)
        assert answer.label == expected
        assert answer.score > 0.9
