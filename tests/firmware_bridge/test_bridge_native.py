"""The C library's bulk frame encoder (firmware_bridge._native) against the Python one."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge import Bridge, _native
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import FrameDecoder, encode_body
from firmware_bridge.virtual import VirtualDevice, VirtualDeviceApi, start_virtual_device


@pytest.fixture
def native(virtual_binary: Path) -> _native.Encoder:
    # make builds build/libbridge_host.so along with the virtual device
    encode, why = _native.load()
    assert encode is not None, why
    return encode


def _bodies() -> Iterator[bytes]:
    rng = random.Random(7)
    for size in (0, 1, 253, 254, 255, 1000, 1024, 4093, 16364, 16380):
        yield os.urandom(size)
        yield bytes(size)  # all zeros
        yield b"\x42" * size  # no zeros: full COBS blocks
        yield bytes(rng.choice((0, 0, 1, 255)) for _ in range(size))


def test_native_frames_are_the_python_frames_byte_for_byte(native: _native.Encoder) -> None:
    for body in _bodies():
        assert bytes(native(bytearray(body), 0)) == encode_body(body), len(body)


def test_native_frames_decode(native: _native.Encoder) -> None:
    header = bytes([1, 0, 3, 3, 9, 0, 0, 0, 5, 0, 0, 0])
    payload = os.urandom(16000)
    frames = FrameDecoder(16384).feed(bytes(native(bytearray(header + payload), 16384)))
    assert len(frames) == 1 and frames[0].payload == payload and frames[0].header.id == 5


def test_native_checks_the_frame_limit(native: _native.Encoder) -> None:
    with pytest.raises(FrameError, match="over the session frame limit 1024"):
        native(bytearray(1021), 1024)


def test_native_is_optional(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    encode, why = _native.load(tmp_path / "libbridge_host.so")
    assert encode is None and "not built" in why
    monkeypatch.setenv("FIRMWARE_BRIDGE_NATIVE", "0")
    encode, why = _native.load()
    assert encode is None and "FIRMWARE_BRIDGE_NATIVE=0" in why


@pytest.fixture
def slot_device(virtual_binary: Path, tmp_path: Path) -> Iterator[VirtualDevice]:
    dev = start_virtual_device(link=tmp_path / "vdev", frame_limit=16384)
    yield dev
    dev.close()


@pytest.mark.parametrize("encoder", ["native", "python"])
def test_upload_with_either_encoder(
    slot_device: VirtualDevice, monkeypatch: pytest.MonkeyPatch, encoder: str
) -> None:
    """The device takes the same 1 MiB image whichever encoder framed it."""
    loaded = _native.load()
    if encoder == "native":
        assert loaded[0] is not None, loaded[1]
    monkeypatch.setattr(_native, "_loaded", loaded if encoder == "native" else (None, "off"))
    image = os.urandom(1 << 20)
    with Bridge.open(slot_device.url, timeout=5, frame_limit=16384) as bridge:
        result = bridge.upload("fw0", image)
        slot = VirtualDeviceApi(bridge).fw_slot()
    assert result.size == len(image) and slot.valid and slot.size == len(image)
