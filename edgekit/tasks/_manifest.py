"""Reading a model manifest's ``[head]`` table and contracts for the heads."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from edgekit.errors import ManifestError

if TYPE_CHECKING:
    from edgekit.manifest import Manifest


def head_options(manifest: Manifest, known: Iterable[str]) -> dict[str, Any]:
    """The manifest's ``[head]`` table, refusing keys the head does not know."""
    allowed = sorted(known)
    options = dict(manifest.head)
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ManifestError(
                f"manifest {manifest.name}: [head] key {key!r} is not used by the "
                f"{manifest.task} head{hint}; known keys: {', '.join(allowed)}"
            )
    return options


def output_names(manifest: Manifest, count: int) -> tuple[str, ...] | None:
    """The manifest's output tensor names when it lists exactly ``count`` of them."""
    tensors = tuple(manifest.output.tensors)
    if not tensors:
        return None
    if len(tensors) != count:
        raise ManifestError(
            f"manifest {manifest.name}: output.tensors lists {len(tensors)} tensors, the "
            f"{manifest.task} head reads {count}"
        )
    return tensors


def unit_normalisation(
    manifest: Manifest,
    default_mean: tuple[float, float, float],
    default_std: tuple[float, float, float],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Mean and std for pixels scaled to [0, 1], whatever scale the manifest writes them in.

    A manifest gives ``(pixel * scale - mean) / std``; without ``scale`` the mean and std are in
    pixel units.
    """
    inp = manifest.input
    if inp.mean is None and inp.std is None:
        return default_mean, default_std
    # (pixel * s - mean) / std == (pixel / 255 - mean / (255 s)) / (std / (255 s))
    factor = 255.0 * (inp.scale if inp.scale is not None else 1.0)
    mean = tuple(float(m) / factor for m in (inp.mean or ()))
    std = tuple(float(v) / factor for v in (inp.std or ()))
    if inp.mean is None:
        mean = default_mean
    if inp.std is None:
        std = default_std
    if len(mean) != 3 or len(std) != 3:
        raise ManifestError(f"manifest {manifest.name}: input.mean and input.std need 3 values")
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])
