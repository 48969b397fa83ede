"""Keyword spotting by template matching: MFCC features and dynamic time warping (numpy only).

A :class:`KeywordSpotter` holds a few recorded examples (templates) of each keyword phrase.
:meth:`KeywordSpotter.spot` computes the MFCCs of an utterance (a VAD segment, say), finds for
every template the stretch of the utterance that matches it best (subsequence DTW with the slope
kept between 1/2 and 2, so a phrase may be said up to twice as fast or as slow as its template),
and answers with the keyword whose best template is closest, or ``None`` when even that one is
further than the rejection threshold: other words, noise and silence are rejected.

Templates come from audio. :func:`~edgekit.media.speech.synthesize` (re-exported here) speaks
a phrase with espeak-ng, so a device can start with synthesized templates in a few voices and
speeds (:meth:`KeywordSpotter.enroll_speech`) and add the user's own recordings later
(:meth:`KeywordSpotter.enroll`), which match that user far better. Distances are mean per-frame
cosine distances of cepstral-mean-normalised MFCCs, so they do not depend on the loudness of the
audio.

Example::

    spotter = KeywordSpotter()
    spotter.enroll_speech("hello", intent="greeting")
    spotter.enroll_speech("tell me a story", intent="story")
    match = spotter.spot(segment_audio)   # 16 kHz mono float32
    if match is not None:
        print(match.intent, match.distance, match.start_s, match.end_s)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.media.speech import SpeechSynthesisUnavailable, synthesize
from edgekit.tasks.audio import mono_samples
from edgekit.tasks.errors import TaskInputError

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: espeak-ng voices and speeds (words per minute) that :meth:`KeywordSpotter.enroll_speech` uses
#: by default: three accents, male and female voice qualities and a Klatt-synthesized voice, from
#: slow to fast speech.
DEFAULT_VOICES: tuple[tuple[str, int], ...] = (
    ("en-us", 150),
    ("en-gb", 175),
    ("en-us+f3", 130),
    ("en-gb+m3", 160),
    ("en-us+f2", 185),
    ("en-us+klatt2", 165),
    ("en-gb-x-rp", 140),
)


class KeywordError(TaskInputError):
    """Keyword spotting was asked something it cannot do; the message says the fix."""


@dataclass(frozen=True)
class KeywordConfig:
    """Feature and matching settings.

    Attributes:
        sample_rate: Rate of the audio given to the spotter, in Hz.
        frame_ms: Analysis window length.
        hop_ms: Step between windows (one feature frame per hop).
        n_mels: Mel filters between ``low_hz`` and ``high_hz``.
        n_ceps: Cepstral coefficients kept, after dropping c0 (the loudness).
        low_hz: Lowest filter edge.
        high_hz: Highest filter edge (at most half the sample rate).
        threshold: A keyword is accepted when its distance is below this (0: identical,
            0.1-0.25 typical for the phrase in another voice, 0.35 and more for other words).
        unmatched_cost: What each frame of speech outside the matched stretch adds to the
            distance, so that a short keyword does not match a small piece of a long utterance
            as well as an utterance of the keyword alone.
        silence_db: When enrolling, frames this far below the loudest frame count as silence
            and are trimmed from both ends of the template.
    """

    sample_rate: int = 16000
    frame_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 32
    n_ceps: int = 12
    low_hz: float = 100.0
    high_hz: float = 7600.0
    threshold: float = 0.32
    unmatched_cost: float = 0.4
    silence_db: float = 35.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise KeywordError(f"sample_rate must be positive, got {self.sample_rate}")
        if not 0 < self.hop_ms <= self.frame_ms:
            raise KeywordError(
                f"hop_ms must be in (0, frame_ms={self.frame_ms}], got {self.hop_ms}"
            )
        if not 0 < self.n_ceps < self.n_mels:
            raise KeywordError(
                f"n_ceps must be in 1..{self.n_mels - 1} (n_mels - 1), got {self.n_ceps}"
            )
        if not 0 <= self.low_hz < self.high_hz <= self.sample_rate / 2:
            raise KeywordError(
                f"need 0 <= low_hz < high_hz <= {self.sample_rate / 2:g} (half the sample "
                f"rate), got {self.low_hz:g} and {self.high_hz:g}"
            )
        if self.threshold <= 0:
            raise KeywordError(f"threshold must be positive, got {self.threshold}")

    @property
    def frame_samples(self) -> int:
        return round(self.frame_ms * self.sample_rate / 1000.0)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_ms * self.sample_rate / 1000.0)


@dataclass(frozen=True)
class KeywordMatch:
    """A keyword found in an utterance.

    Attributes:
        keyword: The phrase, as enrolled.
        intent: What the phrase asks for (the phrase itself unless enrolled with an intent).
        distance: Mean per-frame cosine distance to the closest template (lower is closer).
        start_s: Where the match starts, in seconds from the start of the audio given.
        end_s: Where it ends (exclusive).
    """

    keyword: str
    intent: str
    distance: float
    start_s: float
    end_s: float


@dataclass(frozen=True, eq=False)
class KeywordTemplate:
    """One enrolled example of a keyword: its features, ``(frames, n_ceps)``."""

    keyword: str
    intent: str
    features: F32 = field(repr=False)
    source: str = ""

    @property
    def frames(self) -> int:
        return int(self.features.shape[0])


# ----------------------------------------------------------------------------- features


def _mel(hz: F64 | float) -> Any:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_filterbank(config: KeywordConfig, n_fft: int) -> F64:
    """Triangular mel filters, ``(n_mels, n_fft // 2 + 1)``, each with unit area."""
    edges_mel = np.linspace(_mel(config.low_hz), _mel(config.high_hz), config.n_mels + 2)
    edges_hz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1.0 / config.sample_rate)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return np.asarray(bank / np.maximum(bank.sum(axis=1, keepdims=True), 1e-12))


