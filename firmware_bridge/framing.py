"""COBS framing with CRC-32 (docs/protocol.md section 1). Pure byte handling, no I/O."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import NamedTuple

from .errors import FrameError
from .messages import (
    AUTH_TRAILER_SIZE,
    CRC_SIZE,
    DEFAULT_FRAME_LIMIT,
    HEADER_SIZE,
    HEADER_STRUCT,
    MIN_BODY,
    PROTOCOL_VERSION,
    Flags,
    Header,
)

__all__ = [
    "AuthTrailer",
    "DecoderStats",
    "Frame",
    "FrameDecoder",
    "cobs_decode",
    "cobs_encode",
    "encode_body",
    "encode_frame",
    "max_encoded_size",
]


class _CobsDecodeError(Exception):
    pass


def _py_cobs_encode(data: bytes | bytearray) -> bytes:
    """Pure-Python COBS encoder, byte-identical to the `cobs` package."""
    out = bytearray()
    chunks = bytes(data).split(b"\x00")
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        pos = 0
        had_full_block = False
        while len(chunk) - pos >= 254:
            out.append(0xFF)
            out += chunk[pos : pos + 254]
            pos += 254
            had_full_block = True
        rest = chunk[pos:]
        if i < last or rest or not had_full_block:
            out.append(len(rest) + 1)
            out += rest
    return bytes(out)


def _py_cobs_decode(data: bytes) -> bytes:
    """Pure-Python COBS decoder with the `cobs` package's results and error cases."""
    data = bytes(data)
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise _CobsDecodeError("zero byte found in input")
        end = i + code
        if end > n:
            raise _CobsDecodeError("not enough input bytes for length code")
        block = data[i + 1 : end]
        if 0 in block:
            raise _CobsDecodeError("zero byte found in input")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


try:
    from cobs import cobs as _cobs_mod

    _COBS_ERRORS: tuple[type[Exception], ...] = (_cobs_mod.DecodeError, _CobsDecodeError)
    _cobs_encode: Callable[[bytes | bytearray], bytes] = _cobs_mod.encode
    _cobs_decode: Callable[[bytes], bytes] = _cobs_mod.decode
    COBS_IMPLEMENTATION = "c-extension" if _cobs_mod._using_extension else "cobs-python"
