"""The seam between :class:`edgekit.Model` and a runtime library."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy.typing as npt

    from edgekit.tensor import TensorSpec


@dataclass(frozen=True)
class Placement:
    """Where a model's nodes run.

    ``nodes`` counts nodes (onnxruntime) or ops (LiteRT) per executor; ``fallback`` lists the
    nodes that ended up on the CPU although an accelerator was asked for, as ``(name, op_type)``.
    """

    backend: str
    device: str
    requested: str
    nodes: Mapping[str, int]
    fallback: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return sum(self.nodes.values())

    @property
    def accelerated(self) -> int:
        """Nodes that run on something other than the plain CPU executor."""
        return sum(n for executor, n in self.nodes.items() if not _is_cpu(executor))

    def describe(self) -> str:
        lines = [f"backend {self.backend}, device {self.device} (requested {self.requested})"]
        for executor, n in sorted(self.nodes.items(), key=lambda kv: -kv[1]):
            share = 100.0 * n / self.total if self.total else 0.0
            lines.append(f"  {executor}: {n} nodes ({share:.0f}%)")
        if self.fallback:
            lines.append(f"  fell back to CPU: {len(self.fallback)} nodes")
            lines.extend(f"    {name or '<unnamed>'} ({op})" for name, op in self.fallback[:50])
            if len(self.fallback) > 50:
                lines.append(f"    ... and {len(self.fallback) - 50} more")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def layout_for(layouts: Mapping[str, str], index: int, name: str) -> str | None:
    """A tensor's layout from a manifest: by name, or the unnamed entry for the first input."""
    return layouts.get(name) or (layouts.get("") if index == 0 else None)


def _is_cpu(executor: str) -> bool:
    return executor in {"CPUExecutionProvider", "cpu", "litert:reference"}


class Backend(Protocol):
    """What a runtime adapter provides. Instances are made by a :class:`BackendFactory`."""

    name: str
    device: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def run(self, feeds: Sequence[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        """Run on inputs already checked and ordered like ``inputs``; outputs like ``outputs``."""
        ...

    def placement(self) -> Placement: ...

    def metadata(self) -> dict[str, str]: ...

    def op_counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...
