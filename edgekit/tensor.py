"""Tensor metadata shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Dim = int | str | None
"""A dimension: a fixed size, a named dynamic dimension (``"N"``), or ``None`` when unknown."""


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of an integer tensor: ``real = scale * (q - zero_point)``.

    ``scale`` and ``zero_point`` are scalars for per-tensor quantization and 1-D arrays (along
    ``axis``) for per-channel quantization.
    """

    scale: Any
    zero_point: Any
    axis: int | None = None


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, dtype, quantization and layout of one model input or output."""

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype[Any]
    index: int = 0
    quantization: Quantization | None = None
    layout: str | None = None
    _static: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        static = tuple((axis, d) for axis, d in enumerate(self.shape) if isinstance(d, int))
        object.__setattr__(self, "_static", static)

    @property
    def is_dynamic(self) -> bool:
        """True when at least one dimension is not fixed."""
        return any(not isinstance(d, int) for d in self.shape)

    @property
    def is_quantized(self) -> bool:
        return self.quantization is not None

    def shape_str(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def describe(self) -> str:
        text = f"{self.name}: {self.dtype.name}{self.shape_str()}"
        if self.layout:
            text += f" {self.layout}"
        q = self.quantization
        if q is not None:
            text += f" (quantized: scale={_short(q.scale)}, zero_point={_short(q.zero_point)})"
        return text

    def mismatch(self, shape: tuple[int, ...]) -> str | None:
        """Why ``shape`` does not fit this spec, or ``None`` when it does."""
        if len(shape) != len(self.shape):
            return (
                f"has {len(shape)} dimensions {list(shape)}, the model expects {self.shape_str()}"
            )
        for axis, size in self._static:
            if shape[axis] != size:
                return (
                    f"has shape {list(shape)}, the model expects {self.shape_str()} "
                    f"(dimension {axis} must be {size})"
                )
        return None

    def example(self, fill: str = "random", dynamic: int = 1, seed: int = 0) -> npt.NDArray[Any]:
        """An array that fits this spec: dynamic dimensions become ``dynamic``."""
        import numpy as np

        shape = tuple(d if isinstance(d, int) else dynamic for d in self.shape)
        if fill == "zeros":
            return np.zeros(shape, dtype=self.dtype)
        rng = np.random.default_rng(seed)
        if self.dtype.kind == "f":
            return rng.standard_normal(shape).astype(self.dtype)
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            low, high = max(int(info.min), -128), min(int(info.max), 127)
            return rng.integers(low, high, size=shape, endpoint=True).astype(self.dtype)
        if self.dtype.kind == "b":
            return rng.integers(0, 1, size=shape, endpoint=True).astype(self.dtype)
        return np.zeros(shape, dtype=self.dtype)


def _short(value: Any) -> str:
    try:
        import numpy as np

        arr = np.asarray(value)
        if arr.ndim == 0:
            return f"{arr.item():.6g}"
        return f"<{arr.size} per-channel values>"
    except (TypeError, ValueError):
        return str(value)
