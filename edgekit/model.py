"""``edgekit.load`` and :class:`Model`: one API over onnxruntime and LiteRT."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgekit.backends import BACKENDS, FORMATS, parse_device
from edgekit.errors import InputError, ModelFormatError, ModelNotFound, PlacementError
from edgekit.tensor import TensorSpec

if TYPE_CHECKING:
    from edgekit.backends.base import Backend, Placement
    from edgekit.backends.devices import DeviceSpec
    from edgekit.manifest import Manifest

log = logging.getLogger(__name__)

Inputs = npt.ArrayLike | Sequence[npt.ArrayLike] | Mapping[str, npt.ArrayLike]


class Model:
    """A loaded model.

    ``run`` returns a ``dict`` of output name to array, in the model's output order. Inputs are
    checked against :attr:`inputs` before the backend sees them: count, names, dtype and every
    fixed dimension. NaN and infinite values are passed through unchanged (checking every element
    would cost as much as a small model); validate sensor data upstream if it can contain them.
    """

    def __init__(
        self, backend: Backend, path: Path, model_format: str, manifest: Manifest | None = None
    ) -> None:
        self._backend = backend
        self.path = path
        self.format = model_format
        self.manifest = manifest
        self.inputs: tuple[TensorSpec, ...] = backend.inputs
        self.outputs: tuple[TensorSpec, ...] = backend.outputs
        self._names = tuple(spec.name for spec in self.inputs)
        self._output_names = tuple(spec.name for spec in self.outputs)
        self._run = backend.run
        self._single = self.inputs[0] if len(self.inputs) == 1 else None
        # (dtype, ndim, fixed dims) per input: the whole per-call check is tuple compares.
        self._checks = tuple((spec.dtype, len(spec.shape), spec._static) for spec in self.inputs)

    # -- description -------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """``"onnxruntime"`` or ``"litert"``."""
        return self._backend.name

    @property
    def device(self) -> str:
        """The executor actually used (e.g. ``CPUExecutionProvider``, ``litert:xnnpack``)."""
        return self._backend.device

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest is not None else self.path.stem

    def placement(self) -> Placement:
        """Which nodes run on which executor, and which fell back to the CPU."""
        return self._backend.placement()

    def require_accelerator(self) -> Placement:
        """Raise :class:`PlacementError` if any node fell back to the CPU; else the placement."""
        placement = self.placement()
        if placement.fallback or placement.accelerated == 0:
            raise PlacementError(
                f"{self.name}: {len(placement.fallback) or placement.total} of {placement.total} "
                f"nodes run on the CPU instead of {placement.requested}. Quantize the model for "
                "the accelerator (edgekit quantize) or allow fallback.\n" + placement.describe()
            )
        return placement

    def metadata(self) -> dict[str, str]:
        """The model file's own metadata (ONNX metadata_props; empty for most .tflite files)."""
        return self._backend.metadata()

    def op_counts(self) -> dict[str, int]:
        """Number of nodes per operator type."""
        return self._backend.op_counts()

    def __repr__(self) -> str:
        ins = ", ".join(spec.describe() for spec in self.inputs)
        outs = ", ".join(spec.describe() for spec in self.outputs)
        return f"<Model {self.name} on {self.backend}/{self.device}: ({ins}) -> ({outs})>"

    # -- running -----------------------------------------------------------------------------
    def run(self, inputs: Inputs) -> dict[str, npt.NDArray[Any]]:
        """Run the model.

        Args:
            inputs: one array (models with one input), a sequence in input order, or a mapping
                from input name to array.

        Returns:
            Output name -> array, in the model's output order.
        """
        single = self._single
        if single is not None and type(inputs) is np.ndarray:
            dtype, ndim, static = self._checks[0]
            shape = inputs.shape
            if inputs.dtype != dtype or len(shape) != ndim or any(shape[a] != s for a, s in static):
                self._raise_for(0, inputs)
            feeds = [inputs]
        else:
            feeds = self._feeds(inputs)
        return dict(zip(self._output_names, self._run(feeds), strict=True))

    __call__ = run

    def _feeds(self, inputs: Inputs) -> list[npt.NDArray[Any]]:
        names = self._names
        if isinstance(inputs, Mapping):
            unknown = [k for k in inputs if k not in names]
            if unknown:
                hints = []
                for key in unknown:
                    close = difflib.get_close_matches(str(key), names, n=1)
                    hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                raise InputError(
                    f"{self.name} has no input named {', '.join(hints)}; its inputs are "
                    f"{list(names)}"
                )
            missing = [n for n in names if n not in inputs]
            if missing:
                raise InputError(
                    f"{self.name} needs inputs {missing} as well; pass all of {list(names)}"
                )
            ordered = [inputs[n] for n in names]
        elif (
            isinstance(inputs, np.ndarray)
            or not isinstance(inputs, Sequence)
            or isinstance(inputs, str | bytes)
        ):
            if len(names) != 1:
                raise InputError(
                    f"{self.name} has {len(names)} inputs {list(names)}: pass a sequence in that "
                    "order or a dict by name, not a single array"
                )
            ordered = [inputs]
        else:
            if len(inputs) != len(names):
                raise InputError(
                    f"{self.name} takes {len(names)} inputs {list(names)}, got {len(inputs)}"
                )
            ordered = list(inputs)
        feeds: list[npt.NDArray[Any]] = []
        for position, value in enumerate(ordered):
            dtype, ndim, static = self._checks[position]
            if not isinstance(value, np.ndarray):
                try:
                    value = np.asarray(value, dtype=dtype)
                except (TypeError, ValueError) as e:
                    raise InputError(
                        f"input {names[position]!r} cannot be converted to {dtype.name}: {e}"
                    ) from e
            shape = value.shape
            if value.dtype != dtype or len(shape) != ndim or any(shape[a] != s for a, s in static):
                self._raise_for(position, value)
            feeds.append(value)
        return feeds

    def _raise_for(self, position: int, value: npt.NDArray[Any]) -> None:
        spec = self.inputs[position]
        if value.dtype != spec.dtype:
            hint = f"convert it with arr.astype(np.{spec.dtype.name})"
            if spec.quantization is not None and value.dtype.kind == "f":
                hint = f"quantize it with model.quantize_input({spec.name!r}, arr)"
            raise InputError(
                f"input {spec.name!r} has dtype {value.dtype.name}, the model expects "
                f"{spec.dtype.name}: {hint}"
            )
        problem = spec.mismatch(tuple(value.shape))
        raise InputError(f"input {spec.name!r} {problem}")

    # -- quantized I/O -----------------------------------------------------------------------
    def quantize_input(self, name: str | int, values: npt.ArrayLike) -> npt.NDArray[Any]:
        """Real values -> the integer representation an integer input expects."""
        spec = self._spec(self.inputs, name)
        if spec.quantization is None:
            plain: npt.NDArray[Any] = np.asarray(values, dtype=spec.dtype)
            return plain
        q = spec.quantization
        scale, zero = _broadcast(q.scale, q.zero_point, q.axis, np.ndim(values))
        info = np.iinfo(spec.dtype)
        scaled = np.round(np.asarray(values, dtype=np.float32) / scale) + zero
        quantized: npt.NDArray[Any] = np.clip(scaled, info.min, info.max).astype(spec.dtype)
        return quantized

    def dequantize_output(self, name: str | int, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """An integer output -> real values (float32); float outputs pass through."""
        spec = self._spec(self.outputs, name)
        if spec.quantization is None:
            unchanged: npt.NDArray[Any] = np.asarray(values)
            return unchanged
        q = spec.quantization
        scale, zero = _broadcast(q.scale, q.zero_point, q.axis, np.ndim(values))
        result: npt.NDArray[Any] = (values.astype(np.float32) - zero) * scale
        return result.astype(np.float32)

    def _spec(self, specs: tuple[TensorSpec, ...], name: str | int) -> TensorSpec:
        if isinstance(name, int):
            if not 0 <= name < len(specs):
                raise InputError(f"{self.name} has {len(specs)} tensors there, not index {name}")
            return specs[name]
        for spec in specs:
            if spec.name == name:
                return spec
        raise InputError(f"{self.name} has no tensor {name!r}; it has {[s.name for s in specs]}")

    def close(self) -> None:
        """Release the runtime session; the model cannot run afterwards."""
        self._backend.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _broadcast(scale: Any, zero: Any, axis: int | None, ndim: int) -> tuple[Any, Any]:
    scale_arr = np.asarray(scale, dtype=np.float32)
    zero_arr = np.asarray(zero, dtype=np.float32)
    if axis is not None and scale_arr.ndim == 1 and ndim > 0:
        shape = [1] * ndim
        shape[axis] = -1
        return scale_arr.reshape(shape), zero_arr.reshape(shape)
    return scale_arr, zero_arr


def model_format(path: Path) -> str:
    """The format of a model file, from its suffix, checked against its first bytes."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ModelFormatError(
            f"{path}: unknown model file extension {path.suffix!r}. edgekit runs "
            f"{', '.join(sorted(FORMATS))} files, or a manifest (.toml) that names one."
        )
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except IsADirectoryError as e:
        raise ModelFormatError(f"{path} is a directory, not a model file") from e
    except OSError as e:
        raise ModelNotFound(f"cannot read {path}: {e}") from e
    if not head:
        raise ModelFormatError(f"{path} is empty: fetch or export the model again")
    if fmt == "tflite" and head[4:8] != b"TFL3":
        raise ModelFormatError(
            f"{path} is not a TFLite model (no TFL3 identifier in its header): check the file, "
            "or fetch it again"
        )
    if fmt == "onnx" and path.suffix.lower() == ".onnx" and head[0] != 0x08:
        raise ModelFormatError(
            f"{path} is not an ONNX model (it does not start with an ONNX protobuf header): "
            "check the file, or fetch it again"
        )
    return fmt


def load(
    source: str | os.PathLike[str] | Manifest,
    device: str | DeviceSpec | None = "cpu",
    *,
    num_threads: int | None = None,
    fallback: bool = True,
) -> Model:
    """Load a model from a ``.onnx``/``.tflite`` path, a manifest file, or a manifest name.

    Args:
        source: a model file, a manifest ``.toml`` file, a manifest name (``edgekit models
            list``), or a :class:`~edgekit.manifest.Manifest`.
        device: where to run it (see :mod:`edgekit.backends.devices`); ``"cpu"`` by default.
        num_threads: intra-op threads; ``None`` lets the runtime decide.
        fallback: when the device cannot be used, run on the CPU with a warning (``True``) or
            raise :class:`~edgekit.errors.DeviceUnavailable` (``False``).
    """
    from edgekit.manifest import Manifest

    spec = parse_device(device)
    manifest: Manifest | None = None
    if isinstance(source, Manifest):
        manifest = source
    else:
        path = Path(os.fspath(source)).expanduser()
        if path.suffix.lower() == ".toml":
            if not path.exists():
                raise ModelNotFound(f"manifest {path} does not exist")
            manifest = Manifest.from_file(path)
        elif path.exists():
            return _load_file(path, spec, num_threads, fallback, None)
        elif path.suffix.lower() in FORMATS or os.sep in str(source) or "/" in str(source):
            raise ModelNotFound(
                f"model file {path} does not exist. Check the path, or load a manifest by name "
                "(edgekit models list)"
            )
        else:
            from edgekit import models

            manifest = models.get_manifest(str(source))
    from edgekit import models

    path = models.fetch(manifest)
    return _load_file(path, spec, num_threads, fallback, manifest)


def _load_file(
    path: Path,
    device: DeviceSpec,
    num_threads: int | None,
    fallback: bool,
    manifest: Manifest | None,
) -> Model:
    fmt = model_format(path)
    factory = BACKENDS[fmt]
    layouts = manifest.layouts() if manifest is not None else {}
    backend = factory(path, device, num_threads=num_threads, fallback=fallback, layouts=layouts)
    model = Model(backend, path, fmt, manifest)
    log.debug("loaded %r", model)
    return model
