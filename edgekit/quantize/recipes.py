"""Quantization recipes: what onnxruntime's tools are asked to do, as data."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

MODES = ("static", "dynamic", "fp16")
FORMATS = ("qdq", "qoperator")
TYPES = ("u8", "s8")
METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Recipe:
    """One way to quantize a model.

    ``static`` computes activation ranges from calibration data (``method``), ``dynamic``
    quantizes weights ahead of time and activations at run time, ``fp16`` halves the float
    weights. ``exclude`` names nodes that stay in float. ``reduce_range`` (7-bit weights) left
    at None is decided for this CPU when the recipe is built (see ``for_this_cpu``).
    """

    mode: str = "static"
    format: str = "qdq"
    activations: str = "u8"
    weights: str = "s8"
    per_channel: bool = True
    method: str = "minmax"
    reduce_range: bool | None = None
    exclude: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        checks = (
            ("mode", self.mode, MODES),
            ("format", self.format, FORMATS),
            ("activations", self.activations, TYPES),
            ("weights", self.weights, TYPES),
            ("method", self.method, METHODS),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"recipe {name} {value!r} is not one of {', '.join(allowed)}")

    @property
    def label(self) -> str:
        if self.mode == "fp16":
            return "fp16"
        if self.mode == "dynamic":
            return f"dynamic {self.weights} weights" + (" per-channel" if self.per_channel else "")
        text = (
            f"static {self.format.upper()} {self.activations}/{self.weights} "
            f"{'per-channel ' if self.per_channel else ''}{self.method}"
        )
        if self.reduce_range:
            text += " reduce-range"
        if self.exclude:
            text += f", {len(self.exclude)} nodes in float"
        return text

    def with_exclusions(self, nodes: tuple[str, ...]) -> Recipe:
        return replace(self, exclude=tuple(dict.fromkeys((*self.exclude, *nodes))))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exclude"] = list(self.exclude)
        return data

    @property
    def needs_calibration(self) -> bool:
        return self.mode == "static"

    @property
    def u8s8(self) -> bool:
        """Whether onnxruntime runs this recipe's integer kernels as u8 activations x s8
        weights (static u8/s8, and dynamic s8: dynamic activations are always u8)."""
        if self.mode == "dynamic":
            return self.weights == "s8"
        return self.mode == "static" and self.activations == "u8" and self.weights == "s8"

    def for_this_cpu(self, flags: frozenset[str] | None = None) -> Recipe:
        """The recipe with ``reduce_range`` decided: on where u8 x s8 products can saturate
        on this CPU (``u8s8_saturates``), off elsewhere; an explicit choice is kept."""
        if self.reduce_range is not None:
            return self
        return replace(self, reduce_range=self.u8s8 and u8s8_saturates(flags))


def u8s8_saturates(flags: frozenset[str] | None = None) -> bool:
    """Whether onnxruntime's u8 x s8 integer kernels can saturate on this CPU.

    x86-64 without VNNI multiplies u8 by s8 with VPMADDUBSW, which adds pairs of products into
    a saturating int16; onnxruntime's answer is 7-bit weights (reduce_range). With AVX-VNNI or
    AVX-512 VNNI the products accumulate in int32, and ARM's kernels do not saturate either.
    ``flags`` are /proc/cpuinfo's flags (read from this machine when None).
    """
    if flags is None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
            return False
        flags = _cpu_flags()
        if not flags:
            return False  # nothing known of this CPU: keep onnxruntime's default
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni", "avx512vnni", "avxvnni"}


@cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


# onnxruntime's quantize_static defaults (QDQ, s8 activations and weights, per-tensor, MinMax):
# what a user gets without knowing better. Reported next to ours for comparison.
ORT_DEFAULT = Recipe(activations="s8", weights="s8", per_channel=False, reduce_range=False)

# Tried by --search, best bet for x86/ARM CPUs first.
CANDIDATES: tuple[Recipe, ...] = (
    Recipe(),
    Recipe(method="percentile"),
    Recipe(method="entropy"),
    Recipe(format="qoperator"),
    Recipe(activations="s8"),
    Recipe(per_channel=False),
    Recipe(mode="dynamic", weights="u8", per_channel=False),
    Recipe(mode="dynamic", weights="s8", per_channel=True),
    Recipe(mode="fp16"),
)
