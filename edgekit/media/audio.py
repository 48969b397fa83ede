"""Microphones and speakers on PortAudio (sounddevice), by device name or index.

A :class:`Microphone` runs a PortAudio input stream whose callback resamples to the rate the
model wants (when the device cannot run at it) and writes into a ring buffer of the last
``buffer_seconds``. ``read(n)`` hands out consecutive :class:`~edgekit.media.base.AudioChunk`
objects with monotonic timestamps; a reader that falls more than the ring behind loses the
oldest samples, counted in ``chunk.dropped`` and ``stats().dropped_samples``. PortAudio's own
status flags are counted as ``input_overflows`` / ``input_underflows`` (and ``underruns`` on
playback).

A :class:`Speaker` plays arrays: ``play(samples, rate)`` returns a :class:`PlaybackHandle` with
``stop()`` (barge-in: the stream is aborted at once) and ``wait()``. A new ``play`` interrupts the
one before it. sounddevice is imported when a device is opened.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.errors import BackendUnavailable
from edgekit.media.base import AudioChunk
from edgekit.media.errors import (
    AudioDeviceError,
    AudioFormatError,
    MediaBackendUnavailable,
    MediaTimeout,
    SourceClosed,
)
from edgekit.media.resample import Resampler, resample

log = logging.getLogger(__name__)

Device = int | str | None
#: seconds beyond a sound's length that ``PlaybackHandle.wait()`` allows before it calls the
#: device stalled.
STALL_GRACE = 5.0

__all__ = [
    "AudioChunk",
    "AudioDevice",
    "AudioRing",
    "AudioStats",
    "Microphone",
    "PlaybackHandle",
    "Speaker",
    "as_frames",
    "find_device",
    "import_sounddevice",
    "list_devices",
    "rescan_devices",
]


def import_sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as e:
        raise BackendUnavailable(
            "sounddevice is not installed, so microphones and speakers cannot be opened: "
            "pip install 'edgekit[audio]'"
        ) from e
    except OSError as e:
        raise MediaBackendUnavailable(
            f"the PortAudio library cannot be loaded ({e}): install it, e.g. "
            "apt-get install libportaudio2"
        ) from e
    return sounddevice


def _describe_devices(sd: Any, kind: str) -> str:
    key = f"max_{kind}_channels"
    names = [
        f"{index}: {info['name']}" for index, info in enumerate(sd.query_devices()) if info[key] > 0
    ]
    return "; ".join(names) if names else "none"


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device as :func:`list_devices` reports it."""

    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_rate: int


def list_devices() -> list[AudioDevice]:
    """The devices PortAudio knows (as of its last scan; see :func:`rescan_devices`)."""
    sd = import_sounddevice()
    apis = [api["name"] for api in sd.query_hostapis()]
    return [
        AudioDevice(
            index=index,
            name=str(info["name"]),
            host_api=str(apis[info["hostapi"]]),
            inputs=int(info["max_input_channels"]),
            outputs=int(info["max_output_channels"]),
            default_rate=int(info["default_samplerate"]),
        )
        for index, info in enumerate(sd.query_devices())
    ]


_open_streams: weakref.WeakSet[Any] = weakref.WeakSet()


def rescan_devices() -> list[AudioDevice]:
    """Make PortAudio enumerate host APIs and devices again; the new device list.

    PortAudio scans once per process, so a microphone plugged in later, a sound server started
    later, or a changed ALSA configuration is invisible until this runs. Device indices may
    change. Every Microphone and Speaker must be closed first.
    """
    busy = [stream for stream in list(_open_streams) if not stream.closed]
    if busy:
        raise AudioDeviceError(
            f"{len(busy)} audio stream(s) are still open ({', '.join(map(repr, busy))}): close "
            "them before rescanning devices"
        )
    sd = import_sounddevice()
    sd._terminate()
    sd._initialize()
    return list_devices()


