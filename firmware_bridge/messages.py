"""Header and payload layouts of the wire protocol (docs/protocol.md sections 2-7). No I/O."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import NamedTuple

from .errors import FrameError, ProtocolError

PROTOCOL_VERSION = 1
HEADER_SIZE = 12
CRC_SIZE = 4
AUTH_TRAILER_SIZE = 20
MIN_BODY = HEADER_SIZE + CRC_SIZE
DEFAULT_FRAME_LIMIT = 1024
USB_FRAME_LIMIT = 16384
MAX_UID = 16
MAX_FW_VERSION = 32
NONCE_SIZE = 16

#: the 12-byte header: version, flags, channel, type, seq, ack, id (little-endian)
HEADER_STRUCT = struct.Struct("<BBBBHHI")
_HEADER = HEADER_STRUCT


class Flags(IntFlag):
    NONE = 0
    AUTH = 0x01
    RESEND = 0x02


class Channel(IntEnum):
    CONTROL = 0
    RPC = 1
    STREAM = 2
    BULK = 3
    LOG = 4


class ControlType(IntEnum):
    HELLO_REQ = 1
    HELLO = 2
    ERROR = 3


class RpcType(IntEnum):
    REQUEST = 1
    RESPONSE = 2


class StreamType(IntEnum):
    DATA = 1


class BulkType(IntEnum):
    BEGIN = 1
    WINDOW = 2
    DATA = 3
    END = 4


class LogType(IntEnum):
    LOG = 1


class Status(IntEnum):
    OK = 0
    UNKNOWN_METHOD = 1
    BAD_ARGS = 2
    BUSY = 3
    NOT_FOUND = 4
    UNAUTHENTICATED = 5
    INTERNAL = 6
    TOO_LARGE = 7
    INTEGRITY = 8
    STALE = 9
    UNSUPPORTED = 10


def status_name(code: int) -> str:
    """Name of a status code; unknown codes get a readable placeholder."""
    try:
        return Status(code).name
    except ValueError:
        return f"STATUS_{code}"


class BootReason(IntEnum):
    POWER_ON = 0
    RESET_PIN = 1
    WATCHDOG = 2
    SOFTWARE = 3
    BROWN_OUT = 4
    UNKNOWN = 255


def boot_reason_name(code: int) -> str:
    try:
        return BootReason(code).name.lower()
    except ValueError:
        return f"reason_{code}"


BUILTIN_METHODS: Mapping[str, int] = {
    "sys.ping": 1,
    "sys.info": 2,
    "stream.start": 3,
    "stream.stop": 4,
}


class Header(NamedTuple):
    """The 12-byte frame header."""

    version: int
    flags: int
    channel: int
    type: int
    seq: int
    ack: int
    id: int

    def pack(self) -> bytes:
        return _HEADER.pack(*self)

    @classmethod
    def unpack(cls, body: bytes | bytearray | memoryview) -> Header:
        if len(body) < HEADER_SIZE:
            raise FrameError(f"header needs {HEADER_SIZE} bytes, got {len(body)}")
        return cls._make(_HEADER.unpack_from(body, 0))

    @classmethod
    def make(
        cls,
        channel: int,
        msg_type: int,
        *,
        seq: int = 0,
        ack: int = 0,
        id: int = 0,
        flags: int = 0,
    ) -> Header:
        return cls(PROTOCOL_VERSION, flags, channel, msg_type, seq & 0xFFFF, ack & 0xFFFF, id)


# --- control -------------------------------------------------------------------------------

_HELLO_REQ = struct.Struct("<HHHH16s")


@dataclass(frozen=True)
class HelloRequest:
    min_version: int
    max_version: int
    frame_limit: int
    rx_window: int
    host_nonce: bytes

    def pack(self) -> bytes:
        if len(self.host_nonce) != NONCE_SIZE:
            raise FrameError(f"host nonce must be {NONCE_SIZE} bytes")
        return _HELLO_REQ.pack(
            self.min_version, self.max_version, self.frame_limit, self.rx_window, self.host_nonce
        )

    @classmethod
    def unpack(cls, payload: bytes) -> HelloRequest:
        if len(payload) < _HELLO_REQ.size:
            raise ProtocolError(
                f"HELLO_REQ payload is {len(payload)} bytes, needs {_HELLO_REQ.size}"
            )
        return cls(*_HELLO_REQ.unpack_from(payload, 0))


@dataclass(frozen=True)
class StreamInfo:
    id: int
    name: str
    sample_size: int


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself in HELLO (docs/protocol.md 3.1)."""

    version: int
    epoch: int
    boot_reason: int
    uid: bytes
    firmware_version: str
    firmware_sha256: bytes
    frame_limit: int
    rx_window: int
    dev_nonce: bytes
    auth_required: bool
    methods: Mapping[str, int] = field(default_factory=dict)
    streams: Mapping[str, StreamInfo] = field(default_factory=dict)

    @property
    def uid_hex(self) -> str:
        return self.uid.hex()

    @property
    def boot_reason_name(self) -> str:
        return boot_reason_name(self.boot_reason)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {
            "version": self.version,
            "epoch": self.epoch,
            "uid": self.uid.hex(),
            "firmware_version": self.firmware_version,
            "firmware_sha256": self.firmware_sha256.hex(),
            "boot_reason": self.boot_reason_name,
            "frame_limit": self.frame_limit,
            "rx_window": self.rx_window,
            "auth_required": self.auth_required,
            "methods": dict(self.methods),
            "streams": {
                s.name: {"id": s.id, "sample_size": s.sample_size} for s in self.streams.values()
            },
        }

    def pack(self) -> bytes:
        """Encode as a HELLO payload (used by the in-package simulated devices)."""
        if len(self.uid) > MAX_UID:
            raise FrameError(f"uid is {len(self.uid)} bytes, at most {MAX_UID}")
        fw = self.firmware_version.encode()
        if len(fw) > MAX_FW_VERSION:
            raise FrameError(f"firmware version is {len(fw)} bytes, at most {MAX_FW_VERSION}")
        out = bytearray(struct.pack("<HIB", self.version, self.epoch, self.boot_reason))
        out += bytes([len(self.uid)]) + self.uid + bytes([len(fw)]) + fw
        out += self.firmware_sha256.ljust(32, b"\0")[:32]
        out += struct.pack("<HH", self.frame_limit, self.rx_window)
        out += self.dev_nonce.ljust(NONCE_SIZE, b"\0")[:NONCE_SIZE]
        out.append(1 if self.auth_required else 0)
        out.append(len(self.methods))
        for name, mid in self.methods.items():
            nb = name.encode()
            out += struct.pack("<HB", mid, len(nb)) + nb
        out.append(len(self.streams))
        for s in self.streams.values():
            nb = s.name.encode()
            out += struct.pack("<HB", s.id, len(nb)) + nb + struct.pack("<H", s.sample_size)
        return bytes(out)

    @classmethod
    def unpack(cls, payload: bytes) -> DeviceInfo:
        r = _Reader(payload, "HELLO")
        version, epoch, boot = r.unpack("<HIB")
        uid = r.take(r.u8())
        if len(uid) > MAX_UID:
            raise ProtocolError(f"HELLO uid is {len(uid)} bytes, at most {MAX_UID} allowed")
        fw = r.text(r.u8())
        sha = r.take(32)
        frame_limit, rx_window = r.unpack("<HH")
        nonce = r.take(NONCE_SIZE)
        dev_flags = r.u8()
        methods: dict[str, int] = {}
        for _ in range(r.u8()):
            (mid,) = r.unpack("<H")
            methods[r.text(r.u8())] = mid
        streams: dict[str, StreamInfo] = {}
        for _ in range(r.u8()):
            (sid,) = r.unpack("<H")
            name = r.text(r.u8())
            (size,) = r.unpack("<H")
            streams[name] = StreamInfo(sid, name, size)
        if frame_limit < MIN_BODY + 8:
            raise ProtocolError(f"HELLO frame_limit {frame_limit} is too small to carry a call")
        return cls(
            version=version,
            epoch=epoch,
            boot_reason=boot,
            uid=uid,
            firmware_version=fw,
            firmware_sha256=sha,
            frame_limit=frame_limit,
            rx_window=rx_window,
            dev_nonce=nonce,
            auth_required=bool(dev_flags & 1),
            methods=methods,
            streams=streams,
        )


