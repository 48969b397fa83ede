"""firmware_bridge: host side of the edgekit framed serial/USB protocol (docs/protocol.md).

    from firmware_bridge import Bridge

    with Bridge.open("serial:///dev/ttyACM0?baud=921600") as bridge:
        print(bridge.info.firmware_version)
        bridge.call("config.set", b"\x04mode" + b"demo")
        imu = bridge.subscribe("imu", rate_hz=200)
        sample = imu.get(timeout=1.0)
        bridge.upload("fw0", image, progress=lambda done, total: ...)

URLs: `serial://PORT?baud=N` (or any pyserial URL: `loop://`, `socket://HOST:PORT`),
`tcp://HOST:PORT`, `usb://VID:PID[?serial=...]`. Every failure is a `BridgeError`.
"""

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
