"""Microphone and speaker on real PortAudio devices: JACK's dummy driver and ALSA's file plugin."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.errors import EdgekitError
from edgekit.media import AudioSink, AudioSource, MediaTimeout, SourceClosed
from edgekit.media.audio import (
    AudioRing,
    Microphone,
    Speaker,
    find_device,
    list_devices,
    rescan_devices,
)
from edgekit.media.errors import AudioDeviceError, AudioFormatError

RATE = 16000


def tone(seconds: float, rate: int = RATE, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """A sine quantized to multiples of 1/32768, starting at a non-zero sample."""
    t = np.arange(int(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * freq * t + 0.3)
    return (np.round(x * 32768) / 32768).astype(np.float32)


def test_ten_second_capture_has_no_unreported_overruns(jack_device: str) -> None:
    with Microphone(jack_device, rate=RATE, buffer_seconds=2.0) as mic:
        assert isinstance(mic, AudioSource)
        received = 0
        chunks = []
        t0 = time.monotonic()
        first = mic.read(1600, timeout=5)
        while time.monotonic() - t0 < 10.0:
            chunk = mic.read(1600, timeout=5)
            chunks.append((chunk.seq, chunk.t_start_ns, chunk.dropped))
            received += chunk.frames
        stats = mic.stats()
    elapsed_s = stats.elapsed_s
    # Everything the device delivered reached the reader, minus what is still buffered.
    assert stats.dropped_samples == 0 and all(d == 0 for _, _, d in chunks)
    assert 0 <= stats.frames - (received + first.frames) < 1600
    assert [s for s, _, _ in chunks] == list(range(1, len(chunks) + 1))
    # The device was paced at 16 kHz for the whole time, or the shortfall was reported.
    expected = elapsed_s * RATE
    shortfall = expected - stats.device_frames
    if stats.input_overflows == 0:
        assert abs(shortfall) < 0.02 * expected + 3200, (
            f"{stats.device_frames} frames in {elapsed_s:.2f} s at {RATE} Hz with no overflow "
            "reported"
        )
    assert received >= 9.5 * RATE * 0.95
    # Timestamps follow the sample clock: 100 ms apart while nothing overflowed (the clock
    # anchor is refined by at most a callback's jitter).
    steps = np.diff([t for _, t, _ in chunks]) / 1e6
    if stats.input_overflows == 0:
        assert np.median(np.abs(steps - 100.0)) < 0.01
        assert np.allclose(steps, 100.0, atol=2.0)
    assert all(steps > 0)


def test_chunk_timestamps_are_near_now(jack_device: str) -> None:
    with Microphone(jack_device, rate=RATE) as mic:
        chunk = mic.read(800, timeout=5)
        now = time.monotonic_ns()
        assert 0 <= now - chunk.t_end_ns < 0.5e9
        assert chunk.samples.dtype == np.float32 and chunk.samples.shape == (800,)


def test_resampling_when_the_device_cannot_run_at_the_rate(jack_device: str) -> None:
    with pytest.raises(AudioFormatError, match="runs at 16000 Hz: pass resample=True"):
        Microphone(jack_device, rate=8000, resample=False)
    with Microphone(jack_device, rate=8000) as mic:
        assert (mic.rate, mic.device_rate) == (8000, 16000)
        mic.read(400, timeout=5)
        t0 = time.monotonic()
        got = sum(mic.read(800, timeout=5).frames for _ in range(10))
        elapsed = time.monotonic() - t0
        stats = mic.stats()
    assert got == 8000
    assert 0.8 < elapsed < 1.5, "8000 samples at 8 kHz take about a second"
    assert stats.frames == pytest.approx(stats.device_frames / 2, abs=64)


def test_slow_reader_loses_oldest_samples_and_counts_them(jack_device: str) -> None:
    with Microphone(jack_device, rate=RATE, buffer_seconds=0.25) as mic:
        mic.read(160, timeout=5)
        time.sleep(0.6)
        chunk = mic.read(1600, timeout=5)
        stats = mic.stats()
        latest = mic.latest(0.1)
    assert chunk.dropped > 0.2 * RATE
    assert stats.dropped_samples == chunk.dropped
    assert latest.frames == 1600


def test_read_timeout_and_close(jack_device: str) -> None:
    mic = Microphone(jack_device, rate=RATE)
    with pytest.raises(MediaTimeout):
        mic.read(16000, timeout=0.1)
    with pytest.raises(AudioFormatError, match="buffer_seconds"):
        mic.read(RATE * 60)
    mic.close()
    mic.close()
    assert mic.closed
    with pytest.raises(SourceClosed):
        mic.read(10)


def test_playback_runs_in_real_time_and_waits(jack_device: str) -> None:
    with Speaker(jack_device, rate=RATE) as speaker:
        assert isinstance(speaker, AudioSink)
        t0 = time.monotonic()
        handle = speaker.play(tone(0.5))
        assert not handle.done
        assert handle.wait(timeout=5)
        elapsed = time.monotonic() - t0
        assert speaker.underruns == handle.underruns
    assert 0.45 < elapsed < 1.5
    assert handle.frames_played == handle.frames_total == 8000
    assert not handle.stopped


def test_playback_barge_in(jack_device: str) -> None:
    with Speaker(jack_device, rate=RATE) as speaker:
        handle = speaker.play(tone(5.0))
        time.sleep(0.3)
        t0 = time.monotonic()
        handle.stop()
        assert handle.wait(timeout=1)
        assert time.monotonic() - t0 < 0.2
        assert handle.stopped
        assert 0.1 * RATE < handle.frames_played < 1.5 * RATE
        # A new sound interrupts the previous one.
        first = speaker.play(tone(5.0))
        second = speaker.play(tone(0.2))
        assert first.done and first.stopped
        assert second.wait(timeout=5) and not second.stopped


def test_playback_resamples_other_rates(jack_device: str) -> None:
    with Speaker(jack_device, rate=RATE) as speaker:
        handle = speaker.play(tone(0.3, rate=48000), rate=48000)
        assert handle.rate == RATE
        assert handle.frames_total == pytest.approx(0.3 * RATE, abs=2)
        assert handle.wait(timeout=5)


def test_unknown_devices_and_bad_samples(jack_device: str) -> None:
    with pytest.raises(AudioDeviceError, match="no input devices match 'no-such-card'") as info:
        Microphone("no-such-card")
    assert "python -m sounddevice" in str(info.value)
    assert isinstance(info.value, EdgekitError)
    with pytest.raises(AudioDeviceError, match="no audio device 999"):
        Speaker(999)
    with pytest.raises(AudioFormatError, match="has 2 input channels, not 3"):
        Microphone(jack_device, channels=3)
    index, info_dict = find_device(jack_device, "output")
    assert info_dict["name"] == jack_device
    with Speaker(index) as speaker:
        with pytest.raises(AudioFormatError, match="float"):
            speaker.play(np.arange(10))
        with pytest.raises(AudioFormatError, match="do not fit 1 channel"):
            speaker.play(np.zeros((10, 3), np.float32))


def test_stereo_capture_shape(jack_device: str) -> None:
    with Microphone(jack_device, rate=RATE, channels=2) as mic:
        chunk = mic.read(320, timeout=5)
    assert chunk.samples.shape == (320, 2)


def test_speaker_round_trip_is_sample_exact(alsa_file_device: dict[str, Any]) -> None:
    signal = tone(1.0, freq=523.25)
    out = alsa_file_device["out"]
    out.unlink(missing_ok=True)
    with Speaker(alsa_file_device["name"], rate=alsa_file_device["rate"]) as speaker:
        handle = speaker.play(signal)
        assert handle.wait(timeout=10)
    written = np.fromfile(out, dtype="<f4")
    start = int(np.flatnonzero(written)[0])
    np.testing.assert_array_equal(written[start : start + len(signal)], signal)
    assert not np.any(written[:start]) and not np.any(written[start + len(signal) :])


def test_ring_buffer_wraps() -> None:
    ring = AudioRing(10, 1)
    ring.write(np.arange(7, dtype=np.float32)[:, None])
    ring.write(np.arange(7, 13, dtype=np.float32)[:, None])
    assert (ring.written, ring.oldest) == (13, 3)
    np.testing.assert_array_equal(ring.copy(3, 10)[:, 0], np.arange(3, 13))
    ring.write(np.arange(13, 40, dtype=np.float32)[:, None])
    np.testing.assert_array_equal(ring.copy(35, 5)[:, 0], np.arange(35, 40))
    with pytest.raises(IndexError):
        ring.copy(20, 5)


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 50), sizes=st.lists(st.integers(0, 120), max_size=12))
def test_ring_buffer_matches_a_plain_list(capacity: int, sizes: list[int]) -> None:
    ring = AudioRing(capacity, 2)
    everything: list[float] = []
    for size in sizes:
        block = np.arange(len(everything), len(everything) + size, dtype=np.float32)
        ring.write(np.stack([block, -block], axis=1))
        everything.extend(block.tolist())
        assert ring.written == len(everything)
        kept = everything[-capacity:] if everything else []
        assert ring.oldest == len(everything) - len(kept)
        if kept:
            got = ring.copy(ring.oldest, len(kept))
            np.testing.assert_array_equal(got[:, 0], kept)
            np.testing.assert_array_equal(got[:, 1], [-v for v in kept])


def test_list_and_rescan_devices(jack_device: str) -> None:
    devices = list_devices()
    jack = [d for d in devices if d.name == jack_device]
    assert len(jack) == 1
    assert (jack[0].inputs, jack[0].outputs, jack[0].default_rate) == (2, 2, RATE)
    assert "JACK" in jack[0].host_api
    with Microphone(jack_device, rate=RATE) as mic:
        with pytest.raises(AudioDeviceError, match="close them before rescanning"):
            rescan_devices()
        mic.read(160, timeout=5)
    assert [d.name for d in rescan_devices()] == [d.name for d in devices]


def test_microphone_chunks_feed_a_pipeline(jack_device: str) -> None:
    from edgekit.pipeline import Pipeline, Result, Stage

    with Microphone(jack_device, rate=RATE) as mic:
        stages = [Stage("level", lambda c: float(np.abs(c.samples).max()), policy="block")]
        results: list[Result] = []
        stats = Pipeline(mic.chunks(320), stages).run(max_items=25, on_result=results.append)
        assert not mic.closed, "the pipeline closes the iterator, not the microphone"
    assert [r.seq for r in results] == list(range(25))
    assert all(r.value == 0.0 for r in results)  # the dummy driver captures silence
    # 25 chunks of 20 ms, paced by the device; each result follows its chunk quickly.
    assert 0.35 < stats.elapsed_s < 2.0
    assert stats.latency_p50_ms < 30
