"""Integer model inputs and outputs: TensorSpec quantization, quantize_input, dequantize_output."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest

import edgekit
from edgekit import InputError

# A small .tflite writer (flatbuffers with the TFLite schema from the `tflite` package), so
# integer models are tested without TensorFlow or a downloaded model.
INT8, FLOAT32 = 9, 0  # tflite.TensorType
DEQUANTIZE, QUANTIZE = 6, 114  # tflite.BuiltinOperator


def _schema(name: str) -> Any:
    return importlib.import_module(f"tflite.{name}")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: int
    shape: tuple[int, ...]
    scale: float | None = None
    zero_point: int | None = None


def _vector(builder: flatbuffers.Builder, start: Any, items: list[int], kind: str) -> int:
    start(builder, len(items))
    for item in reversed(items):
        getattr(builder, f"Prepend{kind}")(item)
    return int(builder.EndVector())


def _tensor(builder: flatbuffers.Builder, tensor: Tensor) -> int:
    t, q = _schema("Tensor"), _schema("QuantizationParameters")
    name = builder.CreateString(tensor.name)
    shape = _vector(builder, t.StartShapeVector, list(tensor.shape), "Int32")
    quant = None
    if tensor.scale is not None:
        builder.StartVector(4, 1, 4)
        builder.PrependFloat32(tensor.scale)
        scale = builder.EndVector()
        builder.StartVector(8, 1, 8)
        builder.PrependInt64(tensor.zero_point or 0)
        zero = builder.EndVector()
        q.Start(builder)
        q.AddScale(builder, scale)
        q.AddZeroPoint(builder, zero)
        quant = q.End(builder)
    t.Start(builder)
    t.AddShape(builder, shape)
    t.AddType(builder, tensor.dtype)
    t.AddBuffer(builder, 0)
    t.AddName(builder, name)
    if quant is not None:
        t.AddQuantization(builder, quant)
    return int(t.End(builder))


def write_model(
    path: Path, tensors: list[Tensor], ops: list[tuple[int, int, int]], inputs: list[int],
    outputs: list[int],
) -> Path:  # fmt: skip
    """``ops`` are (builtin operator, input tensor, output tensor)."""
    builder = flatbuffers.Builder(1024)
    codes_used = sorted({op for op, _, _ in ops})
    sg, op_mod, code_mod = _schema("SubGraph"), _schema("Operator"), _schema("OperatorCode")
    model, buf = _schema("Model"), _schema("Buffer")
    tensor_offsets = [_tensor(builder, t) for t in tensors]
    op_offsets = []
    for op, src, dst in ops:
        ins = _vector(builder, op_mod.StartInputsVector, [src], "Int32")
        outs = _vector(builder, op_mod.StartOutputsVector, [dst], "Int32")
        op_mod.Start(builder)
        op_mod.AddOpcodeIndex(builder, codes_used.index(op))
        op_mod.AddInputs(builder, ins)
        op_mod.AddOutputs(builder, outs)
        op_offsets.append(op_mod.End(builder))
    tensors_vec = _vector(builder, sg.StartTensorsVector, tensor_offsets, "UOffsetTRelative")
    ops_vec = _vector(builder, sg.StartOperatorsVector, op_offsets, "UOffsetTRelative")
    in_vec = _vector(builder, sg.StartInputsVector, inputs, "Int32")
    out_vec = _vector(builder, sg.StartOutputsVector, outputs, "Int32")
    sg.Start(builder)
    sg.AddTensors(builder, tensors_vec)
    sg.AddInputs(builder, in_vec)
    sg.AddOutputs(builder, out_vec)
    sg.AddOperators(builder, ops_vec)
    subgraph = sg.End(builder)
    code_offsets = []
    for code in codes_used:
        code_mod.Start(builder)
        code_mod.AddDeprecatedBuiltinCode(builder, min(code, 127))
        code_mod.AddBuiltinCode(builder, code)
        code_mod.AddVersion(builder, 1)
        code_offsets.append(code_mod.End(builder))
    codes_vec = _vector(builder, model.StartOperatorCodesVector, code_offsets, "UOffsetTRelative")
    subgraphs_vec = _vector(builder, model.StartSubgraphsVector, [subgraph], "UOffsetTRelative")
    buf.Start(builder)
    empty = buf.End(builder)
    buffers_vec = _vector(builder, model.StartBuffersVector, [empty], "UOffsetTRelative")
    model.Start(builder)
    model.AddVersion(builder, 3)
    model.AddOperatorCodes(builder, codes_vec)
    model.AddSubgraphs(builder, subgraphs_vec)
    model.AddBuffers(builder, buffers_vec)
    builder.Finish(model.End(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two paths: int8 'q_in' -> DEQUANTIZE -> float 'real_out'; float 'real_in' -> QUANTIZE
    -> int8 'q_out'."""
    tensors = [
        Tensor("q_in", INT8, (1, 4), scale=0.5, zero_point=-3),
        Tensor("real_out", FLOAT32, (1, 4)),
        Tensor("real_in", FLOAT32, (1, 4)),
        Tensor("q_out", INT8, (1, 4), scale=0.25, zero_point=5),
    ]
    path = tmp_path_factory.mktemp("tflite") / "int8.tflite"
    return write_model(path, tensors, [(DEQUANTIZE, 0, 1), (QUANTIZE, 2, 3)], [0, 2], [1, 3])


def test_specs_carry_quantization(int8_model: Path) -> None:
    model = edgekit.load(int8_model)
    q_in = model.inputs[0]
    assert q_in.name == "q_in" and q_in.dtype == np.int8 and q_in.is_quantized
    assert q_in.quantization is not None
    assert q_in.quantization.scale == pytest.approx(0.5) and q_in.quantization.zero_point == -3
    assert not model.inputs[1].is_quantized
    assert "quantized: scale=0.5, zero_point=-3" in q_in.describe()


def test_round_trip_through_the_runtime(int8_model: Path) -> None:
    model = edgekit.load(int8_model)
    real = np.array([[-2.0, 0.0, 1.5, 60.0]], np.float32)
    q = model.quantize_input("q_in", real)
    # real / 0.5 + (-3), rounded and clipped to int8
    assert q.dtype == np.int8 and q.tolist() == [[-7, -3, 0, 117]]
    out = model.run({"q_in": q, "real_in": real})
    np.testing.assert_allclose(out["real_out"], real)  # DEQUANTIZE in LiteRT agrees
    q_out = out["q_out"]
    assert q_out.dtype == np.int8
    # LiteRT's QUANTIZE and our dequantize_output invert each other (60.0 saturates at 127)
    np.testing.assert_allclose(
        model.dequantize_output("q_out", q_out), [[-2.0, 0.0, 1.5, 30.5]], atol=1e-6
    )


def test_float_input_to_integer_model_names_the_fix(int8_model: Path) -> None:
    model = edgekit.load(int8_model)
    real = np.zeros((1, 4), np.float32)
    with pytest.raises(InputError, match=r"quantize it with model.quantize_input\('q_in', arr\)"):
        model.run({"q_in": real, "real_in": real})
    with pytest.raises(InputError, match="no tensor 'nope'"):
        model.quantize_input("nope", real)
