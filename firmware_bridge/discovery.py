"""`list_devices()`: serial ports and USB devices attached to this machine."""

from __future__ import annotations

import logging

from .transport.base import DeviceEntry

logger = logging.getLogger(__name__)


def list_serial_ports() -> list[DeviceEntry]:
    try:
        from serial.tools import list_ports
    except ImportError:
        logger.info("pyserial is not installed (pip install edgekit[serial]); no serial ports")
        return []
    return [
        DeviceEntry(
            url=f"serial://{port.device}",
            kind="serial",
            description=port.description or "",
            vid=port.vid,
            pid=port.pid,
            serial_number=port.serial_number,
        )
        for port in sorted(list_ports.comports(), key=lambda p: p.device)
    ]


def list_usb_devices(backend: object | None = None) -> list[DeviceEntry]:
    try:
        import usb.core
    except ImportError:
        logger.info("pyusb is not installed (pip install edgekit[usb]); no USB devices")
        return []
    try:
        found = list(usb.core.find(find_all=True, backend=backend))
    except usb.core.NoBackendError:
        logger.info("no libusb backend (apt-get install libusb-1.0-0); no USB devices")
        return []
    out = []
    for dev in found:
        serial = _safe_string(dev, "serial_number")
        product = _safe_string(dev, "product") or ""
        url = f"usb://{dev.idVendor:04x}:{dev.idProduct:04x}"
        if serial:
            url += f"?serial={serial}"
        out.append(
            DeviceEntry(
                url=url,
                kind="usb",
                description=product,
                vid=dev.idVendor,
                pid=dev.idProduct,
                serial_number=serial,
            )
        )
    return out


def _safe_string(dev: object, attr: str) -> str | None:
    try:
        value = getattr(dev, attr)
    except Exception as e:  # no permission or no string descriptors: the entry is still useful
        logger.debug("reading %s of %r: %s", attr, dev, e)
        return None
    return value if isinstance(value, str) else None


def list_devices() -> list[DeviceEntry]:
    """Every serial port (pyserial list_ports) and USB device (pyusb) on this machine."""
    return list_serial_ports() + list_usb_devices()
