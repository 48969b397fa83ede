"""Classification: top-k of a score vector, optionally through a softmax, with labels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from edgekit.errors import ManifestError
from edgekit.tasks._manifest import head_options, output_names, unit_normalisation
from edgekit.tasks.errors import TaskInputError
from edgekit.tasks.image import ColorOrder, check_image, normalize_chw, to_order
from edgekit.tasks.types import Classification

if TYPE_CHECKING:
    from edgekit.manifest import Manifest

F32 = npt.NDArray[np.float32]


def softmax(logits: npt.ArrayLike, axis: int = -1) -> npt.NDArray[np.float64]:
    """Numerically stable softmax."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return np.asarray(e / np.sum(e, axis=axis, keepdims=True))


def _scores_1d(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(scores)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise TaskInputError(
            f"scores must be [C] or [1, C], got {list(arr.shape)}; use top_k_batch() for a batch"
        )
    if arr.size == 0:
        raise TaskInputError("scores are empty; the model returned no classes")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TaskInputError(f"scores must be real numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float64)
    if np.any(np.isnan(out)):
        raise TaskInputError("scores contain NaN; the model output is broken or was misread")
    return out


def top_k(
    scores: npt.ArrayLike,
    k: int = 5,
    *,
    labels: Sequence[str] | None = None,
    apply_softmax: bool = False,
    min_score: float | None = None,
) -> list[Classification]:
    """The ``k`` best classes, best first (ties: lower index first).

    Args:
        scores: ``[C]`` or ``[1, C]`` logits or probabilities.
        k: How many classes to return (fewer when there are fewer classes).
        labels: ``C`` class names.
        apply_softmax: Turn logits into probabilities first.
        min_score: Drop classes scoring below this (after the softmax).
    """
    values = _scores_1d(scores)
    if k < 1:
        raise TaskInputError(f"k must be at least 1, got {k}")
    if labels is not None and len(labels) != values.shape[0]:
        raise TaskInputError(
            f"{len(labels)} labels for {values.shape[0]} classes; pass the label file that "
            "belongs to this model"
        )
    if apply_softmax:
        values = softmax(values)
    k = min(k, values.shape[0])
    if k < values.shape[0]:
        # Only scores >= the k-th largest can make it; keeping every tie of that score lets
        # the stable sort below still prefer the lower index.
        kth = np.partition(values, values.shape[0] - k)[values.shape[0] - k]
        candidates = np.flatnonzero(values >= kth)
    else:
        candidates = np.arange(values.shape[0])
    # Stable sort on the negated scores keeps the lower index first among ties.
    best = candidates[np.argsort(-values[candidates], kind="stable")[:k]]
    result = [
        Classification(int(i), labels[i] if labels is not None else str(int(i)), float(values[i]))
        for i in best
    ]
    if min_score is not None:
        result = [c for c in result if c.score >= min_score]
    return result


def top_k_batch(
    scores: npt.ArrayLike,
    k: int = 5,
    *,
    labels: Sequence[str] | None = None,
    apply_softmax: bool = False,
    min_score: float | None = None,
) -> list[list[Classification]]:
    """:func:`top_k` for each row of ``[N, C]`` scores."""
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise TaskInputError(f"batched scores must be [N, C], got {list(arr.shape)}")
    return [
        top_k(row, k, labels=labels, apply_softmax=apply_softmax, min_score=min_score)
        for row in arr
    ]


@dataclass(frozen=True)
class ClassifierInput:
    """How a classifier wants its image.

    Attributes:
        width: Input width.
        height: Input height.
        mean: Per-channel mean subtracted after scaling to [0, 1] (model channel order).
        std: Per-channel standard deviation.
        layout: ``"NCHW"`` or ``"NHWC"``.
        color_order: Channel order the model was trained on.
        resize: ``"stretch"`` to the input size, or ``"keep-aspect-pad"``: scale to the input
            height keeping the aspect ratio (at most the input width) and pad on the right
            with zeros after normalisation.
    """

    width: int = 224
    height: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color_order: ColorOrder = "RGB"
    resize: Literal["stretch", "keep-aspect-pad"] = "stretch"


class ClassificationHead:
    """``classification``: uint8 image in, top-k :class:`Classification` list out.

    The image is resized as ``input_spec.resize`` says, scaled to [0, 1] and normalised with
    ``mean`` and ``std``.
    """

    task = "classification"

    def __init__(
        self,
        input_spec: ClassifierInput = ClassifierInput(),
        *,
        labels: Sequence[str] | None = None,
        k: int = 5,
        apply_softmax: bool = True,
        color_order: ColorOrder = "RGB",
        input_name: str = "input",
        output_name: str | None = None,
    ) -> None:
        self.input_spec = input_spec
        self.labels = tuple(labels) if labels is not None else None
        self.k = k
        self.apply_softmax = apply_softmax
        self.color_order: ColorOrder = color_order
        self.input_name = input_name
        self.output_name = output_name

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, metadata: Mapping[str, str] | None = None, **overrides: Any
    ) -> ClassificationHead:
        """Build the head from a manifest's input contract and labels; ``[head]`` keys:
        ``top_k`` and ``softmax`` (apply a softmax to the output; off by default)."""
        opts = head_options(manifest, ("top_k", "softmax"))
        inp = manifest.input
        height, width = inp.size or (224, 224)
        mean, std = unit_normalisation(manifest, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        layout = inp.layout or "NCHW"
        color = inp.color or "RGB"
        resize = inp.resize if inp.resize in ("stretch", "keep-aspect-pad") else None
        if layout not in ("NCHW", "NHWC") or color not in ("RGB", "BGR") or resize is None:
            raise ManifestError(
                f"manifest {manifest.name}: the classification head supports layout NCHW or "
                f"NHWC, color RGB or BGR and resize stretch or keep-aspect-pad; got {layout}, "
                f"{color}, {inp.resize}"
            )
        spec = ClassifierInput(
            width=int(width),
            height=int(height),
            mean=mean,
            std=std,
            layout="NCHW" if layout == "NCHW" else "NHWC",
            color_order="RGB" if color == "RGB" else "BGR",
            resize="stretch" if resize == "stretch" else "keep-aspect-pad",
        )
        kwargs: dict[str, Any] = {
            "input_spec": spec,
            "labels": tuple(manifest.output.labels) or None,
            "k": int(opts.get("top_k", 5)),
            "apply_softmax": bool(opts.get("softmax", False)),
        }
        if inp.name:
            kwargs["input_name"] = inp.name
        names = output_names(manifest, 1)
        if names is not None:
            kwargs["output_name"] = names[0]
        kwargs.update(overrides)
        return cls(**kwargs)

    def prepare(self, image: npt.NDArray[np.uint8]) -> tuple[dict[str, F32], None]:
        import cv2

        spec = self.input_spec
        src = np.ascontiguousarray(to_order(check_image(image), self.color_order, spec.color_order))
        if spec.resize == "keep-aspect-pad":
            h, w = src.shape[:2]
            new_w = min(spec.width, max(1, math.ceil(spec.height * w / h)))
        else:
            new_w = spec.width
        resized = cv2.resize(src, (new_w, spec.height))
        x = normalize_chw(
            resized, spec.mean, spec.std, np.zeros((3, spec.height, spec.width), np.float32)
        )
        if spec.layout == "NHWC":
            return {self.input_name: np.ascontiguousarray(x.transpose(1, 2, 0)[None])}, None
        return {self.input_name: x[None]}, None

    def decode(self, outputs: Mapping[str, Any], context: None = None) -> list[Classification]:
        if self.output_name is None:
            if len(outputs) != 1:
                raise TaskInputError(
                    f"the model has outputs {sorted(outputs)}; name the scores with output_name"
                )
            scores = next(iter(outputs.values()))
        elif self.output_name in outputs:
            scores = outputs[self.output_name]
        else:
            raise TaskInputError(
                f"model outputs have no {self.output_name!r} (got {sorted(outputs)})"
            )
        return top_k(scores, self.k, labels=self.labels, apply_softmax=self.apply_softmax)


__all__ = [
    "ClassificationHead",
    "ClassifierInput",
    "softmax",
    "top_k",
    "top_k_batch",
]
