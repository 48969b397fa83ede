"""Streaming pipelines: a source, stages on threads with bounded queues, and a sink.

::

    source = open_source("cam:0")
    stages = [
        Stage("detect", detect),                   # gets the borrowed Frame
        Stage("crop", crop_faces),                 # any object flows between stages
        Stage("recognise", recognise, policy="block"),
    ]
    with Pipeline(source, stages) as p:
        for result in p:                           # Result: value, seq, capture time, latency
            print(result.value, result.latency_ms)

Each stage runs ``workers`` threads that take items from the stage's bounded input queue. When
that queue is full, ``drop_oldest`` throws the oldest waiting item away (counted as dropped, the
right thing for live cameras) and ``block`` makes the upstream thread wait (backpressure: nothing
is lost). A stage that returns ``None`` filters the item out. A stage that raises stops the
pipeline; the caller gets a :class:`StageError` naming the stage, with the original exception as
its ``__cause__``.

Frames from a :class:`~edgekit.media.base.FrameSource` are borrowed (see
:mod:`edgekit.media.base`): the first stage receives the :class:`~edgekit.media.base.Frame`, and
the frame goes back to its pool as soon as a stage returns something other than the frame
itself. A stage must therefore not return views of ``frame.image``; return a converted array, a
crop copy, or ``frame.copy()``. A stage with several workers hands its results on in the order
it took the items (``ordered=True``, the default) or as they finish (``ordered=False``: no
waiting behind a slow item).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.media.base import AudioChunk, Frame, FrameSource, SourceStats
from edgekit.media.errors import EndOfStream, MediaTimeout

log = logging.getLogger(__name__)

QueuePolicy = Literal["drop_oldest", "block"]
QUEUE_POLICIES: tuple[str, ...] = ("drop_oldest", "block")
#: how long close() waits for each thread; a stage stuck in its function longer is reported.
JOIN_TIMEOUT = 5.0
#: how often waiting threads look at the stop flag.
POLL = 0.05
#: latency samples kept per stage for the percentiles.
LATENCY_WINDOW = 4096


class PipelineError(EdgekitError):
    """A pipeline was built or used wrongly."""


class PipelineConfigError(PipelineError, ValueError):
    """A stage or pipeline argument is invalid; the message names it and the fix."""


class PipelineTimeout(PipelineError, TimeoutError):
    """No result came out within the pipeline's ``result_timeout``."""


class StageError(PipelineError, RuntimeError):
    """A stage's function (or the source, as stage ``source``) raised; see ``__cause__``."""

    def __init__(self, stage: str, seq: int | None, error: BaseException) -> None:
        where = f" on item {seq}" if seq is not None else ""
        super().__init__(
            f"pipeline stage {stage!r} failed{where}: {type(error).__name__}: {error}. The "
            "pipeline was stopped; the original exception is this error's __cause__"
        )
        self.stage = stage
        self.seq = seq


@dataclass(frozen=True)
class Stage:
    """One step: ``fn(item) -> item`` on ``workers`` threads behind a queue of ``maxsize``."""

    name: str
    fn: Callable[[Any], Any]
    policy: QueuePolicy = "drop_oldest"
    maxsize: int = 2
    workers: int = 1
    ordered: bool = True

    def __post_init__(self) -> None:
        if self.policy not in QUEUE_POLICIES:
            raise PipelineConfigError(
                f"stage {self.name!r}: unknown policy {self.policy!r}; use drop_oldest or block"
            )
        if self.maxsize < 1 or self.workers < 1:
            raise PipelineConfigError(
                f"stage {self.name!r}: maxsize and workers must be at least 1, got "
                f"maxsize={self.maxsize}, workers={self.workers}"
            )
        if not callable(self.fn):
            raise PipelineConfigError(f"stage {self.name!r}: fn must be callable")


@dataclass(frozen=True)
class Result:
    """What comes out of the last stage, with its source sequence number and capture time."""

    value: Any
    seq: int
    t_capture_ns: int
    t_done_ns: int

    @property
    def latency_ms(self) -> float:
        """Capture (or, for plain iterables, read) to result, in milliseconds."""
        return (self.t_done_ns - self.t_capture_ns) / 1e6