except ImportError:  # the pure-Python fallback keeps the bridge usable without the extra
    _COBS_ERRORS = (_CobsDecodeError,)
    _cobs_encode = _py_cobs_encode
    _cobs_decode = _py_cobs_decode
    COBS_IMPLEMENTATION = "builtin-python"


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode without the trailing delimiter."""
    return _cobs_encode(data)


def cobs_decode(data: bytes) -> bytes:
    """COBS-decode one segment (no delimiter); raises FrameError on malformed input."""
    try:
        return _cobs_decode(data)
    except _COBS_ERRORS as e:
        raise FrameError(f"COBS decoding failed: {e}") from e


def max_encoded_size(frame_limit: int) -> int:
    """Largest encoded segment (without delimiter) a body of frame_limit bytes can produce."""
    return frame_limit + frame_limit // 254 + 2


class AuthTrailer(NamedTuple):
    counter: int
    tag: bytes

    def pack(self) -> bytes:
        return self.counter.to_bytes(4, "little") + self.tag


class Frame(NamedTuple):
    """A decoded frame: header, payload, the optional auth trailer and the header+payload bytes."""

    header: Header
    payload: bytes
    auth: AuthTrailer | None = None
    signed: bytes = b""  # header || payload as on the wire, what an auth tag covers


def encode_frame(
    header: Header,
    payload: bytes = b"",
    auth: AuthTrailer | None = None,
    *,
    frame_limit: int | None = None,
) -> bytes:
    """Encode one frame: COBS(header || payload || [trailer] || crc32) followed by 0x00."""
    if auth is None:
        return encode_body(header.pack() + payload, frame_limit or 0)
    if len(auth.tag) != AUTH_TRAILER_SIZE - 4:
        raise FrameError(f"auth tag must be {AUTH_TRAILER_SIZE - 4} bytes")
    header = header._replace(flags=header.flags | Flags.AUTH)
    return encode_body(header.pack() + payload + auth.pack(), frame_limit or 0)


def encode_body(body: bytes | bytearray, frame_limit: int = 0) -> bytes:
    """Encode an unsigned frame from its header and payload bytes (the hot path of encode_frame);
    a frame_limit of 0 checks nothing. A bytearray gets its CRC appended in place (no copy)."""
    body += zlib.crc32(body).to_bytes(4, "little")
    if frame_limit and len(body) > frame_limit:
        raise over_frame_limit(len(body), frame_limit)
    return _cobs_encode(body) + b"\x00"


def over_frame_limit(body_size: int, frame_limit: int) -> FrameError:
    """The error for a body (with its CRC) longer than the session allows."""
    return FrameError(
        f"frame body is {body_size} bytes, over the session frame limit {frame_limit}; "
        "send a smaller payload"
    )


@dataclass
class DecoderStats:
    frames: int = 0
    bytes: int = 0
    cobs_errors: int = 0
    short_frames: int = 0
    crc_errors: int = 0
    bad_version: int = 0
    oversize: int = 0
    console_lines: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def errors(self) -> int:
        return (
            self.cobs_errors
            + self.short_frames
            + self.crc_errors
            + self.bad_version
            + self.oversize
        )


_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"


_AUTH_FLAG = int(Flags.AUTH)
#: zlib.crc32(body + crc32(body) as 4 little-endian bytes), the same for every body.
_CRC_RESIDUE = 0x2144DF1C
# Header and Frame built with tuple.__new__ straight from the fields: the NamedTuple
# constructors add a Python call each, on the path of every frame received.
_tuple_new = tuple.__new__
_PRINTABLE_BYTE = tuple(b in _PRINTABLE for b in range(256))


def _is_printable(chunk: bytes | bytearray) -> bool:
    return not chunk.translate(None, _PRINTABLE)


class FrameDecoder:
    """Turns a byte stream into frames per docs/protocol.md 1.1.

    `feed` splits on 0x00 at C speed; the only state kept between calls is the partial segment,
    which never exceeds `max_encoded_size(frame_limit)` (< 2 * frame_limit) bytes.
    """

    def __init__(
        self,
        frame_limit: int = DEFAULT_FRAME_LIMIT,
        on_console: Callable[[str], None] | None = None,
    ) -> None:
        if frame_limit < MIN_BODY:
            raise FrameError(f"frame limit {frame_limit} is below the minimum body {MIN_BODY}")
        self.frame_limit = frame_limit
        self.on_console = on_console
        self.stats = DecoderStats()
        self._max_segment = max_encoded_size(frame_limit)
        self._buf = bytearray()
        self._skipping = False
        # True once the partial segment holds a non-printable byte: no console line can follow.
        self._binary = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def set_frame_limit(self, frame_limit: int) -> None:
        self.frame_limit = frame_limit
        self._max_segment = max_encoded_size(frame_limit)

    def reset(self) -> None:
        """Forget a partial segment (after a reconnect)."""
        self._buf.clear()
        self._skipping = False
        self._binary = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        out: list[Frame] = []
        if not data:
            return out
        self.stats.bytes += len(data)
        parts = (data if isinstance(data, bytes) else bytes(data)).split(b"\x00")
        last = len(parts) - 1
        if not parts[last] and not self._buf and not self._skipping:
            # fast path, the usual read: whole frames only, each starting like a frame (its
            # second byte is the version 0x01, which is not printable)
            for part in parts:
                if part and (len(part) < 2 or part[0] == 0x0A or _PRINTABLE_BYTE[part[1]]):
                    break
            else:
                for part in parts:
                    if part:
                        self._segment(part, out)
                self._binary = False
                return out
        for i, part in enumerate(parts):
            complete = i < last
            if i == 0 and self._skipping:
                if complete:
                    self._skipping = False
                continue
            if i == 0 and self._buf:
                self._buf += part
                seg: bytes | bytearray = self._buf
            else:
                seg = part
                if i > 0:
                    self._binary = False
            if seg and not self._binary:
                # fast path: a frame's second byte is the version 0x01, which is not printable
                if len(seg) > 1 and seg[0] != 0x0A and not _PRINTABLE_BYTE[seg[1]]:
                    self._binary = True
                else:
                    seg = self._console(seg)
            if complete:
                if seg:
                    self._segment(seg, out)
                self._buf = bytearray()
                self._binary = False
            elif len(seg) > self._max_segment:
                self.stats.oversize += 1
                self._buf = bytearray()
                self._binary = False
                self._skipping = True
            elif seg is not self._buf:
                self._buf = bytearray(seg)
        return out

    def _console(self, seg: bytes | bytearray) -> bytes | bytearray:
        """Hand complete printable lines at the start of seg to the console; return the rest."""
        start = 0
        while True:
            nl = seg.find(b"\n", start)
            if nl < 0:
                if not _is_printable(seg[start : start + 64]):
                    self._binary = True
                break
            line = seg[start : nl + 1]
            if not _is_printable(line):
                self._binary = True
                break
            if len(line) > self._max_segment:
                break  # counted as oversize by the caller, like a byte-wise decoder would
            self.stats.console_lines += 1
            if self.on_console is not None:
                self.on_console(line.decode("ascii").rstrip("\r\n"))
            start = nl + 1
        return seg if start == 0 else seg[start:]

    def _segment(self, seg: bytes | bytearray, out: list[Frame]) -> None:
        st = self.stats
        if len(seg) > self._max_segment:
            st.oversize += 1
            return
        try:
            body = _cobs_decode(bytes(seg))
        except _COBS_ERRORS:
            st.cobs_errors += 1
            return
        n = len(body)
        if n < MIN_BODY:
            st.short_frames += 1
            return
        if zlib.crc32(body) != _CRC_RESIDUE:  # CRC-32 over a body and its own CRC
            st.crc_errors += 1
            return
        if body[0] != PROTOCOL_VERSION:
            st.bad_version += 1
            return
        if n > self.frame_limit:
            st.oversize += 1
            return
        header: Header = _tuple_new(Header, HEADER_STRUCT.unpack_from(body))
        if header.flags & _AUTH_FLAG:
            if n < MIN_BODY + AUTH_TRAILER_SIZE:
                st.short_frames += 1
                return
            end = n - CRC_SIZE - AUTH_TRAILER_SIZE
            trailer = AuthTrailer(
                int.from_bytes(body[end : end + 4], "little"), body[end + 4 : n - CRC_SIZE]
            )
            out.append(_tuple_new(Frame, (header, body[HEADER_SIZE:end], trailer, body[:end])))
        else:
            out.append(_tuple_new(Frame, (header, body[HEADER_SIZE : n - CRC_SIZE], None, b"")))
        st.frames += 1
