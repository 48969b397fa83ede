"""Streaming voice activity detection on the Silero VAD model.

The model is stateful: each call takes a chunk of 512 new samples at 16 kHz (256 at 8 kHz)
behind the last 64 (32) samples of the previous chunk, plus a ``[2, 1, 128]`` recurrent state,
and returns ``p(speech)`` for the chunk and the next state. :class:`VadSegmenter` keeps that state
and turns the per-chunk probabilities into :class:`SpeechSegment` values with hysteresis: speech
starts at ``threshold`` and ends only after ``min_silence_ms`` below ``neg_threshold``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgekit.tasks._manifest import head_options, output_names
from edgekit.tasks.audio import mono_samples
from edgekit.tasks.errors import TaskInputError
from edgekit.tasks.types import SpeechSegment

if TYPE_CHECKING:
    from edgekit.manifest import Manifest

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
RunFn = Callable[[dict[str, Any]], Mapping[str, Any]]
"""A model call: feeds by input name in, outputs by name out (``Model.run`` fits)."""

_CHUNK = {16000: 512, 8000: 256}
_CONTEXT = {16000: 64, 8000: 32}
#: how many chunk probabilities a :class:`VadSegmenter` keeps by default: one minute (a chunk is
#: 32 ms at either rate).
DEFAULT_HISTORY = 1875


@dataclass(frozen=True)
class VadConfig:
    """Segmentation settings (the defaults are Silero's own).

    Attributes:
        sample_rate: 16000 or 8000.
        threshold: A chunk with ``p(speech) >= threshold`` starts or continues speech.
        neg_threshold: Speech ends after ``min_silence_ms`` of chunks below this; ``None``
            means ``max(threshold - 0.15, 0.01)``.
        min_speech_ms: Shorter segments are dropped.
        min_silence_ms: Silence needed to end a segment.
        speech_pad_ms: Segments are widened by this much on both sides (never overlapping).
    """

    sample_rate: int = 16000
    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: float = 250.0
    min_silence_ms: float = 100.0
    speech_pad_ms: float = 30.0

    def __post_init__(self) -> None:
        if self.sample_rate not in _CHUNK:
            raise TaskInputError(
                f"Silero VAD runs at 16000 or 8000 Hz, got {self.sample_rate}; resample first"
            )
        if not 0.0 < self.threshold < 1.0:
            raise TaskInputError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise TaskInputError(
                f"neg_threshold must be in [0, threshold={self.threshold}], "
                f"got {self.neg_threshold}"
            )

    @property
    def chunk_samples(self) -> int:
        return _CHUNK[self.sample_rate]

    @property
    def context_samples(self) -> int:
        return _CONTEXT[self.sample_rate]

    @property
    def low_threshold(self) -> float:
        if self.neg_threshold is not None:
            return self.neg_threshold
        return max(self.threshold - 0.15, 0.01)


@dataclass(frozen=True)
class SileroState:
    """What the model carries from one chunk to the next."""

    context: F32
    state: F32

    @classmethod
    def initial(cls, sample_rate: int = 16000) -> SileroState:
        if sample_rate not in _CONTEXT:
            raise TaskInputError(f"Silero VAD runs at 16000 or 8000 Hz, got {sample_rate}")
        return cls(
            np.zeros(_CONTEXT[sample_rate], dtype=np.float32),
            np.zeros((2, 1, 128), dtype=np.float32),
        )


@dataclass(frozen=True)
class SileroNames:
    """Tensor names of the Silero VAD model."""

    audio: str = "input"
    state: str = "state"
    sample_rate: str = "sr"
    prob: str = "output"
    new_state: str = "stateN"


def _check_audio(audio: Any, what: str = "audio") -> F32:
    samples: F32 = mono_samples(audio, np.float32, what=what)
    return samples


def silero_feeds(
    chunk: npt.ArrayLike,
    state: SileroState,
    sample_rate: int = 16000,
    names: SileroNames = SileroNames(),
) -> dict[str, Any]:
    """Model feeds for one chunk: ``[1, context + chunk]`` audio, the state and the rate."""
    samples = _check_audio(chunk, "chunk")
    expected = _CHUNK.get(sample_rate)
    if expected is None:
        raise TaskInputError(f"Silero VAD runs at 16000 or 8000 Hz, got {sample_rate}")
    if samples.shape[0] != expected:
        raise TaskInputError(
            f"a chunk at {sample_rate} Hz must hold {expected} samples, got {samples.shape[0]}; "
            "use VadSegmenter.feed() to chunk audio of any length"
        )
    window = np.concatenate([state.context, samples])[None]
    return {
        names.audio: window,
        names.state: state.state,
        names.sample_rate: np.array(sample_rate, dtype=np.int64),
    }


def silero_decode(
    outputs: Mapping[str, Any], feeds: Mapping[str, Any], names: SileroNames = SileroNames()
) -> tuple[float, SileroState]:
    """Speech probability of the chunk and the state to feed with the next chunk."""
    for name in (names.prob, names.new_state):
        if name not in outputs:
            raise TaskInputError(
                f"VAD model outputs have no {name!r} (got {sorted(outputs)}); "
                "set SileroNames to this model's output names"
            )
    prob = float(np.asarray(outputs[names.prob]).reshape(-1)[0])
    window = np.asarray(feeds[names.audio], dtype=np.float32).reshape(-1)
    context_len = _CONTEXT[int(np.asarray(feeds[names.sample_rate]))]
    context = np.ascontiguousarray(window[-context_len:])
    new_state = np.asarray(outputs[names.new_state], dtype=np.float32)
    return prob, SileroState(context, new_state)


@dataclass
class SpeechHysteresis:
    """Turns per-chunk speech probabilities into segments (times counted in samples).

    Feed one probability per chunk with :meth:`push`, close the stream with :meth:`finish`, and
    collect closed segments with :meth:`take`. Works for any VAD that scores fixed-size chunks.
    """

    config: VadConfig
    triggered: bool = False
    start: int = 0
    temp_end: int | None = None
    peak: float = 0.0
    last_end: int = 0
    chunks: int = 0
    done: list[SpeechSegment] = field(default_factory=list)

    def _emit(self, end: int, limit: int) -> None:
        sr = self.config.sample_rate
        if end - self.start >= self.config.min_speech_ms * sr / 1000.0:
            pad = round(self.config.speech_pad_ms * sr / 1000.0)
            start = max(self.start - pad, self.last_end, 0)
            stop = min(end + pad, limit)
            self.done.append(SpeechSegment(start / sr, stop / sr, self.peak))
            self.last_end = stop
        self.triggered = False
        self.temp_end = None
        self.peak = 0.0

    def push(self, prob: float) -> None:
        """Account for the next chunk's speech probability."""
        cfg = self.config
        step = cfg.chunk_samples
        now = self.chunks * step
        self.chunks += 1
        if prob >= cfg.threshold:
            self.temp_end = None
            if not self.triggered:
                self.triggered = True
                self.start = now
                self.peak = prob
            self.peak = max(self.peak, prob)
            return
        if not self.triggered:
            return
        self.peak = max(self.peak, prob)
        if prob < cfg.low_threshold:
            if self.temp_end is None:
                self.temp_end = now
            if now - self.temp_end >= cfg.min_silence_ms * cfg.sample_rate / 1000.0:
                self._emit(self.temp_end, self.chunks * step)

    def finish(self, total: int) -> None:
        """End of stream after ``total`` samples: close the open segment, if any."""
        if self.triggered:
            self._emit(self.temp_end if self.temp_end is not None else total, total)

    def take(self) -> list[SpeechSegment]:
        """The segments closed since the last call."""
        out, self.done = self.done, []
        return out


class VadSegmenter:
    """Stateful speech segmentation of a stream fed in pieces of any length.

    Args:
        run: Calls the Silero model (``Model.run`` of a loaded model fits).
        config: Thresholds and durations.
        names: The model's tensor names.
        history: How many of the latest chunk probabilities :attr:`probabilities` keeps, so a
            segmenter that listens for days stays the same size.

    Example::

        seg = VadSegmenter(model.run)
        for block in microphone:
            for s in seg.feed(block):
                print(s.start_s, s.end_s)
        tail = seg.flush()
    """

    def __init__(
        self,
        run: RunFn,
        config: VadConfig = VadConfig(),
        names: SileroNames = SileroNames(),
        *,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        if history < 1:
            raise TaskInputError(
                f"history must be at least 1 chunk, got {history}; it is how many chunk "
                "probabilities the segmenter keeps"
            )
        self.run = run
        self.config = config
        self.names = names
        self.history = history
        self.reset()

    def reset(self) -> None:
        """Forget everything: model state, buffered samples, open segment and the clock."""
        self._state = SileroState.initial(self.config.sample_rate)
        self._pending = np.zeros(0, dtype=np.float32)
        self._tracker = SpeechHysteresis(self.config)
        self._samples = 0
        #: ``p(speech)`` of the latest chunks, oldest first, at most ``history`` of them.
        self.probabilities: deque[float] = deque(maxlen=self.history)

    @property
    def in_speech(self) -> bool:
        """Whether a segment is open (speech started and has not ended yet)."""
        return self._tracker.triggered

    @property
    def samples_fed(self) -> int:
        return self._samples

    @property
    def last_probability(self) -> float | None:
        """``p(speech)`` of the latest chunk; ``None`` before the first full chunk."""
        return self.probabilities[-1] if self.probabilities else None

    def _step(self, chunk: F32) -> None:
        feeds = silero_feeds(chunk, self._state, self.config.sample_rate, self.names)
        prob, self._state = silero_decode(self.run(feeds), feeds, self.names)
        self.probabilities.append(prob)
        self._tracker.push(prob)

    def feed(self, audio: npt.ArrayLike) -> list[SpeechSegment]:
        """Feed mono samples (float in [-1, 1] or int16); return the segments that closed."""
        samples = _check_audio(audio)
        self._samples += samples.shape[0]
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        step = self.config.chunk_samples
        full = buf.shape[0] // step * step
        for offset in range(0, full, step):
            self._step(buf[offset : offset + step])
        self._pending = np.array(buf[full:], dtype=np.float32)
        return self._tracker.take()

    def flush(self) -> list[SpeechSegment]:
        """End of stream: run the last partial chunk (zero-padded), close the open segment,
        return the remaining segments and reset for a new stream."""
        if self._pending.size:
            step = self.config.chunk_samples
            padded = np.zeros(step, dtype=np.float32)
            padded[: self._pending.size] = self._pending
            self._pending = np.zeros(0, dtype=np.float32)
            self._step(padded)
        self._tracker.finish(self._samples)
        # The zero padding of the last chunk is not audio: no segment may end inside it.
        end_s = self._samples / self.config.sample_rate
        out = [
            SpeechSegment(s.start_s, min(s.end_s, end_s), s.peak_prob)
            for s in self._tracker.take()
            if s.start_s < end_s
        ]
        probs = self.probabilities
        self.reset()
        self.probabilities = probs
        return out


def segments(
    audio: npt.ArrayLike,
    run: RunFn,
    config: VadConfig = VadConfig(),
    names: SileroNames = SileroNames(),
) -> list[SpeechSegment]:
    """Speech segments of a whole clip (mono, at ``config.sample_rate``)."""
    seg = VadSegmenter(run, config, names)
    found = seg.feed(audio)
    seconds = seg.samples_fed / config.sample_rate
    found += seg.flush()
    log.debug("found %d speech segments in %.2f s of audio", len(found), seconds)
    return found


@dataclass(frozen=True)
class VadStep:
    """One chunk's answer: speech probability and the state for the next chunk."""

    prob: float
    state: SileroState


class VadHead:
    """``vad``: one chunk and the state in, :class:`VadStep` out.

    The head itself is stateless; :meth:`segmenter` gives the stateful segmentation with this
    head's settings.
    """

    task = "vad"

    def __init__(self, config: VadConfig = VadConfig(), names: SileroNames = SileroNames()) -> None:
        self.config = config
        self.names = names

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, metadata: Mapping[str, str] | None = None, **overrides: Any
    ) -> VadHead:
        """Build the head from a manifest: ``input.sample_rate``, the tensor names and the
        ``[head]`` keys named like :class:`VadConfig`'s fields."""
        keys = ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms", "speech_pad_ms")
        opts = head_options(manifest, keys)
        if manifest.input.sample_rate is not None:
            opts["sample_rate"] = manifest.input.sample_rate
        names = SileroNames()
        tensors = output_names(manifest, 2)
        if tensors is not None:
            names = SileroNames(
                audio=manifest.input.name or names.audio, prob=tensors[0], new_state=tensors[1]
            )
        elif manifest.input.name:
            names = SileroNames(audio=manifest.input.name)
        kwargs: dict[str, Any] = {"config": VadConfig(**opts), "names": names}
        kwargs.update(overrides)
        return cls(**kwargs)

    def initial_state(self) -> SileroState:
        return SileroState.initial(self.config.sample_rate)

    def segmenter(self, run: RunFn) -> VadSegmenter:
        """A stateful segmenter that calls ``run`` (for example ``model.run``)."""
        return VadSegmenter(run, self.config, self.names)

    def prepare(
        self, chunk: npt.ArrayLike, state: SileroState | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Feeds for one chunk (``config.chunk_samples`` samples) after ``state``."""
        feeds = silero_feeds(
            chunk, state or self.initial_state(), self.config.sample_rate, self.names
        )
        return feeds, feeds

    def decode(self, outputs: Mapping[str, Any], context: Mapping[str, Any]) -> VadStep:
        prob, state = silero_decode(outputs, context, self.names)
        return VadStep(prob, state)


__all__ = [
    "DEFAULT_HISTORY",
    "SileroNames",
    "SileroState",
    "SpeechHysteresis",
    "VadConfig",
    "VadHead",
    "VadSegmenter",
    "VadStep",
    "segments",
    "silero_decode",
    "silero_feeds",
]
