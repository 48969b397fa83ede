"""Streaming sample-rate conversion: a rational polyphase windowed-sinc resampler (numpy only).

``Resampler(48000, 16000).process(block)`` may be fed blocks of any size; the concatenated
output equals resampling the whole signal at once, so it can sit in an audio callback.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.media.errors import AudioFormatError

Samples = npt.NDArray[np.float32]


class Resampler:
    """Convert ``src_rate`` to ``dst_rate`` for 2-D ``(frames, channels)`` float32 blocks.

    Args:
        src_rate, dst_rate: sample rates in Hz (integers).
        taps: filter taps per output sample (per polyphase branch); more is sharper and slower.
        cutoff: pass band edge as a fraction of the lower Nyquist frequency.
    """

    def __init__(self, src_rate: int, dst_rate: int, taps: int = 32, cutoff: float = 0.92) -> None:
        if src_rate <= 0 or dst_rate <= 0 or int(src_rate) != src_rate or int(dst_rate) != dst_rate:
            raise AudioFormatError(
                f"sample rates must be positive integers in Hz, got {src_rate} -> {dst_rate}"
            )
        ratio = Fraction(int(dst_rate), int(src_rate))
        self.src_rate, self.dst_rate = int(src_rate), int(dst_rate)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.taps = taps
        # Prototype low-pass at the up-sampled rate, Kaiser window, gain `up`.
        n = taps * self.up
        fc = cutoff / max(self.up, self.down)  # in cycles per up-sampled sample * 2
        center = n // 2
        t = np.arange(n) - center
        h = fc * np.sinc(fc * t) * np.kaiser(n, 8.6) * self.up
        # bank[phase, k] multiplies x[base - k]: h index = phase + k * up.
        self._bank = np.ascontiguousarray(h.reshape(taps, self.up).T, dtype=np.float32)
        self._history: npt.NDArray[np.float32] | None = None  # last `taps - 1` input frames
        # Position of the next output in up-sampled units. Starting at the filter's centre
        # puts output j exactly at input time j / dst_rate: the delay is in wall time only.
        self._next = center
        self._delay = center / self.up

    @property
    def delay_frames(self) -> float:
        """Input frames that must arrive after an output's time before it can be computed."""
        return float(self._delay)

    def output_frames(self, input_frames: int) -> int:
        """How many frames the next ``process`` of that many input frames returns."""
        total_up = (self._held() + input_frames) * self.up
        limit = total_up - (self.taps - 1) * self.up  # need a full history behind the base
        if limit <= self._next:
            return 0
        return (limit - self._next + self.down - 1) // self.down

    def _held(self) -> int:
        return 0 if self._history is None else len(self._history)

    def process(self, block: npt.NDArray[Any]) -> Samples:
        """Resample the next block of ``(frames, channels)`` (or 1-D mono) samples."""
        x = np.asarray(block, dtype=np.float32)
        mono = x.ndim == 1
        if mono:
            x = x[:, None]
        if self._history is None:
            # Start as if the signal was preceded by silence.
            self._history = np.zeros((self.taps - 1, x.shape[1]), dtype=np.float32)
        elif self._history.shape[1] != x.shape[1]:
            raise AudioFormatError(
                f"channel count changed from {self._history.shape[1]} to {x.shape[1]} mid-stream"
            )
        if self.up == self.down == 1:
            return x[:, 0].copy() if mono else x.copy()
        buf = np.concatenate([self._history, x])
        count = self.output_frames(len(x))
        positions = self._next + np.arange(count, dtype=np.int64) * self.down
        # Output j uses up-sampled index p = positions[j] + (taps-1)*up, the newest input in
        # its window is floor(p / up) and the branch is p % up.
        p = positions + (self.taps - 1) * self.up
        base = p // self.up
        phase = p % self.up
        window = base[:, None] - np.arange(self.taps)[None, :]  # (count, taps)
        gathered = buf[window]  # (count, taps, channels)
        out = np.einsum("nk,nkc->nc", self._bank[phase], gathered, optimize=False)
        consumed = len(buf) - (self.taps - 1)
        self._next = int(self._next + count * self.down - consumed * self.up)
        self._history = buf[consumed:].copy()
        result: Samples = out.astype(np.float32, copy=False)
        return result[:, 0].copy() if mono else result


def resample(samples: npt.NDArray[Any], src_rate: int, dst_rate: int) -> Samples:
    """One-shot conversion of a whole signal: ``round(len * dst / src)`` frames, time-aligned."""
    if src_rate == dst_rate:
        return np.asarray(samples, dtype=np.float32).copy()
    x = np.asarray(samples, dtype=np.float32)
    r = Resampler(src_rate, dst_rate)
    pad_in = int(np.ceil(r.delay_frames)) + r.taps
    tail = np.zeros((pad_in, *x.shape[1:]), dtype=np.float32)
    y = r.process(np.concatenate([x, tail]))
    want = round(len(x) * dst_rate / src_rate)
    return y[:want]
