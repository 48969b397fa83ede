"""edgekit.load and Model.run against real onnxruntime and LiteRT sessions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

import edgekit
from edgekit import InputError


def test_onnx_specs_and_run(relu_onnx: Path, rng: np.random.Generator) -> None:
    model = edgekit.load(relu_onnx)
    assert model.backend == "onnxruntime"
    assert model.device == "CPUExecutionProvider"
    (spec,) = model.inputs
    assert spec.name == "x" and spec.shape == ("N", 4) and spec.dtype == np.float32
    assert spec.is_dynamic
    x = rng.standard_normal((5, 4)).astype(np.float32)
    out = model.run(x)
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], np.maximum(x, 0))
    # the same through a sequence and a dict
    np.testing.assert_array_equal(model.run([x])["y"], out["y"])
    np.testing.assert_array_equal(model({"x": x})["y"], out["y"])


def test_multi_input_order_and_forms(two_input_onnx: Path, rng: np.random.Generator) -> None:
    model = edgekit.load(two_input_onnx)
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.standard_normal((2, 3)).astype(np.float32)
    k = np.array(21, dtype=np.int64)
    by_name = model.run({"b": b, "k": k, "a": a})
    assert list(by_name) == ["sum", "prod", "k2"]  # model order, not dict order
    np.testing.assert_allclose(by_name["sum"], a + b)
    np.testing.assert_allclose(by_name["prod"], a * b)
    assert int(by_name["k2"]) == 42
    by_position = model.run((a, b, k))
    for name in by_name:
        np.testing.assert_array_equal(by_position[name], by_name[name])
    # plain Python values are converted to the input's dtype
    converted = model.run([a.tolist(), b.tolist(), 4])
    np.testing.assert_allclose(converted["sum"], a + b)
    assert int(converted["k2"]) == 8


def test_face_detector_matches_raw_litert(model_file: Callable[[str], Path]) -> None:
    path = model_file("face-detection-short-range")
    model = edgekit.load("face-detection-short-range", num_threads=1)
    assert model.backend == "litert" and model.device == "litert:xnnpack"
    assert model.path == path
    assert [s.name for s in model.outputs] == ["regressors", "classificators"]
    assert model.inputs[0].shape == (1, 128, 128, 3) and model.inputs[0].layout == "NHWC"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    raw = Interpreter(model_path=str(path), num_threads=1)
    raw.allocate_tensors()
    raw.set_tensor(raw.get_input_details()[0]["index"], x)
    raw.invoke()
    ours = model.run(x)
    for detail in raw.get_output_details():
        np.testing.assert_array_equal(ours[detail["name"]], raw.get_tensor(detail["index"]))


def test_ocr_detector_matches_raw_onnxruntime(model_file: Callable[[str], Path]) -> None:
    path = model_file("ppocr-v4-det")
    model = edgekit.load(path, num_threads=1)
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 160)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    raw = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (expected,) = raw.run(None, {"x": x})
    (ours,) = model.run(x).values()
    np.testing.assert_array_equal(ours, expected)
    assert ours.shape == (1, 1, 96, 160)


def test_vad_state_loop(model_file: Callable[[str], Path]) -> None:
    model = edgekit.load("silero-vad")
    assert [s.name for s in model.inputs] == ["input", "state", "sr"]
    state = np.zeros((2, 1, 128), dtype=np.float32)
    sr = np.array(16000, dtype=np.int64)
    t = np.arange(576, dtype=np.float32) / 16000
    for _ in range(3):
        out = model.run(
            {"input": (0.01 * np.sin(2 * np.pi * 200 * t))[None], "state": state, "sr": sr}
        )
        prob = float(out["output"][0, 0])
        assert 0.0 <= prob <= 1.0
        assert out["stateN"].shape == (2, 1, 128)
        state = out["stateN"]


def test_tflite_dynamic_resize_keeps_working(model_file: Callable[[str], Path]) -> None:
    model = edgekit.load("face-detection-short-range")
    with pytest.raises(InputError, match="dimension 1 must be 128"):
        model.run(np.zeros((1, 64, 64, 3), np.float32))
    # the model still runs after a rejected call
    out = model.run(np.zeros((1, 128, 128, 3), np.float32))
    assert out["classificators"].shape == (1, 896, 1)


def test_nan_inputs_pass_through(relu_onnx: Path) -> None:
    model = edgekit.load(relu_onnx)
    x = np.array([[np.nan, 1.0, -1.0, np.inf]], dtype=np.float32)
    y = model.run(x)["y"]
    assert np.isnan(y[0, 0]) and y[0, 1] == 1.0 and y[0, 2] == 0.0 and np.isposinf(y[0, 3])


def test_num_threads_and_close(model_file: Callable[[str], Path]) -> None:
    with edgekit.load("ppocr-cls", num_threads=1) as model:
        out = model.run(np.zeros((1, 3, 48, 192), np.float32))
        (scores,) = out.values()
        assert scores.shape == (1, 2)
        np.testing.assert_allclose(scores.sum(), 1.0, rtol=1e-4)


def test_repr_and_describe(relu_onnx: Path) -> None:
    model = edgekit.load(relu_onnx)
    text = repr(model)
    assert "relu" in text and "float32[N, 4]" in text and "onnxruntime" in text
