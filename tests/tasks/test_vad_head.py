"""Voice activity detection with the real Silero VAD model on espeak-ng speech, noise, silence."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from edgekit.tasks import SpeechSegment, TaskInputError, get_head
from edgekit.tasks.vad import (
    DEFAULT_HISTORY,
    SileroState,
    SpeechHysteresis,
    VadConfig,
    VadSegmenter,
    segments,
    silero_feeds,
)


@pytest.fixture(scope="module")
def vad_model(load_model: Any) -> Any:
    return load_model("silero-vad")


def covered(found: list[SpeechSegment], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` inside the segments."""
    return sum(max(0.0, min(s.end_s, end) - max(s.start_s, start)) for s in found)


def test_finds_the_speech_in_espeak_audio(vad_model: Any, espeak_speech: Any) -> None:
    audio, first, last = espeak_speech
    found = segments(audio, vad_model.run)
    assert found, "no speech found in a clip of speech"
    # Segments are ordered, disjoint and stay near the audible part (pad 30 ms + one chunk).
    for a, b in itertools.pairwise(found):
        assert a.end_s <= b.start_s
    assert found[0].start_s >= first - 0.1
    assert found[-1].end_s <= last + 0.15
    # They cover most of the audible part and are confident.
    assert covered(found, first, last) >= 0.7 * (last - first)
    assert max(s.peak_prob for s in found) > 0.9
    for s in found:
        assert s.duration_s >= 0.25


def test_speech_at_8_khz(vad_model: Any, espeak_speech: Any, resampler: Any) -> None:
    audio, first, last = espeak_speech
    config = VadConfig(sample_rate=8000)
    found = segments(resampler(audio, 16000, 8000), vad_model.run, config)
    assert found
    assert found[0].start_s >= first - 0.1 and found[-1].end_s <= last + 0.15
    assert covered(found, first, last) >= 0.7 * (last - first)


def test_no_speech_in_noise_or_silence(vad_model: Any) -> None:
    rng = np.random.default_rng(7)
    noise = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)  # -20 dBFS white noise
    assert segments(noise, vad_model.run) == []
    assert segments(np.zeros(3 * 16000, dtype=np.float32), vad_model.run) == []


def test_streaming_in_odd_pieces_equals_the_whole_clip(vad_model: Any, espeak_speech: Any) -> None:
    audio = espeak_speech[0]
    whole = segments(audio, vad_model.run)
    seg = VadSegmenter(vad_model.run)
    rng = np.random.default_rng(3)
    streamed: list[SpeechSegment] = []
    pos = 0
    while pos < len(audio):
        n = int(rng.integers(1, 3000))
        streamed += seg.feed(audio[pos : pos + n])
        pos += n
    streamed += seg.flush()
    assert streamed == whole
    # int16 input is accepted and scaled.
    as_int16 = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    again = segments(as_int16, vad_model.run)
    assert len(again) == len(whole)


def test_speech_running_to_the_end_of_the_clip(vad_model: Any, espeak_speech: Any) -> None:
    audio, _, last = espeak_speech
    clip = audio[: int(last * 16000) - 100]  # cut mid-word, not a multiple of 512 samples
    duration = len(clip) / 16000
    found = segments(clip, vad_model.run)
    assert found
    assert found[-1].end_s == pytest.approx(duration, abs=0.05)
    assert found[-1].end_s <= duration


def test_registry_head_steps_the_model_state(vad_model: Any, espeak_speech: Any) -> None:
    audio = espeak_speech[0]
    head = get_head("vad")
    state: SileroState | None = None
    probs = []
    for start in range(0, len(audio) - 511, 512):
        feeds, context = head.prepare(audio[start : start + 512], state)
        step = head.decode(vad_model.run(feeds), context)
        probs.append(step.prob)
        state = step.state
    seg = VadSegmenter(vad_model.run)
    seg.feed(audio[: len(probs) * 512])
    np.testing.assert_allclose(probs, seg.probabilities, atol=1e-6)
    assert max(probs[:25]) < 0.5 < max(probs)  # the first 0.8 s are silent


def test_probabilities_are_bounded_to_the_latest_chunks(vad_model: Any, espeak_speech: Any) -> None:
    audio = espeak_speech[0]
    chunks = len(audio) // 512
    unbounded = VadSegmenter(vad_model.run, history=chunks)
    unbounded.feed(audio)
    assert len(unbounded.probabilities) == chunks > 40
    bounded = VadSegmenter(vad_model.run, history=40)
    assert bounded.last_probability is None
    found = bounded.feed(audio)
    # only the last 40 are kept, the same as the unbounded segmenter's last 40
    assert len(bounded.probabilities) == 40
    np.testing.assert_allclose(bounded.probabilities, list(unbounded.probabilities)[-40:])
    assert bounded.last_probability == unbounded.probabilities[-1]
    # segmentation does not depend on how much is kept
    assert found + bounded.flush() == segments(audio, vad_model.run)
    assert len(bounded.probabilities) == 40  # flush keeps them, still bounded
    # the default holds a minute: a segmenter that listens for days stays small
    assert VadSegmenter(vad_model.run).probabilities.maxlen == DEFAULT_HISTORY == 60_000 // 32
    long = VadSegmenter(vad_model.run, history=3)
    for _ in range(4):
        long.feed(np.zeros(512 * 5, dtype=np.float32))
    assert len(long.probabilities) == 3 and long.samples_fed == 4 * 5 * 512
    with pytest.raises(TaskInputError, match="history must be at least 1"):
        VadSegmenter(vad_model.run, history=0)


def test_hysteresis_on_known_probabilities() -> None:
    config = VadConfig()  # threshold 0.5, neg 0.35, min speech 250 ms, silence 100 ms, pad 30 ms
    tracker = SpeechHysteresis(config)
    probs = [0.1] * 10 + [0.9] * 20 + [0.4] * 2 + [0.1] * 10 + [0.9] * 3 + [0.1] * 10
    for p in probs:
        tracker.push(p)
    tracker.finish(len(probs) * 512)
    found = tracker.take()
    # Speech from chunk 10 to 32 (the 0.4 chunks are above the negative threshold), padded by
    # 480 samples on both sides; the three-chunk burst (96 ms) is shorter than min speech.
    assert found == [SpeechSegment((10 * 512 - 480) / 16000, (32 * 512 + 480) / 16000, 0.9)]


def test_open_segment_is_closed_at_the_end_of_the_stream() -> None:
    tracker = SpeechHysteresis(VadConfig(speech_pad_ms=0))
    for p in [0.2] * 5 + [0.8] * 20:
        tracker.push(p)
    assert tracker.take() == []
    tracker.finish(25 * 512)
    assert tracker.take() == [SpeechSegment(5 * 512 / 16000, 25 * 512 / 16000, 0.8)]


def test_bad_audio_names_the_fix(vad_model: Any) -> None:
    state = SileroState.initial()
    with pytest.raises(TaskInputError, match="512 samples"):
        silero_feeds(np.zeros(400, dtype=np.float32), state)
    with pytest.raises(TaskInputError, match="mix down"):
        VadSegmenter(vad_model.run).feed(np.zeros((1000, 2), dtype=np.float32))
    with pytest.raises(TaskInputError, match="astype"):
        VadSegmenter(vad_model.run).feed(np.zeros(1000, dtype=np.int32))
    with pytest.raises(TaskInputError, match="16000 or 8000"):
        VadConfig(sample_rate=44100)
