"""Fixtures for the runtime tests: real models from the manifests, and tiny ONNX graphs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit import models

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def model_file() -> Callable[[str], Path]:
    """The verified local file of a manifest's model (fetched on first use, then cached)."""

    def get(name: str) -> Path:
        return models.fetch(name)

    return get


def save_model(graph: onnx.GraphProto, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="session")
def relu_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-op model: y = relu(x), x float32 [N, 4]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    return save_model(graph, tmp_path_factory.mktemp("onnx") / "relu.onnx")


@pytest.fixture(scope="session")
def two_input_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sum = a + b (float32 [2, 3]); prod = a * b; plus an int64 scale input."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [])
    out_sum = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [2, 3])
    out_prod = helper.make_tensor_value_info("prod", TensorProto.FLOAT, [2, 3])
    out_k = helper.make_tensor_value_info("k2", TensorProto.INT64, [])
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("Mul", ["a", "b"], ["prod"]),
        helper.make_node("Add", ["k", "k"], ["k2"]),
    ]
    graph = helper.make_graph(nodes, "two", [a, b, k], [out_sum, out_prod, out_k])
    return save_model(graph, tmp_path_factory.mktemp("onnx") / "two.onnx")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
