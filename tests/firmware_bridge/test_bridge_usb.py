"""usb:// through pyusb, with a simulated device behind pyusb's backend interface."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from firmware_bridge import Bridge, DeviceNotFound, Disconnected, TransportUnavailable
from firmware_bridge.discovery import list_usb_devices
from firmware_bridge.transport.usb_sim import SimUsbBackend, SimUsbDevice, install_sim_bus
from firmware_bridge.virtual import VirtualDeviceApi

_names = itertools.count()


@pytest.fixture
def bus() -> Iterator[tuple[str, SimUsbBackend]]:
    name = f"simbus{next(_names)}"
    backend = install_sim_bus(
        name,
        [
            SimUsbDevice(serial_number="A1"),
            SimUsbDevice(serial_number="B2", address=5),
            SimUsbDevice(vid=0x303A, pid=0x1001, serial_number="C3", address=6),
        ],
    )
    yield name, backend


def test_discovery_lists_vid_pid_serial_description(bus: tuple[str, SimUsbBackend]) -> None:
    _, backend = bus
    entries = list_usb_devices(backend)
    assert [(e.vid, e.pid, e.serial_number) for e in entries] == [
        (0x1209, 0xB1D6, "A1"),
        (0x1209, 0xB1D6, "B2"),
        (0x303A, 0x1001, "C3"),
    ]
    assert entries[0].url == "usb://1209:b1d6?serial=A1"
    assert entries[0].description == "edgekit bridge (simulated)"


def test_open_by_serial_and_talk(bus: tuple[str, SimUsbBackend]) -> None:
    name, backend = bus
    with Bridge.open(f"usb://1209:b1d6?serial=B2&backend={name}", timeout=2) as bridge:
        assert bridge.session_frame_limit == 16384
        assert bridge.ping(b"usb" * 100) < 1
        VirtualDeviceApi(bridge).config_set("via", "usb")
        data = bytes(range(256)) * 300
        result = bridge.upload("fw0", data)
        assert result.size == len(data)
    b2 = backend.devices[1].device
    assert b2.config == {"via": "usb"} and b2.fw_slot == data
    assert backend.devices[0].device.config == {}


def test_missing_device_and_backend_errors(bus: tuple[str, SimUsbBackend]) -> None:
    name, _ = bus
    with pytest.raises(DeviceNotFound, match="no USB device 1209:b1d6 with serial ZZ"):
        Bridge.open(f"usb://1209:b1d6?serial=ZZ&backend={name}", timeout=1)
    with pytest.raises(DeviceNotFound, match="expected usb://VID:PID"):
        Bridge.open(f"usb://nothex?backend={name}", timeout=1)
    with pytest.raises(TransportUnavailable, match="no USB backend named 'nope'"):
        Bridge.open("usb://1209:b1d6?backend=nope", timeout=1)


def test_unplug_fails_call_and_replug_reconnects(bus: tuple[str, SimUsbBackend]) -> None:
    name, backend = bus
    dev = backend.devices[2]
    with Bridge.open(f"usb://303a:1001?backend={name}", timeout=2) as bridge:
        epoch = bridge.epoch
        stream = bridge.subscribe("imu", 500)
        stream.get(timeout=2)
        dev.device.muted = True
        threading.Timer(0.1, dev.unplug).start()
        with pytest.raises(Disconnected, match="dropped"):
            bridge.call("sys.ping", b"x", timeout=3)
        time.sleep(0.3)
        dev.device.muted = False
        dev.plug()
        info = bridge.wait_session(3)
        assert info.epoch > epoch
        assert bridge.ping(b"back") < 1
        stream.drain()
        assert stream.get(timeout=2).seq < 100  # restarted by the bridge
        assert bridge.reconnects >= 1
