"""Device strings: which runtime executor a model should run on.

=============================  ==========================================================
``cpu``                        the default CPU path of the backend (LiteRT: with XNNPACK)
``auto``                       the best accelerator available here, else the CPU
``ort:PROVIDER[?k=v&...]``     an onnxruntime execution provider with options
                               (``ort:XnnpackExecutionProvider``, ``ort:OpenVINO?device_type=NPU``)
``tflite:xnnpack``             LiteRT with the XNNPACK delegate (same as ``cpu``)
``tflite:reference``           LiteRT's built-in kernels without any delegate
``tflite-delegate:PATH[?k=v]`` a LiteRT external delegate library (Coral, Rockchip, vendor NPUs)
=============================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from edgekit.errors import DeviceError

KINDS = ("cpu", "auto", "ort", "tflite", "tflite-delegate")


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device string."""

    kind: str
    target: str = ""
    options: dict[str, str] = field(default_factory=dict)
    text: str = "cpu"

    def __str__(self) -> str:
        return self.text


def parse_device(text: str | DeviceSpec | None) -> DeviceSpec:
    """Parse a device string; an unknown one raises :class:`DeviceError` listing the valid forms."""
    if isinstance(text, DeviceSpec):
        return text
    if text is None or text == "":
        return DeviceSpec("cpu")
    if not isinstance(text, str):
        raise DeviceError(f"device must be a string such as 'cpu', got {type(text).__name__}")
    raw = text.strip()
    lowered = raw.lower()
    if lowered in ("cpu", "auto"):
        return DeviceSpec(lowered, text=lowered)
    kind, sep, rest = raw.partition(":")
    kind = kind.lower()
    if not sep or kind not in KINDS or not rest:
        raise DeviceError(
            f"unknown device {text!r}. Use one of: cpu, auto, ort:PROVIDER "
            "(e.g. ort:XnnpackExecutionProvider), tflite:xnnpack, tflite:reference, "
            "tflite-delegate:/path/to/libdelegate.so"
        )
    target, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if kind == "ort":
        target = _provider_name(target)
    elif kind == "tflite":
        target = target.lower()
        if target not in ("xnnpack", "reference"):
            raise DeviceError(
                f"unknown LiteRT device {text!r}: use cpu, tflite:xnnpack or tflite:reference, or "
                "tflite-delegate:/path/to/libdelegate.so for a vendor delegate"
            )
    return DeviceSpec(kind, target, options, text=raw)


def _provider_name(name: str) -> str:
    """Accept ``Xnnpack`` as shorthand for ``XnnpackExecutionProvider``."""
    return name if name.endswith("ExecutionProvider") else name + "ExecutionProvider"
