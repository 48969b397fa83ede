"""OCR on rendered text with the real PP-OCRv4 detector and recogniser and the PP-OCR direction
classifier, run through edgekit's onnxruntime backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgekit.tasks import TaskInputError, TextBox, get_head
from edgekit.tasks.ocr import (
    DetContext,
    charset_from_metadata,
    crop_text,
    ctc_greedy_decode,
    db_postprocess,
    det_input_size,
    read_text,
    sort_reading_order,
)

LINES = ["EDGEKIT 2026", "hello world", "Smart terminals 42", "OCR on device 7"]


@pytest.mark.parametrize("text", ["EDGEKIT 2026", "hello world", "Smart terminals 42"])
def test_reads_back_a_single_line(ocr_models: dict[str, Any], text_image: Any, text: str) -> None:
    image = text_image([text])
    lines = read_text(image, ocr_models["det_run"], ocr_models["rec_run"], ocr_models["charset"])
    assert [line.text for line in lines] == [text]
    assert lines[0].score > 0.9 and lines[0].box_score > 0.5


def test_reads_several_lines_in_reading_order(ocr_models: dict[str, Any], text_image: Any) -> None:
    image = text_image(LINES)
    lines = read_text(image, ocr_models["det_run"], ocr_models["rec_run"], ocr_models["charset"])
    assert [line.text for line in lines] == LINES
    tops = [line.box.y1 for line in lines]
    assert tops == sorted(tops)
    for line in lines:
        # Every box lies inside the image and around dark (text) pixels.
        box = line.box
        assert 0 <= box.x1 < box.x2 <= image.shape[1] and 0 <= box.y1 < box.y2 <= image.shape[0]
        patch = image[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)]
        assert patch.min() < 64


def test_direction_classifier_turns_upside_down_text(
    ocr_models: dict[str, Any], text_image: Any
) -> None:
    image = np.ascontiguousarray(text_image(LINES[:2])[::-1, ::-1])
    lines = read_text(
        image,
        ocr_models["det_run"],
        ocr_models["rec_run"],
        ocr_models["charset"],
        cls_run=ocr_models["cls_run"],
    )
    # Upside down, the lower line comes first in reading order.
    assert [line.text for line in lines] == [LINES[1], LINES[0]]


@pytest.mark.parametrize("angle", [-6, 6, 12, 20])
def test_reads_rotated_text(ocr_models: dict[str, Any], text_image: Any, angle: float) -> None:
    import cv2

    image = text_image(LINES[:2])
    turn = cv2.getRotationMatrix2D((320, 180), angle, 1.0)
    rotated = cv2.warpAffine(image, turn, (640, 360), borderValue=(255, 255, 255))
    lines = read_text(rotated, ocr_models["det_run"], ocr_models["rec_run"], ocr_models["charset"])
    assert [line.text for line in lines] == LINES[:2]
    for line in lines:
        (x0, y0), (x1, y1) = line.quad[0], line.quad[1]
        # OpenCV turns counter-clockwise on screen for a positive angle: the top edge rises.
        assert np.degrees(np.arctan2(y1 - y0, x1 - x0)) == pytest.approx(-angle, abs=3)


def test_registry_heads_read_through_model_run(ocr_models: dict[str, Any], text_image: Any) -> None:
    image = text_image(["hello world"])
    det_head = get_head("text-detection")
    feeds, context = det_head.prepare(image)
    boxes = det_head.decode(ocr_models["det"].run(feeds), context)
    assert len(boxes) == 1 and isinstance(boxes[0], TextBox)
    rec_head = get_head("text-recognition", metadata=ocr_models["rec"].metadata())
    feeds, count = rec_head.prepare([crop_text(image, boxes[0].quad)])
    texts = rec_head.decode(ocr_models["rec"].run(feeds), count)
    assert [t.text for t in texts] == ["hello world"]


def test_blank_page_has_no_text(ocr_models: dict[str, Any]) -> None:
    blank = np.full((200, 300, 3), 255, dtype=np.uint8)
    assert (
        read_text(blank, ocr_models["det_run"], ocr_models["rec_run"], ocr_models["charset"]) == []
    )


def test_charset_matches_the_model(ocr_models: dict[str, Any]) -> None:
    charset = ocr_models["charset"]
    classes = ocr_models["rec"].outputs[0].shape[-1]
    assert len(charset) == classes == 6625
    assert charset[0] == "" and charset[-1] == " "
    assert {"E", "D", "G", "K", "0", "h"} <= set(charset)


def test_ctc_merges_repeats_and_drops_blanks() -> None:
    charset = ("", "a", "b", " ")
    steps = [1, 1, 0, 1, 2, 2, 3, 0, 0, 2]
    probs = np.full((1, len(steps), 4), 0.01, dtype=np.float32)
    for t, c in enumerate(steps):
        probs[0, t, c] = 0.97 if t != 4 else 0.6
    (result,) = ctc_greedy_decode(probs, charset)
    assert result.text == "aab b"
    assert result.score == pytest.approx(np.mean([0.97, 0.97, 0.6, 0.97, 0.97]), abs=1e-6)
    (empty,) = ctc_greedy_decode(np.eye(4, dtype=np.float32)[[0, 0, 0]], charset)
    assert empty.text == "" and empty.score == 0.0


def test_ctc_rejects_a_charset_of_another_model() -> None:
    with pytest.raises(TaskInputError, match="charset_from_metadata"):
        ctc_greedy_decode(np.zeros((1, 5, 10), dtype=np.float32), ("", "a", " "))
    with pytest.raises(TaskInputError, match="empty"):
        charset_from_metadata("")


def test_db_postprocess_grows_the_kernel_and_maps_to_the_image() -> None:
    prob = np.zeros((1, 1, 64, 128), dtype=np.float32)
    prob[0, 0, 20:30, 10:90] = 0.9  # a shrunk text kernel, 80 x 10 map pixels
    # The map is half the size of the original image.
    boxes = db_postprocess(prob, DetContext(128, 256, 64, 128))
    assert len(boxes) == 1
    box = boxes[0].box
    # The score is the mean over the kernel's (dilated) outline: a little below the 0.9 inside.
    assert 0.75 < boxes[0].score <= 0.9
    # Unclip distance d = area * 2.0 / perimeter = 800 * 2 / 180 = 8.9 map pixels per side.
    assert box.x1 == pytest.approx(2 * (10 - 8.9), abs=3)
    assert box.x2 == pytest.approx(2 * (90 + 8.9), abs=3)
    assert box.y1 == pytest.approx(2 * (20 - 8.9), abs=3)
    assert box.y2 == pytest.approx(2 * (30 + 8.9), abs=3)
    assert (
        db_postprocess(np.zeros((1, 1, 32, 32), dtype=np.float32), DetContext(32, 32, 32, 32)) == []
    )


def test_reading_order_groups_lines() -> None:
    def box(x: float, y: float) -> TextBox:
        return TextBox(((x, y), (x + 50, y), (x + 50, y + 20), (x, y + 20)), 1.0)

    shuffled = [box(200, 103), box(10, 100), box(120, 52), box(10, 50), box(100, 98)]
    ordered = [b.quad[0] for b in sort_reading_order(shuffled)]
    assert ordered == [(10, 50), (120, 52), (10, 100), (100, 98), (200, 103)]


def test_detector_input_is_a_multiple_of_32() -> None:
    assert det_input_size(360, 640) == (352, 640)
    assert det_input_size(2000, 1000) == (960, 480)
    assert det_input_size(5, 5) == (32, 32)


def test_bad_images_name_the_fix(ocr_models: dict[str, Any]) -> None:
    with pytest.raises(TaskInputError, match="grey"):
        read_text(
            np.zeros((50, 50), dtype=np.uint8),
            ocr_models["det_run"],
            ocr_models["rec_run"],
            ocr_models["charset"],
        )
    with pytest.raises(TaskInputError, match="at least one"):
        get_head("text-recognition", charset=("", "a", " ")).prepare([])
    with pytest.raises(TaskInputError, match="'character'"):
        get_head("text-recognition")
