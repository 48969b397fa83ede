"""Frame sources on real encoded video files and the synthetic patterns."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.media import (
    CaptureError,
    EndOfStream,
    Frame,
    FrameReleased,
    FrameSource,
    MediaBackendUnavailable,
    MediaTimeout,
    SourceClosed,
    SourceNotFound,
    SourceOpenError,
    SourceURL,
    UnknownSourceError,
    open_source,
    register_source,
    unregister_source,
    video_backends,
)
from edgekit.media.base import Image
from edgekit.media.synthetic import embed_counter, read_counter, write_pan_clip

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def drain(source: FrameSource, delay: float = 0.0) -> list[tuple[int, int, int]]:
    """(seq, embedded counter, capture time) of every frame read until EndOfStream."""
    seen = []
    while True:
        try:
            with source.read(timeout=5) as frame:
                seen.append((frame.seq, read_counter(frame.image), frame.t_capture_ns))
        except EndOfStream:
            return seen
        if delay:
            time.sleep(delay)


def test_file_every_frame_in_order(video_factory: Callable[..., Path]) -> None:
    path = video_factory(60)
    with open_source(f"file:{path}", policy="block", maxsize=4) as source:
        assert isinstance(source, FrameSource)
        seen = drain(source)
        stats = source.stats()
    seqs = [s for s, _, _ in seen]
    assert seqs == list(range(60))
    assert [c for _, c, _ in seen] == seqs, "decoded frames must carry their own counter"
    times = [t for _, _, t in seen]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert (stats.captured, stats.delivered, stats.dropped, stats.pending) == (60, 60, 0, 0)


def test_end_of_stream_is_typed_and_repeats(video_factory: Callable[..., Path]) -> None:
    with open_source(f"file:{video_factory(5)}", policy="block") as source:
        assert len(drain(source)) == 5
        with pytest.raises(EndOfStream, match="end of stream after 5 frames"):
            source.read(timeout=1)
    assert issubclass(EndOfStream, EdgekitError)


def test_paced_file_slow_consumer_gets_latest_and_drops_are_counted(
    video_factory: Callable[..., Path],
) -> None:
    frames, fps = 40, 50.0
    path = video_factory(frames, fps)
    with open_source(f"file:{path}?pace=1", policy="latest") as source:
        seen: list[int] = []
        t0 = time.monotonic()
        while True:
            newest_before = source.stats().last_seq
            try:
                with source.read(timeout=5) as frame:
                    # Latest-frame semantics: never older than the newest frame at call time.
                    assert frame.seq >= newest_before
                    assert read_counter(frame.image) == frame.seq
                    seen.append(frame.seq)
            except EndOfStream:
                break
            time.sleep(3 / fps)  # three frame periods: two of every three frames are dropped
        elapsed = time.monotonic() - t0
        stats = source.stats()
    assert seen == sorted(set(seen))
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(seen)) + seen[0]
    assert stats.captured == frames
    assert stats.delivered == len(seen)
    assert stats.dropped == frames - len(seen) == gaps + (frames - 1 - seen[-1])
    assert stats.dropped >= frames // 2
    # Paced at the file's frame rate: 40 frames at 50 fps take about 0.8 s.
    assert 0.7 <= elapsed < 3.0
    assert 35 <= stats.fps <= 55


def test_paced_file_queue_policy_drops_oldest(video_factory: Callable[..., Path]) -> None:
    path = video_factory(30, 100.0)
    with open_source(f"file:{path}?pace=1", policy="queue", maxsize=3) as source:
        time.sleep(0.6)  # all 30 frames are captured meanwhile; the queue keeps the last 3
        seen = drain(source)
        stats = source.stats()
    assert [s for s, _, _ in seen] == [27, 28, 29]
    assert stats.dropped == 27


def test_loop_restarts_the_file(video_factory: Callable[..., Path]) -> None:
    with open_source(f"file:{video_factory(7)}?loop=1", policy="block") as source:
        got = []
        for _ in range(20):
            with source.read(timeout=5) as frame:
                got.append((frame.seq, read_counter(frame.image)))
    assert [s for s, _ in got] == list(range(20))
    assert [c for _, c in got] == [i % 7 for i in range(20)]


def test_synthetic_counter_read_back_and_pacing() -> None:
    url = "synthetic:noise?width=128&height=64&fps=200&frames=50"
    with open_source(url, policy="block", maxsize=64) as source:
        seen = drain(source)
        stats = source.stats()
    assert [s for s, _, _ in seen] == list(range(50))
    assert [c for _, c, _ in seen] == list(range(50))
    # Paced: never faster than 200 fps (no bursts after a late frame), and not much slower.
    span_s = (seen[-1][2] - seen[0][2]) / 1e9
    assert 47 / 200 <= span_s < 49 / 200 * 2  # the first grab may be a little late
    gaps_ms = np.diff([t for _, _, t in seen]) / 1e6
    assert np.median(gaps_ms) == pytest.approx(5.0, abs=0.5)
    assert stats.fps == pytest.approx(200, rel=0.25)


def test_synthetic_frames_are_deterministic() -> None:
    images = []
    for _ in range(2):
        with open_source("synthetic:noise?width=64&height=16&fps=1000&frames=3", "block") as src:
            frames = _frames(src)
            images.append([frame.copy() for frame in frames])
            for frame in frames:
                frame.release()
    for a, b in zip(*images, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(images[0][1][8:], images[0][2][8:])


def _frames(source: FrameSource) -> list[Frame]:
    frames = []
    while True:
        try:
            frames.append(source.read(timeout=5))
        except EndOfStream:
            return frames


def test_counter_round_trip_all_bits() -> None:
    image = np.zeros((16, 300, 3), dtype=np.uint8)
    for value in (0, 1, 0xDEADBEEF, 2**32 - 1, 123456):
        embed_counter(image, value)
        assert read_counter(image) == value


def test_frame_lifetime_rule() -> None:
    with open_source("synthetic:bars?width=64&height=16&fps=500", buffers=2) as source:
        with source.read(timeout=5) as frame:
            kept = frame.image
            first = read_counter(kept)
            owned = frame.copy()
        assert frame.released
        with pytest.raises(FrameReleased, match=r"frame\.copy\(\)"):
            _ = frame.image
        # No copy on the hot path: the released buffer is reused for later frames.
        for _ in range(4):
            with source.read(timeout=5):
                pass
        assert read_counter(owned) == first
        assert read_counter(kept) != first, "the pool buffer should have been recycled"


def test_reader_holding_every_buffer_pauses_capture() -> None:
    with open_source("synthetic:bars?width=64&height=8&fps=1000", buffers=3) as source:
        held = [source.read(timeout=5) for _ in range(3)]
        seqs = [f.seq for f in held]
        assert seqs == sorted(set(seqs))
        captured = source.stats().captured
        time.sleep(0.05)
        assert source.stats().captured == captured, "no free buffer: capture must wait"
        with pytest.raises(MediaTimeout):
            source.read(timeout=0.05)
        buffers = {id(f.image) for f in held}
        for f in held:
            f.release()
        for _ in range(10):
            with source.read(timeout=5) as frame:
                buffers.add(id(frame.image))
        assert len(buffers) == 3, "the pool never grows beyond its size"
        assert source.stats().captured > captured + 9


def test_release_from_many_threads_returns_the_buffer_once() -> None:
    with open_source("synthetic:bars?width=64&height=8&fps=2000", buffers=3) as source:
        for _ in range(10):
            frame = source.read(timeout=5)
            barrier = threading.Barrier(8)

            def release(frame: Frame = frame, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                frame.release()

            threads = [threading.Thread(target=release) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            held = [source.read(timeout=5) for _ in range(3)]
            assert len({id(f.image) for f in held}) == 3, "two frames share one buffer"
            for f in held:
                f.release()


def test_iterating_a_stalled_source_times_out() -> None:
    with open_source("synthetic:bars?width=64&height=8&fps=1", timeout=0.1) as source:
        seen = []
        t0 = time.monotonic()
        with pytest.raises(MediaTimeout):
            for frame in source:
                with frame:
                    seen.append(frame.seq)
        assert seen == [0]
        assert time.monotonic() - t0 < 0.5


def test_read_timeout_and_closed_source() -> None:
    source = open_source("synthetic:bars?width=64&height=8&fps=2")
    with source.read(timeout=5):
        pass
    t0 = time.monotonic()
    with pytest.raises(MediaTimeout, match="no frame within 0.05 s"):
        source.read(timeout=0.05)
    assert time.monotonic() - t0 < 0.3
    source.close()
    source.close()
    with pytest.raises(SourceClosed):
        source.read(timeout=1)


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("clip.mp4", UnknownSourceError, "file:clip.mp4"),
        ("flie:clip.mp4", UnknownSourceError, "did you mean file:"),
        ("synthetic:stripes", UnknownSourceError, "synthetic:bars or synthetic:noise"),
        ("synthetic:bars?widht=10", UnknownSourceError, "options are: width, height, fps"),
        ("synthetic:bars?width=abc", UnknownSourceError, "not a int"),
        ("synthetic:bars?width=16", UnknownSourceError, "too small"),
        ("file:/nonexistent/clip.avi", SourceNotFound, "does not exist"),
        ("file:", UnknownSourceError, "name a file"),
        ("cam:97", SourceNotFound, "no camera at /dev/video97"),
        ("cam:/dev/video97?fps=30", SourceNotFound, "v4l2-ctl --list-devices"),
        ("file:x.avi?pace=maybe", SourceNotFound, "does not exist"),
    ],
)
def test_bad_urls(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        open_source(url)
    assert isinstance(info.value, EdgekitError)


def test_bad_policy_and_flag(video_factory: Callable[..., Path]) -> None:
    path = video_factory(5)
    with pytest.raises(UnknownSourceError, match="is not a flag"):
        open_source(f"file:{path}?pace=maybe")
    with pytest.raises(UnknownSourceError, match="latest, queue, block"):
        open_source(f"file:{path}", policy="newest")


def test_file_that_is_not_a_video(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.avi"
    bogus.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceOpenError, match="not a video file FFmpeg can decode") as info:
        open_source(f"file:{bogus}")
    assert isinstance(info.value, EdgekitError)


def test_unreachable_rtsp_stream_fails_fast() -> None:
    t0 = time.monotonic()
    with pytest.raises(SourceOpenError, match="rtsp://127.0.0.1:9/none"):
        open_source("rtsp://127.0.0.1:9/none")
    assert time.monotonic() - t0 < 10


def test_video_backends_report_the_opencv_build() -> None:
    backends = video_backends()
    assert set(backends) == {"FFMPEG", "GSTREAMER", "V4L2"}
    assert backends["FFMPEG"], "file and network sources need OpenCV with FFmpeg"
    assert backends["GSTREAMER"] == cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER)


def test_gstreamer_source_matches_the_opencv_build() -> None:
    url = "gst:videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48 ! videoconvert ! appsink"
    if cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        with open_source(url, policy="block") as source, source.read(timeout=10) as frame:
            assert frame.image.shape == (48, 64, 3)
    else:
        with pytest.raises(MediaBackendUnavailable, match="no GSTREAMER video backend") as info:
            open_source(url)
        assert "rtsp://" in str(info.value)


class FlakyCamera:
    """A live grabber whose stream drops after a few frames and whose first reopen fails."""

    live = True
    paced = True

    def __init__(self, url: SourceURL) -> None:
        self.url = url.url
        self.fps: float | None = 200.0
        self.opens = 0
        self.frames = 0
        self.is_open = False

    def open(self) -> None:
        self.opens += 1
        if self.opens == 2:
            raise OSError("device busy")
        self.is_open = True

    def grab(self, out: Image | None) -> Image | None:
        if not self.is_open or (self.opens == 1 and self.frames == 5):
            return None
        image = np.zeros((8, 64, 3), np.uint8) if out is None else out
        embed_counter(image, self.frames)
        self.frames += 1
        return image

    def close(self) -> None:
        self.is_open = False


def test_live_source_reconnects_with_backoff() -> None:
    cameras: list[FlakyCamera] = []

    def factory(url: SourceURL) -> FlakyCamera:
        cameras.append(FlakyCamera(url))
        return cameras[-1]

    register_source("flaky", factory)
    try:
        with open_source("flaky:cam", policy="block", maxsize=64) as source:
            counters = []
            for _ in range(12):
                with source.read(timeout=5) as frame:
                    counters.append((frame.seq, read_counter(frame.image)))
            stats = source.stats()
    finally:
        unregister_source("flaky")
    assert counters == [(i, i) for i in range(12)]
    assert stats.reconnects == 1
    assert cameras[0].opens == 3, "one lost stream, one failed reopen, one good reopen"
    assert not cameras[0].is_open


def test_capture_thread_error_surfaces_in_read() -> None:
    class Broken(FlakyCamera):
        def grab(self, out: Image | None) -> Image | None:
            raise RuntimeError("sensor on fire")

    register_source("broken", Broken)
    try:
        with open_source("broken:x") as source, pytest.raises(CaptureError) as info:
            source.read(timeout=5)
    finally:
        unregister_source("broken")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_close_joins_capture_thread_while_reader_waits() -> None:
    source = open_source("synthetic:bars?width=64&height=8&fps=1")
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while True:
                with source.read(timeout=10):
                    pass
        except (SourceClosed, EndOfStream) as e:
            errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    source.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 1.0
    assert errors and isinstance(errors[0], SourceClosed | EndOfStream)


def test_import_does_not_load_cv2_or_sounddevice() -> None:
    code = (
        "import sys, edgekit, edgekit.media, edgekit.pipeline; "
        "print(sorted({'cv2', 'sounddevice', 'soundfile'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("blocked", "code", "extra"),
    [
        ("cv2", "open_source('file:' + __file__)", "edgekit[vision]"),
        ("cv2", "open_source('cam:0')", "edgekit[vision]"),
        ("sounddevice", "Microphone()", "edgekit[audio]"),
        ("sounddevice", "Speaker()", "edgekit[audio]"),
    ],
)
def test_missing_backend_names_the_extra(
    blocked: str, code: str, extra: str, tmp_path: Path
) -> None:
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        f"sys.modules[{blocked!r}] = None  # as if it were not installed\n"
        "from edgekit.errors import BackendUnavailable\n"
        "from edgekit.media import open_source, Microphone, Speaker\n"
        "with open_source('synthetic:bars?width=64&height=8', 'block') as source:\n"
        "    source.read(timeout=5).release()  # synthetic frames need no OpenCV\n"
        "try:\n"
        f"    {code}\n"
        "except BackendUnavailable as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"pip install '{extra}'" in out.stdout, out.stdout + out.stderr


def test_a_pan_clip_decodes_to_the_shifted_still(tmp_path: Path) -> None:
    """write_pan_clip: frame i of the decoded clip is the still moved by offset(i, n) pixels."""
    rng = np.random.default_rng(7)
    still = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (9, 9), 3)
    path = write_pan_clip(tmp_path / "pan.avi", still, 6, 10.0, lambda i, n: (2 * i, -i))
    with open_source(f"file:{path}", "block") as source:  # every frame, however slow the reader
        frames = []
        while True:
            try:
                with source.read(timeout=5) as frame:
                    frames.append(frame.image.copy())
            except EndOfStream:
                break
    assert len(frames) == 6 and frames[0].shape == still.shape
    for i, image in enumerate(frames):
        # compare the middle, away from the mirrored edges; MJPG leaves small errors
        want = still[20 + i : 76 + i, 20 - 2 * i : 108 - 2 * i].astype(int)
        got = image[20:76, 20:108].astype(int)
        assert np.abs(got - want).mean() < 6, (
            f"frame {i} is not the still shifted by ({2 * i}, {-i})"
        )
    with pytest.raises(CaptureError, match="cannot write"):
        write_pan_clip(tmp_path / "missing" / "x.avi", still, 2, 10.0, lambda i, n: (0, 0))
