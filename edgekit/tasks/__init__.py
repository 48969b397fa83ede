"""Task heads: pure functions that turn model tensors into answers.

Each head is an object with ``prepare(input, ...) -> (feeds, context)`` and
``decode(outputs, context) -> result``, registered under the task name a model manifest carries
in its ``task`` field::

    model = edgekit.load("face-detection-short-range")
    head = edgekit.tasks.head_for(model)          # the manifest's task picks the head
    feeds, context = head.prepare(image)
    faces = head.decode(model.run(feeds), context)

``get_head("face-detection", **options)`` builds a head by task name without a manifest.

Heads never call a runtime themselves. The modules behind the registry are imported when a head
is first asked for, so ``import edgekit.tasks`` costs only numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgekit.tasks.errors import TaskInputError, UnknownTaskError
from edgekit.tasks.types import (
    Box,
    Classification,
    Detection,
    RecognizedText,
    SpeechSegment,
    TextBox,
    TextLine,
)

if TYPE_CHECKING:
    from edgekit.manifest import Manifest


@runtime_checkable
class TaskHead(Protocol):
    """What every head offers."""

    task: str

    def prepare(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        """Input (image, crops, audio chunk) -> model feeds by input name, and a context."""
        ...

    def decode(self, outputs: Mapping[str, Any], context: Any) -> Any:
        """Model outputs by name, and the context from :meth:`prepare` -> the answer."""
        ...


HeadFactory = Callable[..., TaskHead]

_BUILTIN: dict[str, str] = {
    "face-detection": "edgekit.tasks.face:FaceDetectionHead",
    "text-detection": "edgekit.tasks.ocr:TextDetectionHead",
    "text-recognition": "edgekit.tasks.ocr:TextRecognitionHead",
    "vad": "edgekit.tasks.vad:VadHead",
    "classification": "edgekit.tasks.classify:ClassificationHead",
}
_registry: dict[str, str | HeadFactory] = dict(_BUILTIN)


def register_head(task: str, factory: str | HeadFactory, *, replace: bool = False) -> None:
    """Register a head factory (or a ``"module:attribute"`` path to one) under ``task``."""
    if task in _registry and not replace:
        raise ValueError(f"a head is already registered for {task!r}; pass replace=True")
    _registry[task] = factory


def available_tasks() -> list[str]:
    """The task names a manifest may use."""
    return sorted(_registry)


def _resolve(task: str) -> HeadFactory:
    try:
        entry = _registry[task]
    except KeyError:
        raise UnknownTaskError(
            f"no head for task {task!r}; known tasks: {', '.join(available_tasks())} "
            "(register one with edgekit.tasks.register_head)"
        ) from None
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        factory: HeadFactory = getattr(importlib.import_module(module_name), attr)
        return factory
    return entry


def get_head(task: str, **options: Any) -> TaskHead:
    """Build the head for ``task`` with ``options`` (the head class's keyword arguments)."""
    return _resolve(task)(**options)


def head_for(source: Any, **overrides: Any) -> TaskHead:
    """Build the head a model's manifest asks for, configured by the manifest.

    Args:
        source: A loaded model (``edgekit.load(...)``, whose manifest and file metadata are
            both read; the text recogniser needs the latter for its charset) or a
            :class:`~edgekit.manifest.Manifest`.
        overrides: Keyword arguments of the head class that win over the manifest.
    """
    manifest: Manifest | None = getattr(source, "manifest", source)
    if manifest is None or not hasattr(manifest, "task"):
        raise TaskInputError(
            "this model has no manifest to name its task: load it by manifest name "
            "(edgekit.load('NAME')) or pick the head with get_head(task, ...)"
        )
    if not manifest.task:
        raise TaskInputError(
            f'manifest {manifest.name} has no task; add task = "..." (one of '
            f"{', '.join(available_tasks())}) or use get_head(task, ...)"
        )
    factory = _resolve(manifest.task)
    metadata_fn = getattr(source, "metadata", None)
    metadata = metadata_fn() if callable(metadata_fn) else None
    from_manifest = getattr(factory, "from_manifest", None)
    if from_manifest is None:
        return factory(**{**manifest.head, **overrides})
    head: TaskHead = from_manifest(manifest, metadata=metadata, **overrides)
    return head


__all__ = [
    "Box",
    "Classification",
    "Detection",
    "HeadFactory",
    "RecognizedText",
    "SpeechSegment",
    "TaskHead",
    "TaskInputError",
    "TextBox",
    "TextLine",
    "UnknownTaskError",
    "available_tasks",
    "get_head",
    "head_for",
    "register_head",
]
