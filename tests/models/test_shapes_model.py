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


def _load(name: str) -> ModuleType:
    """Import ``models/<name>.py`` (``models/`` holds scripts, not a package)."""
    module_name = f"edgekit_models_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "models" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


shapes = _load("shapes")


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
    assert "MaxPool" in ops
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


def test_im2col_and_its_adjoint() -> None:
    """<im2col(x), c> == <x, col2im(c)>: the scatter used for gradients is the exact adjoint."""
    build = _load("build_shapes")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 6, 3))
    cols = build.im2col(x, 2)
    assert cols.shape == (2 * 4 * 3, 27)
    # patch (n=0, y=1, x=1) starts at padded row 2, col 2, i.e. unpadded (1, 1)
    np.testing.assert_array_equal(cols[4].reshape(3, 3, 3), x[0, 1:4, 1:4])
    c = rng.normal(size=cols.shape)
    back = build.col2im_stride2(c, x.shape)
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)


def test_training_gradients_match_finite_differences() -> None:
    build = _load("build_shapes")
    rng = np.random.default_rng(4)
    params = build.init_params(rng, len(shapes.LABELS))
    for name in ("conv_w", "bn_gamma", "bn_beta"):
        tensors = [
            t.astype(np.float64) + rng.normal(0, 0.1, t.shape) for t in getattr(params, name)
        ]
        setattr(params, name, tensors)
    params.fc_w = params.fc_w.astype(np.float64)
    params.fc_b = params.fc_b.astype(np.float64)
    x = rng.normal(size=(3, 16, 16, 3))
    labels = np.array([0, 3, 5])

    def loss() -> float:
        return build.softmax_cross_entropy(build.train_forward(params, x, 0.0)[0], labels)[0]

    logits, cache = build.train_forward(params, x, 0.0)
    _, dlogits = build.softmax_cross_entropy(logits, labels)
    grads = build.train_backward(params, cache, dlogits.astype(np.float64))
    for tensor, grad in zip(params.tensors(), grads, strict=True):
        for _ in range(3):
            index = tuple(int(rng.integers(0, size)) for size in tensor.shape)
            original = tensor[index]
            tensor[index] = original + 1e-5
            up = loss()
            tensor[index] = original - 1e-5
            down = loss()
            tensor[index] = original
            numeric = (up - down) / 2e-5
            assert abs(numeric - grad[index]) <= 1e-4 * max(1.0, abs(numeric)), (
                tensor.shape,
                index,
                numeric,
                grad[index],
            )
