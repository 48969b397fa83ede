"""The C library's frame encoder for the host, used for bulk DATA frames when it is built.

`make -C firmware_bridge/c` (which `edgekit bridge virtual` and the virtual device's first start
run anyway) also builds `build/libbridge_host.so`: CRC-32 by carry-less multiply and COBS by
memchr and memcpy, about three times faster than `zlib.crc32` plus the `cobs` extension on a
16 KiB frame. The first bulk frame loads it with ctypes (so a process that builds it first,
as the virtual device's first start does, uses it) when it exists and is not older than its
C sources; otherwise, or with ``FIRMWARE_BRIDGE_NATIVE=0`` in the environment, the host encodes
in Python as before, byte for byte the same frames. Small frames always take the Python path:
a ctypes call costs more than it saves below about a kilobyte.

On a port whose descriptor is non-blocking (`SupportsDirectWrites`), a `BulkWriter` goes one
step further: one call frames a whole window of bulk data and writes it, waiting in poll()
while the link is full, with the GIL released; Python then spends nothing per write.
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


class BulkWriter:
    """Frames bulk DATA in C and writes it to a non-blocking descriptor (one per bridge: it owns
    the scratch memory of two frames; calls on one writer must not overlap)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        send = lib.bridge_host_send_bulk
        send.restype = ctypes.c_int
        send.argtypes = [
            ctypes.c_int,  # fd
            ctypes.c_void_p,  # data
            ctypes.c_size_t,  # len
            ctypes.c_uint32,  # offset
            ctypes.c_size_t,  # chunk
            ctypes.c_uint8,  # version
            ctypes.c_uint8,  # channel
            ctypes.c_uint8,  # type
            ctypes.c_uint16,  # seq
            ctypes.c_uint32,  # id
            ctypes.c_int,  # timeout_ms
            ctypes.POINTER(ctypes.c_uint32),  # frames
            ctypes.c_void_p,  # scratch
        ]
        size = lib.bridge_host_scratch_size
        size.restype = ctypes.c_size_t
        size.argtypes = []
        self._send = send
        self._scratch = ctypes.create_string_buffer(size())
        self._frames = ctypes.c_uint32()

    def send(
        self,
        fd: int,
        data: bytes,
        start: int,
        end: int,
        chunk: int,
        header: tuple[int, int, int],
        seq: int,
        id: int,
        timeout: float,
    ) -> tuple[int, int]:
        """Write data[start:end) as frames of `chunk` bytes with header (version, channel,
        type), seqs from `seq`. Returns (0 or -errno, frames encoded)."""
        if not 0 <= start <= end <= len(data):
            raise ValueError(f"range {start}..{end} is outside the {len(data)}-byte image")
        # the address of the bytes object's own buffer (immutable, so no copy is needed)
        base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
        version, channel, msg_type = header
        rc = self._send(
            fd,
            base + start,
            end - start,
            start,
            chunk,
            version,
            channel,
            msg_type,
            seq,
            id,
            max(1, int(timeout * 1000)),
            ctypes.byref(self._frames),
            self._scratch,
        )
        return rc, self._frames.value


class RawWriter:
    """Writes bytes, unframed, to a non-blocking descriptor with the C writer's write and
    poll() loop (bridge_host_write_raw): the raw pty's writer benchmarks set bulk against."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        write = lib.bridge_host_write_raw
        write.restype = ctypes.c_int
        write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        self._write = write

    def write(self, fd: int, data: bytes, timeout: float) -> int:
        """Write all of data (GIL released); 0, or -errno (-ETIMEDOUT when the link took
        nothing for `timeout` seconds, -EIO on a hang-up)."""
        return int(self._write(fd, data, len(data), max(1, int(timeout * 1000))))


class FrameCounter:
    """The device's streaming decoder from the same library, run on the host: counts the good
    frames of a byte stream (benchmarks time the device's share of the framing work with it;
    one per caller: it owns the decoder's memory)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        decode = lib.bridge_host_decode
        decode.restype = ctypes.c_long
        decode.argtypes = [
            ctypes.c_char_p,  # wire
            ctypes.c_size_t,  # len
            ctypes.c_size_t,  # frame limit
            ctypes.c_size_t,  # piece
            ctypes.c_void_p,  # decoder memory
        ]
        size = lib.bridge_host_decoder_size
        size.restype = ctypes.c_size_t
        size.argtypes = []
        self._decode = decode
        self._decoder = ctypes.create_string_buffer(size())

    def count(self, wire: bytes, frame_limit: int, piece: int) -> int:
        """Good frames in wire, fed in `piece`-byte pieces; -1 when any segment was bad."""
        return int(self._decode(wire, len(wire), frame_limit, piece, self._decoder))


def frame_counter() -> FrameCounter | None:
    """A new FrameCounter when the library is available (and the encoder is in use)."""
    global _library
    if encoder() is None:
        return None
    if _library is None:
        _library = _open(LIBRARY)[0]
    return FrameCounter(_library) if _library is not None else None


def _newest_source() -> float:
    newest = 0.0
    for folder in SOURCES:
        for path in (C_DIR / folder).rglob("*.[ch]"):
            newest = max(newest, path.stat().st_mtime)
    return newest


def load(library: Path = LIBRARY) -> tuple[Encoder | None, str]:
    """The native encoder and what it runs on, or None and why not."""
    lib, why = _open(library)
    if lib is None:
        return None, why
    return _encoder(lib), why


def _open(library: Path) -> tuple[ctypes.CDLL | None, str]:
    """The library, initialised, and what it runs on; or None and why not."""
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
    crc = (init() or b"?").decode()
    return lib, f"C library, CRC-32 by {crc}"


def _encoder(lib: ctypes.CDLL) -> Encoder:
    encode = lib.bridge_host_encode
    encode.restype = ctypes.c_size_t
    encode.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
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

    return encode_body


_loaded: tuple[Encoder | None, str] | None = None
_library: ctypes.CDLL | None = None


def encoder() -> Encoder | None:
    """The native encoder, loaded on first use; None when it is not available."""
    global _loaded, _library
    if _loaded is None:
        _library, why = _open(LIBRARY)
        _loaded = (_encoder(_library) if _library is not None else None), why
        logger.debug("bulk frame encoder: %s", why if _loaded[0] else "Python")
    return _loaded[0]


def bulk_writer() -> BulkWriter | None:
    """A new BulkWriter when the library is available (and the encoder is in use)."""
    global _library
    if encoder() is None:
        return None
    if _library is None:
        _library = _open(LIBRARY)[0]
    return BulkWriter(_library) if _library is not None else None


def raw_writer() -> RawWriter | None:
    """A RawWriter when the library is available (and the encoder is in use)."""
    global _library
    if encoder() is None:
        return None
    if _library is None:
        _library = _open(LIBRARY)[0]
    return RawWriter(_library) if _library is not None else None


def status() -> str:
    """What encodes bulk frames, and why not C when it is Python."""
    native, why = _loaded if _loaded is not None else load()
    return why if native is not None else f"Python ({why})"