def _dct_matrix(n_mels: int, n_ceps: int) -> F64:
    """Orthonormal DCT-II rows 1..n_ceps (c0, the overall level, is left out)."""
    k = np.arange(1, n_ceps + 1)[:, None]
    n = np.arange(n_mels)[None]
    return np.asarray(np.sqrt(2.0 / n_mels) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)))


def _check_audio(audio: npt.ArrayLike) -> F64:
    samples: F64 = mono_samples(audio, np.float64, error=KeywordError)
    return samples


def log_mel(audio: npt.ArrayLike, config: KeywordConfig = KeywordConfig()) -> F64:
    """Log mel energies, ``(frames, n_mels)``: one frame per hop, the last partial one dropped."""
    x = _check_audio(audio)
    size, hop = config.frame_samples, config.hop_samples
    if x.shape[0] < size:
        return np.zeros((0, config.n_mels))
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])  # pre-emphasis: lift the weak upper formants
    count = 1 + (x.shape[0] - size) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::hop][:count]
    n_fft = 1 << (size - 1).bit_length()
    power = np.abs(np.fft.rfft(frames * np.hamming(size), n_fft)) ** 2
    mel = power @ mel_filterbank(config, n_fft).T
    return np.asarray(np.log(mel + 1e-10))


def mfcc(audio: npt.ArrayLike, config: KeywordConfig = KeywordConfig()) -> F32:
    """Cepstral-mean-normalised MFCCs c1..c``n_ceps``, ``(frames, n_ceps)`` float32."""
    ceps = log_mel(audio, config) @ _dct_matrix(config.n_mels, config.n_ceps).T
    if ceps.shape[0]:
        ceps -= ceps.mean(axis=0, keepdims=True)
    return ceps.astype(np.float32)


def sound_span(audio: npt.ArrayLike, config: KeywordConfig = KeywordConfig()) -> tuple[int, int]:
    """``(start, stop)`` samples of ``audio`` between the first and the last frame that is less
    than ``silence_db`` below the loudest frame."""
    x = _check_audio(audio)
    size, hop = config.frame_samples, config.hop_samples
    if x.shape[0] < size:
        return 0, x.shape[0]
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::hop]
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level >= level.max() - config.silence_db)
    return int(loud[0]) * hop, int(loud[-1]) * hop + size


def trim_silence(audio: npt.ArrayLike, config: KeywordConfig = KeywordConfig()) -> F32:
    """``audio`` without the quiet frames at either end (see :func:`sound_span`)."""
    x = _check_audio(audio)
    start, stop = sound_span(x, config)
    return x[start:stop].astype(np.float32)