@dataclass(frozen=True)
class StageStats:
    """Counters of one stage; ``received == processed + dropped + queued`` while it runs."""

    name: str
    workers: int
    policy: str
    received: int
    processed: int
    dropped: int
    filtered: int
    errors: int
    queued: int
    fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_mean_ms: float


@dataclass(frozen=True)
class PipelineStats:
    """A snapshot of a pipeline; :meth:`as_dict` for JSON, :func:`format_stats` for people."""

    running: bool
    elapsed_s: float
    source_items: int
    results: int
    fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    stages: tuple[StageStats, ...]
    source: SourceStats | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_stats(stats: PipelineStats) -> str:
    """A fixed-width text table of a stats snapshot, for a CLI to print while it runs."""
    header = (
        f"{'stage':<16}{'fps':>8}{'p50 ms':>9}{'p99 ms':>9}{'done':>8}{'dropped':>9}{'queued':>8}"
    )
    lines = [header, "-" * len(header)]
    if stats.source is not None:
        src = stats.source
        lines.append(
            f"{'source':<16}{src.fps:>8.1f}{'':>9}{'':>9}{src.captured:>8}{src.dropped:>9}"
            f"{src.pending:>8}"
        )
    for st in stats.stages:
        lines.append(
            f"{st.name[:15]:<16}{st.fps:>8.1f}{st.latency_p50_ms:>9.2f}{st.latency_p99_ms:>9.2f}"
            f"{st.processed:>8}{st.dropped:>9}{st.queued:>8}"
        )
    lines.append(
        f"{'end-to-end':<16}{stats.fps:>8.1f}{stats.latency_p50_ms:>9.2f}"
        f"{stats.latency_p99_ms:>9.2f}{stats.results:>8}{'':>9}{'':>8}"
    )
    if stats.error:
        lines.append(f"error: {stats.error}")
    return "\n".join(lines)


# -- internals ---------------------------------------------------------------------------------
class _End:
    """The end-of-stream marker that follows the last item through every queue."""


_END = _End()


@dataclass
class _Item:
    seq: int
    t_capture_ns: int
    value: Any
    frame: Frame | None = None

    def release(self) -> None:
        frame, self.frame = self.frame, None
        if frame is not None:
            frame.release()


class _Queue:
    """A bounded queue with a drop-oldest or blocking put that gives up when the pipeline stops.

    Producers and consumers wait on separate conditions and each hand-off wakes one thread, so
    no thread wakes (and competes for the GIL) for nothing.
    """

    def __init__(self, maxsize: int, policy: str, stop: threading.Event) -> None:
        self.maxsize = maxsize
        self.policy = policy
        self._stop = stop
        self._items: deque[_Item | _End] = deque()
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        self.received = 0
        self.dropped = 0

    def put(self, item: _Item) -> bool:
        """Enqueue under the policy; ``False`` if the pipeline stopped first."""
        dropped: _Item | None = None
        with self._not_full:
            if self.policy == "block":
                while len(self._items) >= self.maxsize:
                    if self._stop.is_set():
                        return False
                    self._not_full.wait(POLL)
            elif len(self._items) >= self.maxsize:
                for index, old in enumerate(self._items):
                    if isinstance(old, _Item):
                        del self._items[index]
                        dropped = old
                        self.dropped += 1
                        break
            self._items.append(item)
            self.received += 1
            self._not_empty.notify()
        if dropped is not None:
            dropped.release()
        return True

    def put_end(self) -> None:
        with self._not_empty:
            self._items.append(_END)
            self._not_empty.notify_all()

    def get(self, timeout: float) -> _Item | _End | None:
        with self._not_empty:
            if not self._items:
                self._not_empty.wait(timeout)
                if not self._items:
                    return None
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def __len__(self) -> int:
        with self._not_empty:
            return sum(isinstance(item, _Item) for item in self._items)

    def wake(self) -> None:
        with self._not_empty:
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def drain(self) -> None:
        with self._not_empty:
            items = list(self._items)
            self._items.clear()
            self._not_full.notify_all()
        for item in items:
            if isinstance(item, _Item):
                item.release()


