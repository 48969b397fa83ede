"""The C library's frame encoder for the host, used for bulk DATA frames when it is built.

`make -C firmware_bridge/c` (which `edgekit bridge virtual` and the virtual device's first start
run anyway) also builds `build/libbridge_host.so`: CRC-32 by carry-less multiply and COBS by
memchr and memcpy, about three times faster than `zlib.crc32` plus the `cobs` extension on a
16 KiB frame. The first bulk frame loads it with ctypes (so a process that builds it first,
as the virtual device's first start does, uses it) when it exists and is not older than its
C sources; otherwise, or with ``FIRMWARE_BRIDGE_NATIVE=0`` in the environment, the host encodes
in Python as before, byte for byte the same frames. Small frames always take the Python path:
a ctypes call costs more than it saves below about a kilobyte.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .errors import FrameError
from .framing import over_frame_limit

logger = logging.getLogger(__name__)

C_DIR = Path(__file__).resolve().parent / "c"
LIBRARY = C_DIR / "build" / "libbridge_host.so"
SOURCES = ("src", "include", "host", "virtual")
NATIVE_MIN_BODY = 1024  # below this the Python encoder is faster than a ctypes call

Encoder = Callable[[bytearray, int], bytearray]


def _newest_source() -> float:
    newest = 0.0
    for folder in SOURCES:
        for path in (C_DIR / folder).rglob("*.[ch]"):
            newest = max(newest, path.stat().st_mtime)
    return newest


def load(library: Path = LIBRARY) -> tuple[Encoder | None, str]:
    """The native encoder and what it runs on, or None and why not."""
    if os.environ.get("FIRMWARE_BRIDGE_NATIVE", "1") == "0":
        return None, "turned off by FIRMWARE_BRIDGE_NATIVE=0"
    try:
        if not library.exists():
            return None, f"{library.name} is not built (make -C {C_DIR})"
        if library.stat().st_mtime < _newest_source():
            return None, f"{library.name} is older than its sources (make -C {C_DIR})"
        lib = ctypes.CDLL(str(library))
    except OSError as e:
        return None, f"{library.name} does not load: {e}"
    init = lib.bridge_host_init
    init.restype = ctypes.c_char_p
    init.argtypes = []
    encode = lib.bridge_host_encode
    encode.restype = ctypes.c_size_t
    encode.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    crc = (init() or b"?").decode()
    char = ctypes.c_char

    def encode_body(body: bytearray, frame_limit: int) -> bytearray:
        """What framing.encode_body returns for these bytes; body gets the CRC appended."""
        n = len(body)
        if frame_limit and n + 4 > frame_limit:
            raise over_frame_limit(n + 4, frame_limit)
        body += b"\x00\x00\x00\x00"
        cap = n + 4 + (n + 4) // 254 + 2
        out = bytearray(cap)
        written = encode(
            ctypes.addressof(char.from_buffer(body)),
            n,
            ctypes.addressof(char.from_buffer(out)),
            cap,
        )
        if written == 0:  # cannot happen with this cap; fail loudly rather than send garbage
            raise FrameError(f"native encoder refused a {n}-byte body")
        del out[written:]
        return out

    return encode_body, f"C library, CRC-32 by {crc}"


_loaded: tuple[Encoder | None, str] | None = None


def encoder() -> Encoder | None:
    """The native encoder, loaded on first use; None when it is not available."""
    global _loaded
    if _loaded is None:
        _loaded = load()
        logger.debug("bulk frame encoder: %s", _loaded[1] if _loaded[0] else "Python")
    return _loaded[0]


def status() -> str:
    """What encodes bulk frames, and why not C when it is Python."""
    native, why = _loaded if _loaded is not None else load()
    return why if native is not None else f"Python ({why})"
