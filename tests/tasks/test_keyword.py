"""Keyword spotting on real espeak-ng speech: the right phrase in another voice, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit import EdgekitError
from edgekit.tasks.keyword import (
    KeywordConfig,
    KeywordError,
    KeywordSpotter,
    SpeechSynthesisUnavailable,
    make_spotter,
    mel_filterbank,
    mfcc,
    sound_span,
    subsequence_dtw,
    synthesize,
    trim_silence,
)

RATE = 16000
PHRASES = (
    ("hello", "greeting"),
    ("tell me a story", "story"),
    ("sing a song", "song"),
    ("good night", "goodnight"),
)
#: voices the templates were not made with: a high-pitched slow child-like voice, and a Scottish
#: accent (voice, words per minute, pitch).
LISTENERS = (("en-us+f4", 130, 80), ("en-gb-scotland", 140, 70))


@pytest.fixture(scope="module")
def spotter() -> KeywordSpotter:
    return make_spotter(PHRASES)


def said(text: str, voice: str, speed: int, pitch: int, lead_s: float = 0.4) -> np.ndarray:
    """``text`` in a voice, between silences, over faint noise (like a quiet room's mic)."""
    speech = synthesize(text, voice=voice, speed=speed, pitch=pitch, rate=RATE)
    lead, tail = np.zeros(round(lead_s * RATE)), np.zeros(RATE // 4)
    audio = np.concatenate([lead, speech, tail])
    noise = 0.002 * np.random.default_rng(len(text)).standard_normal(audio.size)
    return (audio + noise).astype(np.float32)


# ----------------------------------------------------------------------------- features and DTW


def test_mel_filters_cover_the_band_with_unit_area() -> None:
    config = KeywordConfig()
    bank = mel_filterbank(config, 512)
    assert bank.shape == (config.n_mels, 257)
    assert np.allclose(bank.sum(axis=1), 1.0)
    freqs = np.fft.rfftfreq(512, 1 / RATE)
    peaks = freqs[bank.argmax(axis=1)]
    assert np.all(np.diff(peaks) > 0)  # filters go up in frequency
    assert config.low_hz <= peaks[0] < 250 and 6500 < peaks[-1] <= config.high_hz


def test_mfcc_frames_and_loudness_invariance() -> None:
    speech = synthesize("hello", rate=RATE)
    features = mfcc(speech)
    hop = KeywordConfig().hop_samples
    assert features.dtype == np.float32
    assert features.shape == (1 + (speech.size - 400) // hop, 12)
    assert np.allclose(features.mean(axis=0), 0.0, atol=1e-4)  # cepstral mean removed
    assert np.allclose(mfcc(0.1 * speech), features, atol=0.05)  # c0 (loudness) is left out
    int16 = np.round(speech * 32767).astype(np.int16)
    assert np.allclose(mfcc(int16), features, atol=0.05)
    assert mfcc(np.zeros(100, np.float32)).shape == (0, 12)


def test_trimming_finds_the_sound() -> None:
    speech = synthesize("good night", rate=RATE)
    loud = np.flatnonzero(np.abs(speech) > 0.01)
    padded = np.concatenate([np.zeros(8000), speech, np.zeros(4000)]).astype(np.float32)
    start, stop = sound_span(padded)
    assert abs(start - (8000 + loud[0])) < 800 and abs(stop - (8000 + loud[-1])) < 800
    assert trim_silence(padded).size == stop - start


def test_subsequence_dtw_finds_a_stretched_copy_inside_a_longer_sequence() -> None:
    rng = np.random.default_rng(3)
    template = rng.standard_normal((30, 12)).astype(np.float32)
    stretched = np.repeat(template, 3, axis=0)[::2]  # 1.5 times as long
    query = np.concatenate(
        [rng.standard_normal((20, 12)), stretched, rng.standard_normal((25, 12))]
    ).astype(np.float32)
    distance, start, end = subsequence_dtw(template, query)
    assert distance < 0.05
    assert abs(start - 20) <= 1 and abs(end - (20 + len(stretched))) <= 1
    same = subsequence_dtw(template, template)
    assert same[0] == pytest.approx(0.0, abs=1e-9) and same[1:] == (0, 30)
    # more than twice as fast cannot be followed; nothing to match is infinitely far
    assert subsequence_dtw(template, template[::3]) == (float("inf"), 0, 0)
    assert subsequence_dtw(template, query[:0])[0] == float("inf")


def test_unmatched_frames_cost_distance() -> None:
    rng = np.random.default_rng(4)
    template = rng.standard_normal((20, 12)).astype(np.float32)
    query = np.concatenate([template, rng.standard_normal((20, 12))]).astype(np.float32)
    alone, _, _ = subsequence_dtw(template, query)
    penalised, start, end = subsequence_dtw(template, query, unmatched_cost=0.5)
    assert alone == pytest.approx(0.0, abs=1e-6)
    assert (start, end) == (0, 20)
    assert penalised == pytest.approx(0.5 * 20 / (20 + 20 + 20))


# ----------------------------------------------------------------------------- real speech


def test_templates_come_from_several_voices(spotter: KeywordSpotter) -> None:
    assert spotter.keywords == dict(PHRASES)
    per_keyword = {p: [t for t in spotter.templates if t.keyword == p] for p, _ in PHRASES}
    assert all(len(ts) == 7 for ts in per_keyword.values())
    assert len({t.source for t in per_keyword["hello"]}) == 7
    story, hello = per_keyword["tell me a story"][0], per_keyword["hello"][0]
    assert story.frames > 1.5 * hello.frames  # a longer phrase, a longer template
    voices = ((voice, 160) for voice in ("en-us", "en-gb"))  # any iterable, used for each phrase
    two = make_spotter(PHRASES[:2], voices=voices)
    assert [(t.keyword, t.source) for t in two.templates] == [
        (phrase, f"espeak-ng {voice} 160 wpm")
        for phrase in ("hello", "tell me a story")
        for voice in ("en-us", "en-gb")
    ]


@pytest.mark.parametrize(("voice", "speed", "pitch"), LISTENERS)
@pytest.mark.parametrize(("phrase", "intent"), PHRASES)
def test_each_keyword_in_another_voice_is_recognised(
    spotter: KeywordSpotter, phrase: str, intent: str, voice: str, speed: int, pitch: int
) -> None:
    audio = said(phrase, voice, speed, pitch)
    match = spotter.spot(audio)
    assert match is not None, spotter.distances(audio)[:2]
    assert (match.keyword, match.intent) == (phrase, intent)
    assert match.distance < spotter.config.threshold
    start, stop = sound_span(audio)
    assert start / RATE - 0.05 <= match.start_s < match.end_s <= stop / RATE + 0.05
    assert match.end_s - match.start_s > 0.5 * (stop - start) / RATE


def test_a_keyword_inside_a_longer_sentence_is_found_where_it_is(spotter: KeywordSpotter) -> None:
    audio = said("please, tell me a story", "en-us+f4", 130, 80)
    please = synthesize("please,", voice="en-us+f4", speed=130, pitch=80, rate=RATE)
    match = spotter.spot(audio)
    assert match is not None and match.intent == "story"
    assert match.start_s >= 0.4 + 0.5 * please.size / RATE


@pytest.mark.parametrize(
    "sentence",
    ["what is your name", "where is my ball", "one two three", "the weather is nice today"],
)
@pytest.mark.parametrize(("voice", "speed", "pitch"), LISTENERS)
def test_other_words_are_rejected(
    spotter: KeywordSpotter, sentence: str, voice: str, speed: int, pitch: int
) -> None:
    audio = said(sentence, voice, speed, pitch)
    assert spotter.spot(audio) is None, spotter.distances(audio)[0]
    assert spotter.distances(audio)[0].distance >= spotter.config.threshold


def test_noise_and_silence_are_rejected(spotter: KeywordSpotter) -> None:
    rng = np.random.default_rng(11)
    noise = (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32)
    hum = (0.3 * np.sin(2 * np.pi * 120 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    for audio in (noise, hum, np.zeros(2 * RATE, np.float32), noise[:100]):
        assert spotter.spot(audio) is None
    ranked = spotter.distances(noise)
    assert [m.keyword for m in ranked] != [] and all(m.distance > 0.4 for m in ranked)


def test_the_users_own_recording_enrolls_a_new_keyword() -> None:
    own = KeywordSpotter()
    for speed in (140, 170):
        own.enroll(
            "Turn   the light ON",
            synthesize("turn the light on", voice="en-gb-scotland", speed=speed, rate=RATE),
            intent="light",
            source="recorded",
        )
    assert own.keywords == {"turn the light on": "light"}
    match = own.spot(said("turn the light on", "en-gb-scotland", 155, 50))
    assert match is not None and match.intent == "light"
    assert own.spot(said("what is your name", "en-gb-scotland", 155, 50)) is None


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    empty = KeywordSpotter()
    with pytest.raises(KeywordError, match="no keywords are enrolled"):
        empty.spot(np.zeros(RATE, np.float32))
    with pytest.raises(KeywordError, match="mix down"):
        empty.enroll("hello", np.zeros((RATE, 2), np.float32))
    with pytest.raises(KeywordError, match="int16"):
        empty.enroll("hello", np.zeros(RATE, np.int32))
    with pytest.raises(KeywordError, match="empty"):
        empty.enroll("  ", np.zeros(RATE, np.float32))
    with pytest.raises(KeywordError, match="record it again"):
        empty.enroll("hello", np.zeros(800, np.float32))
    speech = synthesize("hello", rate=RATE)
    empty.enroll("hello", speech, intent="greeting")
    with pytest.raises(KeywordError, match="enrolled with intent 'greeting'"):
        empty.enroll("hello", speech, intent="story")
    with pytest.raises(KeywordError, match="n_ceps"):
        KeywordConfig(n_ceps=40)
    with pytest.raises(KeywordError, match="half the sample rate"):
        KeywordConfig(sample_rate=8000)
    assert issubclass(KeywordError, EdgekitError)

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SpeechSynthesisUnavailable, match="apt-get install espeak-ng"):
        synthesize("hello")
