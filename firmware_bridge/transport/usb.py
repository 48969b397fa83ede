"""`usb://VID:PID[?serial=...]`: pyusb bulk IN/OUT endpoints of a vendor or CDC-data interface."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Any

from ..errors import BridgeTimeout, DeviceNotFound, Disconnected, TransportUnavailable
from ..messages import USB_FRAME_LIMIT
from .base import ParsedUrl

logger = logging.getLogger(__name__)

READ_TIMEOUT_MS = 50
WRITE_TIMEOUT_MS = 2000
READ_SIZE = 16384
_ENDPOINT_BULK = 0x02
_DIR_IN = 0x80

BackendFactory = Callable[[], Any]

# name -> factory of a pyusb backend (usb.backend.IBackend); `?backend=NAME` selects one.
# Without it pyusb picks libusb1, openusb or libusb0, whichever is installed.
USB_BACKENDS: dict[str, BackendFactory] = {}


def register_usb_backend(name: str, factory: BackendFactory) -> None:
    USB_BACKENDS[name] = factory


def import_usb() -> Any:
    try:
        import usb.core
        import usb.util
    except ImportError as e:
        raise TransportUnavailable(
            "USB transport needs pyusb, which is not installed: pip install edgekit[usb]"
        ) from e
    return usb


class UsbTransport:
    def __init__(self, device: Any, ep_in: Any, ep_out: Any, url: str, frame_limit: int) -> None:
        self._usb = import_usb()
        self._device = device
        self._ep_in = ep_in
        self._ep_out = ep_out
        self.url = url
        self.frame_limit = frame_limit
        self.poll_interval = READ_TIMEOUT_MS / 1000

    def _gone(self, e: Exception) -> Disconnected:
        return Disconnected(f"{self.url}: USB transfer failed ({e}); device unplugged?")

    def read(self, max_bytes: int) -> bytes:
        try:
            data = self._ep_in.read(min(max_bytes, READ_SIZE), READ_TIMEOUT_MS)
        except self._usb.core.USBTimeoutError:
            return b""
        except self._usb.core.USBError as e:
            raise self._gone(e) from e
        return bytes(data)

    def write(self, data: bytes) -> None:
        try:
            written = self._ep_out.write(data, WRITE_TIMEOUT_MS)
        except self._usb.core.USBTimeoutError as e:
            raise BridgeTimeout(
                f"{self.url}: bulk OUT blocked for {WRITE_TIMEOUT_MS} ms; the device does not read"
            ) from e
        except self._usb.core.USBError as e:
            raise self._gone(e) from e
        if written != len(data):
            raise Disconnected(f"{self.url}: short bulk write ({written} of {len(data)} bytes)")

    def close(self) -> None:
        try:
            self._usb.util.dispose_resources(self._device)
        except self._usb.core.USBError as e:
            logger.debug("releasing %s: %s", self.url, e)


def parse_vid_pid(url: ParsedUrl) -> tuple[int, int]:
    text = url.location.strip("/")
    vid_text, sep, pid_text = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return int(vid_text, 16), int(pid_text, 16)
    except ValueError as e:
        raise DeviceNotFound(
            f"{url.url}: expected usb://VID:PID in hex, e.g. usb://303a:1001"
        ) from e


def _backend(url: ParsedUrl) -> Any:
    name = url.params.get("backend")
    if name is None:
        return None
    factory = USB_BACKENDS.get(name)
    if factory is None:
        known = ", ".join(sorted(USB_BACKENDS)) or "none registered"
        raise TransportUnavailable(f"{url.url}: no USB backend named {name!r} ({known})")
    return factory()


def _bulk_pair(usb: Any, cfg: Any) -> tuple[Any, Any, Any]:
    for intf in cfg:
        eps = [ep for ep in intf if usb.util.endpoint_type(ep.bmAttributes) == _ENDPOINT_BULK]
        ep_in = next((ep for ep in eps if ep.bEndpointAddress & _DIR_IN), None)
        ep_out = next((ep for ep in eps if not ep.bEndpointAddress & _DIR_IN), None)
        if ep_in is not None and ep_out is not None:
            return intf, ep_in, ep_out
    raise DeviceNotFound("the device has no interface with a bulk IN and a bulk OUT endpoint")


def open_usb(url: ParsedUrl) -> UsbTransport:
    usb = import_usb()
    vid, pid = parse_vid_pid(url)
    wanted_serial = url.params.get("serial")
    backend = _backend(url)

    def matches(dev: Any) -> bool:
        if wanted_serial is None:
            return True
        try:
            return bool(dev.serial_number == wanted_serial)
        except (usb.core.USBError, ValueError):
            return False

    try:
        dev = usb.core.find(idVendor=vid, idProduct=pid, backend=backend, custom_match=matches)
    except usb.core.NoBackendError as e:
        raise TransportUnavailable(
            "pyusb found no libusb backend: apt-get install libusb-1.0-0"
        ) from e
    if dev is None:
        what = f"{vid:04x}:{pid:04x}" + (f" with serial {wanted_serial}" if wanted_serial else "")
        raise DeviceNotFound(
            f"no USB device {what} attached; check the cable and "
            "`python -m firmware_bridge devices`"
        )
    try:
        try:
            cfg = dev.get_active_configuration()
        except usb.core.USBError:
            dev.set_configuration()
            cfg = dev.get_active_configuration()
        intf, ep_in, ep_out = _bulk_pair(usb, cfg)
        try:
            if dev.is_kernel_driver_active(intf.bInterfaceNumber):
                dev.detach_kernel_driver(intf.bInterfaceNumber)
        except (NotImplementedError, usb.core.USBError) as e:
            logger.debug("kernel driver check on %s: %s", url.url, e)
        usb.util.claim_interface(dev, intf.bInterfaceNumber)
    except usb.core.USBError as e:
        usb.util.dispose_resources(dev)
        if e.errno == errno.EACCES:
            raise DeviceNotFound(
                f"{url.url}: permission denied; add a udev rule for {vid:04x}:{pid:04x}"
            ) from e
        raise DeviceNotFound(f"{url.url}: cannot claim the bulk interface ({e})") from e
    limit = url.int_param("frame_limit", USB_FRAME_LIMIT)
    return UsbTransport(dev, ep_in, ep_out, url.url, limit)


__all__ = ["USB_BACKENDS", "UsbTransport", "open_usb", "register_usb_backend"]
