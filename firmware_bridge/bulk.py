"""Bulk uploads: receiver-driven window, resume by offset, end-to-end SHA-256 (protocol 6).

The sender's window logic runs where the WINDOW arrives (the bridge's reader thread), so new
credit turns into DATA frames without a thread switch. While the link is full, the same thread
encodes the frames the next WINDOWs will ask for (COBS and CRC are most of the host's cost per
byte), so they are ready when the credit comes and the link never runs dry. The uploading
thread only waits for END, resends after silence and resumes after a reconnect.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import BridgeError, BridgeTimeout, Disconnected, ProtocolError, RemoteError
from .messages import (
    BULK_DATA_HEADER,
    BulkType,
    Channel,
    Status,
    pack_begin,
    status_name,
    unpack_end,
    unpack_window,
)

if TYPE_CHECKING:
    from .client import Bridge

logger = logging.getLogger(__name__)

RESEND_AFTER = 0.25
REWIND_HOLDOFF = 0.02
#: seconds between progress reports (each wakes the uploading thread)
PROGRESS_EVERY = 0.05
#: DATA frames the uploading thread keeps encoded beyond what has been sent.
ENCODE_AHEAD = 4
Progress = Callable[[int, int], None]


class TransferSink(Protocol):
    """Receives the bulk frames of one transfer id (called from the bridge's reader thread)."""

    def deliver(self, msg_type: int, payload: bytes) -> None: ...

    def fail(self, error: BridgeError) -> None: ...


@dataclass(frozen=True)
class UploadResult:
    name: str
    size: int
    sha256: str
    seconds: float
    resumed_from: int  # the offset the device asked for first; size when it held the image
    rewinds: int
    reconnects: int

    @property
    def throughput(self) -> float:
        """Bytes per second."""
        return self.size / self.seconds if self.seconds > 0 else float("inf")


_WINDOW = int(BulkType.WINDOW)  # a plain int on the per-frame path (IntEnum reads are slow)


class _Sender:
    """Window state of one BEGIN..END exchange."""

    def __init__(self, bridge: Bridge, tid: int, name: str, data: bytes, digest: bytes) -> None:
        self.bridge = bridge
        self.tid = tid
        self.name = name
        self.data = data
        self.view = memoryview(data)
        self.chunk = bridge.max_payload - BULK_DATA_HEADER
        if self.chunk <= 0:
            raise ProtocolError(f"session frame limit {bridge.session_frame_limit} is too small")
        self.begin = pack_begin(len(data), digest, name)
        self.events: queue.SimpleQueue[tuple[int, bytes] | BridgeError] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.first_offset = -1
        self.acked = 0
        self.limit = 0
        self.next_offset = 0
        self.last_window = -1
        self.last_rewind = 0.0
        self.rewinds = 0
        # any frame of this transfer since the uploading thread last looked: a plain flag
        # (one store per frame; an Event would take a lock and notify on every WINDOW)
        self.heard = False
        self.wants_progress = False
        self.progress_at = 0.0
        self.ahead: deque[tuple[int, bytes | bytearray]] = deque()  # (offset, wire), ascending
        self.encode_at = 0

    # --- reader thread ----------------------------------------------------------------

    def deliver(self, msg_type: int, payload: bytes) -> None:
        self.heard = True
        if msg_type != _WINDOW:
            self.events.put((msg_type, payload))
            return
        try:
            offset, credit = unpack_window(payload)
            self._on_window(offset, credit)
        except BridgeError as e:
            self.events.put(e)

    def fail(self, error: BridgeError) -> None:
        self.events.put(error)

    def _on_window(self, offset: int, credit: int) -> None:
        total = len(self.data)
        if offset > total:
            raise ProtocolError(f"upload {self.name!r}: device asks for offset {offset} > {total}")
        with self.lock:
            if self.first_offset < 0:
                self.first_offset = offset
                self.next_offset = offset
            elif (
                offset == self.last_window and time.monotonic() - self.last_rewind > REWIND_HOLDOFF
            ):
                # a repeated WINDOW means data went missing: go back to what the device expects
                self.next_offset = offset
                self.last_rewind = time.monotonic()
                self.rewinds += 1
            self.acked = max(self.acked, offset)
            self.next_offset = max(self.next_offset, offset)
            self.last_window = offset
            self.limit = offset + credit
            self._send_up_to(min(self.limit, total))
        now = time.monotonic()
        if self.wants_progress and now - self.progress_at >= PROGRESS_EVERY:
            # the uploading thread wakes only to report progress, not once per WINDOW
            self.progress_at = now
            self.events.put((BulkType.WINDOW, b""))

    def _send_up_to(self, end: int) -> None:
        """Send [next_offset, end) (caller holds the lock), frames encoded ahead first."""
        if self.next_offset >= end:
            return
        if self.bridge._send_bulk_direct(self.data, self.next_offset, end, self.chunk, id=self.tid):
            self.next_offset = end  # framed and written in C: nothing to encode ahead
            return
        total = len(self.data)
        ahead = self.ahead
        frames: list[bytes | bytearray | tuple[int, memoryview]] = []
        for off in range(self.next_offset, end, self.chunk):
            stop = min(off + self.chunk, end)
            while ahead and ahead[0][0] < off:
                ahead.popleft()
            if ahead and ahead[0][0] == off and stop == min(off + self.chunk, total):
                frames.append(ahead.popleft()[1])
            else:
                frames.append((off, self.view[off:stop]))
        self.next_offset = end
        self.encode_at = max(self.encode_at, end)
        self.bridge._send_bulk(frames, id=self.tid, idle=self._encode_next)

    def _encode_next(self) -> bool:
        """Encode the next frame past what was sent (caller holds the lock); False when
        ENCODE_AHEAD frames are ready, the data is all encoded, or the session signs frames."""
        off = self.encode_at
        total = len(self.data)
        if off >= total or off >= self.next_offset + ENCODE_AHEAD * self.chunk:
            return False
        if self.bridge._auth is not None:
            return False  # a signed frame is signed when it is sent: its counter must not go back
        stop = min(off + self.chunk, total)
        self.ahead.append(
            (off, self.bridge._encode_bulk_data(off, self.view[off:stop], id=self.tid))
        )
        self.encode_at = stop
        return True

    # --- uploading thread ---------------------------------------------------------------

    def send_begin(self) -> None:
        self.bridge._send(Channel.BULK, BulkType.BEGIN, self.begin, id=self.tid)

    def resend(self) -> None:
        """Nothing heard for a while: BEGIN again, or the data from the last acknowledged offset."""
        with self.lock:
            if self.first_offset < 0:
                self.send_begin()
                return
            self.next_offset = self.acked
            self.rewinds += 1
            self._send_up_to(min(self.limit, len(self.data)))


def upload(
    bridge: Bridge,
    name: str,
    data: bytes,
    progress: Progress | None,
    timeout: float,
    sha256: bytes | None = None,
) -> UploadResult:
    data = bytes(data)
    digest = hashlib.sha256(data).digest() if sha256 is None else sha256
    if len(digest) != 32:
        raise ProtocolError(f"sha256 must be 32 bytes, got {len(digest)}")
    start = time.monotonic()
    deadline = start + timeout
    rewinds = 0
    reconnects = 0
    while True:
        bridge.wait_session(max(0.0, deadline - time.monotonic()))
        sender = bridge._open_transfer(lambda tid: _Sender(bridge, tid, name, data, digest))
        sender.wants_progress = progress is not None
        try:
            _run(sender, progress, deadline)
        except Disconnected as e:
            rewinds += sender.rewinds
            if time.monotonic() >= deadline or bridge._closed.is_set():
                raise
            reconnects += 1
            logger.info("upload %s interrupted (%s); resuming after reconnect", name, e)
            continue
        finally:
            bridge._close_transfer(sender.tid)
        return UploadResult(
            name,
            len(data),
            digest.hex(),
            time.monotonic() - start,
            # END before any WINDOW: the device already held this image, nothing was sent
            sender.first_offset if sender.first_offset >= 0 else len(data),
            rewinds + sender.rewinds,
            reconnects,
        )


def _run(sender: _Sender, progress: Progress | None, deadline: float) -> None:
    total = len(sender.data)
    name = sender.name
    sender.send_begin()
    reported = -1
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise BridgeTimeout(
                f"upload {name!r}: {sender.acked} of {total} bytes acknowledged before the timeout"
            )
        try:
            msg = sender.events.get(timeout=min(RESEND_AFTER, deadline - now))
        except queue.Empty:
            if sender.heard:  # WINDOWs keep coming: the transfer is moving
                sender.heard = False
                continue
            sender.resend()
            continue
        if isinstance(msg, BridgeError):
            raise msg
        msg_type, payload = msg
        if msg_type == BulkType.WINDOW:
            if progress is not None and sender.acked > reported:
                reported = sender.acked
                progress(reported, total)
            continue
        if msg_type == BulkType.END:
            status, received = unpack_end(payload)
            if status != Status.OK:
                raise RemoteError(status, status_name(status), f"upload {name!r}")
            if received != total:
                raise ProtocolError(f"upload {name!r}: device reports {received} of {total} bytes")
            if progress is not None:
                progress(total, total)
            return
