"""WavSpeaker: sounds played into a WAV file like a speaker, on the wall clock or the caller's;
and the spoken replies :func:`edgekit.media.synthesize` makes with espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from edgekit.media import (
    AudioSink,
    MediaError,
    MediaTimeout,
    SourceClosed,
    Speaker,
    SpeechSynthesisError,
    SpeechSynthesisUnavailable,
    WavSink,
    WavSource,
    WavSpeaker,
    synthesize,
)
from edgekit.media import wav as wav_module
from edgekit.media.errors import AudioFormatError

RATE = 16000


def tone(seconds: float, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    """A sine whose first sample is not zero, in steps of 1/32768 (exact through 16-bit PCM)."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.round(0.5 * np.sin(2 * np.pi * freq * t + 0.3) * 32768) / 32768).astype(np.float32)


def read_wav(path: Path) -> np.ndarray:
    with WavSource(path) as source:
        return source.read_all()


def test_a_tone_stopped_halfway_on_the_wall_clock_writes_what_was_played(tmp_path: Path) -> None:
    signal = tone(1.0)
    path = tmp_path / "out.wav"
    with WavSpeaker(path, RATE) as speaker:
        assert isinstance(speaker, AudioSink) and isinstance(speaker, AudioSink)
        time.sleep(0.1)
        started = time.monotonic()
        handle = speaker.play(signal)
        assert handle.frames_total == RATE and not handle.done
        time.sleep(0.5)
        handle.stop()
        elapsed = time.monotonic() - started
        played = handle.frames_played
        assert handle.stopped and handle.done and handle.wait(0)
        # paced like a speaker: what was played is what the time allowed, not the whole tone
        assert played == pytest.approx(elapsed * RATE, abs=0.03 * RATE)
        time.sleep(0.1)
        assert handle.frames_played == played  # nothing more after stop()
    recorded = read_wav(path)
    assert len(recorded) == pytest.approx(
        (time.monotonic() - started + 0.1) * RATE, abs=0.05 * RATE
    )
    start = int(np.flatnonzero(recorded)[0])
    assert start == pytest.approx(0.1 * RATE, abs=0.05 * RATE)
    np.testing.assert_array_equal(recorded[start : start + played], signal[:played])
    assert not recorded[:start].any() and not recorded[start + played :].any()


def test_a_sound_on_the_wall_clock_ends_after_its_length_and_wait_times_out(
    tmp_path: Path,
) -> None:
    with WavSpeaker(tmp_path / "out.wav", RATE) as speaker:
        handle = speaker.play(tone(0.3))
        started = time.monotonic()
        assert not handle.wait(timeout=0.05)
        assert 0.04 <= time.monotonic() - started < 0.5 and not handle.done
        assert handle.wait(timeout=2.0)
        assert 0.28 <= time.monotonic() - started < 1.0
        assert handle.done and not handle.stopped
        assert handle.frames_played == handle.frames_total == int(0.3 * RATE)
        handle.stop()  # after the end it is not "stopped": nothing was cut short
        assert not handle.stopped


def test_the_callers_clock_is_sample_exact(tmp_path: Path) -> None:
    """Output in step with the input, chunk by chunk, and the input recorded beside it."""
    signal = tone(0.25)  # 4000 frames
    heard = (np.arange(1, 8 * 512 + 1) / 2**15).astype(np.float32)  # distinct, exact values
    path = tmp_path / "talk.wav"
    with WavSpeaker(path, RATE, realtime=False, capture_channels=1) as speaker:
        chunks = iter(heard.reshape(-1, 512))
        assert not speaker.advance(512, next(chunks)).any()  # nothing plays yet
        handle = speaker.play(signal)
        time.sleep(0.05)  # the wall clock does not move it
        assert handle.frames_played == 0 and not handle.done
        played = [speaker.advance(512, next(chunks)) for _ in range(3)]
        assert handle.frames_played == 3 * 512
        np.testing.assert_array_equal(np.concatenate(played)[:, 0], signal[: 3 * 512])
        handle.stop()
        assert handle.stopped and handle.done and handle.frames_played == 3 * 512
        rest = [speaker.advance(512, chunk) for chunk in chunks]
        assert not np.concatenate(rest).any()
        assert speaker.frames == 8 * 512
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, RATE, 8 * 512)
    recorded = read_wav(path)
    expected = np.zeros(8 * 512, dtype=np.float32)
    expected[512 : 4 * 512] = signal[: 3 * 512]
    np.testing.assert_array_equal(recorded[:, 0], expected)
    np.testing.assert_array_equal(recorded[:, 1], heard)


