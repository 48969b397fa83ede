"""Errors raised by camera and audio sources, sinks and the frame pool."""

from __future__ import annotations

from edgekit.errors import BackendUnavailable, EdgekitError


class MediaError(EdgekitError):
    """Root of the media errors: a source, sink or device cannot do what was asked."""


class UnknownSourceError(MediaError, ValueError):
    """A source URL has no scheme, an unregistered scheme, or an unknown or malformed option."""


class SourceNotFound(MediaError, FileNotFoundError):
    """A file or device a source URL names does not exist."""


class SourceOpenError(MediaError, OSError):
    """A source exists but cannot be opened (busy device, unreachable stream, undecodable file)."""


class MediaBackendUnavailable(BackendUnavailable):
    """The installed OpenCV or PortAudio build lacks what a source needs (GStreamer, FFmpeg)."""


class EndOfStream(MediaError, EOFError):
    """A finite source (a file without ``loop=1``, a counted synthetic source) has no more data."""


class MediaTimeout(MediaError, TimeoutError):
    """No frame or samples arrived within the timeout."""


class SourceClosed(MediaError, RuntimeError):
    """The source, sink or stream was used after ``close()``."""


class FrameReleased(MediaError, RuntimeError):
    """A borrowed frame's buffer was used after the frame was released to the pool."""


class CaptureError(MediaError, RuntimeError):
    """The capture thread failed; the original exception is the ``__cause__``."""


class AudioDeviceError(MediaError, OSError):
    """An audio device cannot be found or opened, or a stream on it failed."""


class AudioFormatError(MediaError, ValueError):
    """Samples have the wrong rate, channel count or dtype for a source or sink."""


__all__ = [
    "AudioDeviceError",
    "AudioFormatError",
    "CaptureError",
    "EndOfStream",
    "FrameReleased",
    "MediaBackendUnavailable",
    "MediaError",
    "MediaTimeout",
    "SourceClosed",
    "SourceNotFound",
    "SourceOpenError",
    "UnknownSourceError",
]
