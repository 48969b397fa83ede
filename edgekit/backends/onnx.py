"""onnxruntime backend."""

from __future__ import annotations

import logging
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
from edgekit.tensor import Dim, TensorSpec

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
# Accelerators tried by device="auto", best first.
AUTO_ORDER = (
    "QNNExecutionProvider",
    "OpenVINOExecutionProvider",
    "VitisAIExecutionProvider",
    "CoreMLExecutionProvider",
    "NnapiExecutionProvider",
    "XnnpackExecutionProvider",
)

_ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendUnavailable(
            "onnxruntime is not installed, so ONNX models cannot run: pip install 'edgekit[onnx]'"
        ) from e
    return onnxruntime


def available_providers() -> list[str]:
    return list(import_ort().get_available_providers())


class OnnxBackend:
    """A model on an onnxruntime ``InferenceSession``."""

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        device: DeviceSpec,
        *,
        num_threads: int | None = None,
        fallback: bool = True,
        layouts: dict[str, str] | None = None,
    ) -> None:
        ort = import_ort()
        self.requested = device
        providers = self._providers(ort, device, fallback)
        options = ort.SessionOptions()
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        options.log_severity_level = 3
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:
            text = str(e)
            if (
                "Protobuf parsing failed" in text
                or "INVALID_PROTOBUF" in text
                or ("Load model" in text and "failed" in text)
            ):
                raise ModelFormatError(
                    f"{path} is not a valid ONNX model (truncated or corrupt: "
                    f"{_first_line(text)}). "
                    "Fetch it again (edgekit models fetch NAME) or re-export it."
                ) from e
            if any(p[0] != CPU for p in providers) and fallback:
                warnings.warn(
                    f"{device}: session creation failed ({_first_line(text)}); running on CPU",
                    EdgekitWarning,
                    stacklevel=3,
                )
                providers = [(CPU, {})]
                session = ort.InferenceSession(str(path), options, providers=providers)
            else:
                raise ModelFormatError(
                    f"onnxruntime cannot load {path}: {_first_line(text)}. Check that the file "
                    "is a complete ONNX model whose opset this onnxruntime supports."
                ) from e
        self._session = session
        self._sess = session._sess  # the C++ session: skips per-call Python re-validation
        self.device = session.get_providers()[0]
        layouts = layouts or {}
        self.inputs = tuple(
            _spec(i, arg, layout_for(layouts, i, arg.name))
            for i, arg in enumerate(session.get_inputs())
        )
        self.outputs = tuple(_spec(i, arg, None) for i, arg in enumerate(session.get_outputs()))
        self._output_names = [o.name for o in self.outputs]
        self._input_names = [i.name for i in self.inputs]
        self._run_options = ort.RunOptions()

    @staticmethod
    def _providers(
        ort: Any, device: DeviceSpec, fallback: bool
    ) -> list[tuple[str, dict[str, str]]]:
        available = ort.get_available_providers()
        if device.kind in ("cpu",):
            return [(CPU, {})]
        if device.kind == "auto":
            for name in AUTO_ORDER:
                if name in available:
                    return [(name, {}), (CPU, {})]
            return [(CPU, {})]
        if device.kind != "ort":
            raise DeviceError(
                f"device {device} is for LiteRT models; this is an ONNX model: use cpu, auto or "
                f"ort:PROVIDER (available here: {', '.join(available)})"
            )
        if device.target in available:
            return [(device.target, dict(device.options)), (CPU, {})]
        known = ort.get_all_providers()
        what = "is not built into this onnxruntime" if device.target in known else "is unknown"
        message = (
            f"execution provider {device.target} {what} (available here: {', '.join(available)}). "
            "Install the onnxruntime build that ships it (e.g. onnxruntime-openvino, "
            "onnxruntime-qnn) or use device='cpu'."
        )
        if not fallback:
            raise DeviceUnavailable(message)
        warnings.warn(message + " Falling back to CPU.", EdgekitWarning, stacklevel=4)
        return [(CPU, {})]

    def run(self, feeds: Sequence[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        try:
            feed = dict(zip(self._input_names, feeds, strict=True))
            result: list[npt.NDArray[Any]] = self._sess.run(
                self._output_names, feed, self._run_options
            )
        except Exception as e:  # onnxruntime raises its own Fail/InvalidArgument classes
            raise InputError(f"onnxruntime rejected the inputs: {_first_line(str(e))}") from e
        return result

    def placement(self) -> Placement:
        counts: Counter[str] = Counter()
        fallback: list[tuple[str, str]] = []
        wanted = self.requested.kind in ("ort", "auto") and self.device != CPU
        asked_accelerator = self.requested.kind == "ort" or (
            self.requested.kind == "auto" and self.device != CPU
        )
        for subgraph in self._session.get_provider_graph_assignment_info():
            nodes = subgraph.get_nodes()
            counts[subgraph.ep_name] += len(nodes)
            if subgraph.ep_name == CPU and (wanted or asked_accelerator):
                fallback.extend((n.name, n.op_type) for n in nodes)
        notes: list[str] = []
        if self.requested.kind == "ort" and self.device == CPU:
            notes.append(f"{self.requested.target} was not used: the whole model runs on the CPU")
        return Placement(
            backend=self.name,
            device=self.device,
            requested=str(self.requested),
            nodes=dict(counts),
            fallback=tuple(fallback),
            notes=tuple(notes),
        )

    def metadata(self) -> dict[str, str]:
        meta = self._session.get_modelmeta()
        data = dict(meta.custom_metadata_map)
        for key in ("producer_name", "graph_name", "domain", "description"):
            value = getattr(meta, key, "")
            if value:
                data.setdefault(key, str(value))
        return data

    def op_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for subgraph in self._session.get_provider_graph_assignment_info():
            for node in subgraph.get_nodes():
                counts[node.op_type] += 1
        return dict(counts)

    def close(self) -> None:
        self._sess = None
        self._session = None


def _spec(index: int, arg: Any, layout: str | None) -> TensorSpec:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise ModelFormatError(f"tensor {arg.name} has type {arg.type}, which edgekit does not map")
    shape: tuple[Dim, ...] = tuple(
        d if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) and d else None)
        for d in (arg.shape or [])
    )
    return TensorSpec(arg.name, shape, np.dtype(dtype), index=index, layout=layout)


def _first_line(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else text
    return text[:300]
