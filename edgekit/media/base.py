"""The media seams: what a camera-like grabber, a frame source and an audio stream provide.

A :class:`FrameGrabber` is the small, synchronous thing a URL scheme registers (OpenCV capture,
synthetic pattern): it opens, grabs one image into a buffer it is handed, and closes. A
:class:`FrameSource` is what callers use: ``open_source(url)`` runs a grabber on a capture thread
and lends out :class:`Frame` objects from a small buffer pool.

Frame lifetime: a frame is borrowed. Its ``image`` is a view of a pool buffer that the capture
thread reuses as soon as the frame is released (at the end of its ``with`` block, or by
``release()``). Reading ``frame.image`` after that raises :class:`FrameReleased`; an array
reference taken inside the block must not be used after it, because the next capture overwrites
it. Keep data beyond the block with ``frame.copy()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edgekit.media.errors import FrameReleased, UnknownSourceError

Image = npt.NDArray[np.uint8]
_RELEASE_LOCK = threading.Lock()


@dataclass(frozen=True)
class SourceURL:
    """A parsed source URL: ``scheme:target?key=value&...``.

    ``url`` is the text as given (network schemes such as ``rtsp://`` hand it to the backend
    whole); ``options`` are the query parameters for schemes that take them.
    """

    url: str
    scheme: str
    target: str
    options: Mapping[str, str] = field(default_factory=dict)

    def option_names(self, allowed: tuple[str, ...]) -> None:
        """Raise :class:`UnknownSourceError` for any option outside ``allowed``."""
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            listed = ", ".join(allowed) if allowed else "none"
            raise UnknownSourceError(
                f"{self.url}: unknown option(s) {', '.join(unknown)} for {self.scheme}: "
                f"sources; the options are: {listed}"
            )

    def int_option(self, name: str, default: int | None) -> int | None:
        value = _number(self, name, int)
        return default if value is None else int(value)

    def float_option(self, name: str, default: float | None) -> float | None:
        value = _number(self, name, float)
        return default if value is None else float(value)

    def flag(self, name: str) -> bool:
        value = self.options.get(name, "0").lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off", ""):
            return False
        raise UnknownSourceError(f"{self.url}: option {name}={value!r} is not a flag: use 1 or 0")


def _number(url: SourceURL, name: str, kind: type[int] | type[float]) -> float | None:
    text = url.options.get(name)
    if text is None:
        return None
    try:
        value: float = kind(text)
    except ValueError:
        raise UnknownSourceError(
            f"{url.url}: option {name}={text!r} is not a {kind.__name__}; e.g. {name}=30"
        ) from None
    if value <= 0:
        raise UnknownSourceError(f"{url.url}: option {name} must be positive, got {text}")
    return value


class FrameGrabber(Protocol):
    """One image at a time from a camera, a file, a stream or a generator.

    Grabbers are not thread-safe; a capture thread owns one. ``grab`` writes into ``out`` when it
    can (same shape and dtype) and returns the array it filled, or ``None`` when there are no
    more images (end of file, lost stream).
    """

    url: str
    #: frames per second the grabber delivers at (None if unknown).
    fps: float | None
    #: a live source is reopened with backoff when ``grab`` fails; a finite one ends.
    live: bool
    #: sleep between grabs so frames come at ``fps`` (files with ``pace=1``, synthetic sources).
    paced: bool

    def open(self) -> None: ...

    def grab(self, out: Image | None) -> Image | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceStats:
    """Counters of a frame source; ``captured == delivered + dropped + pending``."""

    url: str
    captured: int
    delivered: int
    dropped: int
    pending: int
    reconnects: int
    last_seq: int
    fps: float
    delivered_fps: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Frame:
    """A borrowed image with its sequence number and monotonic capture time.

    Valid inside ``with source.read() as frame:``; see the module docstring for the rule.
    """

    __slots__ = ("_image", "_release", "seq", "source", "t_capture_ns")

    def __init__(
        self,
        image: Image,
        seq: int,
        t_capture_ns: int,
        source: str,
        release: Callable[[Image], None] | None = None,
    ) -> None:
        self._image: Image | None = image
        self.seq = seq
        self.t_capture_ns = t_capture_ns
        self.source = source
        self._release = release

    @property
    def image(self) -> Image:
        """The pixels (HxWx3 uint8, BGR as OpenCV decodes); only while the frame is held."""
        image = self._image
        if image is None:
            raise FrameReleased(
                f"frame {self.seq} of {self.source} was released and its buffer reused: use "
                "frame.image inside the `with source.read() as frame:` block, or keep "
                "frame.copy()"
            )
        return image

    @property
    def released(self) -> bool:
        return self._image is None

    def copy(self) -> Image:
        """An owned copy of the image, safe to keep after the frame is released."""
        return self.image.copy()

    def release(self) -> None:
        """Give the buffer back to the pool; idempotent, also across threads."""
        with _RELEASE_LOCK:  # a buffer returned twice would be filled by two captures at once
            image, self._image = self._image, None
        if image is not None and self._release is not None:
            self._release(image)

    def __enter__(self) -> Frame:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        shape = "released" if self._image is None else "x".join(map(str, self._image.shape))
        return f"<Frame {self.source} seq={self.seq} {shape}>"


@runtime_checkable
class FrameSource(Protocol):
    """What ``open_source`` returns: borrowed frames, counters, and a ``close``."""

    url: str

    def read(self, timeout: float | None = None) -> Frame: ...

    def stats(self) -> SourceStats: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class AudioChunk:
    """Consecutive samples: float32, ``(n,)`` mono or ``(n, channels)``, at ``rate`` Hz.

    ``t_start_ns`` is the ``time.monotonic_ns()`` time of the first sample; ``seq`` counts the
    chunks a reader got. ``dropped`` is how many samples were lost right before this chunk
    because the reader fell behind the ring buffer (0 normally).
    """

    samples: npt.NDArray[np.float32]
    rate: int
    t_start_ns: int
    seq: int
    dropped: int = 0

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    @property
    def t_end_ns(self) -> int:
        return self.t_start_ns + round(self.frames * 1e9 / self.rate)


class Playback(Protocol):
    """A sound being played: ``stop()`` interrupts it (barge-in), ``wait()`` waits for the end;
    ``frames_played`` of ``frames_total`` tell how far it got, ``stopped`` whether it was cut
    short."""

    @property
    def done(self) -> bool: ...

    @property
    def stopped(self) -> bool: ...

    @property
    def frames_played(self) -> int: ...

    @property
    def frames_total(self) -> int: ...

    def stop(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@runtime_checkable
class AudioSource(Protocol):
    """Microphones and WAV files: timestamped chunks at the rate asked for."""

    rate: int
    channels: int

    def read(self, n_samples: int, timeout: float | None = None) -> AudioChunk: ...

    def chunks(self, n_samples: int, timeout: float | None = None) -> Iterator[AudioChunk]: ...

    def close(self) -> None: ...


@runtime_checkable
class AudioSink(Protocol):
    """Speakers and WAV files: ``play`` converts the rate if needed and returns a handle."""

    rate: int
    channels: int

    def play(self, samples: npt.ArrayLike, rate: int | None = None) -> Playback: ...

    def close(self) -> None: ...
