"""A deterministic USB device behind pyusb's backend seam (`usb.backend.IBackend`).

There is no USB gadget support on a build machine, so `SimUsbBackend` plays the bus: it
enumerates `SimUsbDevice`s with real descriptors (one vendor interface, bulk OUT 0x01 and bulk
IN 0x81, string descriptors) and routes bulk transfers to a `SimDevice` that speaks the bridge
protocol. `unplug()` / `plug()` make transfers fail with ENODEV and the device vanish from
enumeration, as a yanked cable does.
"""

from __future__ import annotations

import array
import errno
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import usb.backend
import usb.core

from ..messages import USB_FRAME_LIMIT
from ..simdevice import SimDevice
from .usb import register_usb_backend

EP_OUT = 0x01
EP_IN = 0x81
MAX_PACKET = 512
_GET_DESCRIPTOR = 0x06
_DESC_STRING = 0x03


@dataclass
class _Descriptor:
    fields: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(eq=False)
class SimUsbDevice:
    vid: int = 0x1209
    pid: int = 0xB1D6
    serial_number: str = "SIM0001"
    product: str = "edgekit bridge (simulated)"
    device: SimDevice = field(default_factory=lambda: SimDevice(frame_limit=USB_FRAME_LIMIT))
    attached: bool = True
    bus: int = 1
    address: int = 4
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _t0: float = field(default_factory=time.monotonic)

    def unplug(self) -> None:
        with self._cond:
            self.attached = False
            self._cond.notify_all()

    def plug(self) -> None:
        with self._cond:
            self.attached = True
            self.device._decoder.reset()
            self.device.take_output()

    def strings(self) -> dict[int, str]:
        return {1: "edgekit", 2: self.product, 3: self.serial_number}


