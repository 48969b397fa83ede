"""A deterministic protocol peer in Python, for the seams where the C device cannot run.

`SimDevice` is sans-I/O: `receive(bytes)` takes what the host wrote, `poll(now_us)` emits due
stream samples, `take_output()` returns what the device would send. It implements HELLO, the
built-in methods, a key-value config, `log.emit`, an IMU stream and the `fw0` bulk receiver with
the same rules as the C firmware, by reusing this package's framing and message code.
"""

from __future__ import annotations

import hashlib
import math
import os
import select
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .auth import SessionAuth
from .errors import BridgeError
from .framing import Frame, FrameDecoder, encode_frame
from .messages import (
    BUILTIN_METHODS,
    DEFAULT_FRAME_LIMIT,
    MIN_BODY,
    PROTOCOL_VERSION,
    BulkType,
    Channel,
    ControlType,
    DeviceInfo,
    Header,
    HelloRequest,
    RpcType,
    Status,
    StreamInfo,
    StreamType,
    pack_end,
    pack_log,
    pack_response,
    pack_stream_data,
    pack_window,
    unpack_begin,
    unpack_bulk_data,
    unpack_request,
)

IMU_STREAM = StreamInfo(1, "imu", 12)
FW_SLOT_SIZE = 4 * 1024 * 1024  # as the C virtual device
RESPONSE_CACHE = 8

Handler = Callable[["SimDevice", bytes], tuple[int, bytes]]


@dataclass
class _Upload:
    tid: int
    size: int
    sha256: bytes
    received: bytearray


