"""`tcp://host:port`: a raw byte stream over TCP (the virtual device's --tcp mode, ser2net)."""

from __future__ import annotations

import logging
import select
import socket

from ..errors import BridgeTimeout, DeviceNotFound, Disconnected
from ..messages import DEFAULT_FRAME_LIMIT
from .base import ParsedUrl

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
WRITE_TIMEOUT = 2.0


class TcpTransport:
    def __init__(self, sock: socket.socket, url: str, frame_limit: int) -> None:
        self._sock = sock
        self.url = url
        self.frame_limit = frame_limit
        self.poll_interval = 0.05

    def read(self, max_bytes: int) -> bytes:
        try:
            ready, _, _ = select.select([self._sock], [], [], self.poll_interval)
            if not ready:
                return b""
            data = self._sock.recv(max_bytes)
        except OSError as e:
            raise Disconnected(f"{self.url}: connection lost ({e})") from e
        if not data:
            raise Disconnected(f"{self.url}: the device closed the connection")
        return data

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_available(self, max_bytes: int) -> bytes:
        try:
            data = self._sock.recv(max_bytes, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return b""
        except OSError as e:
            raise Disconnected(f"{self.url}: connection lost ({e})") from e
        if not data:
            raise Disconnected(f"{self.url}: the device closed the connection")
        return data

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except TimeoutError as e:
            raise BridgeTimeout(
                f"{self.url}: send blocked for {WRITE_TIMEOUT}s; the device does not read"
            ) from e
        except OSError as e:
            raise Disconnected(f"{self.url}: connection lost ({e})") from e

    def write_some(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return self._sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError as e:
            raise Disconnected(f"{self.url}: connection lost ({e})") from e

    def wait_writable(self, timeout: float) -> bool:
        try:
            _, ready, _ = select.select([], [self._sock], [], timeout)
        except (OSError, ValueError) as e:
            raise Disconnected(f"{self.url}: connection lost ({e})") from e
        return bool(ready)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError as e:
            logger.debug("closing %s: %s", self.url, e)


def open_tcp(url: ParsedUrl) -> TcpTransport:
    host, sep, port_text = url.location.rstrip("/").rpartition(":")
    if not sep or not port_text.isdigit():
        raise DeviceNotFound(f"{url.url}: expected tcp://HOST:PORT")
    try:
        sock = socket.create_connection((host or "127.0.0.1", int(port_text)), CONNECT_TIMEOUT)
    except OSError as e:
        raise DeviceNotFound(
            f"cannot connect to {url.url} ({e}); is the device (or bridge-virtual --tcp) running?"
        ) from e
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(WRITE_TIMEOUT)
    return TcpTransport(sock, url.url, url.int_param("frame_limit", DEFAULT_FRAME_LIMIT))
