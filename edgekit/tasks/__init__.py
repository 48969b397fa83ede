"""Task heads: pure functions that turn model tensors into answers.

Each head is an object with ``prepare(input, ...) -> (feeds, context)`` and
``decode(outputs, context) -> result``, registered under the task name a model manifest carries
in its ``task`` field::

    head = edgekit.tasks.get_head("face-detection")
    feeds, context = head.prepare(image)
    faces = head.decode(model.run(feeds), context)

Heads never call a runtime themselves. The modules behind the registry are imported when a head
is first asked for, so ``import edgekit.tasks`` costs only numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

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
    "register_head",
]
