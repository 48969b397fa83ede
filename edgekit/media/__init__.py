"""Camera and audio I/O.

Frames come from a URL (``cam:0``, ``file:clip.mp4?pace=1``, ``rtsp://...``, ``http://...``,
``gst:...``, ``synthetic:bars``) through a capture thread; each frame is borrowed from a small
pool and valid inside its ``with`` block (see :mod:`edgekit.media.base`)::

    from edgekit.media import open_source

    with open_source("cam:0?width=640&height=480", policy="latest") as camera:
        with camera.read(timeout=2) as frame:      # the newest frame, no copy
            faces = detect(frame.image)           # frame.image is valid only in here
        print(camera.stats())                     # captured, delivered, dropped, fps

Audio goes through PortAudio devices or WAV files with one interface::

    from edgekit.media import Microphone, Speaker

    with Microphone("USB", rate=16000) as mic:    # resampled if the device cannot do 16 kHz
        chunk = mic.read(512, timeout=1)          # AudioChunk: samples, t_start_ns, seq
    with Speaker(rate=16000) as speaker:
        playing = speaker.play(reply)             # returns at once
        playing.stop()                            # barge-in

A :class:`WavSpeaker` plays into a WAV file the same way (both are an :class:`AudioSink`), paced
by the wall clock or stepped by the caller with ``advance(n)``; :func:`synthesize` speaks text
with espeak-ng.

OpenCV and sounddevice are imported only when a source that needs them is opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgekit.media.base import (
    AudioChunk,
    AudioSink,
    AudioSource,
    Frame,
    FrameGrabber,
    FrameSource,
    Playback,
    SourceStats,
    SourceURL,
)
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
from edgekit.media.opencv import video_backends
from edgekit.media.registry import (
    open_grabber,
    open_source,
    parse_source_url,
    register_source,
    source_schemes,
    unregister_source,
)

if TYPE_CHECKING:
    from edgekit.media.audio import (
        AudioDevice,
        AudioStats,
        Microphone,
        PlaybackHandle,
        Speaker,
        list_devices,
        rescan_devices,
    )
    from edgekit.media.speech import SpeechSynthesisError, SpeechSynthesisUnavailable, synthesize
    from edgekit.media.wav import (
        WavPlayback,
        WavSink,
        WavSource,
        WavSpeaker,
    )

_LAZY = {
    "AudioDevice": "edgekit.media.audio",
    "AudioStats": "edgekit.media.audio",
    "list_devices": "edgekit.media.audio",
    "rescan_devices": "edgekit.media.audio",
    "Microphone": "edgekit.media.audio",
    "PlaybackHandle": "edgekit.media.audio",
    "Speaker": "edgekit.media.audio",
    "WavPlayback": "edgekit.media.wav",
    "WavSink": "edgekit.media.wav",
    "WavSource": "edgekit.media.wav",
    "WavSpeaker": "edgekit.media.wav",
    "SpeechSynthesisError": "edgekit.media.speech",
    "SpeechSynthesisUnavailable": "edgekit.media.speech",
    "synthesize": "edgekit.media.speech",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit.media' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AudioChunk",
    "AudioDevice",
    "AudioDeviceError",
    "AudioFormatError",
    "AudioSink",
    "AudioSource",
    "AudioStats",
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
    "Microphone",
    "Playback",
    "PlaybackHandle",
    "SourceClosed",
    "SourceNotFound",
    "SourceOpenError",
    "SourceStats",
    "SourceURL",
    "Speaker",
    "SpeechSynthesisError",
    "SpeechSynthesisUnavailable",
    "UnknownSourceError",
    "WavPlayback",
    "WavSink",
    "WavSource",
    "WavSpeaker",
    "list_devices",
    "open_grabber",
    "open_source",
    "parse_source_url",
    "register_source",
    "rescan_devices",
    "source_schemes",
    "synthesize",
    "unregister_source",
    "video_backends",
]