def test_the_callers_clock_plays_to_the_end_and_a_new_sound_interrupts(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    first, second = tone(0.1), tone(0.05, freq=880.0)  # 1600 and 800 frames
    with WavSpeaker(path, RATE, realtime=False) as speaker:
        assert isinstance(speaker, AudioSink)
        handle = speaker.play(first)
        speaker.advance(1000)
        interrupted, handle = handle, speaker.play(second)
        assert interrupted.stopped and interrupted.frames_played == 1000
        speaker.advance(700)
        tail = speaker.advance(300)
        assert handle.done and not handle.stopped and handle.frames_played == 800
        np.testing.assert_array_equal(tail[:100, 0], second[700:])
        assert not tail[100:].any()
    recorded = read_wav(path)
    np.testing.assert_array_equal(recorded, np.concatenate([first[:1000], second, np.zeros(200)]))


def test_wait_on_the_callers_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with WavSpeaker(tmp_path / "out.wav", RATE, realtime=False) as speaker:
        handle = speaker.play(tone(0.1))
        started = time.monotonic()
        assert not handle.wait(timeout=0.1)
        assert time.monotonic() - started >= 0.09

        # an input thread moves the clock on: wait() returns when the sound has been played
        def input_thread() -> None:
            for _ in range(8):
                time.sleep(0.01)
                speaker.advance(256)

        thread = threading.Thread(target=input_thread)
        thread.start()
        assert handle.wait(timeout=5.0)
        thread.join()
        assert handle.frames_played == handle.frames_total == 1600 and not handle.stopped
        # without a timeout, a clock nobody moves is an error that says what to do
        monkeypatch.setattr(wav_module, "STALL_GRACE", 0.05)
        stuck = speaker.play(tone(0.01))
        with pytest.raises(MediaTimeout, match="call advance"):
            stuck.wait()
        assert not stuck.done


def test_other_rates_are_converted(tmp_path: Path) -> None:
    with WavSpeaker(tmp_path / "out.wav", RATE, realtime=False) as speaker:
        handle = speaker.play(tone(0.3, rate=48000), rate=48000)
        assert handle.frames_total == int(0.3 * RATE)
    with (
        WavSpeaker(tmp_path / "strict.wav", RATE, resample=False) as speaker,
        pytest.raises(AudioFormatError, match="need resample=True"),
    ):
        speaker.play(tone(0.1, rate=8000), rate=8000)


def test_misuse_names_the_fix(tmp_path: Path) -> None:
    with (
        WavSpeaker(tmp_path / "a.wav") as speaker,
        pytest.raises(MediaError, match="realtime=False"),
    ):
        speaker.advance(512)
    with pytest.raises(AudioFormatError, match="pass realtime=False"):
        WavSpeaker(tmp_path / "b.wav", capture_channels=1)
    with WavSpeaker(tmp_path / "c.wav", realtime=False, capture_channels=1) as speaker:
        with pytest.raises(AudioFormatError, match="capture="):
            speaker.advance(512)
        with pytest.raises(AudioFormatError, match="as many frames"):
            speaker.advance(512, np.zeros(100, dtype=np.float32))
    with WavSpeaker(tmp_path / "d.wav", realtime=False) as speaker:
        with pytest.raises(AudioFormatError, match="capture_channels=N"):
            speaker.advance(10, np.zeros(10, dtype=np.float32))
        with pytest.raises(AudioFormatError, match="0 or more"):
            speaker.advance(-1)
        handle = speaker.play(tone(0.1))
    assert handle.stopped  # closing the speaker stops its sound
    with pytest.raises(SourceClosed, match="open a new WavSpeaker"):
        speaker.play(tone(0.1))


def test_a_speaker_and_the_wav_sinks_are_one_kind_of_output(
    tmp_path: Path, jack_device: str
) -> None:
    def play_all(out: AudioSink, samples: np.ndarray) -> tuple[int, int, bool]:
        handle = out.play(samples)
        assert handle.wait(timeout=5.0)
        return handle.frames_played, handle.frames_total, handle.stopped

    signal = tone(0.2)
    with Speaker(jack_device, rate=RATE) as speaker:
        assert isinstance(speaker, AudioSink)
        assert play_all(speaker, signal) == (3200, 3200, False)
    with WavSpeaker(tmp_path / "a.wav", RATE) as wav_speaker:
        assert play_all(wav_speaker, signal) == (3200, 3200, False)
    with WavSink(tmp_path / "b.wav", RATE) as sink:
        assert isinstance(sink, AudioSink)
        assert play_all(sink, signal) == (3200, 3200, False)


def test_synthesized_speech_is_real_speech(tmp_path: Path) -> None:
    speech = synthesize("tell me a story", rate=RATE)
    assert speech.dtype == np.float32 and speech.ndim == 1
    seconds = len(speech) / RATE
    assert 0.6 < seconds < 3.0, seconds
    assert float(np.sqrt(np.mean(speech**2))) > 0.03
    assert np.abs(speech).max() <= 1.0
    # a voice: nearly all the energy between 80 Hz and 4 kHz, none of it a single tone
    power = np.abs(np.fft.rfft(speech)) ** 2
    hz = np.fft.rfftfreq(len(speech), 1 / RATE)
    assert power[(hz > 80) & (hz < 4000)].sum() > 0.9 * power.sum()
    assert power.max() < 0.05 * power.sum()
    # at espeak-ng's own rate nothing is resampled: the samples are the ones it writes
    espeak = shutil.which("espeak-ng")
    assert espeak is not None
    own = tmp_path / "own.wav"
    command = [espeak, "-v", "en-us", "-s", "160", "-p", "50", "-w", str(own), "tell me a story"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    native = synthesize("tell me a story", rate=22050)
    np.testing.assert_array_equal(native, read_wav(own))
    assert len(native) / 22050 == pytest.approx(seconds, abs=0.01)
    # voice, speed and pitch are passed on
    slow = synthesize("tell me a story", voice="en-gb+f3", speed=100, pitch=80, rate=RATE)
    assert len(slow) > 1.3 * len(speech)


def test_synthesized_speech_plays_on_a_wav_speaker(tmp_path: Path) -> None:
    speech = synthesize("hello", rate=RATE)
    path = tmp_path / "hello.wav"
    with WavSpeaker(path, RATE, realtime=False) as speaker:
        handle = speaker.play(speech)
        while not handle.done:
            speaker.advance(512)
    recorded = read_wav(path)
    assert handle.frames_played == len(speech)
    np.testing.assert_allclose(recorded[: len(speech)], speech, atol=1 / 32768)
    assert not recorded[len(speech) :].any()


def test_speech_synthesis_errors_name_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SpeechSynthesisError, match="espeak-ng --voices"):
        synthesize("hello", voice="nosuchvoice")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SpeechSynthesisUnavailable, match="apt-get install espeak-ng"):
        synthesize("hello")
