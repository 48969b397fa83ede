"""asyncio face of the bridge: the same session, awaited instead of blocked on.

    from firmware_bridge.aio import AsyncBridge

    async with await AsyncBridge.open("serial:///dev/ttyACM0?baud=921600") as board:
        info = await board.call("sys.info")
        answers = await asyncio.gather(*(board.call("sys.ping", bytes([i])) for i in range(8)))
        async with await board.subscribe("imu", rate_hz=200) as imu:
            async for sample in imu:
                ...
        await board.upload("fw0", image, progress=lambda done, total: ...)

An `AsyncBridge` wraps a `Bridge` and keeps all of its machinery: the reader thread, HELLO and
reconnects, retransmits, the call window, bulk windows. Nothing here blocks the event loop.

- **Calls** are sent from the loop and awaited on a future; while any is in flight the loop
  reads the link itself (as a blocking caller reads its own answer), so an answer costs one
  wake-up, and retransmits run on loop timers. Calls gathered together are pipelined over the
  link, up to the device's call window (8). A call that would have to wait (no session yet,
  the window full) runs in a small pool of threads instead, as does a send held up by a bulk
  window being written; while an upload is open the reader thread reads for the loop.
- **Streams** need no thread: the reader thread hands each sample to the loop, and only when a
  task is waiting for one.
- **Uploads** run in a thread of their own; progress callbacks run on the event loop.

While the loop reads the link it also dispatches what else arrives (stream samples, device
logs): `on_log` and `on_console` callbacks given to `open` may then run on the loop.

Cancelling a task that awaits a call stops the wait, not the call: the device may still run
it (the same as a call that timed out). Every error is the same `BridgeError` as in the
synchronous API.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .bulk import UploadResult
from .client import (
    _CH_RPC,
    _REQUEST,
    DEVICE_CALL_CACHE,
    MAX_BACKOFF,
    MAX_RTO,
    RTO_BACKOFF,
    Bridge,
    check_echo,
    parse_sys_info,
)
from .errors import BridgeTimeout, Disconnected
from .messages import DeviceInfo
from .streams import Sample, Stream, StreamStats
from .transport.base import SupportsReadiness

__all__ = ["AsyncBridge", "AsyncStream"]

T = TypeVar("T")


class AsyncBridge:
    """A `Bridge` whose calls, streams and uploads are awaited. Make one with `open`, or wrap
    an open `Bridge` (whose close then stays the caller's)."""

    def __init__(self, bridge: Bridge, *, owns_bridge: bool = False) -> None:
        self.bridge = bridge
        self._owns_bridge = owns_bridge
        self._calls = ThreadPoolExecutor(DEVICE_CALL_CACHE, thread_name_prefix="bridge-aio-call")
        self._closed = False
        # while calls of this loop are in flight the loop reads the link itself (one wake-up
        # per answer, not the reader thread's and then the loop's)
        self._in_flight = 0
        self._lent: SupportsReadiness | None = None
        self._lent_fd = -1
        self._lent_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def open(cls, url: str, timeout: float = 3.0, **options: Any) -> AsyncBridge:
        """`Bridge.open(url, timeout, **options)` without blocking the loop: opens the link
        and waits for the device's HELLO. Raises what Bridge.open raises."""
        loop = asyncio.get_running_loop()
        bridge = await loop.run_in_executor(
            None, functools.partial(Bridge.open, url, timeout, **options)
        )
        return cls(bridge, owns_bridge=True)

    # --- state ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.bridge.url

    @property
    def info(self) -> DeviceInfo:
        """The latest HELLO (see Bridge.info)."""
        return self.bridge.info

    @property
    def connected(self) -> bool:
        return self.bridge.connected

    def stats(self) -> dict[str, Any]:
        return self.bridge.stats()

    async def wait_session(self, timeout: float) -> DeviceInfo:
        """Until a session is up (after a reconnect); its DeviceInfo."""
        return await self._in_pool(self.bridge.wait_session, timeout)

    # --- RPC ------------------------------------------------------------------------------

    async def call(
        self, method: str | int, args: bytes = b"", timeout: float | None = None
    ) -> bytes:
        """`Bridge.call` awaited: the result bytes, or its RemoteError, BridgeTimeout,
        Disconnected. Sent from the loop, whose reads of the link bring the answer (the reader
        thread's while an upload is open), retransmitted by loop timers; a call that would
        have to wait (no session yet, the call window full) runs in the pool instead, and a
        send the bulk writer holds up waits there."""
        if self._closed:
            raise Disconnected(f"async bridge to {self.url} is closed")
        bridge = self.bridge
        timeout = bridge.call_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        name, payload = bridge._request(method, args, deadline, wait=False)
        opened = bridge._open_call(name, timeout, deadline, wait=False, may_read=False)
        if opened is None:
            return await self._in_pool(bridge.call, method, args, timeout)
        pending, direct = opened
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[None] = loop.create_future()
        pending.on_done = _waker(loop, answered)  # before the send: no answer can be missed
        self._start_reading(loop)
        try:
            sent_at = time.monotonic()
            seq = bridge._send(_CH_RPC, _REQUEST, payload, id=pending.call_id, blocking=False)
            if seq < 0:  # a bulk window holds the link: wait for it off the loop
                seq = await self._in_pool(
                    functools.partial(bridge._send, _CH_RPC, _REQUEST, payload, id=pending.call_id)
                )
            rto = bridge.rtt.rto
            rto_cap = min(MAX_RTO, rto * MAX_BACKOFF)
            resent = False
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise bridge._timed_out(pending, timeout)
                # the answer or the retransmit timer, whichever comes first, wakes this task
                timer = loop.call_later(min(rto, remaining), _resolve, answered)
                try:
                    await answered
                finally:
                    timer.cancel()
                with bridge._lock:  # completion runs under this lock: no answer slips by
                    if pending.done:
                        break
                    answered = loop.create_future()
                    pending.on_done = _waker(loop, answered)
                if time.monotonic() >= deadline:
                    continue
                resent = True
                if not bridge._resend(pending, payload, seq, blocking=False):
                    await self._in_pool(bridge._resend, pending, payload, seq)
                rto = min(rto * RTO_BACKOFF, rto_cap)
            if not resent and pending.error is None:  # Karn: only unambiguous samples
                bridge.rtt.sample(time.monotonic() - sent_at)
        finally:
            pending.on_done = None
            bridge._close_call(pending, direct)
            self._stop_reading()
        return bridge._outcome(pending)

    # the loop as the link's reader while its calls are in flight

    def _start_reading(self, loop: asyncio.AbstractEventLoop) -> None:
        self._in_flight += 1
        if self._in_flight > 1 or self._lent is not None:
            return
        transport = self.bridge._lend_link()
        if transport is None:
            return  # the reader thread answers (no pollable link, or an upload is open)
        try:
            fd = transport.fileno()
            loop.add_reader(fd, self._on_readable)
        except (OSError, ValueError, NotImplementedError):  # a loop that cannot watch it
            self.bridge._take_link_back()
            return
        self._lent, self._lent_fd, self._lent_loop = transport, fd, loop

    def _stop_reading(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._give_link_back()

    def _give_link_back(self) -> None:
        if self._lent is None:
            return
        if self._lent_loop is not None:
            with contextlib.suppress(Exception):  # the descriptor may be closed already
                self._lent_loop.remove_reader(self._lent_fd)
        self._lent = None
        self.bridge._take_link_back()

    def _on_readable(self) -> None:
        transport, loop, bridge = self._lent, self._lent_loop, self.bridge
        if transport is None or loop is None:
            return
        if transport is not bridge._transport or bridge._transfers:
            # a new link, or an upload whose windows must not be written from the loop
            self._give_link_back()  # the reader thread takes over
            return
        if bridge._read_lent(transport):
            return
        # another thread is reading it right now: look again shortly instead of spinning
        with contextlib.suppress(Exception):
            loop.remove_reader(self._lent_fd)
        loop.call_later(0.0005, self._resume_reading, transport)

    def _resume_reading(self, transport: SupportsReadiness) -> None:
        if self._lent is transport and self._lent_loop is not None:
            self._lent_loop.add_reader(self._lent_fd, self._on_readable)

    async def ping(self, data: bytes = b"", timeout: float | None = None) -> float:
        """Round trip of sys.ping in seconds, awaited; checks the echo."""
        start = time.perf_counter()
        echo = await self.call("sys.ping", data, timeout)
        elapsed = time.perf_counter() - start
        check_echo(data, echo)
        return elapsed

    async def sys_info(self, timeout: float | None = None) -> dict[str, str]:
        return parse_sys_info(await self.call("sys.info", b"", timeout))

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise Disconnected(f"async bridge to {self.url} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._calls, functools.partial(fn, *args))

    # --- streams --------------------------------------------------------------------------

    async def subscribe(self, stream: str | int, rate_hz: int, maxlen: int = 4096) -> AsyncStream:
        """Start a device stream (see Bridge.subscribe); iterate the result with `async for`."""
        sub = await self._in_pool(self.bridge.subscribe, stream, rate_hz, maxlen)
        return AsyncStream(sub, self)

    # --- bulk -----------------------------------------------------------------------------

    async def upload(
        self,
        name: str,
        data: bytes,
        progress: Callable[[int, int], None] | None = None,
        timeout: float = 30.0,
        sha256: bytes | None = None,
    ) -> UploadResult:
        """`Bridge.upload` awaited; `progress(done, total)` is called on the event loop."""
        if self._closed:
            raise Disconnected(f"async bridge to {self.url} is closed")
        report = None if progress is None else _on_loop(asyncio.get_running_loop(), progress)
        # its own thread, not one of the call pool's: an upload takes seconds
        return await asyncio.to_thread(self.bridge.upload, name, data, report, timeout, sha256)

    # --- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop taking calls, wait for those running, and close the bridge if `open` made it."""
        if self._closed:
            return
        self._closed = True
        self._give_link_back()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, functools.partial(self._calls.shutdown, wait=True))
        if self._owns_bridge:
            await loop.run_in_executor(None, self.bridge.close)

    async def __aenter__(self) -> AsyncBridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncStream:
    """A stream subscription read with `await get()` or `async for`; the samples, loss and
    overrun counters and latency of the `Stream` underneath (`.stream`)."""

    def __init__(self, stream: Stream, owner: AsyncBridge) -> None:
        self.stream = stream
        self._owner = owner

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def closed(self) -> bool:
        return self.stream.closed

    def stats(self) -> StreamStats:
        return self.stream.stats()

    def drain(self) -> list[Sample]:
        """Everything queued right now, without waiting."""
        return self.stream.drain()

    async def get(self, timeout: float | None = 1.0) -> Sample:
        """The next sample; BridgeTimeout after `timeout` s, Disconnected once closed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            arrived: asyncio.Future[None] = loop.create_future()
            waker = _waker(loop, arrived)
            sample = self.stream._take(waker)
            if sample is not None:
                return sample
            remaining = None if deadline is None else deadline - loop.time()
            try:
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(arrived, remaining)
            except TimeoutError:
                self.stream._forget(waker)
                raise BridgeTimeout(
                    f"no sample of stream {self.name!r} within {timeout}s; is the device "
                    "connected and the rate > 0?"
                ) from None
            except asyncio.CancelledError:
                self.stream._forget(waker)
                raise

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Sample:
        """Samples as they come, until the stream is closed."""
        while True:
            try:
                return await self.get(timeout=1.0)
            except BridgeTimeout:
                continue
            except Disconnected:
                raise StopAsyncIteration from None

    async def close(self) -> None:
        """Stop the stream on the device (see Stream.close)."""
        if not self.stream.closed:
            # not in the call pool, which is shut once the AsyncBridge closes
            await asyncio.to_thread(self.stream.close)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _on_loop(
    loop: asyncio.AbstractEventLoop, progress: Callable[[int, int], None]
) -> Callable[[int, int], None]:
    """A progress callback for the uploading thread that runs `progress` on the loop."""

    def report(done: int, total: int) -> None:
        loop.call_soon_threadsafe(progress, done, total)

    return report


def _waker(loop: asyncio.AbstractEventLoop, arrived: asyncio.Future[None]) -> Callable[[], None]:
    """What the reader thread, or the loop reading the link itself, calls (once) when an
    answer or a sample arrives or the stream closes: resolves `arrived` on the loop. Made on
    the loop's thread."""
    loop_thread = threading.get_ident()

    def wake() -> None:
        if threading.get_ident() == loop_thread:
            _resolve(arrived)
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, arrived)

    return wake


def _resolve(arrived: asyncio.Future[None]) -> None:
    if not arrived.done():
        arrived.set_result(None)