class _Reader:
    """Bounds-checked cursor over a payload; overruns raise ProtocolError naming the message."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise ProtocolError(
                f"{self._what} payload truncated: needs {end} bytes, has {len(self._data)}"
            )
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def text(self, n: int) -> str:
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{self._what} has a name that is not utf-8: {raw!r}") from e


def pack_error(code: int, text: str) -> bytes:
    return struct.pack("<H", code) + text.encode()


def unpack_error(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        raise ProtocolError("ERROR payload shorter than its 2-byte code")
    return struct.unpack_from("<H", payload)[0], payload[2:].decode("utf-8", "replace")


# --- rpc -----------------------------------------------------------------------------------

_U16 = struct.Struct("<H")


def pack_request(method_id: int, args: bytes) -> bytes:
    return _U16.pack(method_id) + args


def unpack_request(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < 2:
        raise ProtocolError("REQUEST payload shorter than its 2-byte method id")
    return _U16.unpack_from(payload)[0], payload[2:]


def pack_response(status: int, result: bytes) -> bytes:
    return _U16.pack(status) + result


def unpack_response(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < 2:
        raise ProtocolError("RESPONSE payload shorter than its 2-byte status")
    return _U16.unpack_from(payload)[0], payload[2:]


# --- stream --------------------------------------------------------------------------------

STREAM_DATA = struct.Struct("<IQI")


class StreamData(NamedTuple):
    sample_seq: int
    timestamp_us: int
    overruns: int
    data: bytes


def pack_stream_data(sample_seq: int, timestamp_us: int, overruns: int, data: bytes) -> bytes:
    return STREAM_DATA.pack(sample_seq, timestamp_us, overruns) + data


def unpack_stream_data(payload: bytes) -> StreamData:
    if len(payload) < STREAM_DATA.size:
        raise ProtocolError(f"stream DATA payload shorter than {STREAM_DATA.size} bytes")
    seq, ts, ovr = STREAM_DATA.unpack_from(payload)
    return StreamData(seq, ts, ovr, payload[STREAM_DATA.size :])


# --- bulk ----------------------------------------------------------------------------------

_BEGIN = struct.Struct("<I32sB")
_WINDOW = struct.Struct("<II")
_END = struct.Struct("<HI")
BULK_DATA_HEADER = 4


def pack_begin(total_size: int, sha256: bytes, name: str) -> bytes:
    nb = name.encode()
    if len(nb) > 255:
        raise FrameError(f"bulk transfer name is {len(nb)} bytes, at most 255")
    return _BEGIN.pack(total_size, sha256, len(nb)) + nb


def unpack_begin(payload: bytes) -> tuple[int, bytes, str]:
    if len(payload) < _BEGIN.size:
        raise ProtocolError("bulk BEGIN payload truncated")
    size, sha, n = _BEGIN.unpack_from(payload)
    name = payload[_BEGIN.size : _BEGIN.size + n]
    if len(name) != n:
        raise ProtocolError("bulk BEGIN name truncated")
    return size, sha, name.decode("utf-8", "replace")


def pack_window(offset: int, credit: int) -> bytes:
    return _WINDOW.pack(offset, credit)


def unpack_window(payload: bytes) -> tuple[int, int]:
    if len(payload) < _WINDOW.size:
        raise ProtocolError("bulk WINDOW payload truncated")
    return _WINDOW.unpack_from(payload)


def pack_bulk_data(offset: int, data: bytes) -> bytes:
    return struct.pack("<I", offset) + data


def unpack_bulk_data(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < BULK_DATA_HEADER:
        raise ProtocolError("bulk DATA payload truncated")
    return struct.unpack_from("<I", payload)[0], payload[BULK_DATA_HEADER:]


def pack_end(status: int, received: int) -> bytes:
    return _END.pack(status, received)


def unpack_end(payload: bytes) -> tuple[int, int]:
    if len(payload) < _END.size:
        raise ProtocolError("bulk END payload truncated")
    return _END.unpack_from(payload)


# --- log -----------------------------------------------------------------------------------

_LOG = struct.Struct("<BQ")


def pack_log(level: int, timestamp_us: int, text: str) -> bytes:
    return _LOG.pack(level, timestamp_us) + text.encode()


def unpack_log(payload: bytes) -> tuple[int, int, str]:
    if len(payload) < _LOG.size:
        raise ProtocolError("LOG payload truncated")
    level, ts = _LOG.unpack_from(payload)
    return level, ts, payload[_LOG.size :].decode("utf-8", "replace")
