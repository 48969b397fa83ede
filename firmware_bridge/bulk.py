"""Bulk uploads: receiver-driven window, resume by offset, end-to-end SHA-256 (protocol 6)."""

from __future__ import annotations

import hashlib
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import BridgeError, BridgeTimeout, Disconnected, ProtocolError, RemoteError
from .messages import (
    BULK_DATA_HEADER,
    BulkType,
    Channel,
    Status,
    pack_begin,
    pack_bulk_data,
    status_name,
    unpack_end,
    unpack_window,
)

if TYPE_CHECKING:
    from .client import Bridge

logger = logging.getLogger(__name__)

RESEND_AFTER = 0.25
REWIND_HOLDOFF = 0.02


@dataclass(frozen=True)
class UploadResult:
    name: str
    size: int
    sha256: str
    seconds: float
    resumed_from: int
    rewinds: int
    reconnects: int

    @property
    def throughput(self) -> float:
        """Bytes per second."""
        return self.size / self.seconds if self.seconds > 0 else float("inf")


def upload(
    bridge: Bridge,
    name: str,
    data: bytes,
    progress: Callable[[int, int], None] | None,
    timeout: float,
    sha256: bytes | None = None,
) -> UploadResult:
    data = bytes(data)
    digest = hashlib.sha256(data).digest() if sha256 is None else sha256
    if len(digest) != 32:
        raise ProtocolError(f"sha256 must be 32 bytes, got {len(digest)}")
    total = len(data)
    start = time.monotonic()
    deadline = start + timeout
    resumed_from = -1
    rewinds = 0
    reconnects = 0
    while True:
        bridge.wait_session(max(0.0, deadline - time.monotonic()))
        tid, inbox = bridge._open_transfer()
        try:
            outcome = _transfer(bridge, tid, inbox, name, data, digest, progress, deadline)
        except Disconnected as e:
            if time.monotonic() >= deadline or bridge._closed.is_set():
                raise
            reconnects += 1
            logger.info("upload %s interrupted (%s); resuming after reconnect", name, e)
            continue
        finally:
            bridge._close_transfer(tid)
        first_offset, r = outcome
        rewinds += r
        if resumed_from < 0:
            resumed_from = first_offset
        return UploadResult(
            name,
            total,
            digest.hex(),
            time.monotonic() - start,
            max(0, resumed_from),
            rewinds,
            reconnects,
        )


def _transfer(
    bridge: Bridge,
    tid: int,
    inbox: queue.SimpleQueue[tuple[int, bytes] | BridgeError],
    name: str,
    data: bytes,
    digest: bytes,
    progress: Callable[[int, int], None] | None,
    deadline: float,
) -> tuple[int, int]:
    """Run one BEGIN..END exchange; return (first offset the device asked for, rewinds)."""
    total = len(data)
    chunk = bridge.max_payload - BULK_DATA_HEADER
    if chunk <= 0:
        raise ProtocolError(f"session frame limit {bridge.session_frame_limit} is too small")
    begin = pack_begin(total, digest, name)
    bridge._send(Channel.BULK, BulkType.BEGIN, begin, id=tid)
    first_offset = -1
    acked = 0
    limit = 0
    next_offset = 0
    last_window = -1
    last_rewind = 0.0
    rewinds = 0
    last_heard = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise BridgeTimeout(
                f"upload {name!r}: {acked} of {total} bytes acknowledged before the timeout"
            )
        try:
            msg = inbox.get(timeout=min(RESEND_AFTER, deadline - now))
        except queue.Empty:
            # heard nothing: resend BEGIN (lost) or the data from the last acknowledged offset
            if first_offset < 0:
                bridge._send(Channel.BULK, BulkType.BEGIN, begin, id=tid)
            else:
                next_offset = acked
                rewinds += 1
                _send_data(bridge, tid, data, chunk, next_offset, min(limit, total))
                next_offset = max(next_offset, min(limit, total))
            if time.monotonic() - last_heard > 5.0:
                logger.debug("upload %s: nothing heard for 5 s", name)
            continue
        if isinstance(msg, BridgeError):
            raise msg
        last_heard = time.monotonic()
        msg_type, payload = msg
        if msg_type == BulkType.END:
            status, received = unpack_end(payload)
            if status != Status.OK:
                raise RemoteError(status, status_name(status), f"upload {name!r}")
            if received != total:
                raise ProtocolError(f"upload {name!r}: device reports {received} of {total} bytes")
            if progress is not None:
                progress(total, total)
            return max(first_offset, 0), rewinds
        if msg_type != BulkType.WINDOW:
            continue
        offset, credit = unpack_window(payload)
        if offset > total:
            raise ProtocolError(f"upload {name!r}: device asks for offset {offset} > {total}")
        if first_offset < 0:
            first_offset = offset
            next_offset = offset
        elif offset == last_window and time.monotonic() - last_rewind > REWIND_HOLDOFF:
            # a repeated WINDOW means data went missing: go back to what the device expects
            next_offset = offset
            last_rewind = time.monotonic()
            rewinds += 1
        if offset > acked and progress is not None:
            progress(offset, total)
        acked = max(acked, offset)
        next_offset = max(next_offset, offset)
        last_window = offset
        limit = offset + credit
        end = min(limit, total)
        if next_offset < end:
            _send_data(bridge, tid, data, chunk, next_offset, end)
            next_offset = end


def _send_data(bridge: Bridge, tid: int, data: bytes, chunk: int, start: int, end: int) -> None:
    view = memoryview(data)
    offset = start
    while offset < end:
        piece = bytes(view[offset : min(offset + chunk, end)])
        bridge._send(Channel.BULK, BulkType.DATA, pack_bulk_data(offset, piece), id=tid)
        offset += len(piece)