# ----------------------------------------------------------------------------- matching


def _normalise_rows(x: F32) -> F64:
    x64 = x.astype(np.float64)
    return np.asarray(x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), 1e-9))


def subsequence_dtw(
    template: F32, query: F32, unmatched_cost: float = 0.0
) -> tuple[float, int, int]:
    """Where in ``query`` the whole of ``template`` fits best; ``(distance, start, end)``.

    Both are ``(frames, features)``. The local distance is the cosine distance of two frames;
    the path moves by (1, 1), (1, 2) or (2, 1) frames (template, query), weighted by the frames
    it covers, and each query frame outside the match costs ``unmatched_cost``, so ``distance``
    is a mean per-frame distance in ``[0, 2]``. ``start`` and ``end`` are query frames (``end``
    exclusive). ``inf`` when the query is too short (under half the template) to hold it.
    """
    n, m = template.shape[0], query.shape[0]
    if n == 0 or m == 0:
        return float("inf"), 0, 0
    cost = 1.0 - _normalise_rows(template) @ _normalise_rows(query).T
    inf = np.inf
    # prev2/prev: accumulated cost of rows i-2 / i-1, padded with two inf columns on the left
    # so that the (1, 2) step reads column j-2 without a bounds check.
    start_prev2 = np.zeros(m + 2, dtype=np.int64)
    prev2 = np.full(m + 2, inf)
    prev = np.full(m + 2, inf)
    prev[2:] = 2.0 * cost[0]  # a match may start anywhere in the query
    start_prev = np.zeros(m + 2, dtype=np.int64)
    start_prev[2:] = np.arange(m)
    for i in range(1, n):
        c = cost[i]
        diag = prev[1:-1] + 2.0 * c
        skip_query = prev[:-2] + 3.0 * c
        skip_template = prev2[1:-1] + 3.0 * c
        best = np.minimum(np.minimum(diag, skip_query), skip_template)
        origin = np.where(
            best == diag,
            start_prev[1:-1],
            np.where(best == skip_query, start_prev[:-2], start_prev2[1:-1]),
        )
        prev2, start_prev2 = prev, start_prev
        prev = np.concatenate(([inf, inf], best))
        start_prev = np.concatenate(([0, 0], origin))
    total, starts = prev[2:], start_prev[2:]
    matched = np.arange(m) - starts + 1
    unmatched = m - matched
    # query frames outside the match count as unmatched_cost each
    mean = (total + unmatched_cost * unmatched) / (n + matched + unmatched)
    end = int(np.argmin(mean))
    if not np.isfinite(mean[end]):
        return float("inf"), 0, 0
    return float(mean[end]), int(starts[end]), end + 1


# ----------------------------------------------------------------------------- the spotter


