"""The capture thread: runs a :class:`FrameGrabber` and lends frames from a buffer pool.

Policies for frames the reader has not taken yet:

- ``latest``: keep only the newest; an older one still waiting is dropped (counted).
- ``queue``: a FIFO of ``maxsize``; when it is full the oldest is dropped (counted).
- ``block``: a FIFO of ``maxsize``; when it is full the capture thread waits, nothing is dropped
  (for processing every frame of a file).

Buffers come from a pool of at most ``buffers`` arrays that the grabber decodes into; a frame's
buffer goes back to the pool when the frame is released, so the hot path copies nothing. If the
reader holds every buffer, the capture thread waits for one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Literal

from edgekit.media.base import Frame, FrameGrabber, Image, SourceStats
from edgekit.media.errors import (
    CaptureError,
    EndOfStream,
    MediaTimeout,
    SourceClosed,
    UnknownSourceError,
)

log = logging.getLogger(__name__)

Policy = Literal["latest", "queue", "block"]
POLICIES: tuple[str, ...] = ("latest", "queue", "block")

#: reconnect delays for a lost live stream: first, factor, ceiling (seconds).
BACKOFF_FIRST, BACKOFF_FACTOR, BACKOFF_MAX = 0.05, 2.0, 2.0
#: how long close() waits for the capture thread: longer than a network read may block.
JOIN_TIMEOUT = 8.0


class CaptureSource:
    """A :class:`~edgekit.media.base.FrameSource` over a grabber on its own thread."""

    def __init__(
        self,
        grabber: FrameGrabber,
        policy: Policy | str = "latest",
        maxsize: int = 2,
        buffers: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        if policy not in POLICIES:
            raise UnknownSourceError(
                f"unknown frame policy {policy!r}: use one of {', '.join(POLICIES)}"
            )
        if maxsize < 1:
            raise UnknownSourceError(f"maxsize must be at least 1, got {maxsize}")
        self.url = grabber.url
        self.policy = policy
        #: how long iteration (``for frame in source``) waits for a frame.
        self.timeout = timeout
        self._grabber = grabber
        self._capacity = 1 if policy == "latest" else maxsize
        # One being filled, the waiting ones, and a few held by the reader.
        self._max_buffers = buffers if buffers is not None else self._capacity + 6
        if self._max_buffers < self._capacity + 1:
            raise UnknownSourceError(
                f"buffers={self._max_buffers} is too few for {policy} with maxsize={maxsize}: "
                f"give at least {self._capacity + 1}"
            )
        self._cond = threading.Condition()
        self._pending: deque[tuple[Image, int, int]] = deque()
        self._free: list[Image] = []
        self._allocated = 0
        self._stop = threading.Event()
        self._ended = False
        self._closed = False
        self._error: BaseException | None = None
        self._captured = 0
        self._delivered = 0
        self._dropped = 0
        self._reconnects = 0
        self._last_seq = -1
        self._t_first = 0
        self._t_last = 0
        self._t_first_read = 0
        self._t_last_read = 0
        grabber.open()  # the first open fails synchronously, with the grabber's own error
        self._thread = threading.Thread(
            target=self._run, name=f"edgekit-capture[{self.url}]", daemon=True
        )
        self._thread.start()

    # -- capture thread ----------------------------------------------------------------------
    def _run(self) -> None:
        grabber = self._grabber
        seq = 0
        backoff = BACKOFF_FIRST
        t_start = time.monotonic()
        try:
            while not self._stop.is_set():
                ok, buffer = self._take_buffer()
                if not ok:
                    break
                if grabber.paced and grabber.fps:
                    due = t_start + seq / grabber.fps
                    delay = due - time.monotonic()
                    if delay < -1.0 / grabber.fps:
                        # More than a frame late (the machine was busy): like a camera, carry
                        # on from now instead of bursting to catch up.
                        t_start -= delay
                    elif delay > 0 and self._stop.wait(delay):
                        self._give_back(buffer)
                        break
                image = grabber.grab(buffer)
                t_capture = time.monotonic_ns()
                if image is None:
                    self._give_back(buffer)
                    if not grabber.live:
                        break
                    if not self._reconnect(backoff):
                        break
                    backoff = min(backoff * BACKOFF_FACTOR, BACKOFF_MAX)
                    t_start = time.monotonic() - seq / grabber.fps if grabber.fps else t_start
                    continue
                backoff = BACKOFF_FIRST
                # When the grabber allocated (first frames, a size change) its array joins the
                # pool in place of the buffer it was handed.
                self._publish(image, seq, t_capture)
                seq += 1
        except BaseException as e:  # surfaced to the reader by read()
            log.debug("capture thread of %s failed", self.url, exc_info=True)
            with self._cond:
                self._error = e
        finally:
            try:
                grabber.close()
            finally:
                with self._cond:
                    self._ended = True
                    self._cond.notify_all()

    def _reconnect(self, backoff: float) -> bool:
        grabber = self._grabber
        with self._cond:
            self._reconnects += 1
        log.warning("%s: stream lost, reconnecting in %.2f s", self.url, backoff)
        grabber.close()
        while not self._stop.wait(backoff):
            try:
                grabber.open()
            except Exception as e:
                backoff = min(backoff * BACKOFF_FACTOR, BACKOFF_MAX)
                log.warning("%s: reconnect failed (%s); next try in %.2f s", self.url, e, backoff)
                continue
            log.info("%s: reconnected", self.url)
            return True
        return False

    def _take_buffer(self) -> tuple[bool, Image | None]:
        """``(True, buffer)``, or ``(True, None)`` to let the grabber allocate one; waits while
        the pool is exhausted. ``(False, None)`` once stopping."""
        with self._cond:
            while True:
                if self._stop.is_set():
                    return False, None
                if self._free:
                    return True, self._free.pop()
                if self._allocated < self._max_buffers:
                    self._allocated += 1
                    return True, None
                self._cond.wait(0.1)

    def _give_back(self, buffer: Image | None) -> None:
        with self._cond:
            if buffer is None:
                self._allocated -= 1
            else:
                self._free.append(buffer)
            self._cond.notify_all()

    def _publish(self, image: Image, seq: int, t_capture: int) -> None:
        with self._cond:
            if self.policy == "block":
                while len(self._pending) >= self._capacity and not self._stop.is_set():
                    self._cond.wait(0.1)
            elif len(self._pending) >= self._capacity:
                old, _, _ = self._pending.popleft()
                self._free.append(old)
                self._dropped += 1
            self._pending.append((image, seq, t_capture))
            self._captured += 1
            self._last_seq = seq
            if self._captured == 1:
                self._t_first = t_capture
            self._t_last = t_capture
            self._cond.notify_all()

    def _release(self, image: Image) -> None:
        with self._cond:
            if not self._closed:
                self._free.append(image)
            self._cond.notify_all()

    # -- reader ------------------------------------------------------------------------------
    def read(self, timeout: float | None = 5.0) -> Frame:
        """The next frame under the policy; release it (``with``) before holding too many.

        Raises:
            EndOfStream: a finite source has delivered its last frame.
            MediaTimeout: nothing arrived within ``timeout`` seconds (``None`` waits forever).
            CaptureError: the capture thread failed (the original is the ``__cause__``).
            SourceClosed: the source was closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._pending:
                if self._closed:
                    raise SourceClosed(f"{self.url} is closed; open it again with open_source()")
                if self._error is not None:
                    raise CaptureError(
                        f"{self.url}: capture failed: {self._error!r}"
                    ) from self._error
                if self._ended:
                    raise EndOfStream(f"{self.url}: end of stream after {self._captured} frames")
                remaining = 0.1 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise MediaTimeout(
                        f"{self.url}: no frame within {timeout} s; the source may be stalled "
                        "or slower than expected: raise the timeout or check the device"
                    )
                self._cond.wait(min(remaining, 0.1))
            image, seq, t_capture = self._pending.popleft()
            self._delivered += 1
            now = time.monotonic_ns()
            if self._delivered == 1:
                self._t_first_read = now
            self._t_last_read = now
            self._cond.notify_all()
        return Frame(image, seq, t_capture, self.url, self._release)

    def __iter__(self) -> CaptureSource:
        return self

    def __next__(self) -> Frame:
        """The next frame (release each one); ``MediaTimeout`` after :attr:`timeout` seconds."""
        try:
            return self.read(timeout=self.timeout)
        except EndOfStream:
            raise StopIteration from None

    def stats(self) -> SourceStats:
        with self._cond:
            fps = _rate(self._captured, self._t_first, self._t_last)
            delivered_fps = _rate(self._delivered, self._t_first_read, self._t_last_read)
            return SourceStats(
                url=self.url,
                captured=self._captured,
                delivered=self._delivered,
                dropped=self._dropped,
                pending=len(self._pending),
                reconnects=self._reconnects,
                last_seq=self._last_seq,
                fps=fps,
                delivered_fps=delivered_fps,
            )

    @property
    def ended(self) -> bool:
        """True once a finite source has captured its last frame (some may still be pending)."""
        with self._cond:
            return self._ended

    def close(self) -> None:
        """Stop and join the capture thread and release the device; idempotent."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(JOIN_TIMEOUT)
        if self._thread.is_alive():
            log.error("%s: capture thread did not stop within %.0f s", self.url, JOIN_TIMEOUT)
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._free.clear()
            self._cond.notify_all()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureSource {self.url} policy={self.policy}>"


def _rate(count: int, t_first: int, t_last: int) -> float:
    if count < 2 or t_last <= t_first:
        return 0.0
    return (count - 1) * 1e9 / (t_last - t_first)