class SimDevice:
    def __init__(
        self,
        uid: bytes = b"\x5a\x17\x00\x01",
        frame_limit: int = DEFAULT_FRAME_LIMIT,
        auth_key: bytes | None = None,
        firmware_version: str = "sim-1.0.0",
    ) -> None:
        self.uid = uid
        self.frame_limit = frame_limit
        self.auth_key = auth_key
        self.firmware_version = firmware_version
        self.epoch = 0
        self.boot_reason = 0
        self.config: dict[str, str] = {}
        self.calls_executed = 0
        self.muted = False  # a hung firmware: input is processed, nothing is sent
        self.fw_slot = b""
        self._decoder = FrameDecoder(frame_limit)
        self._out = bytearray()
        self._seq = [0] * 5
        self._responses: OrderedDict[int, bytes] = OrderedDict()
        self._auth: SessionAuth | None = None
        self._dev_nonce = b"\x00" * 16
        self._host_nonce = b"\x00" * 16
        self._session_limit = frame_limit
        self._streams: dict[int, tuple[int, int, int]] = {}  # id -> (rate, next_due_us, seq)
        self._upload: _Upload | None = None
        self._now_us = 0

    # --- I/O surface ----------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            self._handle(frame)

    def take_output(self, max_bytes: int | None = None) -> bytes:
        if self.muted:
            self._out.clear()
        n = len(self._out) if max_bytes is None else min(max_bytes, len(self._out))
        out = bytes(self._out[:n])
        del self._out[:n]
        return out

    def poll(self, now_us: int) -> None:
        self._now_us = now_us
        for sid, (rate, due, seq) in list(self._streams.items()):
            period = 1_000_000 // rate
            while due <= now_us:
                self._emit_sample(sid, seq, due)
                seq += 1
                due += period
            self._streams[sid] = (rate, due, seq)

    # --- frames ---------------------------------------------------------------------------

    def _send(self, channel: int, msg_type: int, payload: bytes, id: int = 0) -> None:
        header = Header.make(channel, msg_type, seq=self._seq[channel], id=id)
        self._seq[channel] = (self._seq[channel] + 1) & 0xFFFF
        trailer = None
        if self._auth is not None and channel != Channel.CONTROL:
            header, trailer = self._auth.sign(header, payload)
        self._out += encode_frame(header, payload, trailer)

    def _handle(self, frame: Frame) -> None:
        h = frame.header
        if h.channel == Channel.CONTROL and h.type == ControlType.HELLO_REQ:
            self._hello(HelloRequest.unpack(frame.payload))
            return
        if self._auth is not None and not self._auth.verify(frame):
            if h.channel == Channel.RPC and h.type == RpcType.REQUEST:
                header = Header.make(Channel.RPC, RpcType.RESPONSE, id=h.id)
                self._out += encode_frame(header, pack_response(Status.UNAUTHENTICATED, b""))
            return
        if h.channel == Channel.RPC and h.type == RpcType.REQUEST:
            self._request(h.id, frame.payload)
        elif h.channel == Channel.BULK:
            self._bulk(h.type, h.id, frame.payload)

    def _hello(self, req: HelloRequest) -> None:
        if (
            self.epoch > 0
            and req.host_nonce == self._host_nonce
            and min(self.frame_limit, req.frame_limit) == self._session_limit
        ):
            # a retried HELLO_REQ of the session in progress: the same HELLO again
            self._out += encode_frame(
                Header.make(Channel.CONTROL, ControlType.HELLO), self.info().pack()
            )
            return
        self.epoch += 1
        self._host_nonce = req.host_nonce
        self._dev_nonce = hashlib.sha256(self.uid + self.epoch.to_bytes(4, "little")).digest()[:16]
        self._session_limit = min(self.frame_limit, req.frame_limit)
        self._responses.clear()
        self._streams.clear()
        self._auth = None
        self._out += encode_frame(
            Header.make(Channel.CONTROL, ControlType.HELLO), self.info().pack()
        )
        if self.auth_key is not None:
            self._auth = SessionAuth(self.auth_key, self._dev_nonce, self._host_nonce)

    def info(self) -> DeviceInfo:
        return DeviceInfo(
            version=PROTOCOL_VERSION,
            epoch=self.epoch,
            boot_reason=self.boot_reason,
            uid=self.uid,
            firmware_version=self.firmware_version,
            firmware_sha256=hashlib.sha256(self.firmware_version.encode()).digest(),
            frame_limit=self.frame_limit,
            rx_window=8,
            dev_nonce=self._dev_nonce,
            auth_required=self.auth_key is not None,
            methods={**BUILTIN_METHODS, **{name: mid for mid, (name, _) in _METHODS.items()}},
            streams={IMU_STREAM.name: IMU_STREAM},
        )

    def _request(self, call_id: int, payload: bytes) -> None:
        cached = self._responses.get(call_id)
        if cached is not None:
            self._send(Channel.RPC, RpcType.RESPONSE, cached, id=call_id)
            return
        if self._responses and call_id < min(self._responses) and len(self._responses) >= 8:
            self._send(Channel.RPC, RpcType.RESPONSE, pack_response(Status.STALE, b""), call_id)
            return
        status: int
        try:
            method, args = unpack_request(payload)
        except BridgeError:
            status, result = Status.BAD_ARGS, b""
        else:
            entry = _METHODS.get(method)
            if entry is None:
                status, result = Status.UNKNOWN_METHOD, b""
            else:
                self.calls_executed += 1
                status, result = entry[1](self, args)
        response = pack_response(status, result)
        self._responses[call_id] = response
        while len(self._responses) > RESPONSE_CACHE:
            self._responses.popitem(last=False)
        self._send(Channel.RPC, RpcType.RESPONSE, response, id=call_id)

    # --- bulk -----------------------------------------------------------------------------

    def _credit(self) -> int:
        return 4 * (self._session_limit - MIN_BODY - 4 - (20 if self._auth else 0))

    def _bulk(self, msg_type: int, tid: int, payload: bytes) -> None:
        try:
            if msg_type == BulkType.BEGIN:
                size, sha, name = unpack_begin(payload)
                if name != "fw0" or size > FW_SLOT_SIZE:
                    self._send(Channel.BULK, BulkType.END, pack_end(Status.NOT_FOUND, 0), tid)
                    return
                up = self._upload
                if up is None or up.sha256 != sha or up.size != size:
                    up = _Upload(tid, size, sha, bytearray())
                up.tid = tid
                self._upload = up
                self._window_or_end(up)
            elif msg_type == BulkType.DATA and self._upload is not None:
                up = self._upload
                offset, chunk = unpack_bulk_data(payload)
                if up.tid != tid or offset != len(up.received):
                    self._send(Channel.BULK, BulkType.WINDOW, self._window(up), tid)
                    return
                up.received += chunk[: up.size - offset]
                self._window_or_end(up)
        except BridgeError:
            return

    def _window(self, up: _Upload) -> bytes:
        return pack_window(len(up.received), self._credit())

    def _window_or_end(self, up: _Upload) -> None:
        if len(up.received) < up.size:
            self._send(Channel.BULK, BulkType.WINDOW, self._window(up), up.tid)
            return
        ok = hashlib.sha256(up.received).digest() == up.sha256
        if ok:
            self.fw_slot = bytes(up.received)
        status = Status.OK if ok else Status.INTEGRITY
        self._send(Channel.BULK, BulkType.END, pack_end(status, len(up.received)), up.tid)
        self._upload = None

    # --- streams --------------------------------------------------------------------------

    def _emit_sample(self, sid: int, seq: int, ts_us: int) -> None:
        t = ts_us / 1e6
        az = 1000 + int(20 * math.sin(2 * math.pi * 0.5 * t))
        sample = struct.pack("<6h", 0, 0, az, 0, 0, 0)
        self._send(Channel.STREAM, StreamType.DATA, pack_stream_data(seq, ts_us, 0, sample), sid)


