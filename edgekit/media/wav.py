"""WAV files as an audio source and sink, with the microphone and speaker interface.

PCM WAV (8, 16, 24 or 32-bit integer) goes through the standard library's ``wave``; other WAV
encodings (32-bit float) are read with soundfile when it is installed. Samples are float32 in
-1..1; writing rounds to the file's integer width, so a 16-bit round trip of values that are
multiples of 1/32768 is exact.
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
from edgekit.media.audio import as_frames
from edgekit.media.base import AudioChunk
from edgekit.media.errors import (
    AudioFormatError,
    EndOfStream,
    MediaTimeout,
    SourceClosed,
    SourceNotFound,
    SourceOpenError,
)
from edgekit.media.resample import Resampler, resample

log = logging.getLogger(__name__)

__all__ = ["FinishedPlayback", "WavSink", "WavSource"]


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
    def frames_played(self) -> int:
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
