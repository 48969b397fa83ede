"""firmware_bridge: host side of the edgekit framed serial/USB protocol."""

from __future__ import annotations

from .client import Bridge
from .discovery import list_devices
from .errors import (
    AuthError,
    BridgeError,
    BridgeTimeout,
    DeviceNotFound,
    Disconnected,
    FrameError,
    ProtocolError,
    RemoteError,
    ResetFailed,
    TransportUnavailable,
)
from .framing import Frame, FrameDecoder, encode_frame
from .messages import DeviceInfo, Status
from .streams import Sample, Stream

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Bridge",
    "BridgeError",
    "BridgeTimeout",
    "DeviceInfo",
    "DeviceNotFound",
    "Disconnected",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "ProtocolError",
    "RemoteError",
    "ResetFailed",
    "Sample",
    "Status",
    "Stream",
    "TransportUnavailable",
    "__version__",
    "encode_frame",
    "list_devices",
]