class KeywordSpotter:
    """Templates of keyword phrases, and the matching of utterances against them.

    Args:
        config: Features, rejection threshold and enrollment trimming.
    """

    def __init__(self, config: KeywordConfig = KeywordConfig()) -> None:
        self.config = config
        self._templates: list[KeywordTemplate] = []

    @property
    def templates(self) -> tuple[KeywordTemplate, ...]:
        return tuple(self._templates)

    @property
    def keywords(self) -> dict[str, str]:
        """Every enrolled phrase and its intent, in enrollment order."""
        return {t.keyword: t.intent for t in self._templates}

    def enroll(
        self,
        keyword: str,
        audio: npt.ArrayLike,
        *,
        intent: str | None = None,
        source: str = "",
    ) -> KeywordTemplate:
        """Add one example of ``keyword`` (mono audio at ``config.sample_rate``).

        Silence at both ends is trimmed. ``intent`` defaults to the keyword itself; a keyword
        keeps the intent it was first enrolled with.
        """
        phrase = " ".join(keyword.lower().split())
        if not phrase:
            raise KeywordError("the keyword is empty: give the phrase the audio says")
        known = self.keywords.get(phrase)
        wanted = intent or known or phrase
        if known is not None and known != wanted:
            raise KeywordError(
                f"{phrase!r} is enrolled with intent {known!r}, not {wanted!r}: enroll a "
                "different phrase for the other intent"
            )
        features = mfcc(trim_silence(audio, self.config), self.config)
        shortest = 10
        if features.shape[0] < shortest:
            raise KeywordError(
                f"the example of {phrase!r} holds under {shortest * self.config.hop_ms:g} ms of "
                "sound: record it again, closer to the microphone"
            )
        template = KeywordTemplate(phrase, wanted, features, source)
        self._templates.append(template)
        log.debug("enrolled %r (%s): %d frames", phrase, source or "audio", template.frames)
        return template

    def enroll_speech(
        self,
        keyword: str,
        *,
        intent: str | None = None,
        voices: Iterable[tuple[str, int]] = DEFAULT_VOICES,
    ) -> list[KeywordTemplate]:
        """Enroll ``keyword`` as espeak-ng says it in each ``(voice, words per minute)``."""
        voice_list = list(voices)
        spoken = _synthesize_all([(keyword, v, s) for v, s in voice_list], self.config.sample_rate)
        return [
            self.enroll(keyword, audio, intent=intent, source=f"espeak-ng {voice} {speed} wpm")
            for (voice, speed), audio in zip(voice_list, spoken, strict=True)
        ]

    def distances(self, audio: npt.ArrayLike) -> list[KeywordMatch]:
        """Every keyword with its closest template's distance, closest first, no threshold."""
        if not self._templates:
            raise KeywordError("no keywords are enrolled: call enroll() or enroll_speech() first")
        x = _check_audio(audio)
        first, last = sound_span(x, self.config)
        query = mfcc(x[first:last], self.config)
        hop_s = self.config.hop_ms / 1000.0
        offset_s = first / self.config.sample_rate
        best: dict[str, KeywordMatch] = {}
        for template in self._templates:
            distance, start, end = subsequence_dtw(
                template.features, query, self.config.unmatched_cost
            )
            known = best.get(template.keyword)
            if known is None or distance < known.distance:
                best[template.keyword] = KeywordMatch(
                    template.keyword,
                    template.intent,
                    distance,
                    offset_s + start * hop_s,
                    offset_s + end * hop_s,
                )
        return sorted(best.values(), key=lambda m: m.distance)

    def spot(self, audio: npt.ArrayLike) -> KeywordMatch | None:
        """The closest keyword in ``audio``, or ``None`` if none is within the threshold."""
        ranked = self.distances(audio)
        best = ranked[0]
        accepted = best.distance < self.config.threshold
        log.debug(
            "closest %r at %.3f (%s)", best.keyword, best.distance, "hit" if accepted else "miss"
        )
        return best if accepted else None


def make_spotter(
    phrases: Sequence[tuple[str, str]],
    config: KeywordConfig = KeywordConfig(),
    voices: Iterable[tuple[str, int]] = DEFAULT_VOICES,
) -> KeywordSpotter:
    """A spotter with ``(phrase, intent)`` pairs enrolled from espeak-ng speech."""
    spotter = KeywordSpotter(config)
    intents = dict(phrases)
    voice_list = list(voices)
    jobs = [(phrase, voice, speed) for phrase in intents for voice, speed in voice_list]
    spoken = _synthesize_all(jobs, config.sample_rate)  # all at once: espeak-ng runs in parallel
    for (phrase, voice, speed), audio in zip(jobs, spoken, strict=True):
        source = f"espeak-ng {voice} {speed} wpm"
        spotter.enroll(phrase, audio, intent=intents[phrase], source=source)
    return spotter


def _synthesize_all(jobs: Sequence[tuple[str, str, int]], rate: int) -> list[F32]:
    """``(text, voice, speed)`` spoken by espeak-ng processes side by side, in order."""
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="edgekit-speech") as pool:
        return list(
            pool.map(lambda job: synthesize(job[0], voice=job[1], speed=job[2], rate=rate), jobs)
        )


__all__ = [
    "DEFAULT_VOICES",
    "KeywordConfig",
    "KeywordError",
    "KeywordMatch",
    "KeywordSpotter",
    "KeywordTemplate",
    "SpeechSynthesisUnavailable",
    "log_mel",
    "make_spotter",
    "mel_filterbank",
    "mfcc",
    "sound_span",
    "subsequence_dtw",
    "synthesize",
    "trim_silence",
]
