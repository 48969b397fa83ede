"""Transports by URL scheme through an explicit registry; each opener is imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..errors import TransportUnavailable
from .base import (
    DeviceEntry,
    ParsedUrl,
    SupportsDirectWrites,
    SupportsModemLines,
    SupportsPartialWrites,
    SupportsReadiness,
    Transport,
)
from .reset import RESET_STRATEGIES, ResetStrategy, get_reset_strategy

__all__ = [
    "RESET_STRATEGIES",
    "DeviceEntry",
    "ParsedUrl",
    "ResetStrategy",
    "SupportsDirectWrites",
    "SupportsModemLines",
    "SupportsPartialWrites",
    "SupportsReadiness",
    "Transport",
    "get_reset_strategy",
    "open_transport",
    "register_transport",
    "registered_schemes",
]

Opener = Callable[[ParsedUrl], Transport]

# scheme -> "module:function", resolved lazily so that `import firmware_bridge` stays cheap
_REGISTRY: dict[str, str | Opener] = {
    "serial": "firmware_bridge.transport.serial_port:open_serial",
    # pyserial's own URL handlers go through pyserial unchanged
    "loop": "firmware_bridge.transport.serial_port:open_serial",
    "socket": "firmware_bridge.transport.serial_port:open_serial",
    "rfc2217": "firmware_bridge.transport.serial_port:open_serial",
    "spy": "firmware_bridge.transport.serial_port:open_serial",
    "hwgrep": "firmware_bridge.transport.serial_port:open_serial",
    "tcp": "firmware_bridge.transport.tcp:open_tcp",
    "usb": "firmware_bridge.transport.usb:open_usb",
}


def register_transport(scheme: str, opener: str | Opener) -> None:
    """Add or replace the opener for a URL scheme."""
    _REGISTRY[scheme.lower()] = opener


def registered_schemes() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(scheme: str) -> Opener:
    entry = _REGISTRY.get(scheme)
    if entry is None:
        known = ", ".join(f"{s}://" for s in registered_schemes())
        raise TransportUnavailable(f"no transport for scheme {scheme!r}; known: {known}")
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        opener: Opener = getattr(importlib.import_module(module_name), attr)
        return opener
    return entry


def open_transport(url: str) -> Transport:
    """Open the transport a URL names (serial://, tcp://, usb://, loop://, socket://...)."""
    parsed = ParsedUrl.parse(url)
    return _resolve(parsed.scheme)(parsed)
