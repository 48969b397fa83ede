"""LiteRT backend (``ai-edge-litert``; ``tflite-runtime`` where that is what a board has)."""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.backends.base import Placement, layout_for
from edgekit.backends.devices import DeviceSpec
from edgekit.errors import (
    BackendUnavailable,
    DeviceError,
    DeviceUnavailable,
    EdgekitWarning,
    InputError,
    ModelFormatError,
)
from edgekit.tensor import Dim, Quantization, TensorSpec

log = logging.getLogger(__name__)

XNNPACK = "litert:xnnpack"
REFERENCE = "litert:reference"


def import_interpreter_module() -> Any:
    """The LiteRT interpreter module: ai-edge-litert first, tflite-runtime as a fallback."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter
        except ImportError as e:
            raise BackendUnavailable(
                "no LiteRT runtime is installed, so .tflite models cannot run: "
                "pip install 'edgekit[tflite]' (ai-edge-litert; tflite-runtime also works on "
                "boards that only have it, with numpy<2)"
            ) from e
    return interpreter


def runtime_name() -> str:
    module = import_interpreter_module()
    return "ai-edge-litert" if module.__name__.startswith("ai_edge_litert") else "tflite-runtime"


class LiteRTBackend:
    """A model on a LiteRT ``Interpreter``."""

    name = "litert"

    def __init__(
        self,
        path: Path,
        device: DeviceSpec,
        *,
        num_threads: int | None = None,
        fallback: bool = True,
        layouts: dict[str, str] | None = None,
    ) -> None:
        module = import_interpreter_module()
        self.requested = device
        kwargs: dict[str, Any] = {"model_path": str(path)}
        if num_threads is not None:
            kwargs["num_threads"] = int(num_threads)
        self.device = XNNPACK
        if device.kind == "tflite" and device.target == "reference":
            kwargs["experimental_op_resolver_type"] = (
                module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
            self.device = REFERENCE
        elif device.kind == "tflite-delegate":
            delegate = self._load_delegate(module, device, fallback)
            if delegate is not None:
                kwargs["experimental_delegates"] = [delegate]
                self.device = f"delegate:{Path(device.target).name}"
        elif device.kind == "ort":
            raise DeviceError(
                f"device {device} is for ONNX models; this is a LiteRT model: use cpu, auto, "
                "tflite:xnnpack, tflite:reference or tflite-delegate:/path/to/libdelegate.so"
            )
        try:
            interpreter = module.Interpreter(**kwargs)
            interpreter.allocate_tensors()
        except ValueError as e:
            raise ModelFormatError(
                f"{path} is not a valid .tflite model ({e}). It may be truncated or not a "
                "TFLite flatbuffer: fetch it again (edgekit models fetch NAME) or re-export it."
            ) from e
        except RuntimeError as e:
            raise ModelFormatError(
                f"LiteRT cannot prepare {path}: {e}. The model may need custom ops or a "
                "newer runtime (pip install -U ai-edge-litert)."
            ) from e
        self._interpreter = interpreter
        layouts = layouts or {}
        self._input_details = interpreter.get_input_details()
        self._output_details = interpreter.get_output_details()
        self.inputs = tuple(
            _spec(i, d, layout_for(layouts, i, d["name"]))
            for i, d in enumerate(self._input_details)
        )
        self.outputs = tuple(_spec(i, d, None) for i, d in enumerate(self._output_details))
        self._in_index = [int(d["index"]) for d in self._input_details]
        self._out_index = [int(d["index"]) for d in self._output_details]
        self._current_shapes = [tuple(int(x) for x in d["shape"]) for d in self._input_details]
        self._set = interpreter.set_tensor
        self._get = interpreter.get_tensor
        self._invoke = interpreter.invoke

    @staticmethod
    def _load_delegate(module: Any, device: DeviceSpec, fallback: bool) -> Any:
        path = device.target
        try:
            if not os.path.isfile(path):
                # load_delegate on a missing file also trips a bug in LiteRT's Delegate.__del__
                raise OSError(f"{path}: no such file")
            return module.load_delegate(path, dict(device.options))
        except (OSError, ValueError, RuntimeError) as e:
            message = (
                f"cannot load the LiteRT delegate {path}: {e}. Install the vendor's delegate "
                "library for this board, or use device='cpu'."
            )
            if not fallback:
                raise DeviceUnavailable(message) from e
            warnings.warn(message + " Falling back to CPU.", EdgekitWarning, stacklevel=4)
            return None

    def run(self, feeds: Sequence[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        set_tensor = self._set
        for position, (index, array) in enumerate(zip(self._in_index, feeds, strict=True)):
            if array.shape != self._current_shapes[position]:
                self._resize(position, array.shape)
            set_tensor(index, array)
        try:
            self._invoke()
        except RuntimeError as e:
            raise InputError(f"LiteRT failed to run the model: {e}") from e
        get = self._get
        return [get(index) for index in self._out_index]

    def _resize(self, position: int, shape: tuple[int, ...]) -> None:
        interpreter = self._interpreter
        try:
            interpreter.resize_tensor_input(self._in_index[position], list(shape), strict=True)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise InputError(
                f"input {self.inputs[position].name} cannot take shape {list(shape)}: {e}"
            ) from e
        self._current_shapes[position] = tuple(shape)
        self._output_details = interpreter.get_output_details()

    def _ops(self) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = self._interpreter._get_ops_details()
        return ops

    def placement(self) -> Placement:
        ops = self._ops()
        delegate_nodes = [op for op in ops if op["op_name"] == "DELEGATE"]
        model_ops = [op for op in ops if op["op_name"] != "DELEGATE"]
        delegated = _delegated_ops(model_ops, delegate_nodes)
        executor = self.device if self.device != REFERENCE else REFERENCE
        counts: Counter[str] = Counter()
        fallback: list[tuple[str, str]] = []
        for op in model_ops:
            if op["index"] in delegated:
                counts[executor] += 1
            else:
                counts["cpu"] += 1
                if self.device != REFERENCE:
                    fallback.append((f"op{op['index']}", str(op["op_name"])))
        notes: list[str] = []
        if self.requested.kind == "tflite-delegate" and not self.device.startswith("delegate:"):
            notes.append(f"{self.requested.target} could not be loaded: XNNPACK on the CPU instead")
        return Placement(
            backend=self.name,
            device=self.device,
            requested=str(self.requested),
            nodes=dict(counts),
            fallback=tuple(fallback),
            notes=tuple(notes),
        )

    def metadata(self) -> dict[str, str]:
        return {}

    def op_counts(self) -> dict[str, int]:
        ops = self._ops()
        return dict(Counter(str(op["op_name"]) for op in ops if op["op_name"] != "DELEGATE"))

    def close(self) -> None:
        self._interpreter = None


def _delegated_ops(model_ops: list[dict[str, Any]], delegates: list[dict[str, Any]]) -> set[int]:
    """Ops replaced by delegate kernels: walk back from each delegate's outputs to its inputs."""
    producer: dict[int, dict[str, Any]] = {}
    for op in model_ops:
        for tensor in op["outputs"]:
            producer[int(tensor)] = op
    delegated: set[int] = set()
    for node in delegates:
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        seen: set[int] = set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor in boundary:
                continue
            seen.add(tensor)
            source = producer.get(tensor)
            if source is None:
                continue
            op = source
            delegated.add(int(op["index"]))
            stack.extend(int(t) for t in op["inputs"] if int(t) >= 0)
    return delegated


def _spec(index: int, detail: dict[str, Any], layout: str | None) -> TensorSpec:
    signature = detail.get("shape_signature")
    if signature is None or len(signature) == 0:
        signature = detail["shape"]
    shape: tuple[Dim, ...] = tuple(int(d) if int(d) >= 0 else None for d in signature)
    quantization: Quantization | None = None
    params: dict[str, Any] = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []))
    if scales.size:
        zero_points = np.asarray(params.get("zero_points", []))
        if scales.size == 1:
            quantization = Quantization(float(scales[0]), int(zero_points[0]))
        else:
            quantization = Quantization(
                scales.astype(np.float32),
                zero_points.astype(np.int64),
                axis=int(params.get("quantized_dimension", 0)),
            )
    return TensorSpec(
        str(detail["name"]),
        shape,
        np.dtype(detail["dtype"]),
        index=index,
        quantization=quantization,
        layout=layout,
    )
