"""Build the shapes classifier from scratch and check the ONNX file it writes.

The build runs once per module (``models/build_shapes.py`` as a subprocess, the way a developer
runs it); the tests then judge the file with onnx and onnxruntime on images the build never saw.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install edgekit[onnx]")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install edgekit[onnx]")

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "models" / "build_shapes.py"
HELD_OUT_SEED = 12345
HELD_OUT_SIZE = 1000
BUILD_TIMEOUT_S = 300


def _load_shapes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shapes", REPO_ROOT / "models" / "shapes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shapes = _load_shapes()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes_model")
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(out), "--quiet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout == "", f"--quiet build printed: {result.stdout!r}"
    path = out / "shapes_cnn.onnx"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def session(model_path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    images, labels = shapes.make_dataset(HELD_OUT_SIZE, seed=HELD_OUT_SEED)
    return shapes.preprocess(images), labels


@pytest.fixture(scope="module")
def predictions(
    session: ort.InferenceSession, held_out: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    inputs, _ = held_out
    (logits,) = session.run(["logits"], {"image": inputs})
    assert logits.shape == (len(inputs), len(shapes.LABELS))
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()
    return np.asarray(logits.argmax(axis=1))


def _metadata(model_path: Path) -> dict[str, str]:
    model = onnx.load(str(model_path))
    return {prop.key: prop.value for prop in model.metadata_props}


def test_model_passes_onnx_checker(model_path: Path) -> None:
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Conv") == 4
    assert "GlobalMaxPool" in ops
    assert {opset.domain: opset.version for opset in model.opset_import}[""] == 17
    assert "seed=0" in model.doc_string


def test_held_out_accuracy(
    predictions: np.ndarray, held_out: tuple[np.ndarray, np.ndarray]
) -> None:
    _, labels = held_out
    accuracy = float((predictions == labels).mean())
    assert accuracy >= 0.95, f"held-out accuracy {accuracy:.3f} < 0.95"


def test_per_class_recall(predictions: np.ndarray, held_out: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = held_out
    recalls = {
        name: float((predictions[labels == k] == k).mean()) for k, name in enumerate(shapes.LABELS)
    }
    assert all(count > 100 for count in np.bincount(labels, minlength=len(shapes.LABELS)))
    weak = {name: round(recall, 3) for name, recall in recalls.items() if recall < 0.85}
    assert not weak, f"per-class recall below 0.85: {weak} (all: {recalls})"


def test_labels_metadata(model_path: Path) -> None:
    labels = _metadata(model_path).get("labels")
    assert labels == "circle,square,triangle,star,cross,ring"
    assert tuple(labels.split(",")) == shapes.LABELS


def test_input_contract_metadata(model_path: Path, session: ort.InferenceSession) -> None:
    contract = _metadata(model_path).get("input_contract", "")
    for term in ("float32", "[N,3,64,64]", "NCHW", "RGB", "1/255", "mean 0.5", "std 0.5"):
        assert term in contract, f"input_contract lacks {term!r}: {contract!r}"
    (image,) = session.get_inputs()
    assert image.name == "image"
    assert image.type == "tensor(float)"
    assert image.shape[1:] == [3, 64, 64]
    assert isinstance(image.shape[0], str), "batch dimension must be dynamic"
    (logits,) = session.get_outputs()
    assert logits.name == "logits"
    assert logits.shape[1:] == [len(shapes.LABELS)]


def test_preprocess_follows_contract() -> None:
    images = np.array([[[[0, 255, 51]]]], dtype=np.uint8)
    tensor = shapes.preprocess(images)
    assert tensor.shape == (1, 3, 1, 1)
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor.ravel(), [-1.0, 1.0, 51 / 127.5 - 1.0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch(
    session: ort.InferenceSession, held_out: tuple[np.ndarray, np.ndarray], batch: int
) -> None:
    inputs, _ = held_out
    (full,) = session.run(["logits"], {"image": inputs[:8]})
    (part,) = session.run(["logits"], {"image": inputs[:batch]})
    assert part.shape == (batch, len(shapes.LABELS))
    np.testing.assert_allclose(part, full[:batch], rtol=1e-5, atol=1e-5)


def test_dataset_is_deterministic_and_varied() -> None:
    first, labels = shapes.make_dataset(24, seed=7)
    again, labels_again = shapes.make_dataset(24, seed=7)
    other, _ = shapes.make_dataset(24, seed=8)
    assert first.dtype == np.uint8 and first.shape == (24, 64, 64, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(labels, labels_again)
    assert not np.array_equal(first, other)
    assert np.bincount(labels, minlength=len(shapes.LABELS)).tolist() == [4] * 6
    # every image is a different drawing, not a repeated template
    flat = first.reshape(len(first), -1)
    assert len({row.tobytes() for row in flat}) == len(first)
