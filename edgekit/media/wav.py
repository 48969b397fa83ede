"""WAV files as an audio source and sink, with the microphone and speaker interface.

PCM WAV (8, 16, 24 or 32-bit integer) goes through the standard library's ``wave``; other WAV
encodings (32-bit float) are read with soundfile when it is installed. Samples are float32 in
-1..1; writing rounds to the file's integer width, so a 16-bit round trip of values that are
multiples of 1/32768 is exact.

Three ways to write one:

* :class:`WavSink` appends: ``play`` writes the whole sound at once and is finished.
* :class:`WavSpeaker` plays into the file like a speaker: a sound takes its time, ``stop()``
  interrupts it (barge-in), and the file holds exactly what was played, on a clock that is
  either the wall clock or the caller's (``advance(n)``, for sample-exact runs over files).
* :class:`WavSource` is the reading side.

:class:`~edgekit.media.base.AudioSink` is what a :class:`WavSpeaker`, a :class:`WavSink` and a
:class:`~edgekit.media.audio.Speaker` share, so a program plays on any without knowing which.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.errors import BackendUnavailable
from edgekit.media.audio import STALL_GRACE, as_frames
from edgekit.media.base import AudioChunk
from edgekit.media.errors import (
    AudioFormatError,
    EndOfStream,
    MediaError,
    MediaTimeout,
    SourceClosed,
    SourceNotFound,
    SourceOpenError,
)
from edgekit.media.resample import Resampler, resample

log = logging.getLogger(__name__)

__all__ = [
    "FinishedPlayback",
    "WavPlayback",
    "WavSink",
    "WavSource",
    "WavSpeaker",
]

F32 = npt.NDArray[np.float32]


def _pcm_to_float(raw: bytes, width: int, channels: int) -> npt.NDArray[np.float32]:
    if width == 1:
        ints = np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0
        scale = 128.0
    elif width == 2:
        ints = np.frombuffer(raw, dtype="<i2").astype(np.float32)
        scale = 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(value >= 1 << 23, value - (1 << 24), value).astype(np.float32)
        scale = float(1 << 23)
    else:
        ints = np.frombuffer(raw, dtype="<i4").astype(np.float64).astype(np.float32)
        scale = float(1 << 31)
    return (ints / np.float32(scale)).reshape(-1, channels)


def _float_to_pcm(x: npt.NDArray[np.float32], width: int) -> bytes:
    bits = 8 * width
    scale = float(1 << (bits - 1))
    ints = np.clip(np.round(x.astype(np.float64) * scale), -scale, scale - 1)
    if width == 1:
        return (ints + 128).astype(np.uint8).tobytes()
    if width == 2:
        return ints.astype("<i2").tobytes()
    if width == 3:
        v = ints.astype(np.int32).reshape(-1)
        out = np.empty((v.size, 3), dtype=np.uint8)
        out[:, 0], out[:, 1], out[:, 2] = v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF
        return out.tobytes()
    return ints.astype("<i4").tobytes()


class _PcmReader:
    def __init__(self, path: Path) -> None:
        self._wav = wave.open(str(path), "rb")  # noqa: SIM115 - closed in close()
        self.rate = self._wav.getframerate()
        self.channels = self._wav.getnchannels()
        self.frames = self._wav.getnframes()
        self._width = self._wav.getsampwidth()

    def read(self, n: int) -> npt.NDArray[np.float32]:
        return _pcm_to_float(self._wav.readframes(n), self._width, self.channels)

    def close(self) -> None:
        self._wav.close()


class _SoundfileReader:
    def __init__(self, path: Path) -> None:
        try:
            import soundfile
        except (ImportError, OSError) as e:
            raise BackendUnavailable(
                f"{path} is not integer PCM; reading other WAV encodings needs soundfile: "
                "pip install 'edgekit[audio]'"
            ) from e
        try:
            self._file = soundfile.SoundFile(str(path))
        except RuntimeError as e:  # soundfile's LibsndfileError
            raise SourceOpenError(f"{path} is not a WAV file soundfile can read: {e}") from e
        self.rate = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.frames = int(self._file.frames)

    def read(self, n: int) -> npt.NDArray[np.float32]:
        data: npt.NDArray[np.float32] = self._file.read(n, dtype="float32", always_2d=True)
        return data

    def close(self) -> None:
        self._file.close()


class WavSource:
    """A WAV file read in timestamped chunks, like a :class:`~edgekit.media.audio.Microphone`.

    Args:
        path: the file.
        rate: the rate chunks come out at; ``None`` keeps the file's.
        resample: convert when the file's rate differs from ``rate`` (else raise).
        realtime: hand out samples no faster than they would arrive from a microphone.

    ``read(n)`` returns ``n`` frames, fewer only for the last chunk, then raises
    :class:`~edgekit.media.errors.EndOfStream`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rate: int | None = None,
        *,
        resample: bool = True,
        realtime: bool = False,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceNotFound(f"WAV file {self.path} does not exist; check the path")
        reader: _PcmReader | _SoundfileReader
        try:
            reader = _PcmReader(self.path)
        except (wave.Error, EOFError) as e:
            if "unknown format" not in str(e):
                raise SourceOpenError(f"{self.path} is not a WAV file: {e}") from e
            reader = _SoundfileReader(self.path)
        self._reader = reader
        self.file_rate = reader.rate
        self.channels = reader.channels
        self.rate = self.file_rate if rate is None else int(rate)
        if self.rate != self.file_rate and not resample:
            reader.close()
            raise AudioFormatError(
                f"{self.path} is sampled at {self.file_rate} Hz, not {self.rate} Hz: pass "
                f"resample=True to convert, or rate={self.file_rate}"
            )
        self._resampler = (
            Resampler(self.file_rate, self.rate) if self.rate != self.file_rate else None
        )
        self.frames = round(reader.frames * self.rate / self.file_rate)
        self.realtime = realtime
        self._pending = np.zeros((0, self.channels), dtype=np.float32)
        self._input_done = False
        self._cursor = 0
        self._seq = 0
        self._t0 = time.monotonic_ns()
        self._closed = False
        self._lock = threading.Lock()

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    def _fill(self, n: int) -> None:
        block = max(n, 4096)
        while len(self._pending) < n and not self._input_done:
            raw = self._reader.read(block)
            if len(raw) == 0:
                self._input_done = True
                if self._resampler is not None:
                    tail = int(np.ceil(self._resampler.delay_frames)) + self._resampler.taps
                    raw = np.zeros((tail, self.channels), dtype=np.float32)
                else:
                    break
            out = raw if self._resampler is None else self._resampler.process(raw)
            self._pending = np.concatenate([self._pending, out.reshape(-1, self.channels)])
        # Never past the converted length: the resampler's flush adds filter padding.
        limit = self.frames - self._cursor
        if len(self._pending) > limit:
            self._pending = self._pending[:limit]

    def read(self, n_samples: int, timeout: float | None = None) -> AudioChunk:
        if n_samples <= 0:
            raise AudioFormatError(f"read {n_samples} samples: ask for at least 1")
        with self._lock:
            if self._closed:
                raise SourceClosed(f"{self.path} is closed")
            self._fill(n_samples)
            n = min(n_samples, len(self._pending))
            if n == 0:
                raise EndOfStream(f"{self.path}: end of file after {self._cursor} samples")
            t_start = self._t0 + round(self._cursor * 1e9 / self.rate)
            if self.realtime:
                due = t_start + round(n * 1e9 / self.rate)
                wait = (due - time.monotonic_ns()) / 1e9
                if timeout is not None and wait > timeout:
                    raise MediaTimeout(
                        f"{self.path}: {n} samples are due in {wait:.3f} s, later than the "
                        f"timeout of {timeout} s (realtime=True paces like a microphone)"
                    )
                if wait > 0:
                    time.sleep(wait)
            data, self._pending = self._pending[:n], self._pending[n:]
            self._cursor += n
            seq, self._seq = self._seq, self._seq + 1
        samples = data[:, 0].copy() if self.channels == 1 else data.copy()
        return AudioChunk(samples, self.rate, t_start, seq)

    def chunks(self, n_samples: int, timeout: float | None = None) -> Iterator[AudioChunk]:
        """Consecutive chunks to the end of the file (a pipeline source)."""
        while True:
            try:
                yield self.read(n_samples, timeout)
            except (EndOfStream, SourceClosed):
                return

    def read_all(self) -> npt.NDArray[np.float32]:
        """The rest of the file as one array."""
        parts = []
        while True:
            try:
                parts.append(self.read(max(1, self.frames - self._cursor)).samples)
            except EndOfStream:
                break
        if not parts:
            shape = (0,) if self.channels == 1 else (0, self.channels)
            return np.zeros(shape, dtype=np.float32)
        return np.concatenate(parts)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._reader.close()

    def __enter__(self) -> WavSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FinishedPlayback:
    """The handle :meth:`WavSink.play` returns: writing a file finishes at once."""

    def __init__(self, frames: int) -> None:
        self._frames = frames

    @property
    def done(self) -> bool:
        return True

    @property
    def stopped(self) -> bool:
        """Never: the whole sound was written."""
        return False

    @property
    def frames_played(self) -> int:
        return self._frames

    @property
    def frames_total(self) -> int:
        return self._frames

    def stop(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        return True


class WavSink:
    """A WAV file written like a :class:`~edgekit.media.audio.Speaker` plays.

    Args:
        path: the file (overwritten).
        rate: the file's rate; ``play`` converts other rates when ``resample`` is set.
        channels: the file's channel count; mono samples are copied to each.
        sample_width: bytes per sample (1, 2, 3 or 4), integer PCM.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rate: int = 16000,
        channels: int = 1,
        *,
        sample_width: int = 2,
        resample: bool = True,
    ) -> None:
        if sample_width not in (1, 2, 3, 4):
            raise AudioFormatError(f"sample_width must be 1, 2, 3 or 4 bytes, not {sample_width}")
        if rate <= 0 or channels <= 0:
            raise AudioFormatError(f"rate and channels must be positive, got {rate}, {channels}")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise SourceNotFound(
                f"cannot write {self.path}: the folder {self.path.parent} does not exist"
            )
        self.rate = int(rate)
        self.channels = channels
        self.sample_width = sample_width
        self._resample = resample
        self._wav: Any = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(sample_width)
        self._wav.setframerate(self.rate)
        self.frames = 0
        self._lock = threading.Lock()

    def write(self, samples: npt.ArrayLike) -> int:
        """Append samples at the file's rate; returns the frames written."""
        data = as_frames(samples, self.channels)
        with self._lock:
            if self._wav is None:
                raise SourceClosed(f"{self.path} is closed")
            self._wav.writeframes(_float_to_pcm(data, self.sample_width))
            self.frames += len(data)
        return len(data)

    def play(self, samples: npt.ArrayLike, rate: int | None = None) -> FinishedPlayback:
        """Append samples given at ``rate`` (default: the file's), converting the rate."""
        rate = self.rate if rate is None else int(rate)
        data = as_frames(samples, self.channels)
        if rate != self.rate:
            if not self._resample:
                raise AudioFormatError(
                    f"{self.path} is written at {self.rate} Hz; samples at {rate} Hz need "
                    "resample=True"
                )
            data = resample(data, rate, self.rate)
        return FinishedPlayback(self.write(data))

    def close(self) -> None:
        with self._lock:
            wav, self._wav = self._wav, None
        if wav is not None:
            wav.close()

    def __enter__(self) -> WavSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WavPlayback:
    """One sound on a :class:`WavSpeaker`: what its ``play`` returns (a
    :class:`~edgekit.media.base.Playback`).

    It advances with the speaker's clock; on the wall clock, reading it brings the file up to
    date first.
    """

    def __init__(self, speaker: WavSpeaker, data: F32) -> None:
        self.rate = speaker.rate
        self._speaker = speaker
        self._data = data
        self._pos = 0
        self._stopped = False

    def _next(self, n: int) -> F32:
        """The next ``n`` frames of the sound, fewer at its end, none once it ended or stopped.

        Called with the speaker's lock held.
        """
        if self._stopped:
            return self._data[:0]
        block = self._data[self._pos : self._pos + n]
        self._pos += len(block)
        return block

    def _ended(self) -> bool:
        return self._stopped or self._pos >= len(self._data)

    @property
    def done(self) -> bool:
        """True once the sound played to its end or was stopped."""
        with self._speaker._cond:
            self._speaker._catch_up()
            return self._ended()

    @property
    def stopped(self) -> bool:
        """True if :meth:`stop` (or a new ``play``, or closing the speaker) cut the sound short."""
        return self._stopped

    @property
    def frames_played(self) -> int:
        """Frames written to the file so far (at the file's rate)."""
        with self._speaker._cond:
            self._speaker._catch_up()
            return self._pos

    @property
    def frames_total(self) -> int:
        return len(self._data)

    def stop(self) -> None:
        """Interrupt now (barge-in): nothing more of the sound is written; idempotent."""
        with self._speaker._cond:
            self._speaker._catch_up()
            self._halt()

    def _halt(self) -> None:
        if not self._ended():
            self._stopped = True
        self._speaker._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the sound ended or was stopped; ``False`` on timeout.

        On the caller's clock another thread must call :meth:`WavSpeaker.advance` meanwhile.
        Without a timeout it waits for the rest of the sound's length plus
        :data:`~edgekit.media.audio.STALL_GRACE` seconds and raises
        :class:`~edgekit.media.errors.MediaTimeout` if the clock did not get there.
        """
        speaker = self._speaker
        with speaker._cond:
            speaker._catch_up()
            limit = timeout
            if limit is None:
                limit = (len(self._data) - self._pos) / self.rate + STALL_GRACE
            deadline = time.monotonic() + limit
            while not self._ended():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if speaker.realtime:  # the wall clock plays the rest by itself
                    left = min(left, (len(self._data) - self._pos) / self.rate + 0.001)
                speaker._cond.wait(left)
                speaker._catch_up()
            if self._ended():
                return True
        if timeout is not None:
            return False
        raise MediaTimeout(
            f"{speaker.path}: the sound did not finish within {limit:.1f} s because nothing "
            f"advanced the clock ({self._pos}/{len(self._data)} frames played); call "
            "advance() from the thread that reads the input, or open the WavSpeaker with "
            "realtime=True"
        )

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "done" if self._ended() else "playing"
        return f"<WavPlayback {self._pos}/{len(self._data)} frames {state}>"


class WavSpeaker:
    """A WAV file played into like a :class:`~edgekit.media.audio.Speaker`; an
    :class:`~edgekit.media.base.AudioSink`.

    The file is the output's timeline: frame ``i`` is what was played ``i`` frames after the
    speaker opened, silence while nothing plays. ``play`` returns a :class:`WavPlayback` at once;
    a new ``play`` interrupts the sound before it and ``stop()`` ends a sound where it is, so the
    file holds exactly the frames played.

    Its clock is one of two:

    * ``realtime=True``: the wall clock, as a sound card keeps it; one second after ``play``,
      one second of the sound has been played. The file catches up whenever the speaker or one
      of its sounds is used, and at ``close``.
    * ``realtime=False``: the caller's clock. :meth:`advance` plays the next ``n`` frames; call
      it with every chunk of input and the output stays in step with the input, sample for
      sample, the same on every run. ``capture_channels`` then records that input beside the
      output (say, what a microphone heard while the speaker played: an echo canceller's test
      recording).

    Args:
        path: the file (overwritten).
        rate: the file's rate; ``play`` converts other rates when ``resample`` is set.
        channels: output channels; mono sounds are copied to each.
        realtime: keep time by the wall clock (else by :meth:`advance`).
        capture_channels: extra channels after the output ones, written by :meth:`advance`.
        sample_width: bytes per sample (1, 2, 3 or 4), integer PCM.
        resample: convert sounds at other rates (else raise).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rate: int = 16000,
        channels: int = 1,
        *,
        realtime: bool = True,
        capture_channels: int = 0,
        sample_width: int = 2,
        resample: bool = True,
    ) -> None:
        if capture_channels < 0:
            raise AudioFormatError(f"capture_channels must be 0 or more, not {capture_channels}")
        if capture_channels and realtime:
            raise AudioFormatError(
                f"{capture_channels} capture channel(s) are written by advance(), which only a "
                "speaker on the caller's clock has: pass realtime=False"
            )
        self._sink = WavSink(
            path, rate, channels + capture_channels, sample_width=sample_width, resample=False
        )
        self.path = self._sink.path
        self.rate = self._sink.rate
        self.channels = channels
        self.capture_channels = capture_channels
        self.realtime = realtime
        self._resample = resample
        self._cond = threading.Condition()
        self._current: WavPlayback | None = None
        self._closed = False
        self._t0_ns = time.monotonic_ns()

    @property
    def frames(self) -> int:
        """Frames of the timeline written so far."""
        with self._cond:
            self._catch_up()
            return self._sink.frames

    def play(self, samples: npt.ArrayLike, rate: int | None = None) -> WavPlayback:
        """Start playing (interrupting any sound still playing) and return at once."""
        rate = self.rate if rate is None else int(rate)
        data = as_frames(samples, self.channels)
        if rate != self.rate:
            if not self._resample:
                raise AudioFormatError(
                    f"{self.path} is played at {self.rate} Hz; samples at {rate} Hz need "
                    "resample=True"
                )
            data = resample(data, rate, self.rate)
        with self._cond:
            self._check_open()
            self._catch_up()
            if self._current is not None:
                self._current._halt()
            self._current = WavPlayback(self, data)
            return self._current

    def advance(self, frames: int, capture: npt.ArrayLike | None = None) -> F32:
        """Move the caller's clock on by ``frames``: write what plays meanwhile.

        Args:
            frames: how many frames pass (a chunk of input, say).
            capture: ``(frames,)`` or ``(frames, capture_channels)`` samples for the capture
                channels; required when the speaker has them.

        Returns:
            The ``(frames, channels)`` output written: the sound playing, zeros where none.
        """
        if self.realtime:
            raise MediaError(
                f"{self.path} keeps time by the wall clock (realtime=True), so it cannot be "
                "advanced: open the WavSpeaker with realtime=False to drive it with advance()"
            )
        if frames < 0:
            raise AudioFormatError(f"advance by {frames} frames: give 0 or more")
        captured = self._captured(frames, capture)
        with self._cond:
            self._check_open()
            played = self._write(frames, captured)
            self._cond.notify_all()
        return played

    def _captured(self, frames: int, capture: npt.ArrayLike | None) -> F32 | None:
        if capture is None:
            if self.capture_channels:
                raise AudioFormatError(
                    f"{self.path} has {self.capture_channels} capture channel(s): pass the "
                    f"{frames} frames captured meanwhile as capture="
                )
            return None
        if not self.capture_channels:
            raise AudioFormatError(
                f"{self.path} has no capture channels: open the WavSpeaker with "
                "capture_channels=N to record the input beside the output"
            )
        data = as_frames(capture, self.capture_channels)
        if len(data) != frames:
            raise AudioFormatError(
                f"capture holds {len(data)} frames, but the clock advances by {frames}: pass "
                "as many frames as advance() moves on"
            )
        return data

    def _write(self, n: int, captured: F32 | None) -> F32:
        """Write the next ``n`` frames of the timeline; called with the lock held."""
        block = np.zeros((n, self.channels + self.capture_channels), dtype=np.float32)
        if self._current is not None:
            sound = self._current._next(n)
            block[: len(sound), : self.channels] = sound
        if captured is not None:
            block[:, self.channels :] = captured
        self._sink.write(block)
        return block[:, : self.channels]

    def _catch_up(self) -> None:
        """On the wall clock, write the frames due by now; called with the lock held."""
        if not self.realtime or self._closed:
            return
        due = (time.monotonic_ns() - self._t0_ns) * self.rate // 1_000_000_000
        while self._sink.frames < due:
            self._write(min(due - self._sink.frames, self.rate), None)

    def _check_open(self) -> None:
        if self._closed:
            raise SourceClosed(f"{self.path} is closed; open a new WavSpeaker")

    def close(self) -> None:
        """Bring the file up to date, stop any sound and close the file; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._catch_up()
            if self._current is not None:
                self._current._halt()
            self._closed = True
            self._cond.notify_all()
        self._sink.close()

    def __enter__(self) -> WavSpeaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        clock = "wall clock" if self.realtime else "caller's clock"
        return f"<WavSpeaker {str(self.path)!r} {self.rate} Hz, {clock}>"
