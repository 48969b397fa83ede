"""Quantization of a real .tflite model (MediaPipe's short-range face detector) with real photos."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgekit
from edgekit.errors import BackendUnavailable
from edgekit.quantize import Recipe, load_calibration, quantize
from edgekit.quantize.calibration import CalibrationData

pytest.importorskip("ai_edge_quantizer", reason="needs edgekit[tflite-quantize]")
pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert (edgekit[tflite])")

MODEL = "face-detection-short-range"


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def face_photos(folder: Path) -> Path:
    """32 calibration images, then 16 held-out ones (file names sort them in that order).

    Calibration: scikit-image's photos without people, and 2x2 grids of faces from its Labeled
    Faces in the Wild subset (faces 0-51). Held out: the astronaut and the cameraman (whole,
    cropped to the head, mirrored) and grids of other LFW faces (52-83): none of them is a
    calibration image.
    """
    import cv2
    from skimage import data as photos

    scenes = ["coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
              "retina", "colorwheel", "brick", "grass", "gravel", "coins", "moon", "page",
              "text", "clock", "cell", "microaneurysms", "logo", "stereo_motorcycle"]  # fmt: skip
    faces = photos.lfw_subset()[:100]  # the first 100 of the subset are faces

    def grid(start: int) -> np.ndarray:
        return _rgb(
            np.block([[faces[start], faces[start + 1]], [faces[start + 2], faces[start + 3]]])
        )

    calibration = [_rgb(np.asarray(getattr(photos, name)()[0] if name == "stereo_motorcycle"
                                   else getattr(photos, name)())) for name in scenes]  # fmt: skip
    calibration += [grid(4 * i) for i in range(13)]
    astronaut, camera = _rgb(photos.astronaut()), _rgb(photos.camera())
    held_out = [astronaut, camera, astronaut[0:300, 100:400], camera[0:300, 150:450]]
    held_out += [np.ascontiguousarray(image[:, ::-1]) for image in held_out]
    held_out += [grid(52 + 4 * i) for i in range(8)]
    assert len(calibration) == 32 and len(held_out) == 16
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, images in (("a", calibration), ("b", held_out)):
        for i, image in enumerate(images):
            cv2.imwrite(
                str(folder / f"{prefix}{i:02d}.png"), np.ascontiguousarray(image[..., ::-1])
            )
    return folder


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_photos(tmp_path_factory.mktemp("face-photos"))


@pytest.fixture(scope="module")
def data(photos_dir: Path) -> CalibrationData:
    return load_calibration(edgekit.load(MODEL), str(photos_dir), count=32, held_out=16)


def _outputs(path: Path, feeds: list[dict[str, Any]]) -> list[dict[str, np.ndarray]]:
    model = edgekit.load(path)
    return [model.run(f) for f in feeds]


def test_prepared_model_is_output_identical(data: CalibrationData, tmp_path: Path) -> None:
    from edgekit.quantize import tflite

    source = edgekit.load(MODEL).path
    prepared, notes = tflite.prepare(source, tmp_path)
    assert any("SignatureDef" in n for n in notes)
    assert any("fp16 weights converted" in n for n in notes)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(prepared))
    assert list(interpreter.get_signature_list()) == [tflite.SIGNATURE_KEY]
    from ai_edge_litert.schema_py_generated import TensorType

    def fp16(path: Path) -> int:
        tensors = tflite.read_model(path).subgraphs[0].tensors
        return sum(t.type == TensorType.FLOAT16 for t in tensors)

    assert fp16(source) == 74 and fp16(prepared) == 0
    for before, after in zip(_outputs(source, data.held_out), _outputs(prepared, data.held_out),
                             strict=True):  # fmt: skip
        assert before.keys() == after.keys()
        for name in before:
            np.testing.assert_array_equal(before[name], after[name])


def _score_head(tmp_path: Path) -> tuple[str, ...]:
    from edgekit.quantize import tflite

    prepared, _ = tflite.prepare(edgekit.load(MODEL).path, tmp_path)
    (head,) = [h for h in tflite.output_heads(prepared) if "classificators" in h]
    return head


def test_score_head_collapses_in_int8_and_says_so(data: CalibrationData, tmp_path: Path) -> None:
    # The score logits span about -14000..+2.4; one int8 scale puts every face on the threshold.
    result = quantize(MODEL, data, output=tmp_path / "plain.tflite")
    assert result.report is not None and result.report.metric < 0.5
    assert "WARNING" in result.message and "detection match" in result.message
    assert _score_head(tmp_path) == (
        "classificator_8", "classificator_16", "reshape", "reshape_2", "classificators"
    )  # fmt: skip


def test_static_int8_matches_float_detections(data: CalibrationData, tmp_path: Path) -> None:
    from edgekit.quantize.tflite import box_iou
    from edgekit.tasks.face import FaceDetectionHead

    out = tmp_path / "face-int8.tflite"
    lines: list[str] = []
    recipe = Recipe(exclude=_score_head(tmp_path))
    result = quantize(MODEL, data, recipe=recipe, output=out, threads=(1, 2), progress=lines.append)
    assert result.path == out and out.is_file() and result.recipe is not None
    assert any("calibrating" in line and "32/32" in line for line in lines)
    report = result.report
    assert report is not None and report.samples == 16
    assert report.metric_name == "detection match (IoU >= 0.5, score within 0.1)"
    assert report.metric >= 0.9
    assert [t.name for t in report.tensors] == ["regressors", "classificators"]
    assert all(t.cosine > 0.95 for t in report.tensors)
    assert report.quantized_bytes < report.float_bytes
    assert [lat.threads for lat in report.latency] == [1, 2]
    if report.speedup < 1.0:
        assert "SLOWER" in result.message
    # LiteRT runs it with int8 kernels behind float inputs and outputs
    quantized = edgekit.load(result.manifest_path or out)
    assert quantized.inputs[0].dtype == np.float32
    ops = quantized.op_counts()
    assert ops.get("QUANTIZE", 0) >= 1 and ops.get("DEQUANTIZE", 0) >= 1
    # the face in a held-out photo: the float model's box and score
    from skimage import data as photos

    float_model = edgekit.load(MODEL)
    head = FaceDetectionHead.from_manifest(float_model.manifest)
    feeds, box = head.prepare(photos.astronaut())
    (face,) = head.decode(float_model.run(feeds), box)
    (qface,) = head.decode(quantized.run(feeds), box)
    assert box_iou(face.box, qface.box) > 0.8 and abs(face.score - qface.score) < 0.1
    # the manifest records how it was made
    manifest = quantized.manifest
    assert manifest is not None and manifest.format == "tflite"
    assert manifest.task == "face-detection"
    q = manifest.quantization
    assert q["tool_recipe"] == "static_wi8_ai8" and q["tool"].startswith("ai-edge-quantizer")
    assert q["activations"] == "s8" and q["per_channel"] is True and q["float_io"] is True
    assert q["kept_float"] == list(recipe.exclude)
    assert q["metric"] == report.metric_name


def test_budget_finds_the_score_head(data: CalibrationData, tmp_path: Path) -> None:
    result = quantize(MODEL, data, max_drop=0.05, budget_rounds=1, budget_segments=4,
                      output=tmp_path / "b.tflite")  # fmt: skip
    (candidate,) = result.candidates
    assert candidate.kept_float and candidate.kept_float[0][0].startswith("classificator_8..")
    assert candidate.report.metric >= 0.9
    if candidate.report.speedup < 1.03:  # XNNPACK's fp32 kernels win on this CPU
        assert result.used_float and "keeping the float model" in result.message
        assert "not measurably faster" in candidate.reason or "slower" in candidate.reason
    else:
        assert not result.used_float and result.path.is_file()


def test_model_with_its_own_signature(data: CalibrationData, tmp_path: Path) -> None:
    """A model exported with a SignatureDef keeps it; calibration goes through its names."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.quantize import tflite

    prepared, _ = tflite.prepare(edgekit.load(MODEL).path, tmp_path)
    model = tflite.read_model(prepared)
    (signature,) = model.signatureDefs
    signature.signatureKey = "detect"
    signature.inputs[0].name = "image"
    signed = tmp_path / "signed.tflite"
    tflite.write_model(model, signed)
    assert tflite.signature_of(signed) == ("detect", {"input": "image"})
    result = quantize(signed, data, output=tmp_path / "s.tflite")  # static: calibrates
    assert result.report is not None and result.report.metric_name == "output cosine similarity"
    assert result.report.metric > 0.95
    signatures = Interpreter(model_path=str(result.path)).get_signature_list()
    assert list(signatures) == ["detect"] and signatures["detect"]["inputs"] == ["image"]


