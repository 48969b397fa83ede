"""The edgekit error tree.

Every error edgekit raises on purpose derives from :class:`EdgekitError`. Where a standard
exception is the natural thing to catch as well (``FileNotFoundError``, ``ValueError``,
``ImportError``, ``TimeoutError``), the edgekit error derives from both, so either catch works.
Each message says what went wrong and how to fix it.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Root of every error edgekit raises on purpose."""


class EdgekitWarning(UserWarning):
    """Something worked, but not the way it was asked for (for example a device fell back)."""


class ModelError(EdgekitError):
    """A model file cannot be used."""


class ModelNotFound(ModelError, FileNotFoundError):
    """A model path, manifest or name points at nothing."""


class ModelFormatError(ModelError, ValueError):
    """A file is not a model of the format it claims, is truncated, or has an unknown extension."""


class ManifestError(EdgekitError, ValueError):
    """A model manifest is malformed: missing, misspelt or mistyped keys."""


class ChecksumMismatch(ManifestError):
    """A model file's SHA-256 differs from the one its manifest pins."""


class FetchError(EdgekitError):
    """A model could not be fetched from its source."""


class InputError(EdgekitError, ValueError):
    """Inputs given to ``Model.run`` do not match the model's input specs."""


class BackendUnavailable(EdgekitError, ImportError):
    """The package a backend needs is not installed; the message names the extra to install."""


class DeviceError(EdgekitError, ValueError):
    """A device string names no known backend, provider or delegate."""


class DeviceUnavailable(DeviceError):
    """A known device cannot be used on this machine and fallback was not allowed."""


class PlacementError(DeviceUnavailable):
    """Part of the model would run on the CPU although an accelerator was required."""


__all__ = [
    "BackendUnavailable",
    "ChecksumMismatch",
    "DeviceError",
    "DeviceUnavailable",
    "EdgekitError",
    "EdgekitWarning",
    "FetchError",
    "InputError",
    "ManifestError",
    "ModelError",
    "ModelFormatError",
    "ModelNotFound",
    "PlacementError",
]