@dataclass
class _Counters:
    processed: int = 0
    filtered: int = 0
    errors: int = 0
    t_first_ns: int = 0
    t_last_ns: int = 0
    latencies: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, t_start: int, t_end: int, filtered: bool) -> None:
        with self.lock:
            self.processed += 1
            self.filtered += filtered
            if self.processed == 1:
                self.t_first_ns = t_start
            self.t_last_ns = t_end
            self.latencies.append(t_end - t_start)

    def summary(self) -> tuple[int, int, int, float, float, float, float]:
        with self.lock:
            samples = np.fromiter(self.latencies, dtype=np.float64, count=len(self.latencies))
            processed, filtered, errors = self.processed, self.filtered, self.errors
            span = self.t_last_ns - self.t_first_ns
        fps = processed * 1e9 / span if processed and span > 0 else 0.0
        if samples.size:
            p50, p99 = np.percentile(samples, [50, 99]) / 1e6
            mean = float(samples.mean()) / 1e6
        else:
            p50 = p99 = mean = 0.0
        return processed, filtered, errors, fps, float(p50), float(p99), mean


class _StageRunner:
    def __init__(self, stage: Stage, inbox: _Queue) -> None:
        self.stage = stage
        self.inbox = inbox
        self.counters = _Counters()
        self.live_workers = stage.workers
        self.lock = threading.Lock()
        # Reordering for several workers: tickets in the order items were taken.
        self.reorder = stage.ordered and stage.workers > 1
        self.take_lock = threading.Lock()
        self.order_lock = threading.Lock()
        self.next_ticket = 0
        self.next_out = 0
        self.finished: dict[int, _Item | None] = {}

    def take(self, timeout: float) -> tuple[int, _Item | _End | None]:
        if not self.reorder:
            return 0, self.inbox.get(timeout)
        with self.take_lock:
            item = self.inbox.get(timeout)
            ticket = self.next_ticket
            if isinstance(item, _Item):
                self.next_ticket += 1
            return ticket, item

    def publish(self, ticket: int, item: _Item | None, outbox: _Queue) -> bool:
        """Pass ``item`` on (``None``: filtered out) in ticket order; ``False`` if stopping."""
        if not self.reorder:
            return item is None or _put_or_release(outbox, item)
        with self.order_lock:
            self.finished[ticket] = item
            while self.next_out in self.finished:
                ready = self.finished.pop(self.next_out)
                self.next_out += 1
                if ready is not None and not _put_or_release(outbox, ready):
                    for rest in self.finished.values():
                        if rest is not None:
                            rest.release()
                    self.finished.clear()
                    return False
        return True


def _put_or_release(outbox: _Queue, item: _Item) -> bool:
    if outbox.put(item):
        return True
    item.release()
    return False