class SimUsbBackend(usb.backend.IBackend):  # type: ignore[misc]
    """A pyusb backend whose bus holds only simulated devices."""

    def __init__(self, devices: list[SimUsbDevice]) -> None:
        self.devices = devices

    # --- enumeration and descriptors ------------------------------------------------------

    def enumerate_devices(self) -> Any:
        return iter([d for d in self.devices if d.attached])

    def get_device_descriptor(self, dev: SimUsbDevice) -> _Descriptor:
        return _Descriptor(
            {
                "bLength": 18,
                "bDescriptorType": 1,
                "bcdUSB": 0x0200,
                "bDeviceClass": 0,
                "bDeviceSubClass": 0,
                "bDeviceProtocol": 0,
                "bMaxPacketSize0": 64,
                "idVendor": dev.vid,
                "idProduct": dev.pid,
                "bcdDevice": 0x0100,
                "iManufacturer": 1,
                "iProduct": 2,
                "iSerialNumber": 3,
                "bNumConfigurations": 1,
                "address": dev.address,
                "bus": dev.bus,
                "port_number": 1,
                "port_numbers": (1,),
                "speed": 3,
            }
        )

    def get_configuration_descriptor(self, dev: SimUsbDevice, config: int) -> _Descriptor:
        return _Descriptor(
            {
                "bLength": 9,
                "bDescriptorType": 2,
                "wTotalLength": 32,
                "bNumInterfaces": 1,
                "bConfigurationValue": 1,
                "iConfiguration": 0,
                "bmAttributes": 0x80,
                "bMaxPower": 50,
                "extra_descriptors": [],
            }
        )

    def get_interface_descriptor(
        self, dev: SimUsbDevice, intf: int, alt: int, config: int
    ) -> _Descriptor:
        if intf != 0 or alt != 0:
            raise IndexError("no such interface")
        return _Descriptor(
            {
                "bLength": 9,
                "bDescriptorType": 4,
                "bInterfaceNumber": 0,
                "bAlternateSetting": 0,
                "bNumEndpoints": 2,
                "bInterfaceClass": 0xFF,
                "bInterfaceSubClass": 0,
                "bInterfaceProtocol": 0,
                "iInterface": 0,
                "extra_descriptors": [],
            }
        )

    def get_endpoint_descriptor(
        self, dev: SimUsbDevice, ep: int, intf: int, alt: int, config: int
    ) -> _Descriptor:
        if ep not in (0, 1):
            raise IndexError("no such endpoint")
        return _Descriptor(
            {
                "bLength": 7,
                "bDescriptorType": 5,
                "bEndpointAddress": (EP_OUT, EP_IN)[ep],
                "bmAttributes": 0x02,
                "wMaxPacketSize": MAX_PACKET,
                "bInterval": 0,
                "bRefresh": 0,
                "bSynchAddress": 0,
                "extra_descriptors": [],
            }
        )

    # --- handles --------------------------------------------------------------------------

    def open_device(self, dev: SimUsbDevice) -> SimUsbDevice:
        self._check(dev)
        return dev

    def close_device(self, dev_handle: SimUsbDevice) -> None:
        return None

    def set_configuration(self, dev_handle: SimUsbDevice, config_value: int) -> None:
        self._check(dev_handle)

    def get_configuration(self, dev_handle: SimUsbDevice) -> int:
        self._check(dev_handle)
        return 1

    def claim_interface(self, dev_handle: SimUsbDevice, intf: int) -> None:
        self._check(dev_handle)

    def release_interface(self, dev_handle: SimUsbDevice, intf: int) -> None:
        return None

    def is_kernel_driver_active(self, dev_handle: SimUsbDevice, intf: int) -> bool:
        return False

    def _check(self, dev: SimUsbDevice) -> None:
        if not dev.attached:
            raise usb.core.USBError(
                "No such device (it may have been disconnected)", -4, errno.ENODEV
            )

    # --- transfers ------------------------------------------------------------------------

    def ctrl_transfer(
        self,
        dev_handle: SimUsbDevice,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array[int],
        timeout: int,
    ) -> int:
        self._check(dev_handle)
        if bRequest != _GET_DESCRIPTOR or wValue >> 8 != _DESC_STRING:
            raise usb.core.USBError("Pipe error (request not supported)", -9, errno.EPIPE)
        index = wValue & 0xFF
        if index == 0:
            payload = (0x0409).to_bytes(2, "little")
        else:
            text = dev_handle.strings().get(index)
            if text is None:
                raise usb.core.USBError("Pipe error (no such string)", -9, errno.EPIPE)
            payload = text.encode("utf-16-le")
        desc = bytes([2 + len(payload), _DESC_STRING]) + payload
        n = min(len(desc), len(data))
        data[:n] = array.array("B", desc[:n])
        return n

    def bulk_write(
        self, dev_handle: SimUsbDevice, ep: int, intf: int, data: array.array[int], timeout: int
    ) -> int:
        with dev_handle._cond:
            self._check(dev_handle)
            dev_handle.device.receive(data.tobytes())
            dev_handle._cond.notify_all()
        return len(data)

    def bulk_read(
        self, dev_handle: SimUsbDevice, ep: int, intf: int, buff: array.array[int], timeout: int
    ) -> int:
        deadline = time.monotonic() + timeout / 1000
        with dev_handle._cond:
            while True:
                self._check(dev_handle)
                dev_handle.device.poll(int((time.monotonic() - dev_handle._t0) * 1e6))
                out = dev_handle.device.take_output(len(buff))
                if out:
                    buff[: len(out)] = array.array("B", out)
                    return len(out)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
                dev_handle._cond.wait(min(remaining, 0.005))


_BUSES: dict[str, SimUsbBackend] = {}


def install_sim_bus(name: str, devices: list[SimUsbDevice]) -> SimUsbBackend:
    """Register a simulated bus so that `usb://VID:PID?backend=NAME` opens its devices."""
    backend = SimUsbBackend(devices)
    _BUSES[name] = backend
    register_usb_backend(name, lambda: _BUSES[name])
    return backend
