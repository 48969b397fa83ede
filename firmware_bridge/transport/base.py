"""The Transport seam: something that moves bytes to and from one device. No protocol here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from ..errors import BridgeError


@runtime_checkable
class Transport(Protocol):
    """A byte pipe to one device.

    `read` waits at most `poll_interval` seconds and returns b"" when nothing arrived; both
    `read` and `write` raise `Disconnected` when the link is gone and `write` raises
    `BridgeTimeout` when the device stops draining its input.
    """

    url: str
    frame_limit: int
    poll_interval: float

    def read(self, max_bytes: int) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsReadiness(Transport, Protocol):
    """Transports backed by a descriptor that can be polled without consuming input.

    The client then lets the thread that waits for an answer read it directly, without a
    wake-up through the reader thread.
    """

    def fileno(self) -> int: ...

    def read_available(self, max_bytes: int) -> bytes: ...


@runtime_checkable
class SupportsPartialWrites(Protocol):
    """Transports that can write what fits without waiting, so a sender can do useful work
    (encode its next frames) while the link drains instead of blocking in `write`."""

    def write_some(self, data: bytes | bytearray | memoryview) -> int:
        """Write what fits now; the number of bytes taken (0 when the link is full)."""
        ...

    def wait_writable(self, timeout: float) -> bool:
        """Wait until some bytes would fit; False after `timeout`."""
        ...


@runtime_checkable
class SupportsDirectWrites(Protocol):
    """Transports whose descriptor takes non-blocking write(2) as it is (a POSIX port), so that
    bulk frames can be encoded and written in C (firmware_bridge._native), one call a window."""

    def nonblocking_fd(self) -> int | None:
        """The descriptor, or None when it is not in non-blocking mode."""
        ...


@runtime_checkable
class SupportsModemLines(Protocol):
    """Transports with DTR/RTS lines (UARTs and USB CDC-ACM), used by reset strategies."""

    url: str

    def set_dtr(self, level: bool) -> None: ...

    def set_rts(self, level: bool) -> None: ...


@dataclass(frozen=True)
class ParsedUrl:
    """A transport URL split into the parts every opener needs."""

    url: str
    scheme: str
    location: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> ParsedUrl:
        if "://" not in url:
            # a bare device path or port name (/dev/ttyACM0, COM3) is a serial port
            return cls(url, "serial", url, {})
        parts = urlsplit(url)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return cls(url, parts.scheme.lower(), parts.netloc + parts.path, params)

    def int_param(self, name: str, default: int) -> int:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            return int(raw, 0)
        except ValueError as e:
            raise BridgeError(
                f"URL {self.url!r}: parameter {name}={raw!r} is not an integer"
            ) from e


@dataclass(frozen=True)
class DeviceEntry:
    """One attached device found by `list_devices`."""

    url: str
    kind: str
    description: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "kind": self.kind,
            "description": self.description,
            "vid": None if self.vid is None else f"{self.vid:04x}",
            "pid": None if self.pid is None else f"{self.pid:04x}",
            "serial_number": self.serial_number,
        }