class Pipeline:
    """``source -> stages -> sink`` on threads; iterate it for :class:`Result` objects.

    Args:
        source: a :class:`~edgekit.media.base.FrameSource` (read with a timeout, frames
            borrowed), a source URL (opened with ``open_source(url)``), or any iterable, such
            as ``microphone.chunks(512)`` (audio chunks keep their sequence numbers and times).
        stages: run in order; at least one.
        sink: called with each final value on its own thread (stage ``sink``), before the
            result is handed to the iterator.
        close_source: close the source when the pipeline closes (always for URLs).
        output_maxsize: results waiting for the iterator; the last stage blocks when it is full.
        result_timeout: seconds the iterator waits for the next result before it stops the
            pipeline and raises :class:`PipelineTimeout`; ``None`` waits as long as the source
            lives (a live camera may be reconnecting).
    """

    def __init__(
        self,
        source: FrameSource | str | Iterable[Any],
        stages: Iterable[Stage],
        sink: Callable[[Any], Any] | None = None,
        *,
        close_source: bool = True,
        output_maxsize: int = 8,
        result_timeout: float | None = None,
    ) -> None:
        stage_list = list(stages)
        if sink is not None:
            stage_list.append(Stage("sink", _SinkCall(sink), policy="block", maxsize=2))
        if not stage_list:
            raise PipelineConfigError("a pipeline needs at least one stage (or a sink)")
        names = [stage.name for stage in stage_list]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates or "source" in names:
            raise PipelineConfigError(
                f"stage names must be unique and not 'source'; repeated or reserved: "
                f"{duplicates or ['source']}"
            )
        if isinstance(source, str):
            from edgekit.media import open_source

            source = open_source(source)
            close_source = True
        self._source = source
        self._close_source = close_source
        self._result_timeout = result_timeout
        self._stop = threading.Event()
        self._runners = [
            _StageRunner(stage, _Queue(stage.maxsize, stage.policy, self._stop))
            for stage in stage_list
        ]
        self._output = _Queue(output_maxsize, "block", self._stop)
        self._threads: list[threading.Thread] = []
        self._error: StageError | None = None
        self._error_lock = threading.Lock()
        self._started = False
        self._closed = False
        self._finished = False
        self._source_items = 0
        self._results = 0
        self._e2e: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self._t_start_ns = 0
        self._t_end_ns = 0
        self._t_first_result = 0
        self._t_last_result = 0
        self._held: Frame | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Start the threads (``with`` and iteration do this); idempotent."""
        if self._closed:
            raise PipelineError("this pipeline was closed; build a new one to run again")
        if self._started:
            return self
        self._started = True
        self._t_start_ns = time.monotonic_ns()
        self._spawn("source", self._source_loop)
        for index, runner in enumerate(self._runners):
            outbox = (
                self._runners[index + 1].inbox if index + 1 < len(self._runners) else self._output
            )
            for worker in range(runner.stage.workers):
                self._spawn(f"{runner.stage.name}-{worker}", self._stage_loop, runner, outbox)
        return self

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(
            target=target, args=args, name=f"edgekit-pipeline[{name}]", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Stop every thread, join them, release held frames and close the source; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for runner in self._runners:
            runner.inbox.wake()
        self._output.wake()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
            if thread.is_alive():
                log.error("%s did not stop within %.0f s", thread.name, JOIN_TIMEOUT)
        for runner in self._runners:
            runner.inbox.drain()
        self._output.drain()
        self._release_held()
        if self._t_end_ns == 0:
            self._t_end_ns = time.monotonic_ns()
        if self._close_source:
            close = getattr(self._source, "close", None)
            source_busy = bool(self._threads) and self._threads[0].is_alive()
            if source_busy and isinstance(self._source, Iterator):
                # A generator cannot be closed while its thread is still inside it.
                log.error("the source is still blocked in its iterator; it was not closed")
            elif callable(close):
                close()

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- threads -----------------------------------------------------------------------------
    def _fail(self, stage: str, seq: int | None, error: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                wrapped = StageError(stage, seq, error)
                wrapped.__cause__ = error
                self._error = wrapped
                log.debug("stage %s failed", stage, exc_info=error)
        self._stop.set()
        self._output.wake()

    def _source_loop(self) -> None:
        inbox = self._runners[0].inbox
        try:
            for item in self._source_items_iter():
                self._source_items += 1
                if not inbox.put(item):
                    item.release()
                    return
        except BaseException as e:
            self._fail("source", None, e)
            return
        if not self._stop.is_set():
            inbox.put_end()

    def _source_items_iter(self) -> Iterator[_Item]:
        source = self._source
        if isinstance(source, FrameSource):
            while not self._stop.is_set():
                try:
                    frame = source.read(timeout=POLL * 2)
                except MediaTimeout:
                    continue
                except EndOfStream:
                    return
                yield _Item(frame.seq, frame.t_capture_ns, frame, frame)
            return
        for seq, value in enumerate(source):
            if self._stop.is_set():
                if isinstance(value, Frame):
                    value.release()
                return
            if isinstance(value, Frame):
                yield _Item(value.seq, value.t_capture_ns, value, value)
            elif isinstance(value, AudioChunk):
                # A chunk exists once its last sample was captured.
                yield _Item(value.seq, min(value.t_end_ns, time.monotonic_ns()), value)
            else:
                yield _Item(seq, time.monotonic_ns(), value)

    def _stage_loop(self, runner: _StageRunner, outbox: _Queue) -> None:
        fn = runner.stage.fn
        inbox = runner.inbox
        counters = runner.counters
        while not self._stop.is_set():
            ticket, item = runner.take(POLL)
            if item is None:
                continue
            if isinstance(item, _End):
                with runner.lock:
                    runner.live_workers -= 1
                    last = runner.live_workers == 0
                if last:
                    outbox.put_end()
                else:
                    inbox.put_end()  # for the sibling workers
                return
            t_start = time.monotonic_ns()
            try:
                value = fn(item.value)
            except BaseException as e:
                with counters.lock:
                    counters.errors += 1
                item.release()
                self._fail(runner.stage.name, item.seq, e)
                return
            t_end = time.monotonic_ns()
            counters.add(t_start, t_end, value is None)
            if item.frame is not None and value is not item.frame:
                item.release()
            if value is not None:
                item.value = value
            if not runner.publish(ticket, item if value is not None else None, outbox):
                return

    # -- consumer ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Result]:
        self.start()
        return self

    def __next__(self) -> Result:
        self._release_held()
        if not self._started:
            self.start()
        deadline = None if self._result_timeout is None else time.monotonic() + self._result_timeout
        while True:
            if self._error is not None:
                self.close()
                raise self._error
            if self._finished or self._closed:
                raise StopIteration
            item = self._output.get(POLL)
            if item is None:
                if deadline is not None and time.monotonic() > deadline:
                    self.close()
                    raise PipelineTimeout(
                        f"no result within {self._result_timeout} s: the source may have "
                        "stalled or every item was filtered or dropped; see stats()"
                    )
                continue
            if isinstance(item, _End):
                self._finished = True
                self._t_end_ns = time.monotonic_ns()
                self.close()
                raise StopIteration
            t_done = time.monotonic_ns()
            self._results += 1
            if self._results == 1:
                self._t_first_result = t_done
            self._t_last_result = t_done
            self._e2e.append(t_done - item.t_capture_ns)
            self._held = item.frame  # a frame that reached the output lives until the next call
            return Result(item.value, item.seq, item.t_capture_ns, t_done)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def run(
        self, max_items: int | None = None, on_result: Callable[[Result], Any] | None = None
    ) -> PipelineStats:
        """Consume results until the source ends or ``max_items``, then close; the final stats.

        Ctrl-C (``KeyboardInterrupt``) stops and joins every thread before it propagates; a
        failing stage raises :class:`StageError` after the same clean stop.
        """
        try:
            for count, result in enumerate(self, start=1):
                if on_result is not None:
                    on_result(result)
                if max_items is not None and count >= max_items:
                    break
        finally:
            self._t_end_ns = self._t_end_ns or time.monotonic_ns()
            self.close()
        return self.stats()

    # -- stats -------------------------------------------------------------------------------
    def stats(self) -> PipelineStats:
        stage_stats = []
        for runner in self._runners:
            processed, filtered, errors, fps, p50, p99, mean = runner.counters.summary()
            stage_stats.append(
                StageStats(
                    name=runner.stage.name,
                    workers=runner.stage.workers,
                    policy=runner.stage.policy,
                    received=runner.inbox.received,
                    processed=processed,
                    dropped=runner.inbox.dropped,
                    filtered=filtered,
                    errors=errors,
                    queued=len(runner.inbox),
                    fps=fps,
                    latency_p50_ms=p50,
                    latency_p99_ms=p99,
                    latency_mean_ms=mean,
                )
            )
        samples = np.fromiter(self._e2e, dtype=np.float64, count=len(self._e2e))
        p50 = p99 = 0.0
        if samples.size:
            p50, p99 = (float(v) for v in np.percentile(samples, [50, 99]) / 1e6)
        end = self._t_end_ns or time.monotonic_ns()
        elapsed = (end - self._t_start_ns) / 1e9 if self._started else 0.0
        span = self._t_last_result - self._t_first_result
        fps = (self._results - 1) * 1e9 / span if self._results > 1 and span > 0 else 0.0
        source_stats = self._source.stats() if isinstance(self._source, FrameSource) else None
        return PipelineStats(
            running=self._started and not self._closed,
            elapsed_s=elapsed,
            source_items=self._source_items,
            results=self._results,
            fps=fps,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            stages=tuple(stage_stats),
            source=source_stats,
            error=str(self._error) if self._error is not None else None,
        )


class _SinkCall:
    """Calls the sink and passes the value on, so the sink is an ordinary (named) stage."""

    def __init__(self, sink: Callable[[Any], Any]) -> None:
        self._sink = sink

    def __call__(self, value: Any) -> Any:
        self._sink(value)
        return value


__all__ = [
    "Pipeline",
    "PipelineConfigError",
    "PipelineError",
    "PipelineStats",
    "PipelineTimeout",
    "Result",
    "Stage",
    "StageError",
    "StageStats",
    "format_stats",
]
