"""Camera and audio I/O.

Frames: ``open_source(url)`` -> a :class:`~edgekit.media.capture.CaptureSource` lending
:class:`~edgekit.media.base.Frame` objects (see :mod:`edgekit.media.base` for the lifetime rule).
Audio: :mod:`edgekit.media.audio` (microphone, speaker, WAV files). OpenCV and sounddevice are
imported only when a source that needs them is opened.
"""

from __future__ import annotations

from edgekit.media.base import Frame, FrameGrabber, FrameSource, SourceStats, SourceURL
from edgekit.media.capture import CaptureSource
from edgekit.media.errors import (
    AudioDeviceError,
    AudioFormatError,
    CaptureError,
    EndOfStream,
    FrameReleased,
    MediaBackendUnavailable,
    MediaError,
    MediaTimeout,
    SourceClosed,
    SourceNotFound,
    SourceOpenError,
    UnknownSourceError,
)
from edgekit.media.registry import (
    open_grabber,
    open_source,
    parse_source_url,
    register_source,
    source_schemes,
    unregister_source,
)

__all__ = [
    "AudioDeviceError",
    "AudioFormatError",
    "CaptureError",
    "CaptureSource",
    "EndOfStream",
    "Frame",
    "FrameGrabber",
    "FrameReleased",
    "FrameSource",
    "MediaBackendUnavailable",
    "MediaError",
    "MediaTimeout",
    "SourceClosed",
    "SourceNotFound",
    "SourceOpenError",
    "SourceStats",
    "SourceURL",
    "UnknownSourceError",
    "open_grabber",
    "open_source",
    "parse_source_url",
    "register_source",
    "source_schemes",
    "unregister_source",
]