# --- methods ---------------------------------------------------------------------------------


def _ping(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    return Status.OK, args


def _info(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    lines = [f"uid={dev.uid.hex()}", f"fw={dev.firmware_version}", f"calls={dev.calls_executed}"]
    return Status.OK, "\n".join(lines).encode()


def _stream_start(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    if len(args) != 6:
        return Status.BAD_ARGS, b""
    sid, rate = struct.unpack("<HI", args)
    if sid != IMU_STREAM.id:
        return Status.NOT_FOUND, b""
    if not 1 <= rate <= 2000:
        return Status.BAD_ARGS, b""
    dev._streams[sid] = (rate, dev._now_us, 0)
    return Status.OK, b""


def _stream_stop(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    if len(args) != 2:
        return Status.BAD_ARGS, b""
    dev._streams.pop(struct.unpack("<H", args)[0], None)
    return Status.OK, b""


def _config_get(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    value = dev.config.get(args.decode("utf-8", "replace"))
    return (Status.NOT_FOUND, b"") if value is None else (Status.OK, value.encode())


def _config_set(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    if not args or len(args) < 1 + args[0]:
        return Status.BAD_ARGS, b""
    key = args[1 : 1 + args[0]].decode("utf-8", "replace")
    value = args[1 + args[0] :].decode("utf-8", "replace")
    if len(key) > 15 or len(value) > 31 or (key not in dev.config and len(dev.config) >= 16):
        return Status.TOO_LARGE, b""
    dev.config[key] = value
    return Status.OK, b""


def _config_list(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    return Status.OK, "".join(f"{k}={v}\n" for k, v in dev.config.items()).encode()


def _log_emit(dev: SimDevice, args: bytes) -> tuple[int, bytes]:
    if not args:
        return Status.BAD_ARGS, b""
    dev._send(Channel.LOG, 1, pack_log(args[0], 0, args[1:].decode("utf-8", "replace")))
    return Status.OK, b""


_BUILTIN_HANDLERS: dict[int, tuple[str, Handler]] = {
    1: ("sys.ping", _ping),
    2: ("sys.info", _info),
    3: ("stream.start", _stream_start),
    4: ("stream.stop", _stream_stop),
}
_APP_HANDLERS: dict[int, tuple[str, Handler]] = {
    0x100: ("config.get", _config_get),
    0x101: ("config.set", _config_set),
    0x102: ("config.list", _config_list),
    0x140: ("log.emit", _log_emit),
}
_METHODS = {**_BUILTIN_HANDLERS, **_APP_HANDLERS}


class SimPtyServer:
    """Serves a SimDevice on the master side of a pty pair from a thread (POSIX).

    `url` is the slave side to open with `Bridge.open`. `intercept` may rewrite or drop what
    the device sends; `inject` writes raw bytes to the host.
    """

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        import pty
        import tty

        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.url = f"serial://{self.path}"
        self.intercept: Callable[[bytes], bytes] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sim-pty", daemon=True)
        self._thread.start()

    def inject(self, data: bytes) -> None:
        """Write raw bytes to the host as if the device sent them."""
        with self._lock:
            os.write(self.master, data)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.002)
            with self._lock:
                if ready:
                    try:
                        self.device.receive(os.read(self.master, 65536))
                    except OSError:
                        return
                self.device.poll(int((time.monotonic() - t0) * 1e6))
                out = self.device.take_output()
                if out and self.intercept is not None:
                    out = self.intercept(out)
                if out:
                    os.write(self.master, out)

    def close(self) -> None:
        """Stop serving and close both pty ends: the host sees the device unplugged."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2)
        os.close(self.master)
        os.close(self._slave)
