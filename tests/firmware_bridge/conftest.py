"""Fixtures: the C virtual device over a real pty, and the Python SimDevice over a real pty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge.errors import BridgeError
from firmware_bridge.simdevice import SimDevice, SimPtyServer
from firmware_bridge.virtual import C_DIR, VirtualDevice, build_virtual_device, start_virtual_device


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
def virtual_binary() -> Path:
    """The built C virtual device (built on first use)."""
    return virtual_binary_or_skip()


@pytest.fixture
def vdev(tmp_path: Path) -> Iterator[VirtualDevice]:
    """A fresh C virtual device with a stable symlink (its url survives replugs)."""
    virtual_binary_or_skip()
    dev = start_virtual_device(link=tmp_path / "vdev")
    yield dev
    dev.close()
