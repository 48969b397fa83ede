"""Quantization recipes: what onnxruntime's tools are asked to do, as data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
    weights. ``exclude`` names nodes that stay in float.
    """

    mode: str = "static"
    format: str = "qdq"
    activations: str = "u8"
    weights: str = "s8"
    per_channel: bool = True
    method: str = "minmax"
    reduce_range: bool = False
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


# onnxruntime's quantize_static defaults (QDQ, s8 activations and weights, per-tensor, MinMax):
# what a user gets without knowing better. Reported next to ours for comparison.
ORT_DEFAULT = Recipe(activations="s8", weights="s8", per_channel=False)

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
