"""Backends by model format, chosen through an explicit registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.backends.devices import DeviceSpec, parse_device

if TYPE_CHECKING:
    from edgekit.backends.base import Backend

BackendFactory = Callable[..., "Backend"]

# File suffix -> model format.
FORMATS: dict[str, str] = {".onnx": "onnx", ".ort": "onnx", ".tflite": "tflite"}


def _onnx(path: Path, device: DeviceSpec, **kwargs: object) -> Backend:
    from edgekit.backends.onnx import OnnxBackend

    return OnnxBackend(path, device, **kwargs)  # type: ignore[arg-type]


def _tflite(path: Path, device: DeviceSpec, **kwargs: object) -> Backend:
    from edgekit.backends.litert import LiteRTBackend

    return LiteRTBackend(path, device, **kwargs)  # type: ignore[arg-type]


BACKENDS: dict[str, BackendFactory] = {"onnx": _onnx, "tflite": _tflite}


def register_backend(model_format: str, factory: BackendFactory, suffixes: tuple[str, ...]) -> None:
    """Add a backend for a model format (for example a vendor runtime) and its file suffixes."""
    BACKENDS[model_format] = factory
    for suffix in suffixes:
        FORMATS[suffix.lower()] = model_format


__all__ = ["BACKENDS", "FORMATS", "DeviceSpec", "parse_device", "register_backend"]
