"""Frame sources by URL: an explicit registry of scheme -> grabber factory.

``cam:0``, ``cam:/dev/video0?width=1280&height=720&fps=30&fourcc=MJPG``,
``file:clip.mp4?loop=1&pace=1``, ``rtsp://host/stream``, ``http://camera/stream.mjpg``,
``gst:videotestsrc ! appsink``, ``synthetic:bars?width=320&height=240&fps=30&frames=100``.
Register more with :func:`register_source`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from urllib.parse import parse_qsl

from edgekit.media.base import FrameGrabber, SourceURL
from edgekit.media.capture import CaptureSource, Policy
from edgekit.media.errors import UnknownSourceError

GrabberFactory = Callable[[SourceURL], FrameGrabber]

_SOURCES: dict[str, GrabberFactory] = {}
#: schemes whose whole URL goes to the backend (no edgekit options are parsed from the query).
_OPAQUE: set[str] = set()


def register_source(
    scheme: str, factory: GrabberFactory, *, opaque: bool = False, replace: bool = False
) -> None:
    """Make ``scheme:...`` URLs open through ``factory``.

    Args:
        scheme: the URL scheme, lower case, without the colon.
        factory: builds an unopened grabber from the parsed URL; it validates the options and
            raises :class:`~edgekit.media.errors.MediaError` subclasses for bad ones.
        opaque: pass the URL to the backend whole: no ``?key=value`` options are parsed.
        replace: allow replacing an existing registration.
    """
    scheme = scheme.lower()
    if scheme in _SOURCES and not replace:
        raise UnknownSourceError(f"source scheme {scheme!r} is registered already")
    _SOURCES[scheme] = factory
    if opaque:
        _OPAQUE.add(scheme)
    else:
        _OPAQUE.discard(scheme)


def unregister_source(scheme: str) -> None:
    _SOURCES.pop(scheme.lower(), None)
    _OPAQUE.discard(scheme.lower())


def source_schemes() -> tuple[str, ...]:
    return tuple(sorted(_SOURCES))


def parse_source_url(url: str) -> SourceURL:
    """Split ``scheme:target?options``; raise :class:`UnknownSourceError` if it cannot be."""
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme.isidentifier():
        raise UnknownSourceError(
            f"{url!r} is not a source URL: it has no scheme. Use file:{url} for a video file, "
            "cam:0 for a camera, or one of " + ", ".join(f"{s}:" for s in source_schemes())
        )
    if scheme not in _SOURCES:
        close = difflib.get_close_matches(scheme, source_schemes(), n=1)
        hint = f" (did you mean {close[0]}:?)" if close else ""
        raise UnknownSourceError(
            f"{url!r}: unknown source scheme {scheme!r}{hint}; the schemes are "
            + ", ".join(f"{s}:" for s in source_schemes())
        )
    if scheme in _OPAQUE:
        return SourceURL(url, scheme, rest)
    target, _, query = rest.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as e:
        raise UnknownSourceError(f"{url!r}: malformed options {query!r}: use ?key=value&...") from e
    return SourceURL(url, scheme, target, options)


def open_grabber(url: str) -> FrameGrabber:
    """The unopened grabber a URL names."""
    parsed = parse_source_url(url)
    return _SOURCES[parsed.scheme](parsed)


def open_source(
    url: str,
    policy: Policy | str = "latest",
    maxsize: int = 2,
    buffers: int | None = None,
    timeout: float = 10.0,
) -> CaptureSource:
    """Open a frame source by URL and start its capture thread.

    Args:
        url: see the module docstring.
        policy: ``latest`` (newest frame only), ``queue`` (FIFO dropping the oldest) or
            ``block`` (FIFO that pauses capture when full; nothing is dropped).
        maxsize: FIFO length for ``queue`` and ``block``.
        buffers: pool size (default ``maxsize + 6``); more lets a reader hold more frames.
        timeout: how long iterating the source waits for a frame before ``MediaTimeout``.
    """
    return CaptureSource(
        open_grabber(url), policy=policy, maxsize=maxsize, buffers=buffers, timeout=timeout
    )


def _register_builtins() -> None:
    from edgekit.media import opencv, synthetic

    register_source("cam", opencv.open_camera)
    register_source("file", opencv.open_file)
    for scheme in ("rtsp", "rtsps", "http", "https"):
        register_source(scheme, opencv.open_network, opaque=True)
    register_source("gst", opencv.open_gstreamer, opaque=True)
    register_source("synthetic", synthetic.open_synthetic)


_register_builtins()
