"""Sensor stream subscriptions: bounded drop-oldest queues with loss and latency accounting."""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import BridgeTimeout, Disconnected
from .messages import StreamData, StreamInfo

logger = logging.getLogger(__name__)

LATENCY_WINDOW = 65536


@dataclass(frozen=True)
class Sample:
    """One stream DATA frame: one or more samples of `sample_size` bytes.

    A device that falls behind batches samples; `timestamp_us` is that of the first one.
    """

    stream_id: int
    seq: int
    timestamp_us: int
    overruns: int
    data: bytes
    sample_size: int
    received_ns: int

    def samples(self) -> list[bytes]:
        size = self.sample_size or len(self.data)
        return [self.data[i : i + size] for i in range(0, len(self.data) - size + 1, size)]

    def unpack(self, fmt: str) -> list[tuple[int, ...]]:
        """Decode every sample with a struct format, e.g. `"<6h"` for the IMU."""
        return list(struct.iter_unpack(fmt, self.data))


@dataclass(frozen=True)
class StreamStats:
    received: int
    samples: int
    lost: int
    overruns: int
    dropped: int
    latency_p50_us: float | None
    latency_p99_us: float | None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Stream:
    """A subscription. Iterate it, or `get(timeout)`; `close()` stops it on the device."""

    def __init__(
        self,
        info: StreamInfo,
        rate_hz: int,
        maxlen: int,
        on_close: Callable[[Stream], None],
    ) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.info = info
        self.rate_hz = rate_hz
        self._queue: deque[Sample] = deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self._on_close = on_close
        self._closed = False
        self._expected_seq: int | None = None
        self._overrun_base: int | None = None
        self._overruns_prev_sessions = 0
        self._last_overruns = 0
        self.received = 0
        self.samples = 0
        self.lost = 0
        self.dropped = 0
        self._deltas: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self._min_delta: int | None = None
        # called once each when the next sample arrives or the stream closes (aio.AsyncStream)
        self._wakers: list[Callable[[], None]] = []

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def closed(self) -> bool:
        return self._closed

    # --- called by the bridge's reader thread ---------------------------------------------

    def _on_data(self, data: StreamData, received_ns: int) -> None:
        sample = Sample(
            self.info.id,
            data.sample_seq,
            data.timestamp_us,
            data.overruns,
            data.data,
            self.info.sample_size,
            received_ns,
        )
        with self._cond:
            if self._closed:
                return
            if self._expected_seq is not None:
                gap = (data.sample_seq - self._expected_seq) & 0xFFFFFFFF
                if gap < 0x80000000:
                    self.lost += gap
                # else: an old or duplicated frame; it still counts as received
            self._expected_seq = (data.sample_seq + 1) & 0xFFFFFFFF
            if self._overrun_base is None:
                self._overrun_base = data.overruns
            self._last_overruns = data.overruns
            self.received += 1
            size = self.info.sample_size
            self.samples += len(data.data) // size if size else 1
            delta = received_ns // 1000 - data.timestamp_us
            self._deltas.append(delta)
            if self._min_delta is None or delta < self._min_delta:
                self._min_delta = delta
            if len(self._queue) >= self._maxlen:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(sample)
            self._cond.notify()
            if self._wakers:
                self._wake_all()

    def _new_session(self) -> None:
        """The device restarted the stream: its sequence and clock start over."""
        with self._cond:
            self._expected_seq = None
            if self._overrun_base is not None:
                self._overruns_prev_sessions += self._last_overruns - self._overrun_base
            self._overrun_base = None
            self._min_delta = None
            self._deltas.clear()

    def _terminate(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._wake_all()

    def _wake_all(self) -> None:
        """Call and forget the wakers (caller holds the condition; a waker must not block)."""
        wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    # --- for aio.AsyncStream --------------------------------------------------------------

    def _take(self, waker: Callable[[], None]) -> Sample | None:
        """The next sample without waiting; or None, and `waker()` is called once (from the
        reader thread) when one arrives or the stream closes. Disconnected once closed."""
        with self._cond:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise Disconnected(f"stream {self.name!r} is closed")
            self._wakers.append(waker)
            return None

    def _forget(self, waker: Callable[[], None]) -> None:
        """Drop a waker nobody waits on any more (a timeout or a cancel)."""
        with self._cond:
            if waker in self._wakers:
                self._wakers.remove(waker)

    # --- user API -------------------------------------------------------------------------

    def get(self, timeout: float | None = 1.0) -> Sample:
        """Next sample; raises BridgeTimeout after `timeout` s, Disconnected once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if self._closed:
                    raise Disconnected(f"stream {self.name!r} is closed")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BridgeTimeout(
                        f"no sample of stream {self.name!r} within {timeout}s; is the device "
                        "connected and the rate > 0?"
                    )
                self._cond.wait(remaining)
            return self._queue.popleft()

    def drain(self) -> list[Sample]:
        """Everything queued right now, without waiting."""
        with self._cond:
            out = list(self._queue)
            self._queue.clear()
            return out

    def __iter__(self) -> Iterator[Sample]:
        """Samples as they come, until the stream is closed (waits in 1 s slices)."""
        while True:
            try:
                yield self.get(timeout=1.0)
            except BridgeTimeout:
                continue
            except Disconnected:
                return

    @property
    def overruns(self) -> int:
        with self._cond:
            current = 0 if self._overrun_base is None else self._last_overruns - self._overrun_base
            return self._overruns_prev_sessions + current

    def latency_percentile(self, q: float) -> float | None:
        """Latency percentile in microseconds, relative to the fastest sample seen.

        Device and host clocks differ by an unknown offset; the smallest (host receive time -
        device timestamp) of the session approximates offset plus minimum transit time.
        """
        with self._cond:
            if not self._deltas or self._min_delta is None:
                return None
            base = self._min_delta
            values = sorted(d - base for d in self._deltas)
        index = min(len(values) - 1, max(0, round(q / 100.0 * (len(values) - 1))))
        return float(values[index])

    def stats(self) -> StreamStats:
        return StreamStats(
            received=self.received,
            samples=self.samples,
            lost=self.lost,
            overruns=self.overruns,
            dropped=self.dropped,
            latency_p50_us=self.latency_percentile(50),
            latency_p99_us=self.latency_percentile(99),
        )

    def close(self) -> None:
        if not self._closed:
            self._on_close(self)
            self._terminate()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
