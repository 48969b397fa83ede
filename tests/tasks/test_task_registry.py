"""The head registry: task names, manifests' task fields, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from edgekit import models
from edgekit.tasks import (
    TaskHead,
    UnknownTaskError,
    available_tasks,
    get_head,
    register_head,
)

OPTIONS: dict[str, dict[str, Any]] = {"text-recognition": {"charset": ("", "a", " ")}}


def test_builtin_tasks() -> None:
    assert set(available_tasks()) >= {
        "face-detection",
        "text-detection",
        "text-recognition",
        "vad",
        "classification",
    }
    for task in available_tasks():
        head = get_head(task, **OPTIONS.get(task, {}))
        assert isinstance(head, TaskHead)
        assert head.task == task


def test_every_manifest_task_has_a_head() -> None:
    manifests = models.list_manifests()
    assert manifests
    for manifest in manifests:
        assert manifest.task in available_tasks(), (manifest.name, manifest.task)


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskError) as info:
        get_head("pose-estimation")
    message = str(info.value)
    assert "pose-estimation" in message and "face-detection" in message
    assert isinstance(info.value, KeyError)


def test_register_a_head() -> None:
    class Echo:
        task = "echo-test"

        def prepare(self, value: Any) -> tuple[dict[str, Any], None]:
            return {"x": value}, None

        def decode(self, outputs: Any, context: Any) -> Any:
            return outputs["x"]

    register_head("echo-test", Echo)
    head = get_head("echo-test")
    feeds, ctx = head.prepare(3)
    assert head.decode(feeds, ctx) == 3
    with pytest.raises(ValueError, match="already registered"):
        register_head("echo-test", Echo)


def test_import_is_cheap() -> None:
    code = (
        "import sys, edgekit.tasks, edgekit.tasks.types;"
        "heavy = [m for m in ('cv2', 'onnxruntime', 'ai_edge_litert', 'tensorflow', 'torch') "
        "if m in sys.modules];"
        "assert not heavy, heavy;"
        "import edgekit.tasks.face, edgekit.tasks.ocr, edgekit.tasks.vad, edgekit.tasks.classify;"
        "heavy = [m for m in ('cv2', 'onnxruntime', 'ai_edge_litert') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
