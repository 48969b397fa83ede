"""Serial ports through pyserial: `serial://PORT?baud=N` and pyserial's own URLs (loop://...)."""

from __future__ import annotations

import errno
import logging
import os
import select
import time
from typing import Any

from ..errors import (
    BridgeTimeout,
    DeviceNotFound,
    Disconnected,
    ResetFailed,
    TransportUnavailable,
)
from ..messages import DEFAULT_FRAME_LIMIT
from .base import ParsedUrl

logger = logging.getLogger(__name__)

DEFAULT_BAUD = 921600
POLL_INTERVAL = 0.05
WRITE_TIMEOUT = 2.0


def import_serial() -> Any:
    try:
        import serial
    except ImportError as e:
        raise TransportUnavailable(
            "serial transport needs pyserial, which is not installed: pip install edgekit[serial]"
        ) from e
    return serial


class SerialTransport:
    """A pyserial port. On POSIX ports it reads through the file descriptor (one syscall)."""

    def __init__(self, port: Any, url: str, frame_limit: int = DEFAULT_FRAME_LIMIT) -> None:
        self._port = port
        self._serial = import_serial()
        self.url = url
        self.frame_limit = frame_limit
        self.poll_interval = POLL_INTERVAL
        try:
            self._fd: int | None = port.fileno()
        except Exception:  # loop://, socket://... have no usable descriptor
            self._fd = None

    def read(self, max_bytes: int) -> bytes:
        try:
            if self._fd is not None:
                ready, _, _ = select.select([self._fd], [], [], self.poll_interval)
                if not ready:
                    return b""
                data = os.read(self._fd, max_bytes)
                if not data and _hung_up(self._fd):
                    raise Disconnected(f"{self.url}: port closed by the device (hang-up)")
                return data
            data = self._port.read(1)
            if data:
                waiting = self._port.in_waiting
                if waiting:
                    data += self._port.read(min(waiting, max_bytes - 1))
            return bytes(data)
        except (OSError, self._serial.SerialException) as e:
            raise Disconnected(f"{self.url}: read failed ({e}); device unplugged?") from e

    def write(self, data: bytes) -> None:
        try:
            if self._fd is not None:
                self._write_fd(self._fd, data)
            else:
                self._port.write(data)
        except self._serial.SerialTimeoutException as e:
            raise self._stalled() from e
        except (OSError, self._serial.SerialException) as e:
            raise Disconnected(f"{self.url}: write failed ({e}); device unplugged?") from e

    def _write_fd(self, fd: int, data: bytes) -> None:
        """os.write until done; wait for room only when the driver buffer is full."""
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return  # the usual case: one call, nothing else
        view = memoryview(data)[sent:]
        deadline = time.monotonic() + WRITE_TIMEOUT
        while view:
            try:
                view = view[os.write(fd, view) :]
                continue
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._stalled()
            select.select([], [fd], [], remaining)

    def _stalled(self) -> BridgeTimeout:
        return BridgeTimeout(
            f"{self.url}: write blocked for {WRITE_TIMEOUT}s; the device does not read its "
            "input (stalled, or flow control mismatch)"
        )

    def set_dtr(self, level: bool) -> None:
        self._lines("DTR", "dtr", level)

    def set_rts(self, level: bool) -> None:
        self._lines("RTS", "rts", level)

    def _lines(self, label: str, attr: str, level: bool) -> None:
        try:
            setattr(self._port, attr, level)
        except (OSError, self._serial.SerialException) as e:
            raise ResetFailed(
                f"Setting {label} is not supported for port {self.url} ({e}); "
                "open it with reset='none' and reset the board by hand"
            ) from e

    def close(self) -> None:
        try:
            self._port.close()
        except (OSError, self._serial.SerialException) as e:
            logger.debug("closing %s: %s", self.url, e)


class FdSerialTransport(SerialTransport):
    """A POSIX port: its descriptor can be polled, and read without blocking."""

    def fileno(self) -> int:
        if self._fd is None:
            raise Disconnected(f"{self.url}: port is closed")
        return self._fd

    def read_available(self, max_bytes: int) -> bytes:
        fd = self.fileno()
        try:
            data = os.read(fd, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as e:
            raise Disconnected(f"{self.url}: read failed ({e}); device unplugged?") from e
        if not data and _hung_up(fd):
            raise Disconnected(f"{self.url}: port closed by the device (hang-up)")
        return data

    def write_some(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return os.write(self.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError as e:
            raise Disconnected(f"{self.url}: write failed ({e}); device unplugged?") from e

    def nonblocking_fd(self) -> int | None:
        fd = self.fileno()
        return None if os.get_blocking(fd) else fd

    def wait_writable(self, timeout: float) -> bool:
        try:
            _, ready, _ = select.select([], [self.fileno()], [], timeout)
        except (OSError, ValueError) as e:
            raise Disconnected(f"{self.url}: link closed ({e})") from e
        return bool(ready)


def _hung_up(fd: int) -> bool:
    """A terminal reads b"" both at hang-up and when it has nothing: ask poll which it is."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in poller.poll(0))


def open_serial(url: ParsedUrl) -> SerialTransport:
    """Open `serial://PORT?baud=N`, a bare port name, or any pyserial URL (loop://, socket://)."""
    serial = import_serial()
    baud = url.int_param("baud", DEFAULT_BAUD)
    limit = url.int_param("frame_limit", DEFAULT_FRAME_LIMIT)
    target = url.location if url.scheme == "serial" else url.url
    try:
        port = serial.serial_for_url(
            target, baudrate=baud, timeout=POLL_INTERVAL, write_timeout=WRITE_TIMEOUT
        )
    except serial.SerialException as e:
        cause = e.__cause__ or e.__context__
        if getattr(e, "errno", None) == errno.ENOENT or (
            isinstance(cause, OSError) and cause.errno == errno.ENOENT
        ):
            raise DeviceNotFound(
                f"serial port {target} does not exist; check the cable or run "
                "`python -m firmware_bridge devices`"
            ) from e
        raise DeviceNotFound(f"cannot open serial port {target}: {e}") from e
    except (OSError, ValueError) as e:
        raise DeviceNotFound(f"cannot open serial port {target}: {e}") from e
    logger.debug("opened %s at %d baud", target, baud)
    transport = SerialTransport(port, url.url, limit)
    if transport._fd is not None:
        transport = FdSerialTransport(port, url.url, limit)
    return transport
