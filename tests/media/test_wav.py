"""WAV source and sink, and the resampler they and the devices share."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edgekit.errors import EdgekitError
from edgekit.media import AudioSink, AudioSource, EndOfStream, MediaTimeout, SourceNotFound
from edgekit.media.errors import AudioFormatError, SourceOpenError
from edgekit.media.resample import Resampler, resample
from edgekit.media.wav import WavSink, WavSource


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.round(0.5 * np.sin(2 * np.pi * freq * t + 0.3) * 32768) / 32768).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_round_trip_is_exact(tmp_path: Path) -> None:
    signal = tone(1.0, 16000)
    path = tmp_path / "tone.wav"
    with WavSink(path, rate=16000) as sink:
        assert isinstance(sink, AudioSink)
        handle = sink.play(signal[:10000])
        assert handle.done and handle.wait() and handle.frames_played == 10000
        sink.write(signal[10000:])
    with wave.open(str(path)) as w:  # a plain 16-bit PCM file any program reads
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() == 16000
    with WavSource(path) as source:
        assert isinstance(source, AudioSource)
        chunks = []
        while True:
            try:
                chunks.append(source.read(3000))
            except EndOfStream:
                break
    assert [c.frames for c in chunks] == [3000] * 5 + [1000]
    assert [c.seq for c in chunks] == list(range(6))
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), signal)
    starts = [c.t_start_ns for c in chunks]
    assert np.allclose(np.diff(starts), 3000 / 16000 * 1e9, atol=1)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_sample_widths_and_stereo(tmp_path: Path, width: int) -> None:
    levels = float(1 << (8 * width - 1))
    stereo = np.stack([tone(0.1, 8000), -tone(0.1, 8000)], axis=1)
    stereo = np.round(stereo * min(levels, 128)) / min(levels, 128)
    path = tmp_path / f"w{width}.wav"
    with WavSink(path, rate=8000, channels=2, sample_width=width) as sink:
        sink.write(stereo)
    with WavSource(path) as source:
        back = source.read_all()
    assert back.shape == (800, 2)
    np.testing.assert_allclose(back, stereo, atol=1.5 / levels)


def test_float_wav_is_read_through_soundfile(tmp_path: Path) -> None:
    signal = (np.random.default_rng(1).standard_normal(500) * 0.1).astype(np.float32)
    path = tmp_path / "float.wav"
    soundfile.write(path, signal, 22050, subtype="FLOAT")
    with WavSource(path) as source:
        assert source.rate == 22050
        np.testing.assert_array_equal(source.read_all(), signal)


def test_source_resamples_to_the_model_rate(tmp_path: Path) -> None:
    path = tmp_path / "44k.wav"
    with WavSink(path, rate=44100) as sink:
        sink.write(tone(1.0, 44100, freq=1000.0))
    with pytest.raises(AudioFormatError, match="44100 Hz, not 16000 Hz: pass resample=True"):
        WavSource(path, rate=16000, resample=False)
    with WavSource(path, rate=16000) as source:
        assert source.frames == 16000
        x = source.read_all()
    assert len(x) == 16000
    assert peak_hz(x, 16000) == pytest.approx(1000, abs=2)
    ref = tone(1.0, 16000, freq=1000.0)
    np.testing.assert_allclose(x[500:-500], ref[500:-500], atol=0.01)


def test_sink_resamples_or_refuses(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with WavSink(path, rate=16000) as sink:
        sink.play(tone(0.5, 48000, freq=600.0), rate=48000)
        assert sink.frames == 8000
    with WavSource(path) as source:
        assert peak_hz(source.read_all(), 16000) == pytest.approx(600, abs=4)
    with (
        WavSink(tmp_path / "strict.wav", rate=16000, resample=False) as sink,
        pytest.raises(AudioFormatError, match="need resample=True"),
    ):
        sink.play(tone(0.1, 8000), rate=8000)


def test_realtime_source_is_paced(tmp_path: Path) -> None:
    path = tmp_path / "paced.wav"
    with WavSink(path, rate=8000) as sink:
        sink.write(tone(0.5, 8000))
    with WavSource(path, realtime=True) as source:
        t0 = time.monotonic()
        for _ in range(3):
            source.read(800)
        assert 0.28 < time.monotonic() - t0 < 0.6
        with pytest.raises(MediaTimeout, match="realtime=True"):
            source.read(4000, timeout=0.01)


def test_bad_wav_input(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound, match="does not exist") as info:
        WavSource(tmp_path / "missing.wav")
    assert isinstance(info.value, EdgekitError)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFX not a wave file at all")
    with pytest.raises(SourceOpenError, match="not a WAV file"):
        WavSource(junk)
    with pytest.raises(SourceNotFound, match="folder"):
        WavSink(tmp_path / "nope" / "out.wav")
    with pytest.raises(AudioFormatError, match="sample_width"):
        WavSink(tmp_path / "x.wav", sample_width=5)


@pytest.mark.parametrize(
    ("src", "dst"), [(48000, 16000), (44100, 16000), (16000, 48000), (16000, 22050), (8000, 16000)]
)
def test_resampler_keeps_frequency_and_level(src: int, dst: int) -> None:
    x = tone(1.0, src, freq=1000.0)
    y = resample(x, src, dst)
    assert len(y) == dst
    assert peak_hz(y, dst) == pytest.approx(1000, abs=2)
    ref = tone(1.0, dst, freq=1000.0)
    np.testing.assert_allclose(y[200:-200], ref[200:-200], atol=0.01)


def test_resampler_streaming_equals_one_shot() -> None:
    x = np.random.default_rng(3).standard_normal((30000, 2)).astype(np.float32)
    whole = Resampler(44100, 16000).process(x)
    streaming = Resampler(44100, 16000)
    rng = np.random.default_rng(4)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 900))
        parts.append(streaming.process(x[i : i + n]))
        i += n
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


def test_resampler_removes_aliases() -> None:
    x = tone(1.0, 48000, freq=7000.0)  # above the 4 kHz Nyquist of 8 kHz
    y = resample(x, 48000, 8000)
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 0.01


def test_resampler_rejects_bad_rates() -> None:
    with pytest.raises(AudioFormatError, match="positive integers"):
        Resampler(0, 16000)
