"""Exception tree of firmware_bridge: every failure a caller can see is a `BridgeError`."""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BridgeError",
    "BridgeTimeout",
    "DeviceNotFound",
    "Disconnected",
    "FrameError",
    "ProtocolError",
    "RemoteError",
    "ResetFailed",
    "TransportUnavailable",
]


class BridgeError(Exception):
    """Root of every error raised by firmware_bridge."""


class ProtocolError(BridgeError):
    """The peer sent something the protocol does not allow (bad HELLO, unknown version...)."""


class FrameError(ProtocolError):
    """A frame or payload could not be encoded or decoded (size, CRC, COBS, layout)."""


class Disconnected(BridgeError):
    """The link dropped or the session epoch changed while an operation was in flight."""


class BridgeTimeout(BridgeError, TimeoutError):
    """No answer within the given timeout."""


class DeviceNotFound(BridgeError):
    """No device matches the URL (port missing, VID:PID not attached, host unreachable)."""


class AuthError(BridgeError):
    """Authentication is required, misconfigured, or the device rejected our tag."""


class TransportUnavailable(BridgeError):
    """A transport needs an optional dependency that is missing, or its scheme is unknown."""


class ResetFailed(BridgeError):
    """A reset strategy could not drive the port's DTR/RTS lines."""


class RemoteError(BridgeError):
    """The device answered a call with a non-OK status."""

    def __init__(self, status: int, name: str, method: str, detail: bytes = b"") -> None:
        self.status = status
        self.status_name = name
        self.method = method
        self.detail = detail
        hint = _STATUS_HINTS.get(name, "")
        text = f"device answered {method} with status {status} {name}"
        if detail:
            text += f" ({detail[:80].decode('utf-8', 'replace')})"
        if hint:
            text += f": {hint}"
        super().__init__(text)


_STATUS_HINTS = {
    "UNKNOWN_METHOD": "the firmware does not offer this method; check Bridge.info.methods",
    "BAD_ARGS": "the arguments do not match the method's layout or range",
    "BUSY": "the device is busy; retry later",
    "NOT_FOUND": "the key or object does not exist on the device",
    "UNAUTHENTICATED": "open the bridge with the device's auth_key",
    "INTERNAL": "the firmware failed internally; check its log channel",
    "TOO_LARGE": "the request exceeds a device limit; send less data",
    "INTEGRITY": "the data arrived corrupted (SHA-256 mismatch); send it again",
    "STALE": "the call id is older than the device remembers; the call was not executed",
    "UNSUPPORTED": "the device does not support this operation",
}