def test_search_keeps_float_unless_faster(data: CalibrationData, tmp_path: Path) -> None:
    result = quantize(MODEL, data, search=True, output=tmp_path / "s.tflite")
    assert result.candidates
    for c in result.candidates:
        assert c.passed == (c.report.drop <= 0.01 and c.report.speedup >= 1.03), c.reason
    if result.used_float:
        assert "keeping the float model" in result.message
        assert result.path == edgekit.load(MODEL).path
    else:
        assert result.report is not None and result.report.speedup >= 1.03


def test_recipes_tflite_cannot_build(data: CalibrationData) -> None:
    from edgekit.quantize.core import QuantizationError

    with pytest.raises(QuantizationError, match="fp16"):
        quantize(MODEL, data, mode="fp16")
    with pytest.raises(QuantizationError, match="min/max"):
        quantize(MODEL, data, recipe=Recipe(method="entropy"))


def test_missing_quantizer_names_the_install(
    data: CalibrationData, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    for module in [m for m in sys.modules if m.startswith("ai_edge_quantizer")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "ai_edge_quantizer", None)  # what a missing package does
    with pytest.raises(BackendUnavailable, match=r"edgekit\[tflite-quantize\]"):
        quantize(MODEL, data)


def test_cli_quantizes_tflite(photos_dir: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    small = tmp_path / "photos"
    small.mkdir()
    for file in sorted(photos_dir.glob("*.png"))[::4]:
        shutil.copy(file, small / file.name)
    out = tmp_path / "cli.tflite"
    result = subprocess.run(
        [sys.executable, "-m", "edgekit", "quantize", MODEL, "--calib", str(small),
         "--count", "8", "--held-out", "4", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["path"] == str(out) and out.is_file()
    assert Path(report["manifest"]).read_text().count('tool_recipe = "static_wi8_ai8"') == 1
