"""Face detection on real photographs with the real MediaPipe short-range model on LiteRT."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgekit.tasks import Detection, TaskInputError, get_head
from edgekit.tasks.face import (
    FULL_RANGE_ANCHORS,
    SHORT_RANGE_ANCHORS,
    FaceDetectionHead,
    FaceDetectorConfig,
    decode_faces,
    ssd_anchors,
)
from edgekit.tasks.types import Box

# Hand-labelled from the photograph: brow to chin, ear to ear of the astronaut's face.
ASTRONAUT_FACE = Box(175, 70, 268, 172)


@pytest.fixture(scope="module")
def face_model(load_model: Any) -> Any:
    return load_model("face-detection-short-range")


def detect(model: Any, image: np.ndarray, head: FaceDetectionHead | None = None) -> list[Detection]:
    head = head or FaceDetectionHead()
    feeds, context = head.prepare(image)
    result: list[Detection] = head.decode(model.run(feeds), context)
    return result


def test_anchor_layout_of_the_short_range_model() -> None:
    anchors = ssd_anchors(SHORT_RANGE_ANCHORS)
    assert anchors.shape == (896, 4)
    # 16x16 cells with 2 anchors at stride 8, then 8x8 cells with 6 anchors at stride 16.
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[511], [15.5 / 16, 15.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[512:518], [[0.5 / 8, 0.5 / 8, 1, 1]] * 6)
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8, 1, 1])
    assert ssd_anchors(FULL_RANGE_ANCHORS).shape == (48 * 48, 4)


def test_astronaut_has_exactly_one_face(face_model: Any, skimage_data: Any) -> None:
    faces = detect(face_model, skimage_data.astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.75
    assert not face.box.normalized
    assert face.box.iou(ASTRONAUT_FACE) > 0.6, face.box
    assert len(face.keypoints) == 6
    for point in face.keypoints:
        assert face.box.contains(point, margin=2.0), (point, face.box)
    right_eye, left_eye, nose, mouth = face.keypoints[:4]
    # The subject's right eye is on the left of the picture; eyes above nose above mouth.
    assert right_eye[0] < nose[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


@pytest.mark.parametrize("photo", ["coffee", "rocket"])
def test_photos_without_people_have_no_face(face_model: Any, skimage_data: Any, photo: str) -> None:
    assert detect(face_model, getattr(skimage_data, photo)()) == []


def shifted(box: Box, dx: float, dy: float) -> Box:
    return Box(box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)


def test_letterbox_maps_back_to_the_original_pixels(face_model: Any, skimage_data: Any) -> None:
    image = skimage_data.astronaut()
    # Portrait crop: the letterbox pads left and right.
    portrait = np.ascontiguousarray(image[0:400, 100:350])
    faces = detect(face_model, portrait)
    assert len(faces) == 1
    assert faces[0].box.iou(shifted(ASTRONAUT_FACE, -100, 0)) > 0.6, faces[0].box
    # Landscape canvas with the face off-centre: the letterbox pads above and below.
    canvas = np.zeros((300, 420, 3), dtype=np.uint8)
    canvas[:, 80:380] = image[0:300, 100:400]
    faces = detect(face_model, canvas)
    assert len(faces) == 1
    assert faces[0].box.iou(shifted(ASTRONAUT_FACE, -20, 0)) > 0.6, faces[0].box


def test_channel_order_is_honoured(face_model: Any, skimage_data: Any) -> None:
    rgb = skimage_data.astronaut()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    from_rgb = detect(face_model, rgb)
    from_bgr = detect(face_model, bgr, FaceDetectionHead(color_order="BGR"))
    assert len(from_rgb) == len(from_bgr) == 1
    assert from_rgb[0].box.iou(from_bgr[0].box) > 0.99


def test_registry_head_and_normalised_decode(face_model: Any, skimage_data: Any) -> None:
    head = get_head("face-detection")
    feeds, context = head.prepare(skimage_data.astronaut())
    outputs = face_model.run(feeds)
    faces = head.decode(outputs, context)
    assert len(faces) == 1
    normalised = decode_faces(
        outputs["regressors"], outputs["classificators"], ssd_anchors(SHORT_RANGE_ANCHORS)
    )
    assert len(normalised) == 1 and normalised[0].box.normalized
    # Square input, no padding: normalised coordinates are pixels / 512.
    pixels = normalised[0].box.to_pixels(512, 512)
    assert pixels.iou(faces[0].box) > 0.99


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        (np.zeros((64, 64), dtype=np.uint8), "[H, W] grey"),
        (np.zeros((64, 64, 4), dtype=np.uint8), "image[..., :3]"),
        (np.zeros((64, 64, 3), dtype=np.float32), "must be uint8"),
        (np.zeros((0, 64, 3), dtype=np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_name_the_fix(image: Any, needle: str) -> None:
    with pytest.raises(TaskInputError) as info:
        FaceDetectionHead().prepare(image)
    assert needle in str(info.value)


def test_mismatched_outputs_are_rejected() -> None:
    head = FaceDetectionHead()
    _, context = head.prepare(np.zeros((32, 32, 3), dtype=np.uint8))
    with pytest.raises(TaskInputError, match="896 anchors"):
        head.decode(
            {"regressors": np.zeros((1, 100, 16)), "classificators": np.zeros((1, 100, 1))},
            context,
        )
    with pytest.raises(TaskInputError, match="no 'classificators'"):
        head.decode({"regressors": np.zeros((1, 896, 16))}, context)


@pytest.mark.parametrize(("threshold", "clip"), [(0.5, 100.0), (0.75, 100.0), (0.999, 100.0),
                                                 (1e-6, 10.0), (0.5, 1e-3)])  # fmt: skip
def test_only_scores_at_or_over_the_threshold_survive(threshold: float, clip: float) -> None:
    # One small box per anchor on a 32 x 28 grid, too far apart to merge; logits on both sides of
    # the threshold, a few float32 steps apart, so skipping the hopeless anchors changes nothing.
    cells = np.arange(896)
    anchors = np.stack(
        [(cells % 32 + 0.5) / 32, (cells // 32 + 0.5) / 28, np.ones(896), np.ones(896)], axis=1
    ).astype(np.float32)
    regressors = np.zeros((1, len(anchors), 16), dtype=np.float32)
    regressors[0, :, 2:4] = 1.0
    boundary = np.float32(np.log(threshold / (1.0 - threshold)))
    steps = np.arange(len(anchors)) - len(anchors) // 2
    logits = boundary + steps.astype(np.float32) * max(abs(float(boundary)), 1.0) * 1e-6
    logits[::7] = -200.0
    config = FaceDetectorConfig(score_threshold=threshold, score_clip=clip, iou_threshold=0.99)
    faces = decode_faces(regressors, logits[None, :, None], anchors, config)
    clipped = np.clip(logits.astype(np.float64), -clip, clip)
    scores = (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)
    expected = np.sort(scores[scores >= threshold])[::-1]
    np.testing.assert_array_equal([face.score for face in faces], expected)
