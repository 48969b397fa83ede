"""A fault-injecting proxy between a host and a device, for tests and benchmarks.

The proxy opens the device's URL like the host would (any transport URL) and offers the host a
new pseudo-terminal (or a TCP port on 127.0.0.1). Bytes in each direction pass through a
`FaultInjector` that, with a seeded RNG and a given probability per byte, drops, bit-flips,
duplicates, truncates (up to the next frame delimiter) or delays them, and a `Pacer` that can
hold the link to the byte rate of a UART. When the device side disconnects, the host side is
closed too and both are reopened, so an unplug propagates through the proxy.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import BridgeError, DeviceNotFound, Disconnected
from .transport import Transport, open_transport

logger = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "flip", "duplicate", "truncate", "delay")
READ_SIZE = 4096
IDLE_GAP = 0.002
MAX_CATCH_UP = 0.02  # oversleeping by more than this counts as an idle line


@dataclass
class FaultStats:
    bytes_in: int = 0
    bytes_out: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))


class FaultInjector:
    """Applies faults to a byte stream. No I/O: `apply` returns (delay, bytes) pieces."""

    def __init__(
        self,
        rate: float = 0.0,
        kinds: Sequence[str] = FAULT_KINDS,
        seed: int = 0,
        max_delay: float = 0.02,
    ) -> None:
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise BridgeError(f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}")
        if not 0.0 <= rate <= 1.0:
            raise BridgeError(f"fault rate {rate} is not a probability in [0, 1]")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.max_delay = max_delay
        self.stats = FaultStats()
        self._rng = random.Random(seed)
        self._gap = self._next_gap()

    def _next_gap(self) -> int:
        """Bytes until the next fault: geometric, so the per-byte probability is `rate`."""
        if self.rate <= 0 or not self.kinds:
            return 1 << 62
        if self.rate >= 1:
            return 0
        u = self._rng.random()
        return int(math.log1p(-u) / math.log1p(-self.rate))

    def apply(self, data: bytes) -> list[tuple[float, bytes]]:
        self.stats.bytes_in += len(data)
        pieces: list[tuple[float, bytes]] = []
        out = bytearray()
        delay = 0.0
        pos = 0
        n = len(data)
        while pos < n:
            if self._gap >= n - pos:
                self._gap -= n - pos
                out += data[pos:]
                break
            out += data[pos : pos + self._gap]
            pos += self._gap
            kind = self._rng.choice(self.kinds)
            self.stats.faults[kind] += 1
            byte = data[pos]
            if kind == "drop":
                pos += 1
            elif kind == "flip":
                out.append(byte ^ (1 << self._rng.randrange(8)))
                pos += 1
            elif kind == "duplicate":
                out += bytes((byte, byte))
                pos += 1
            elif kind == "truncate":
                end = data.find(b"\x00", pos)
                if end == pos:  # the delimiter itself: nothing to cut
                    out.append(byte)
                    pos += 1
                else:
                    pos = n if end < 0 else end
            else:  # delay: everything from here on waits
                pieces.append((delay, bytes(out)))
                out = bytearray()
                delay = self._rng.uniform(0, self.max_delay)
            self._gap = self._next_gap()
        pieces.append((delay, bytes(out)))
        result = [(d, chunk) for d, chunk in pieces if chunk or d > 0]
        self.stats.bytes_out += sum(len(chunk) for _, chunk in result)
        return result


class Pacer:
    """Holds writes to the byte rate of a UART (10 bits per byte: start, 8 data, stop)."""

    def __init__(self, baud: int | None) -> None:
        self.bytes_per_second = None if baud is None else baud / 10.0
        self._free_at = 0.0

    def slices(self, data: bytes) -> list[bytes]:
        if self.bytes_per_second is None:
            return [data]
        step = max(1, int(self.bytes_per_second / 1000))  # about 1 ms of line time
        return [data[i : i + step] for i in range(0, len(data), step)]

    def wait(self, nbytes: int, stop: threading.Event, continuing: bool = False) -> None:
        """Sleep until `nbytes` more would have left the UART.

        Slices of one chunk are `continuing`: the line was busy all along, so they follow the
        schedule even when a sleep overshot (the next slice makes up for it). A new chunk after
        an idle line starts the schedule again from now.
        """
        if self.bytes_per_second is None:
            return
        now = time.monotonic()
        behind = now - self._free_at
        start = self._free_at if continuing and behind < MAX_CATCH_UP else max(now, self._free_at)
        self._free_at = start + nbytes / self.bytes_per_second
        delay = self._free_at - now
        if delay > 0:
            stop.wait(delay)


class HostSide(Protocol):
    """The endpoint the host connects to."""

    url: str

    def open(self) -> None: ...

    def read(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class PtyHostSide:
    """A pseudo-terminal; the host opens `url` (the link path when one is given)."""

    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        self.link = None if link is None else Path(link)
        self.url = ""
        self._master = -1
        self._slave = -1

    def open(self) -> None:
        import pty
        import tty

        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        path = os.ttyname(self._slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(path)
            tmp.replace(self.link)
            path = str(self.link)
        self.url = f"serial://{path}"

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._master, READ_SIZE)
        except OSError as e:
            raise Disconnected(f"host side of the proxy closed ({e})") from e

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self._master], [], 2.0)
            if not ready:
                raise Disconnected("the host does not read from the proxy")
            try:
                view = view[os.write(self._master, view) :]
            except OSError as e:
                raise Disconnected(f"host side of the proxy closed ({e})") from e

    def close(self) -> None:
        for fd in (self._slave, self._master):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1


class TcpHostSide:
    """A listening socket on 127.0.0.1; one host connection at a time."""

    def __init__(self, port: int = 0) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))
        self.url = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self._conn: socket.socket | None = None

    def open(self) -> None:
        return None

    def _accept(self, timeout: float) -> socket.socket | None:
        if self._conn is None:
            ready, _, _ = select.select([self._listener], [], [], timeout)
            if not ready:
                return None
            self._conn, _ = self._listener.accept()
            self._conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn.settimeout(2.0)
        return self._conn

    def read(self, timeout: float) -> bytes:
        conn = self._accept(timeout)
        if conn is None:
            return b""
        ready, _, _ = select.select([conn], [], [], timeout)
        if not ready:
            return b""
        try:
            data = conn.recv(READ_SIZE)
        except OSError as e:
            raise Disconnected(f"host connection to the proxy failed ({e})") from e
        if not data:
            raise Disconnected("the host closed its connection to the proxy")
        return data

    def write(self, data: bytes) -> None:
        conn = self._conn
        if conn is None:
            return  # no host yet: bytes are lost, as on a cable nobody listens to
        try:
            conn.sendall(data)
        except OSError as e:
            raise Disconnected(f"host connection to the proxy failed ({e})") from e

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def shutdown(self) -> None:
        self.close()
        self._listener.close()


class FaultProxy:
    """Host <-> proxy <-> device with faults and pacing in both directions.

    Args:
        upstream: the device's URL (what the host would open without the proxy).
        rate: fault probability per byte, in each direction.
        kinds: which faults to inject (drop, flip, duplicate, truncate, delay).
        seed: RNG seed; the two directions use seed and seed + 1.
        baud: pace each direction like a UART of this many baud (None: unpaced).
        link: symlink to keep pointing at the host-side pty (survives replugs).
        tcp_port: offer TCP on 127.0.0.1 instead of a pty (0 picks a free port).
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        kinds: Sequence[str] = FAULT_KINDS,
        seed: int = 0,
        baud: int | None = None,
        max_delay: float = 0.02,
        link: str | os.PathLike[str] | None = None,
        tcp_port: int | None = None,
    ) -> None:
        self.upstream = upstream
        self.to_device = FaultInjector(rate, kinds, seed, max_delay)
        self.to_host = FaultInjector(rate, kinds, seed + 1, max_delay)
        self._baud = baud
        self._host: HostSide = PtyHostSide(link) if tcp_port is None else TcpHostSide(tcp_port)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._session_over = threading.Event()
        self.replugs = 0
        self._device: Transport = open_transport(upstream)
        self._host.open()
        self._ready.set()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self._host.url

    def set_faults(self, direction: str, rate: float, kinds: Sequence[str] = FAULT_KINDS) -> None:
        """Change the faults of one direction ("to_device" or "to_host") while running."""
        injector = {"to_device": self.to_device, "to_host": self.to_host}[direction]
        FaultInjector(rate, kinds)  # validates
        injector.rate, injector.kinds = rate, tuple(kinds)
        injector._gap = injector._next_gap()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            pumps = [
                threading.Thread(
                    target=self._pump_up, args=(Pacer(self._baud),), name="fault-proxy-up"
                ),
                threading.Thread(
                    target=self._pump_down, args=(Pacer(self._baud),), name="fault-proxy-down"
                ),
            ]
            self._session_over = threading.Event()
            for p in pumps:
                p.start()
            while not self._stop.is_set() and not self._session_over.wait(0.05):
                pass
            self._session_over.set()
            for p in pumps:
                p.join(3)
            if self._stop.is_set():
                return
            # the device went away: unplug the host side too, then wait for the device
            self._ready.clear()
            self._device.close()
            self._host.close()
            self._reopen()

    def _reopen(self) -> None:
        backoff = 0.02
        while not self._stop.is_set():
            try:
                self._device = open_transport(self.upstream)
            except (DeviceNotFound, Disconnected) as e:
                logger.debug("proxy waiting for %s: %s", self.upstream, e)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 0.5)
                continue
            self._host.open()
            self.replugs += 1
            self._ready.set()
            return

    def _pump_up(self, pacer: Pacer) -> None:
        self._pump(self._host.read, self._device.write, self.to_device, pacer)

    def _pump_down(self, pacer: Pacer) -> None:
        def device_read(timeout: float) -> bytes:
            return self._device.read(READ_SIZE)

        self._pump(device_read, self._host.write, self.to_host, pacer)

    def _pump(
        self,
        read: Callable[[float], bytes],
        write: Callable[[bytes], None],
        injector: FaultInjector,
        pacer: Pacer,
    ) -> None:
        try:
            while not self._session_over.is_set():
                asked = time.monotonic()
                data = read(0.05)
                if not data:
                    continue
                # data that was already waiting keeps the line busy: no idle gap on the wire
                busy = time.monotonic() - asked < IDLE_GAP
                for delay, chunk in injector.apply(data):
                    if delay:
                        self._stop.wait(delay)
                        busy = False
                    for piece in pacer.slices(chunk):
                        pacer.wait(len(piece), self._stop, continuing=busy)
                        busy = True
                        write(piece)
        except BridgeError as e:
            logger.debug("proxy link ended: %s", e)
        finally:
            self._session_over.set()

    def stats(self) -> dict[str, FaultStats]:
        return {"to_device": self.to_device.stats, "to_host": self.to_host.stats}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._host.close()
        if isinstance(self._host, TcpHostSide):
            self._host.shutdown()
        self._device.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
