"""Fixtures: the C virtual device over a real pty, and the Python SimDevice over a real pty."""

from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_bridge.errors import BridgeError
from firmware_bridge.simdevice import SimDevice
from firmware_bridge.virtual import C_DIR, VirtualDevice, build_virtual_device, start_virtual_device


class SimPtyServer:
    """Serves a SimDevice on the master side of a pty pair from a thread."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.url = f"serial://{self.path}"
        self.intercept: Callable[[bytes], bytes] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sim-pty", daemon=True)
        self._thread.start()

    def inject(self, data: bytes) -> None:
        """Write raw bytes to the host as if the device sent them."""
        with self._lock:
            os.write(self.master, data)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.002)
            with self._lock:
                if ready:
                    try:
                        self.device.receive(os.read(self.master, 65536))
                    except OSError:
                        return
                self.device.poll(int((time.monotonic() - t0) * 1e6))
                out = self.device.take_output()
                if out and self.intercept is not None:
                    out = self.intercept(out)
                if out:
                    os.write(self.master, out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def sim() -> Iterator[SimPtyServer]:
    server = SimPtyServer(SimDevice())
    yield server
    server.close()


_build_error: list[str] = []


def virtual_binary_or_skip() -> Path:
    if _build_error:
        pytest.skip(_build_error[0])
    if not (C_DIR / "Makefile").exists():
        _build_error.append("the C virtual device has no Makefile yet (firmware_bridge/c)")
        pytest.skip(_build_error[0])
    try:
        return build_virtual_device()
    except BridgeError as e:
        _build_error.append(f"the C virtual device does not build: {e}")
        pytest.skip(_build_error[0])


@pytest.fixture
def vdev(tmp_path: Path) -> Iterator[VirtualDevice]:
    """A fresh C virtual device with a stable symlink (its url survives replugs)."""
    virtual_binary_or_skip()
    dev = start_virtual_device(link=tmp_path / "vdev")
    yield dev
    dev.close()