def find_device(device: Device, kind: str) -> tuple[int, dict[str, Any]]:
    """The PortAudio index and info of an ``input`` or ``output`` device by index or name.

    A name matches exactly, else as a case-insensitive substring of one device's name.
    """
    sd = import_sounddevice()
    key = f"max_{kind}_channels"
    devices = list(sd.query_devices())
    fix = (
        "List devices with `python -m sounddevice`. Without a sound card, run a JACK server "
        "(jackd -d dummy) or an ALSA plugin device."
    )
    if device is None:
        index = sd.default.device[0 if kind == "input" else 1]
        if index is None or index < 0:
            raise AudioDeviceError(
                f"there is no default {kind} device (the {kind} devices are: "
                f"{_describe_devices(sd, kind)}). Pass device=NAME or INDEX. {fix}"
            )
    elif isinstance(device, int):
        index = device
        if not 0 <= index < len(devices):
            raise AudioDeviceError(
                f"there is no audio device {index}; the {kind} devices are: "
                f"{_describe_devices(sd, kind)}. {fix}"
            )
    else:
        exact = [i for i, d in enumerate(devices) if d["name"] == device and d[key] > 0]
        partial = [
            i for i, d in enumerate(devices) if device.lower() in d["name"].lower() and d[key] > 0
        ]
        matches = exact or partial
        if len(matches) != 1:
            problem = "no" if not matches else f"{len(matches)}"
            raise AudioDeviceError(
                f"{problem} {kind} devices match {device!r}; the {kind} devices are: "
                f"{_describe_devices(sd, kind)}. {fix}"
            )
        index = matches[0]
    info = dict(devices[index])
    if info[key] <= 0:
        raise AudioDeviceError(
            f"audio device {index} ({info['name']}) has no {kind} channels; the {kind} devices "
            f"are: {_describe_devices(sd, kind)}"
        )
    return int(index), info


def _pick_rate(
    index: int, info: dict[str, Any], kind: str, rate: int, channels: int, allow: bool
) -> int:
    """``rate`` if the device runs at it, else the device's default rate (when resampling)."""
    sd = import_sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    if channels > info[f"max_{kind}_channels"]:
        raise AudioFormatError(
            f"{info['name']} has {info[f'max_{kind}_channels']} {kind} channels, not {channels}"
        )
    try:
        check(device=index, channels=channels, dtype="float32", samplerate=rate)
        return rate
    except sd.PortAudioError as e:
        native = int(info["default_samplerate"])
        if not allow:
            raise AudioFormatError(
                f"{info['name']} cannot run at {rate} Hz ({e}); it runs at {native} Hz: pass "
                f"resample=True to convert, or use rate={native}"
            ) from e
    try:
        check(device=index, channels=channels, dtype="float32", samplerate=native)
    except sd.PortAudioError as e:
        raise AudioDeviceError(
            f"{info['name']} cannot open {channels} {kind} channel(s) at {rate} or {native} Hz: {e}"
        ) from e
    log.info("%s runs at %d Hz; resampling to/from %d Hz", info["name"], native, rate)
    return native


