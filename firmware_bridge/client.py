"""The synchronous host client: session, RPC, streams, bulk uploads, logs and reconnects."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

from . import _native, bulk
from .auth import SessionAuth, parse_key
from .errors import (
    AuthError,
    BridgeError,
    BridgeTimeout,
    DeviceNotFound,
    Disconnected,
    FrameError,
    ProtocolError,
    RemoteError,
)
from .framing import Frame, FrameDecoder, encode_body, encode_frame
from .messages import (
    AUTH_TRAILER_SIZE,
    BUILTIN_METHODS,
    HEADER_SIZE,
    HEADER_STRUCT,
    MIN_BODY,
    NONCE_SIZE,
    PROTOCOL_VERSION,
    BulkType,
    Channel,
    ControlType,
    DeviceInfo,
    Flags,
    Header,
    HelloRequest,
    LogType,
    RpcType,
    Status,
    StreamInfo,
    StreamType,
    pack_bulk_data,
    pack_request,
    status_name,
    unpack_error,
    unpack_log,
    unpack_response,
    unpack_stream_data,
)
from .streams import Stream
from .transport import (
    SupportsDirectWrites,
    SupportsPartialWrites,
    SupportsReadiness,
    Transport,
    get_reset_strategy,
    open_transport,
)
from .transport.reset import ResetStrategy

# Hot-path constants as plain ints: on CPython 3.11 reading an IntEnum member costs about
# 0.2 us, and the path of one call or one bulk frame used to read up to ten of them.
_CH_CONTROL = int(Channel.CONTROL)
_CH_RPC = int(Channel.RPC)
_CH_BULK = int(Channel.BULK)
_HELLO = int(ControlType.HELLO)
_REQUEST = int(RpcType.REQUEST)
_RESPONSE = int(RpcType.RESPONSE)
_STREAM_DATA = int(StreamType.DATA)
_BULK_DATA = int(BulkType.DATA)
_OK = int(Status.OK)

# A bulk DATA frame's header and offset, packed together ahead of its data.
_BULK_DATA_HEAD = struct.Struct(HEADER_STRUCT.format + "I")
# (version, channel, type) of a bulk DATA frame, for the C writer (flags and ack are 0)
_BULK_DATA_HEADER_FIELDS = (PROTOCOL_VERSION, _CH_BULK, _BULK_DATA)
logger = logging.getLogger(__name__)
device_logger = logging.getLogger("firmware_bridge.device")

SinkT = TypeVar("SinkT", bound=bulk.TransferSink)
LogCallback = Callable[[int, int, str], None]
ConsoleCallback = Callable[[str], None]

HELLO_RETRY = 0.1
HELLO_REOPEN_AFTER = 3.0
RECONNECT_BACKOFF = (0.05, 1.0)
#: a bulk write fails when the device takes nothing for this long
BULK_WRITE_TIMEOUT = 2.0
INITIAL_RTO = 0.1
MIN_RTO = 0.003
MAX_RTO = 1.0
# Losses on a point-to-point link are noise, not congestion: back off gently, so that the
# expected wait stays finite even when half the frames are damaged.
RTO_BACKOFF = 1.5
MAX_BACKOFF = 16.0  # never wait more than this many base timeouts between two attempts
HOST_RX_WINDOW = 16
DEVICE_CALL_CACHE = 8  # docs/protocol.md 4: a device remembers at least this many answers
# After a caller read its own answer, the reader thread stays away from the link this long, so
# that back-to-back calls do not wake it each time.
DIRECT_LINGER = 0.002


class _PendingCall:
    """One call in flight. Completion releases a lock once: cheaper than an Event.

    `done` and the result fields are written under the bridge lock, and only once, so a late
    duplicate response or a link loss after the answer changes nothing.
    """

    __slots__ = (
        "_signal",
        "call_id",
        "done",
        "epoch",
        "error",
        "method",
        "on_done",
        "result",
        "status",
        "unauthenticated",
    )

    def __init__(self, call_id: int, method: str, epoch: int) -> None:
        self.call_id = call_id
        self.method = method
        self.epoch = epoch
        self.status = -1
        self.result = b""
        self.error: BridgeError | None = None
        self.unauthenticated = False
        self.done = False
        self.on_done: Callable[[], None] | None = None  # run once on completion (aio)
        self._signal = threading.Lock()
        self._signal.acquire()

    def is_set(self) -> bool:
        return self.done

    def set(self) -> None:
        """Complete the call (caller holds the bridge lock)."""
        if not self.done:
            self.done = True
            self._signal.release()
            if self.on_done is not None:
                self.on_done()

    def wait(self, timeout: float) -> bool:
        return self.done or self._signal.acquire(timeout=timeout) or self.done


def check_echo(data: bytes, echo: bytes) -> None:
    """ProtocolError unless sys.ping echoed exactly `data`."""
    if echo != data:
        raise ProtocolError(f"sys.ping echoed {len(echo)} bytes that differ from the request")


def parse_sys_info(result: bytes) -> dict[str, str]:
    """The `key=value` lines of a sys.info result."""
    text = result.decode("utf-8", "replace")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class RttEstimator:
    """Retransmit timeout from measured round trips (Jacobson/Karels, as TCP's RFC 6298)."""

    def __init__(self, initial: float = INITIAL_RTO) -> None:
        self._lock = threading.Lock()
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.initial = initial

    def sample(self, rtt: float) -> None:
        with self._lock:
            if self.srtt is None:
                self.srtt, self.rttvar = rtt, rtt / 2
            else:
                self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
                self.srtt = 0.875 * self.srtt + 0.125 * rtt

    @property
    def rto(self) -> float:
        srtt, rttvar = self.srtt, self.rttvar  # a racy read is fine: it is only a timeout
        if srtt is None:
            return self.initial
        return min(MAX_RTO, max(MIN_RTO, srtt + 4 * rttvar))


@dataclass(frozen=True)
class CallStats:
    calls: int
    retransmits: int
    late_responses: int
    failed: int


class Bridge:
    """A session with one device. Open with `Bridge.open(url)`; use as a context manager.

    A reader thread feeds the frame decoder and dispatches frames; a supervisor thread restarts
    streams after a reconnect. Both stop on `close()`. On a pollable link (a POSIX port, TCP) a
    thread waiting alone in `call()` reads and dispatches its answer itself, which saves the
    hand-over from the reader thread; `on_log` and `on_console` may therefore run on either
    thread and must not call back into the bridge.
    """

    def __init__(
        self,
        url: str,
        *,
        auth_key: bytes | str | None = None,
        reset: str | ResetStrategy = "none",
        reconnect: bool = True,
        frame_limit: int | None = None,
        on_log: LogCallback | None = None,
        on_console: ConsoleCallback | None = None,
        call_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.call_timeout = call_timeout
        self._auth_key = None if auth_key is None else parse_key(auth_key)
        self._reset = get_reset_strategy(reset)
        self._reconnect = reconnect
        self._frame_limit_override = frame_limit
        self.on_log = on_log
        self.on_console = on_console

        self._lock = threading.RLock()
        self._tx_lock = threading.Lock()
        self._window_waiters = 0  # callers waiting for a free call id in the window
        # held by whichever thread reads the link and dispatches: the reader thread, or a caller
        # that reads its own answer (direct mode, see _await_direct)
        self._io_lock = threading.Lock()
        self._direct_callers = 0
        self._direct_idle_since = 0.0
        self._reader_selecting = False
        self._reader_nudge = threading.Event()  # ends the reader's linger early (or on close)
        self._pollable: SupportsReadiness | None = None
        self._partial: SupportsPartialWrites | None = None
        self._direct_fd: int | None = None  # a non-blocking descriptor for _native's writer
        self._bulk_writer: _native.BulkWriter | None = None
        self._bulk_writer_tried = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._session_cond = threading.Condition(self._lock)
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._close_started = False
        self._transport: Transport | None = None
        self._decoder = FrameDecoder(on_console=self._console)
        self._info: DeviceInfo | None = None
        self._session_up = False
        self._link_error: str = "not connected yet"
        self._host_nonce = b""
        self._auth: SessionAuth | None = None
        self._hello_sent_at = 0.0
        self._link_opened_at = 0.0
        self._session_limit = 0
        self._tx_seq = [0] * 5
        self._next_call_id = 1
        self._next_transfer_id = 1
        self._pending: dict[int, _PendingCall] = {}
        self._streams: dict[int, Stream] = {}
        self._transfers: dict[int, bulk.TransferSink] = {}
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._calls = 0
        self._retransmits = 0
        self._late = 0
        self._failed = 0
        self.rtt = RttEstimator()
        self.reconnects = 0
        self.errors_from_device: list[tuple[int, str]] = []
        self._reader: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        timeout: float = 3.0,
        *,
        auth_key: bytes | str | None = None,
        reset: str | ResetStrategy = "none",
        reconnect: bool = True,
        frame_limit: int | None = None,
        on_log: LogCallback | None = None,
        on_console: ConsoleCallback | None = None,
        call_timeout: float = 2.0,
    ) -> Bridge:
        """Open the transport, reset the device if asked, and wait for its HELLO.

        Raises DeviceNotFound when the URL names nothing, BridgeTimeout when no HELLO arrives,
        AuthError when the device requires a key that was not given.
        """
        bridge = cls(
            url,
            auth_key=auth_key,
            reset=reset,
            reconnect=reconnect,
            frame_limit=frame_limit,
            on_log=on_log,
            on_console=on_console,
            call_timeout=call_timeout,
        )
        try:
            bridge._start(timeout)
        except BaseException:
            bridge.close()
            raise
        return bridge

    def _start(self, timeout: float) -> None:
        transport = open_transport(self.url)
        try:
            self._reset.reset(transport)
        except BaseException:
            transport.close()
            raise
        self._attach(transport)
        self._reader = threading.Thread(target=self._read_loop, name="bridge-reader", daemon=True)
        self._supervisor = threading.Thread(
            target=self._supervise, name="bridge-supervisor", daemon=True
        )
        self._reader.start()
        self._supervisor.start()
        self.wait_session(timeout)

    def wait_session(self, timeout: float) -> DeviceInfo:
        """Block until a session is up (after open or a reconnect); return its DeviceInfo."""
        deadline = time.monotonic() + timeout
        with self._session_cond:
            while not self._session_up:
                if self._closed.is_set():
                    raise Disconnected(f"bridge to {self.url} is closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if self._transport is None:
                        raise Disconnected(
                            f"link to {self.url} is down ({self._link_error}); still "
                            "reconnecting: plug the device back in or check the URL"
                        )
                    raise BridgeTimeout(
                        f"no HELLO from {self.url} within {timeout}s: is the bridge firmware "
                        "running, the baud rate right, and the reset strategy suitable?"
                    )
                self._session_cond.wait(remaining)
            assert self._info is not None
            if self._info.auth_required and self._auth_key is None:
                raise AuthError(
                    f"device at {self.url} requires authentication; pass auth_key= "
                    "(the key the firmware was provisioned with)"
                )
            return self._info

    def close(self) -> None:
        """Stop streams on the device (best effort), stop both threads and close the link."""
        with self._close_lock:
            if self._close_started:
                return
            self._close_started = True
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            if self._session_up:
                try:
                    self._stop_stream_on_device(stream.id, timeout=0.5)
                except BridgeError as e:
                    logger.debug("stopping stream %s on close: %s", stream.name, e)
            stream._terminate()
        self._closed.set()
        self._reader_nudge.set()
        self._tasks.put(None)
        current = threading.current_thread()
        for thread in (self._reader, self._supervisor):
            if thread is not None and thread is not current:
                thread.join(timeout=3.0)
                if thread.is_alive():
                    logger.warning("thread %s did not stop within 3 s", thread.name)
        with self._session_cond:
            self._fail_everything(Disconnected(f"bridge to {self.url} was closed"))
            self._session_up = False
            self._session_cond.notify_all()
            transport, self._transport = self._transport, None
        if transport is not None:
            with self._io_lock, self._tx_lock:
                transport.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- state ----------------------------------------------------------------------------

    @property
    def info(self) -> DeviceInfo:
        """The latest HELLO. Raises Disconnected before the first one."""
        info = self._info
        if info is None:
            raise Disconnected(f"no session with {self.url} yet")
        return info

    @property
    def epoch(self) -> int:
        return self.info.epoch

    @property
    def connected(self) -> bool:
        return self._session_up

    @property
    def session_frame_limit(self) -> int:
        return self._session_limit

    @property
    def max_payload(self) -> int:
        """Largest payload that fits in one frame of this session."""
        trailer = AUTH_TRAILER_SIZE if self._auth is not None else 0
        return self._session_limit - MIN_BODY - trailer

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decoder": self._decoder.stats.as_dict()}
        out["rpc"] = CallStats(self._calls, self._retransmits, self._late, self._failed).__dict__
        out["reconnects"] = self.reconnects
        auth = self._auth
        out["auth_rejected"] = 0 if auth is None else auth.rejected
        return out

    # --- RPC ------------------------------------------------------------------------------

    def method_id(self, method: str | int) -> int:
        if isinstance(method, int):
            return method
        info = self._info
        if info is not None and method in info.methods:
            return info.methods[method]
        if method in BUILTIN_METHODS:
            return BUILTIN_METHODS[method]
        offered = ", ".join(sorted(info.methods)) if info is not None else "unknown"
        raise ProtocolError(
            f"device at {self.url} offers no method {method!r}; it offers: {offered}"
        )

    def call(self, method: str | int, args: bytes = b"", timeout: float | None = None) -> bytes:
        """Call a device method; return its result bytes.

        Retransmits with exponential backoff until `timeout`. Raises RemoteError on a non-OK
        status, Disconnected when the link drops or the session changes while in flight,
        BridgeTimeout when no answer arrives.
        """
        timeout = self.call_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        name, payload = self._request(method, args, deadline)
        opened = self._open_call(name, timeout, deadline, wait=True)
        assert opened is not None  # wait=True waits for room instead
        pending, direct = opened
        try:
            if direct and self._reader_selecting:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"\x00")  # the reader leaves the link to us
            sent_at = time.monotonic()
            seq = self._send(_CH_RPC, _REQUEST, payload, id=pending.call_id)
            rto = self.rtt.rto
            rto_cap = min(MAX_RTO, rto * MAX_BACKOFF)
            resent = False
            while not (self._await_direct if direct else _PendingCall.wait)(
                pending, max(0.0, min(rto, deadline - time.monotonic()))
            ):
                if time.monotonic() >= deadline:
                    raise self._timed_out(pending, timeout)
                resent = True
                self._resend(pending, payload, seq)
                rto = min(rto * RTO_BACKOFF, rto_cap)
            if not resent and pending.error is None:  # Karn: only unambiguous samples
                self.rtt.sample(time.monotonic() - sent_at)
        finally:
            self._close_call(pending, direct)
        return self._outcome(pending)

    def _request(
        self, method: str | int, args: bytes, deadline: float, wait: bool = True
    ) -> tuple[str, bytes]:
        """The method's name for messages and the REQUEST payload (after waiting for a session
        until deadline, unless not wait); FrameError when the arguments do not fit in a frame."""
        method_id = self.method_id(method)
        name = method if isinstance(method, str) else f"method 0x{method:x}"
        if wait and not self._session_up:
            self.wait_session(max(0.0, deadline - time.monotonic()))
        payload = pack_request(method_id, args)
        if len(payload) > self.max_payload:
            raise FrameError(
                f"{name}: {len(args)} bytes of arguments exceed this session's frame limit "
                f"({self.max_payload - 2} bytes); use upload() for large data"
            )
        return name, payload

    def _open_call(
        self,
        name: str,
        timeout: float,
        deadline: float,
        *,
        wait: bool,
        may_read: bool = True,
    ) -> tuple[_PendingCall, bool] | None:
        """Register a call: (its pending entry, whether its caller reads the link itself, as
        the only call in flight does when may_read). With wait=False, None where the call
        would have to wait (no session, or the window is full)."""
        lock = self._lock  # the lock of _session_cond, taken directly: cheaper than the Condition
        with lock:
            if not wait and not self._session_up:
                return None
            # A sliding window over call ids, not just a count: while the oldest call is still
            # open, at most window - 1 newer ids exist, so the device's cache of recent calls
            # (at least 8) still holds it and a retransmit can never be answered STALE.
            info = self.info
            pending_calls = self._pending
            if pending_calls:
                window = max(1, min(info.rx_window, DEVICE_CALL_CACHE))
                while pending_calls and self._next_call_id - min(pending_calls) >= window:
                    remaining = deadline - time.monotonic()
                    if not wait:
                        return None
                    if remaining <= 0:
                        raise BridgeTimeout(
                            f"{name}: {window} calls already in flight for {timeout}s"
                        )
                    self._window_waiters += 1
                    try:
                        self._session_cond.wait(remaining)
                    finally:
                        self._window_waiters -= 1
            call_id = self._next_call_id
            if call_id > 0xFFFFFFFF:
                raise ProtocolError(
                    f"{self.url}: all 2**32 call ids of this bridge are used; reopen it"
                )
            self._next_call_id = call_id + 1
            pending = _PendingCall(call_id, name, info.epoch)
            pending_calls[call_id] = pending
            direct = may_read and self._pollable is not None and len(pending_calls) == 1
            if direct:
                self._direct_callers += 1
            self._calls += 1
        return pending, direct

    def _resend(
        self, pending: _PendingCall, payload: bytes, seq: int, blocking: bool = True
    ) -> bool:
        """Send a call's REQUEST again; False (nothing sent) when not blocking and the link
        is busy."""
        # the leading delimiter ends whatever damaged segment the device still buffers
        sent = self._send(
            Channel.RPC,
            RpcType.REQUEST,
            payload,
            id=pending.call_id,
            seq=seq,
            flags=Flags.RESEND,
            flush=True,
            blocking=blocking,
        )
        if sent >= 0:
            self._retransmits += 1
        return sent >= 0

    def _timed_out(self, pending: _PendingCall, timeout: float) -> BridgeError:
        self._failed += 1
        if pending.unauthenticated:
            return AuthError(
                f"device at {self.url} rejected {pending.method} as unauthenticated; check auth_key"
            )
        return BridgeTimeout(f"{pending.method}: no response from {self.url} within {timeout}s")

    def _close_call(self, pending: _PendingCall, direct: bool) -> None:
        hand_over = False
        with self._lock:
            pending_calls = self._pending
            pending_calls.pop(pending.call_id, None)
            if direct:
                self._direct_callers -= 1
                # other calls still wait for answers that only the reader thread will
                # read now: it comes back at once instead of lingering
                hand_over = bool(pending_calls)
                self._direct_idle_since = 0.0 if hand_over else time.monotonic()
            if self._window_waiters:
                self._session_cond.notify_all()
        if hand_over:
            self._reader_nudge.set()

    def _outcome(self, pending: _PendingCall) -> bytes:
        """The result of a completed call, or its error raised."""
        if pending.error is not None:
            self._failed += 1
            raise pending.error
        if pending.status != _OK:
            raise RemoteError(
                pending.status, status_name(pending.status), pending.method, pending.result
            )
        return pending.result

    def ping(self, data: bytes = b"", timeout: float | None = None) -> float:
        """Round trip of sys.ping in seconds; checks the echo."""
        start = time.perf_counter()
        echo = self.call("sys.ping", data, timeout)
        elapsed = time.perf_counter() - start
        check_echo(data, echo)
        return elapsed

    def sys_info(self, timeout: float | None = None) -> dict[str, str]:
        return parse_sys_info(self.call("sys.info", b"", timeout))

    # --- streams --------------------------------------------------------------------------

    def subscribe(self, stream: str | int, rate_hz: int, maxlen: int = 4096) -> Stream:
        """Start a device stream and return its subscription (restarted after reconnects)."""
        info = self._stream_info(stream)
        with self._lock:
            if info.id in self._streams:
                raise BridgeError(f"stream {info.name!r} is already subscribed; close it first")
            sub = Stream(info, rate_hz, maxlen, self._unsubscribe)
            self._streams[info.id] = sub
        try:
            self.call("stream.start", struct.pack("<HI", info.id, rate_hz))
        except BaseException:
            with self._lock:
                self._streams.pop(info.id, None)
            raise
        return sub

    def _stream_info(self, stream: str | int) -> StreamInfo:
        info = self.wait_session(self.call_timeout)
        if isinstance(stream, int):
            for s in info.streams.values():
                if s.id == stream:
                    return s
            return StreamInfo(stream, f"stream{stream}", 0)
        if stream not in info.streams:
            offered = ", ".join(sorted(info.streams)) or "none"
            raise ProtocolError(
                f"device at {self.url} offers no stream {stream!r}; it offers: {offered}"
            )
        return info.streams[stream]

    def _unsubscribe(self, stream: Stream) -> None:
        with self._lock:
            self._streams.pop(stream.id, None)
        if self._session_up and not self._closed.is_set():
            self._stop_stream_on_device(stream.id, timeout=self.call_timeout)

    def _stop_stream_on_device(self, stream_id: int, timeout: float) -> None:
        self.call("stream.stop", struct.pack("<H", stream_id), timeout=timeout)

    def _restart_streams(self) -> None:
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream._new_session()
            for attempt in range(3):
                if self._closed.is_set() or stream.closed:
                    return
                try:
                    self.call("stream.start", struct.pack("<HI", stream.id, stream.rate_hz))
                    logger.info("restarted stream %s at %d Hz", stream.name, stream.rate_hz)
                    break
                except BridgeError as e:
                    logger.warning("restarting stream %s (try %d): %s", stream.name, attempt, e)

    # --- bulk -----------------------------------------------------------------------------

    def upload(
        self,
        name: str,
        data: bytes,
        progress: Callable[[int, int], None] | None = None,
        timeout: float = 30.0,
        sha256: bytes | None = None,
    ) -> bulk.UploadResult:
        """Send `data` to the device's bulk receiver `name` (e.g. "fw0") with SHA-256 check.

        Resumes from the device's offset after a reconnect. Raises RemoteError(INTEGRITY) when
        the device's hash differs, BridgeTimeout when it stops acknowledging. `sha256` is the
        digest the device must verify (from a release manifest); it defaults to that of `data`.
        """
        return bulk.upload(self, name, data, progress, timeout, sha256)

    def _open_transfer(self, sink_factory: Callable[[int], SinkT]) -> SinkT:
        """Register the receiver of the frames of a new transfer id (passed to the factory)."""
        with self._lock:
            tid = self._next_transfer_id
            self._next_transfer_id += 1
            sink = sink_factory(tid)
            self._transfers[tid] = sink
            return sink

    def _close_transfer(self, tid: int) -> None:
        with self._lock:
            self._transfers.pop(tid, None)

    # --- sending --------------------------------------------------------------------------

    def _send(
        self,
        channel: int,
        msg_type: int,
        payload: bytes = b"",
        *,
        id: int = 0,
        ack: int = 0,
        seq: int | None = None,
        flags: int = 0,
        flush: bool = False,
        blocking: bool = True,
    ) -> int:
        """Frame and write one message; its seq. With blocking=False, -1 and nothing sent
        when another sender holds the link (a bulk window being written, say)."""
        if not self._tx_lock.acquire(blocking=blocking):
            return -1
        try:
            transport = self._transport
            if transport is None:
                raise Disconnected(f"link to {self.url} is down ({self._link_error})")
            if seq is None:
                seq = self._tx_seq[channel]
                self._tx_seq[channel] = (seq + 1) & 0xFFFF
            auth = self._auth
            if auth is None:
                head = HEADER_STRUCT.pack(PROTOCOL_VERSION, flags, channel, msg_type, seq, ack, id)
                frame = encode_body(head + payload, self._session_limit)
            else:
                header = Header(PROTOCOL_VERSION, flags, channel, msg_type, seq, ack, id)
                header, trailer = auth.sign(header, payload)
                frame = encode_frame(header, payload, trailer, frame_limit=self._session_limit)
            transport.write(b"\x00" + frame if flush else frame)
        finally:
            self._tx_lock.release()
        return seq

    def _encode_bulk_data(self, offset: int, data: memoryview, *, id: int) -> bytes | bytearray:
        """One bulk DATA frame of data at offset with the next seq of the channel, ready to
        write; the caller holds the tx lock. Signed when the session signs; unsigned, the data
        is copied once, into the frame body, which gets its CRC in place before COBS (in C when
        the C library's encoder is built: _native)."""
        seq = self._tx_seq[_CH_BULK]
        self._tx_seq[_CH_BULK] = (seq + 1) & 0xFFFF
        if self._auth is not None:
            payload = pack_bulk_data(offset, bytes(data))
            header, trailer = self._auth.sign(
                Header(PROTOCOL_VERSION, 0, _CH_BULK, _BULK_DATA, seq, 0, id), payload
            )
            return encode_frame(header, payload, trailer, frame_limit=self._session_limit or None)
        body = bytearray(
            _BULK_DATA_HEAD.pack(PROTOCOL_VERSION, 0, _CH_BULK, _BULK_DATA, seq, 0, id, offset)
        )
        body += data
        native = _native.encoder()
        if native is not None and len(body) >= _native.NATIVE_MIN_BODY:
            return native(body, self._session_limit)
        return encode_body(body, self._session_limit)

    def _send_bulk_direct(self, data: bytes, start: int, end: int, chunk: int, *, id: int) -> bool:
        """Frame and write data[start:end) as bulk DATA frames of `chunk` bytes in C, in one
        call (_native.BulkWriter), byte for byte the frames of the Python path. False, with
        nothing sent, where that cannot be done: no C library, a signing session, a link
        without a non-blocking descriptor, or frames over the library's size."""
        if self._auth is not None or self._direct_fd is None:
            return False
        writer = self._bulk_writer
        if writer is None:
            if self._bulk_writer_tried:
                return False
            self._bulk_writer_tried = True
            writer = self._bulk_writer = _native.bulk_writer()
            if writer is None:
                return False
        with self._tx_lock:
            fd = self._direct_fd
            if self._transport is None or fd is None:
                raise Disconnected(f"link to {self.url} is down ({self._link_error})")
            seq = self._tx_seq[_CH_BULK]
            rc, frames = writer.send(
                fd,
                data,
                start,
                end,
                chunk,
                _BULK_DATA_HEADER_FIELDS,
                seq,
                id,
                BULK_WRITE_TIMEOUT,
            )
            self._tx_seq[_CH_BULK] = (seq + frames) & 0xFFFF
        if rc == 0:
            return True
        if rc == -errno.EINVAL and frames == 0:
            return False  # frames larger than the library was built for: Python frames them
        if rc == -errno.ETIMEDOUT:
            raise BridgeTimeout(
                f"{self.url}: the device took no bulk data for {BULK_WRITE_TIMEOUT}s; "
                "it does not read its input"
            )
        raise Disconnected(f"{self.url}: write failed ({os.strerror(-rc)}); device unplugged?")

    def _send_bulk(
        self,
        frames: list[bytes | bytearray | tuple[int, memoryview]],
        *,
        id: int,
        idle: Callable[[], bool] | None = None,
    ) -> None:
        """Write bulk DATA frames: encoded frames as they are, (offset, data) pairs encoded
        here (signed when the session signs). Each frame goes out as soon as it is encoded;
        while the link is full, `idle` does other work (encoding the frames after these) and
        returns False once it has none, and only then does this wait for the link."""
        with self._tx_lock:
            transport = self._transport
            if transport is None:
                raise Disconnected(f"link to {self.url} is down ({self._link_error})")
            partial = self._partial
            if partial is not None and cast(object, partial) is not transport:
                partial = None  # a reconnect between the two reads: write plainly
            backlog = bytearray()
            for item in frames:
                wire = self._encode_bulk_data(*item, id=id) if isinstance(item, tuple) else item
                if partial is None:
                    backlog += wire
                    continue
                if backlog:
                    backlog += wire
                    del backlog[: partial.write_some(backlog)]
                else:
                    taken = partial.write_some(wire)
                    if taken < len(wire):
                        backlog += memoryview(wire)[taken:]
            if partial is None:
                transport.write(bytes(backlog))
                return
            deadline = time.monotonic() + BULK_WRITE_TIMEOUT
            while backlog:
                if idle is not None and idle():
                    del backlog[: partial.write_some(backlog)]
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not partial.wait_writable(remaining):
                    raise BridgeTimeout(
                        f"{self.url}: the device took no bulk data for {BULK_WRITE_TIMEOUT}s; "
                        "it does not read its input"
                    )
                del backlog[: partial.write_some(backlog)]
                deadline = time.monotonic() + BULK_WRITE_TIMEOUT

    # --- reader thread --------------------------------------------------------------------

    def _attach(self, transport: Transport) -> None:
        limit = self._frame_limit_override or transport.frame_limit
        with self._lock:
            self._transport = transport
            # checked once here: isinstance against a runtime Protocol is slow on the hot path
            self._pollable = transport if isinstance(transport, SupportsReadiness) else None
            self._partial = transport if isinstance(transport, SupportsPartialWrites) else None
            self._direct_fd = (
                transport.nonblocking_fd() if isinstance(transport, SupportsDirectWrites) else None
            )
            self._decoder.reset()
            self._decoder.set_frame_limit(limit)
            self._session_limit = 0
            self._host_nonce = os.urandom(NONCE_SIZE)
            self._auth = None
            self._link_opened_at = time.monotonic()
        self._send_hello_req()

    def _send_hello_req(self) -> None:
        transport = self._transport
        if transport is None:
            return
        req = HelloRequest(
            PROTOCOL_VERSION,
            PROTOCOL_VERSION,
            self._decoder.frame_limit,
            HOST_RX_WINDOW,
            self._host_nonce,
        )
        header = Header.make(Channel.CONTROL, ControlType.HELLO_REQ)
        with self._tx_lock:
            # a leading delimiter flushes whatever partial bytes the device still buffers
            transport.write(b"\x00" + encode_frame(header, req.pack()))
        self._hello_sent_at = time.monotonic()

    def _read_loop(self) -> None:
        backoff = RECONNECT_BACKOFF[0]
        while not self._closed.is_set():
            transport = self._transport
            if transport is None:
                if not self._reconnect_once():
                    self._closed.wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_BACKOFF[1])
                else:
                    backoff = RECONNECT_BACKOFF[0]
                continue
            try:
                pollable = self._pollable
                if pollable is not None and pollable is transport:
                    self._read_ready(pollable)
                else:
                    with self._io_lock:
                        self._ingest(transport.read(65536))
                if not self._session_up:
                    self._handshake_tick()
            except Disconnected as e:
                self._link_lost(transport, str(e))
            except BridgeError as e:  # a write timeout inside the handshake
                logger.warning("%s: %s", self.url, e)
                self._link_lost(transport, str(e))
            except Exception:
                logger.exception("unexpected error in the bridge reader for %s", self.url)
                self._link_lost(transport, "internal error in the reader")

    def _read_ready(self, transport: SupportsReadiness) -> None:
        """One reader-thread step on a pollable link; stays away while a caller reads."""
        # announce the select before checking for callers: either a new caller sees this flag and
        # wakes us, or we see the caller and stay away
        self._reader_selecting = True
        if self._direct_active():
            self._reader_selecting = False
            self._reader_nudge.wait(DIRECT_LINGER)
            self._reader_nudge.clear()
            return
        try:
            ready, _, _ = select.select([transport.fileno(), self._wake_r], [], [], 0.05)
        except (OSError, ValueError) as e:
            raise Disconnected(f"{self.url}: link closed ({e})") from e
        finally:
            self._reader_selecting = False
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
            return
        if ready:
            with self._io_lock:
                self._ingest(transport.read_available(65536))

    def _direct_active(self) -> bool:
        return (
            self._direct_callers > 0 or time.monotonic() - self._direct_idle_since < DIRECT_LINGER
        )

    def _ingest(self, data: bytes) -> None:
        """Decode and dispatch (caller holds the io lock, so frames keep their order)."""
        if data:
            now_ns = time.monotonic_ns()
            for frame in self._decoder.feed(data):
                self._dispatch(frame, now_ns)

    def _lend_link(self) -> SupportsReadiness | None:
        """Another reader (an event loop, for its calls) reads the link from now on and the
        reader thread stays away, as for a call that reads its own answer; the link to read,
        or None when it cannot be read that way (no pollable link, or a bulk transfer open,
        whose windows must not be written from an event loop)."""
        with self._lock:
            transport = self._pollable
            if transport is None or transport is not self._transport or self._transfers:
                return None
            self._direct_callers += 1
        if self._reader_selecting:
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"\x00")
        return transport

    def _take_link_back(self) -> None:
        """The end of a _lend_link: the reader thread reads again (at once when calls wait)."""
        with self._lock:
            self._direct_callers -= 1
            waiting = bool(self._pending or self._transfers)
            self._direct_idle_since = 0.0 if waiting else time.monotonic()
        if waiting:
            self._reader_nudge.set()

    def _read_lent(self, transport: SupportsReadiness) -> bool:
        """Read and dispatch what the lent link holds, without waiting; False when another
        thread is reading it right now. A lost link is handled here."""
        if not self._io_lock.acquire(blocking=False):
            return False
        try:
            error = self._ingest_from(transport, None)
        finally:
            self._io_lock.release()
        if error is not None:
            self._link_lost(transport, str(error))  # its calls fail and give the link back
        return True

    def _ingest_from(self, transport: SupportsReadiness, wait: float | None) -> Disconnected | None:
        """Read what the link holds (once it holds something, waiting up to `wait` s, unless
        None) and dispatch it; the caller holds the io lock. The error when the link is lost,
        for the caller to handle once it has let go of the lock."""
        try:
            if transport is self._transport:
                if wait is not None:
                    ready, _, _ = select.select([transport.fileno()], [], [], wait)
                    if not ready:
                        return None
                self._ingest(transport.read_available(65536))
        except Disconnected as e:
            return e
        except (OSError, ValueError) as e:
            return Disconnected(f"{self.url}: link closed ({e})")
        return None

    def _await_direct(self, pending: _PendingCall, timeout: float) -> bool:
        """Wait for a call by reading the link in this thread (no hand-over from the reader)."""
        deadline = time.monotonic() + timeout
        while not pending.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            transport = self._pollable
            if transport is None or transport is not self._transport:
                return pending.wait(remaining)
            if not (
                self._io_lock.acquire(blocking=False)
                or self._io_lock.acquire(timeout=min(remaining, 0.001))
            ):
                continue  # the reader thread is dispatching, maybe our answer
            try:
                error = None if pending.done else self._ingest_from(transport, min(remaining, 0.05))
            finally:
                self._io_lock.release()
            if error is not None:
                self._link_lost(transport, str(error))
        return True

    def _handshake_tick(self) -> None:
        now = time.monotonic()
        if self._reconnect and now - self._link_opened_at > HELLO_REOPEN_AFTER:
            transport = self._transport
            if transport is not None:
                self._link_lost(transport, "no HELLO after reopening; trying again")
            return
        if now - self._hello_sent_at > HELLO_RETRY:
            self._send_hello_req()

    def _reconnect_once(self) -> bool:
        if not self._reconnect:
            self._closed.wait(0.05)
            return False
        try:
            transport = open_transport(self.url)
        except (DeviceNotFound, Disconnected) as e:
            logger.debug("reconnect to %s: %s", self.url, e)
            return False
        except BridgeError as e:
            logger.warning("reconnect to %s: %s", self.url, e)
            return False
        try:
            self._attach(transport)
        except BridgeError as e:
            logger.debug("reconnect to %s: %s", self.url, e)
            with self._lock:
                self._transport = None
                self._pollable = None
                self._partial = None
                self._direct_fd = None
            transport.close()
            return False
        self.reconnects += 1
        logger.info("reopened %s; waiting for HELLO", self.url)
        return True

    def _link_lost(self, transport: Transport, reason: str) -> None:
        with self._session_cond:
            if self._transport is not transport:
                return
            self._transport = None
            self._pollable = None
            self._partial = None
            self._direct_fd = None
            self._link_error = reason
            was_up = self._session_up
            self._session_up = False
            self._fail_everything(
                Disconnected(
                    f"link to {self.url} dropped ({reason}); the call may or may not have run"
                    + ("; reconnecting" if self._reconnect else "")
                )
            )
            self._session_cond.notify_all()
        # under the io and send locks: no read or write may still use this descriptor (whose
        # number a reconnect could reuse) once it is closed
        with self._io_lock, self._tx_lock:
            transport.close()
        if was_up:
            logger.warning("lost %s: %s", self.url, reason)

    def _fail_everything(self, error: BridgeError) -> None:
        """Fail calls and transfers in flight (caller holds the lock)."""
        for pending in self._pending.values():
            if not pending.is_set():
                pending.error = error
                pending.set()
        for sink in self._transfers.values():
            sink.fail(error)

    # --- dispatch -------------------------------------------------------------------------

    def _dispatch(self, frame: Frame, now_ns: int) -> None:
        header = frame.header
        if header.channel == _CH_CONTROL and header.type == _HELLO:
            self._on_hello(frame)
            return
        auth = self._auth
        if auth is not None and not auth.verify(frame):
            self._on_unverified(frame)
            return
        handler = self._HANDLERS.get(header.channel)
        if handler is None:
            logger.debug("ignoring frame on unknown channel %d", header.channel)
            return
        handler(self, frame, now_ns)

    def _on_hello(self, frame: Frame) -> None:
        try:
            info = DeviceInfo.unpack(frame.payload)
        except ProtocolError as e:
            logger.warning("%s sent a malformed HELLO: %s", self.url, e)
            return
        if info.version != PROTOCOL_VERSION:
            logger.warning("%s chose protocol version %d; ignoring", self.url, info.version)
            return
        restart = False
        with self._session_cond:
            old = self._info
            if self._session_up and old is not None and old.epoch == info.epoch:
                return  # a duplicate of the current session's HELLO
            if old is not None and self._session_up:
                self._fail_everything(
                    Disconnected(
                        f"{self.url} started a new session (epoch {old.epoch} -> {info.epoch}, "
                        f"boot reason {info.boot_reason_name}); the call may or may not have run"
                    )
                )
            self._info = info
            self._session_limit = min(self._decoder.frame_limit, info.frame_limit)
            self._auth = None
            if info.auth_required and self._auth_key is not None:
                self._auth = SessionAuth(self._auth_key, info.dev_nonce, self._host_nonce)
            elif self._auth_key is not None:
                logger.info("%s does not require authentication; sending plain frames", self.url)
            restart = bool(self._streams) and old is not None
            self._session_up = True
            self._session_cond.notify_all()
        logger.info(
            "session with %s: epoch %d, uid %s, firmware %s",
            self.url,
            info.epoch,
            info.uid_hex,
            info.firmware_version,
        )
        if restart:
            self._tasks.put(self._restart_streams)

    def _on_unverified(self, frame: Frame) -> None:
        header = frame.header
        if header.channel == Channel.RPC and header.type == RpcType.RESPONSE and not frame.auth:
            try:
                status, _ = unpack_response(frame.payload)
            except ProtocolError:
                return
            if status == Status.UNAUTHENTICATED:
                with self._lock:
                    pending = self._pending.get(header.id)
                    if pending is not None:
                        pending.unauthenticated = True  # only a hint for the error message
        logger.debug("dropped an unauthenticated frame on channel %d", header.channel)

    def _on_control(self, frame: Frame, now_ns: int) -> None:
        if frame.header.type == ControlType.ERROR:
            try:
                code, text = unpack_error(frame.payload)
            except ProtocolError as e:
                logger.warning("%s sent a malformed ERROR: %s", self.url, e)
                return
            self.errors_from_device.append((code, text))
            del self.errors_from_device[:-32]
            logger.warning("%s reports protocol error %d: %s", self.url, code, text)

    def _on_rpc(self, frame: Frame, now_ns: int) -> None:
        if frame.header.type != _RESPONSE:
            return
        try:
            status, result = unpack_response(frame.payload)
        except ProtocolError as e:
            logger.warning("%s: %s", self.url, e)
            return
        with self._lock:
            pending = self._pending.get(frame.header.id)
            if pending is None or pending.done:
                self._late += 1
                return
            pending.status = status
            pending.result = result
            pending.set()

    def _on_stream(self, frame: Frame, now_ns: int) -> None:
        if frame.header.type != _STREAM_DATA:
            return
        stream = self._streams.get(frame.header.id)
        if stream is None:
            return
        try:
            data = unpack_stream_data(frame.payload)
        except ProtocolError as e:
            logger.debug("%s: %s", self.url, e)
            return
        stream._on_data(data, now_ns)

    def _on_bulk(self, frame: Frame, now_ns: int) -> None:
        sink = self._transfers.get(frame.header.id)
        if sink is not None:
            sink.deliver(frame.header.type, frame.payload)

    def _on_log(self, frame: Frame, now_ns: int) -> None:
        if frame.header.type != LogType.LOG:
            return
        try:
            level, ts, text = unpack_log(frame.payload)
        except ProtocolError as e:
            logger.debug("%s: %s", self.url, e)
            return
        device_logger.log(level, "%s", text)
        if self.on_log is not None:
            try:
                self.on_log(level, ts, text)
            except Exception:
                logger.exception("on_log callback failed")

    def _console(self, line: str) -> None:
        device_logger.info("console: %s", line)
        if self.on_console is not None:
            try:
                self.on_console(line)
            except Exception:
                logger.exception("on_console callback failed")

    _HANDLERS: ClassVar[dict[int, Callable[[Bridge, Frame, int], None]]] = {
        Channel.CONTROL: _on_control,
        Channel.RPC: _on_rpc,
        Channel.STREAM: _on_stream,
        Channel.BULK: _on_bulk,
        Channel.LOG: _on_log,
    }

    # --- supervisor thread ----------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._closed.is_set():
            try:
                task = self._tasks.get(timeout=0.5)
            except queue.Empty:
                continue
            if task is None:
                return
            try:
                task()
            except Exception:
                logger.exception("bridge maintenance task failed")


__all__ = ["HEADER_SIZE", "Bridge", "CallStats"]
