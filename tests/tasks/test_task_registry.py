"""The head registry: task names, manifests' task fields, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from edgekit import models
from edgekit.errors import ManifestError
from edgekit.manifest import Manifest
from edgekit.tasks import (
    TaskHead,
    TaskInputError,
    UnknownTaskError,
    available_tasks,
    get_head,
    head_for,
    register_head,
)
from edgekit.tasks.ocr import crop_text
from edgekit.tasks.vad import VadHead

OPTIONS: dict[str, dict[str, Any]] = {"text-recognition": {"charset": ("", "a", " ")}}


def test_builtin_tasks() -> None:
    assert set(available_tasks()) >= {
        "face-detection",
        "text-detection",
        "text-recognition",
        "vad",
        "classification",
    }
    for task in available_tasks():
        head = get_head(task, **OPTIONS.get(task, {}))
        assert isinstance(head, TaskHead)
        assert head.task == task


def test_every_manifest_task_has_a_head() -> None:
    manifests = models.list_manifests()
    assert manifests
    for manifest in manifests:
        assert manifest.task in available_tasks(), (manifest.name, manifest.task)


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskError) as info:
        get_head("pose-estimation")
    message = str(info.value)
    assert "pose-estimation" in message and "face-detection" in message
    assert isinstance(info.value, KeyError)


def test_register_a_head() -> None:
    class Echo:
        task = "echo-test"

        def prepare(self, value: Any) -> tuple[dict[str, Any], None]:
            return {"x": value}, None

        def decode(self, outputs: Any, context: Any) -> Any:
            return outputs["x"]

    register_head("echo-test", Echo)
    head = get_head("echo-test")
    feeds, ctx = head.prepare(3)
    assert head.decode(feeds, ctx) == 3
    with pytest.raises(ValueError, match="already registered"):
        register_head("echo-test", Echo)


def test_import_is_cheap() -> None:
    code = (
        "import sys, edgekit.tasks, edgekit.tasks.types;"
        "heavy = [m for m in ('cv2', 'onnxruntime', 'ai_edge_litert', 'tensorflow', 'torch') "
        "if m in sys.modules];"
        "assert not heavy, heavy;"
        "import edgekit.tasks.face, edgekit.tasks.ocr, edgekit.tasks.vad, edgekit.tasks.classify;"
        "heavy = [m for m in ('cv2', 'onnxruntime', 'ai_edge_litert') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_manifest_heads_find_a_face(load_model: Any, skimage_data: Any) -> None:
    model = load_model("face-detection-short-range")
    head = head_for(model)
    feeds, context = head.prepare(skimage_data.astronaut())
    faces = head.decode(model.run(feeds), context)
    assert len(faces) == 1 and faces[0].score > 0.75


def test_manifest_heads_read_text(load_model: Any, text_image: Any) -> None:
    det, rec, cls = (load_model(n) for n in ("ppocr-v4-det", "ppocr-v4-rec", "ppocr-cls"))
    image = text_image(["hello world"])
    det_head = head_for(det)
    feeds, context = det_head.prepare(image)
    (box,) = det_head.decode(det.run(feeds), context)
    crop = crop_text(image, box.quad)
    rec_head = head_for(rec)
    feeds, count = rec_head.prepare([crop])
    assert [t.text for t in rec_head.decode(rec.run(feeds), count)] == ["hello world"]
    cls_head = head_for(cls)
    for picture, label in [(crop, "0"), (np.ascontiguousarray(crop[::-1, ::-1]), "180")]:
        feeds, context = cls_head.prepare(picture)
        assert cls_head.decode(cls.run(feeds), context)[0].label == label
    # Without the model the recogniser cannot know its charset.
    with pytest.raises(TaskInputError, match="metadata key 'character'"):
        head_for(rec.manifest)


def test_manifest_vad_head_segments_speech(load_model: Any, espeak_speech: Any) -> None:
    model = load_model("silero-vad")
    head = head_for(model)
    assert isinstance(head, VadHead)
    seg = head.segmenter(model.run)
    found = seg.feed(espeak_speech[0]) + seg.flush()
    assert found and all(s.peak_prob > 0.5 for s in found)


def _manifest(task: str, head: dict[str, Any]) -> Manifest:
    return Manifest.from_dict(
        {
            "name": "probe",
            "task": task,
            "format": "onnx",
            "license": "MIT",
            "source": "file:probe.onnx",
            "sha256": "0" * 64,
            "head": head,
        }
    )


def test_misspelt_head_keys_are_errors() -> None:
    with pytest.raises(ManifestError, match="did you mean 'score_threshold'"):
        head_for(_manifest("face-detection", {"score_treshold": 0.4}))
    with pytest.raises(ManifestError, match="num_layers"):
        head_for(_manifest("face-detection", {"num_layers": 3, "strides": [8, 16]}))
    with pytest.raises(TaskInputError, match="no manifest"):
        head_for(None)