def as_frames(samples: npt.ArrayLike, channels: int) -> npt.NDArray[np.float32]:
    """Samples as a C-contiguous ``(frames, channels)`` float32 array (int16 is scaled)."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype.kind != "f":
        raise AudioFormatError(
            f"samples must be float (-1..1) or int16, got {x.dtype}: convert with "
            "x.astype(np.float32)"
        )
    if x.ndim == 1:
        x = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x[:, None]
    if x.ndim != 2 or x.shape[1] != channels:
        raise AudioFormatError(
            f"samples of shape {list(np.shape(samples))} do not fit {channels} channel(s): pass "
            f"(frames,) or (frames, {channels})"
        )
    return np.ascontiguousarray(x, dtype=np.float32)


class AudioRing:
    """The last ``capacity`` frames of a stream, addressed by absolute frame index."""

    def __init__(self, capacity: int, channels: int) -> None:
        self.capacity = capacity
        self._buf = np.zeros((capacity, channels), dtype=np.float32)
        self.written = 0

    @property
    def oldest(self) -> int:
        return max(0, self.written - self.capacity)

    def write(self, block: npt.NDArray[np.float32]) -> None:
        n = len(block)
        if n >= self.capacity:
            self.written += n - self.capacity
            block = block[n - self.capacity :]
            n = self.capacity
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = block[:first]
        self._buf[: n - first] = block[first:]
        self.written += n

    def copy(self, start: int, n: int) -> npt.NDArray[np.float32]:
        if start < self.oldest or start + n > self.written:
            raise IndexError(f"frames {start}..{start + n} are not in the ring")
        begin = start % self.capacity
        first = min(n, self.capacity - begin)
        out = np.empty((n, self._buf.shape[1]), dtype=np.float32)
        out[:first] = self._buf[begin : begin + first]
        out[first:] = self._buf[: n - first]
        return out


@dataclass(frozen=True)
class AudioStats:
    """Counters of a microphone; ``frames`` are at ``rate`` (after resampling)."""

    device: str
    rate: int
    device_rate: int
    frames: int
    device_frames: int
    delivered: int
    dropped_samples: int
    input_overflows: int
    input_underflows: int
    callbacks: int
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Microphone:
    """An input device streaming into a ring buffer; an :class:`~edgekit.media.base.AudioSource`.

    Args:
        device: PortAudio device index or (part of) its name; ``None`` for the default.
        rate: the rate chunks come out at (the model's rate).
        channels: 1 for mono chunks of shape ``(n,)``, more for ``(n, channels)``.
        buffer_seconds: how far a reader may fall behind before samples are lost.
        resample: convert when the device cannot run at ``rate`` (else raise).
        blocksize: frames per PortAudio callback (0: the host API decides).
        latency: PortAudio latency hint (``"low"``, ``"high"`` or seconds).
    """

    def __init__(
        self,
        device: Device = None,
        rate: int = 16000,
        channels: int = 1,
        *,
        buffer_seconds: float = 10.0,
        resample: bool = True,
        blocksize: int = 0,
        latency: float | str | None = None,
    ) -> None:
        if rate <= 0 or channels <= 0 or buffer_seconds <= 0:
            raise AudioFormatError(
                f"rate, channels and buffer_seconds must be positive, got {rate}, {channels}, "
                f"{buffer_seconds}"
            )
        sd = import_sounddevice()
        index, info = find_device(device, "input")
        self.device = str(info["name"])
        self.rate = int(rate)
        self.channels = channels
        self.device_rate = _pick_rate(index, info, "input", self.rate, channels, resample)
        self._resampler = (
            Resampler(self.device_rate, self.rate) if self.device_rate != self.rate else None
        )
        self._ring = AudioRing(max(1, int(buffer_seconds * self.rate)), channels)
        self._cond = threading.Condition()
        self._cursor = 0
        self._seq = 0
        self._delivered = 0
        self._dropped = 0
        self._overflows = 0
        self._underflows = 0
        self._callbacks = 0
        self._device_frames = 0
        self._t0_ns: float | None = None
        self._t_open = time.monotonic_ns()
        self._error: BaseException | None = None
        self._finished = False
        self._closed = False
        try:
            self._stream = sd.InputStream(
                device=index,
                samplerate=self.device_rate,
                channels=channels,
                dtype="float32",
                blocksize=blocksize,
                latency=latency,
                callback=self._callback,
                finished_callback=self._on_finished,
            )
            self._stream.start()
        except sd.PortAudioError as e:
            raise AudioDeviceError(f"cannot open {self.device} for capture: {e}") from e
        _open_streams.add(self)

    # -- PortAudio thread --------------------------------------------------------------------
    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic_ns()
        try:
            block = indata if self._resampler is None else self._resampler.process(indata)
            with self._cond:
                self._callbacks += 1
                overflow = bool(status.input_overflow)
                self._overflows += overflow
                self._underflows += bool(status.input_underflow)
                self._device_frames += frames
                # Time of device sample 0, so that sample i is at t0 + i / rate. A block cannot
                # arrive before its last sample was captured, so every callback bounds t0 from
                # above and the smallest bound is the estimate. After an overflow it starts over,
                # because PortAudio does not say how much was lost.
                bound = now - self._device_frames * 1e9 / self.device_rate
                if self._t0_ns is None or overflow or bound < self._t0_ns:
                    self._t0_ns = bound
                self._ring.write(block)
                self._cond.notify_all()
        except BaseException as e:
            with self._cond:
                self._error = e
                self._cond.notify_all()
            raise

    def _on_finished(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    # -- reader ------------------------------------------------------------------------------
    def read(self, n_samples: int, timeout: float | None = 5.0) -> AudioChunk:
        """The next ``n_samples`` consecutive samples, waiting up to ``timeout`` seconds."""
        if not 0 < n_samples <= self._ring.capacity:
            raise AudioFormatError(
                f"read {n_samples} samples: ask for 1..{self._ring.capacity} (the ring holds "
                "buffer_seconds of audio; open the microphone with a larger buffer_seconds)"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        dropped = 0
        with self._cond:
            while True:
                self._check()
                dropped += self._skip_lost()
                if self._ring.written - self._cursor >= n_samples:
                    break
                if self._finished:
                    raise AudioDeviceError(
                        f"the capture stream of {self.device} stopped (device removed or the "
                        "sound server exited); open the microphone again"
                    )
                remaining = 0.1 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise MediaTimeout(
                        f"{self.device}: {n_samples} samples did not arrive within {timeout} s "
                        f"(got {self._ring.written - self._cursor}); the device may be stalled"
                    )
                self._cond.wait(min(remaining, 0.1))
            samples = self._ring.copy(self._cursor, n_samples)
            assert self._t0_ns is not None
            t_start = int(self._t0_ns + self._cursor * 1e9 / self.rate)
            self._cursor += n_samples
            self._delivered += n_samples
            seq, self._seq = self._seq, self._seq + 1
        data = samples[:, 0] if self.channels == 1 else samples
        return AudioChunk(data, self.rate, t_start, seq, dropped)

    def chunks(self, n_samples: int, timeout: float | None = 5.0) -> Iterator[AudioChunk]:
        """Consecutive chunks until the microphone is closed (a pipeline source)."""
        while True:
            try:
                yield self.read(n_samples, timeout)
            except SourceClosed:
                return

    def latest(self, seconds: float) -> AudioChunk:
        """The last ``seconds`` in the ring (up to its size); the read cursor does not move."""
        with self._cond:
            self._check()
            n = min(int(seconds * self.rate), self._ring.written - self._ring.oldest)
            start = self._ring.written - n
            samples = self._ring.copy(start, n)
            t0 = self._t0_ns if self._t0_ns is not None else float(time.monotonic_ns())
        data = samples[:, 0] if self.channels == 1 else samples
        return AudioChunk(data, self.rate, int(t0 + start * 1e9 / self.rate), -1)

    def _check(self) -> None:
        if self._closed:
            raise SourceClosed(f"microphone {self.device} is closed; open a new Microphone")
        if self._error is not None:
            raise AudioDeviceError(
                f"{self.device}: the capture callback failed: {self._error!r}"
            ) from self._error

    def _skip_lost(self) -> int:
        oldest = self._ring.oldest
        if self._cursor >= oldest:
            return 0
        lost = oldest - self._cursor
        self._cursor = oldest
        self._dropped += lost
        log.warning("%s: reader fell behind, %d samples lost", self.device, lost)
        return lost

    def stats(self) -> AudioStats:
        with self._cond:
            return AudioStats(
                device=self.device,
                rate=self.rate,
                device_rate=self.device_rate,
                frames=self._ring.written,
                device_frames=self._device_frames,
                delivered=self._delivered,
                dropped_samples=self._dropped,
                input_overflows=self._overflows,
                input_underflows=self._underflows,
                callbacks=self._callbacks,
                elapsed_s=(time.monotonic_ns() - self._t_open) / 1e9,
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop and close the PortAudio stream; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        try:
            self._stream.abort()
        finally:
            self._stream.close()

    def __enter__(self) -> Microphone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Microphone {self.device!r} {self.rate} Hz (device {self.device_rate} Hz)>"


class PlaybackHandle:
    """One sound on an output stream; see :class:`~edgekit.media.base.Playback`."""

    def __init__(
        self,
        sd: Any,
        index: int,
        data: npt.NDArray[np.float32],
        rate: int,
        latency: float | str | None,
    ) -> None:
        self.rate = rate
        self._data = data
        self._pos = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stopped = False
        self._closed = False
        self.underruns = 0
        self._sd = sd
        self._stream = sd.OutputStream(
            device=index,
            samplerate=rate,
            channels=data.shape[1],
            dtype="float32",
            latency=latency,
            callback=self._callback,
            finished_callback=self._done.set,
        )
        self._stream.start()

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status.output_underflow:
            self.underruns += 1
        chunk = self._data[self._pos : self._pos + frames]
        n = len(chunk)
        outdata[:n] = chunk
        outdata[n:] = 0
        self._pos += n
        if n < frames:
            raise self._sd.CallbackStop

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def closed(self) -> bool:
        """True once the output stream is released (after ``wait()`` returned or ``stop()``)."""
        return self._closed

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "done" if self.done else "playing"
        return f"<PlaybackHandle {self.frames_played}/{len(self._data)} frames {state}>"

    @property
    def stopped(self) -> bool:
        """True if :meth:`stop` cut the sound short."""
        return self._stopped

    @property
    def frames_played(self) -> int:
        """Frames handed to the device so far (at the device rate)."""
        return min(self._pos, len(self._data))

    @property
    def frames_total(self) -> int:
        return len(self._data)

    def stop(self) -> None:
        """Interrupt now (barge-in); idempotent."""
        if not self._done.is_set():
            self._stopped = True
        self._close_stream(abort=True)
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the sound ended or was stopped; ``False`` on timeout.

        Without a timeout it waits for the sound's length plus :data:`STALL_GRACE` seconds and
        raises :class:`~edgekit.media.errors.AudioDeviceError` if the device stalled.
        """
        if timeout is None:
            limit = len(self._data) / self.rate + STALL_GRACE
            if not self._done.wait(limit):
                self.stop()
                raise AudioDeviceError(
                    f"playback did not finish within {limit:.1f} s: the output device "
                    "stalled (sound server gone or device removed); open the speaker again"
                )
        elif not self._done.wait(timeout):
            return False
        self._close_stream(abort=False)
        return True

    def _close_stream(self, abort: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            if abort:
                self._stream.abort()
        finally:
            self._stream.close()


class Speaker:
    """An output device; an :class:`~edgekit.media.base.AudioSink`.

    Args:
        device: PortAudio device index or (part of) its name; ``None`` for the default.
        rate: the rate ``play`` assumes when it is not given.
        channels: output channels; mono samples are copied to each.
        resample: convert when the device cannot run at the samples' rate (else raise).
        latency: PortAudio latency hint.
    """

    def __init__(
        self,
        device: Device = None,
        rate: int = 16000,
        channels: int = 1,
        *,
        resample: bool = True,
        latency: float | str | None = None,
    ) -> None:
        self._sd = import_sounddevice()
        self._index, self._info = find_device(device, "output")
        self.device = str(self._info["name"])
        self.rate = int(rate)
        self.channels = channels
        self._resample = resample
        self._latency = latency
        self._current: PlaybackHandle | None = None
        self._underruns = 0
        self._closed = False
        _pick_rate(self._index, self._info, "output", self.rate, channels, resample)

    def play(self, samples: npt.ArrayLike, rate: int | None = None) -> PlaybackHandle:
        """Start playing (interrupting any sound still playing) and return at once."""
        if self._closed:
            raise SourceClosed(f"speaker {self.device} is closed; open a new Speaker")
        rate = self.rate if rate is None else int(rate)
        data = as_frames(samples, self.channels)
        device_rate = _pick_rate(
            self._index, self._info, "output", rate, self.channels, self._resample
        )
        if device_rate != rate:
            data = resample(data, rate, device_rate)
        if self._current is not None:
            self._current.stop()
            self._underruns += self._current.underruns
        try:
            self._current = PlaybackHandle(self._sd, self._index, data, device_rate, self._latency)
        except self._sd.PortAudioError as e:
            raise AudioDeviceError(f"cannot open {self.device} for playback: {e}") from e
        return self._current

    @property
    def underruns(self) -> int:
        """Output underflows PortAudio reported over every sound played so far."""
        current = self._current.underruns if self._current is not None else 0
        return self._underruns + current

    def close(self) -> None:
        """Stop any sound and release the device; idempotent."""
        self._closed = True
        current, self._current = self._current, None
        if current is not None:
            current.stop()
            self._underruns += current.underruns

    def __enter__(self) -> Speaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Speaker {self.device!r} {self.rate} Hz>"
