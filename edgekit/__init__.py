"""edgekit: on-device models, media I/O and a hardware bridge for smart terminals.

``import edgekit`` is cheap: submodules (and numpy, onnxruntime, LiteRT) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgekit.errors import (
    BackendUnavailable,
    ChecksumMismatch,
    DeviceError,
    DeviceUnavailable,
    EdgekitError,
    EdgekitWarning,
    FetchError,
    InputError,
    ManifestError,
    ModelError,
    ModelFormatError,
    ModelNotFound,
    PlacementError,
)

if TYPE_CHECKING:
    from edgekit.backends.base import Placement
    from edgekit.manifest import Manifest
    from edgekit.model import Model, load
    from edgekit.tensor import TensorSpec

__version__ = "0.1.0"

_LAZY = {
    "load": ("edgekit.model", "load"),
    "Model": ("edgekit.model", "Model"),
    "TensorSpec": ("edgekit.tensor", "TensorSpec"),
    "Manifest": ("edgekit.manifest", "Manifest"),
    "Placement": ("edgekit.backends.base", "Placement"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        try:
            return importlib.import_module(f"edgekit.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"edgekit.{name}":
                raise
            raise AttributeError(f"module 'edgekit' has no attribute {name!r}") from None
    module = importlib.import_module(target[0])
    value = getattr(module, target[1])
    globals()[name] = value
    return value


__all__ = [
    "BackendUnavailable",
    "ChecksumMismatch",
    "DeviceError",
    "DeviceUnavailable",
    "EdgekitError",
    "EdgekitWarning",
    "FetchError",
    "InputError",
    "Manifest",
    "ManifestError",
    "Model",
    "ModelError",
    "ModelFormatError",
    "ModelNotFound",
    "Placement",
    "PlacementError",
    "TensorSpec",
    "load",
]
