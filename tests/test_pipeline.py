"""Pipelines on real frame sources: ordering, policies, errors, shutdown and stats."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.media import Frame, open_source
from edgekit.media.synthetic import embed_counter, read_counter
from edgekit.pipeline import (
    Pipeline,
    PipelineConfigError,
    PipelineStats,
    PipelineTimeout,
    Result,
    Stage,
    StageError,
    format_stats,
)


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("edgekit-")]


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = set(pipeline_threads())
    yield
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and set(pipeline_threads()) - before:
        time.sleep(0.01)
    leaked = set(pipeline_threads()) - before
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MJPG file of 40 frames, each carrying its index in the counter cells."""
    path = tmp_path_factory.mktemp("pipeline") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (256, 64))
    assert writer.isOpened()
    for index in range(40):
        image = np.full((64, 256, 3), 40, dtype=np.uint8)
        image[32:48, 8 + index * 4 : 24 + index * 4] = 220  # a "face" that moves right
        embed_counter(image, index)
        writer.write(image)
    writer.release()
    return path


def detect(frame: Frame) -> dict[str, Any]:
    """Finds the bright box; returns its bounds and a copy of the crop region's parent."""
    image = frame.image
    mask = image[16:, :, 0] > 128
    cols = np.flatnonzero(mask.any(axis=0))
    return {
        "counter": read_counter(image),
        "x0": int(cols[0]),
        "x1": int(cols[-1]) + 1,
        "gray": image[16:, :, 0].copy(),
    }


def crop(found: dict[str, Any]) -> tuple[int, np.ndarray]:
    return found["counter"], found["gray"][:, found["x0"] : found["x1"]]


def recognise(item: tuple[int, np.ndarray]) -> str:
    counter, patch = item
    return f"{counter}:{patch.shape[1]}"


def test_chained_stages_on_a_video_file(clip: Path) -> None:
    source = open_source(f"file:{clip}", policy="block", maxsize=4, buffers=6)
    stages = [
        Stage("detect", detect, policy="block"),
        Stage("crop", crop, policy="block"),
        Stage("recognise", recognise, policy="block"),
    ]
    with Pipeline(source, stages) as p:
        results = list(p)
    assert [r.seq for r in results] == list(range(40))
    assert [r.value for r in results] == [f"{i}:16" for i in range(40)]
    t_capture = [r.t_capture_ns for r in results]
    assert t_capture == sorted(t_capture)
    assert all(r.t_done_ns > r.t_capture_ns for r in results)
    stats = p.stats()
    assert stats.results == 40 and stats.source_items == 40
    assert [s.processed for s in stats.stages] == [40, 40, 40]
    assert stats.source is not None and stats.source.captured == 40
    assert not stats.running


def test_failing_middle_stage_stops_cleanly_and_names_itself(clip: Path) -> None:
    source = open_source(f"file:{clip}", policy="block", maxsize=4)
    done: list[int] = []

    def picky(found: dict[str, Any]) -> dict[str, Any]:
        if found["counter"] == 7:
            raise ValueError("counter 7 is unlucky")
        return found

    def collect(found: dict[str, Any]) -> dict[str, Any]:
        done.append(found["counter"])
        return found

    stages = [
        Stage("detect", detect, policy="block"),
        Stage("validate", picky, policy="block"),
        Stage("collect", collect, policy="block"),
    ]
    with (
        pytest.raises(StageError, match="'validate' failed on item 7") as info,
        Pipeline(source, stages) as p,
    ):
        for _ in p:
            pass
    error = info.value
    assert error.stage == "validate" and error.seq == 7
    assert isinstance(error.__cause__, ValueError)
    assert isinstance(error, EdgekitError)
    # Items behind the failure never pass it; items ahead of it may still be in flight when
    # the pipeline stops.
    assert done == list(range(len(done))) and len(done) <= 7
    stats = p.stats()
    assert stats.stages[1].errors == 1
    assert stats.error is not None and "validate" in stats.error
    with pytest.raises(Exception, match="closed"):
        source.read(timeout=1)


def test_run_raises_stage_error_from_first_stage_with_frames() -> None:
    def broken(frame: Frame) -> None:
        raise KeyError("no such model output")

    source = open_source("synthetic:bars?width=64&height=8&fps=500", buffers=3)
    with pytest.raises(StageError, match="'infer'") as info:
        Pipeline(source, [Stage("infer", broken)]).run(max_items=5)
    assert isinstance(info.value.__cause__, KeyError)


def slow(value: int) -> int:
    time.sleep(0.01)
    return value


def pause(seconds: float) -> Any:
    """A stage function that sleeps, then passes its item on."""

    def fn(value: Any) -> Any:
        time.sleep(seconds)
        return value

    return fn


def test_block_policy_loses_nothing() -> None:
    stats = Pipeline(range(60), [Stage("slow", slow, policy="block", maxsize=2)]).run()
    assert stats.results == 60
    assert stats.stages[0].dropped == 0
    assert stats.stages[0].processed == 60


def test_drop_oldest_policy_drops_and_counts() -> None:
    got: list[int] = []
    stats = Pipeline(range(60), [Stage("slow", slow, policy="drop_oldest", maxsize=2)]).run(
        on_result=lambda r: got.append(r.value)
    )
    stage = stats.stages[0]
    assert stage.dropped > 30, "an unpaced source feeding a slow stage must drop"
    assert stage.received == 60 == stats.source_items
    assert stage.processed + stage.dropped == 60
    assert stats.results == len(got) == stage.processed
    assert got == sorted(got) and got[-1] == 59, "the newest items survive, in order"


def test_stats_are_consistent_with_what_happened() -> None:
    def halve(value: int) -> int | None:
        return value // 2 if value % 3 else None  # filter every third item

    stages = [
        Stage("halve", halve, policy="block"),
        Stage("sleep", pause(0.005), policy="block"),
    ]
    stats = Pipeline(range(30), stages).run()
    first, second = stats.stages
    assert (first.received, first.processed, first.filtered, first.dropped) == (30, 30, 10, 0)
    assert (second.received, second.processed) == (20, 20)
    assert stats.results == 20
    assert 4.0 <= second.latency_p50_ms <= 50 and second.latency_p99_ms >= second.latency_p50_ms
    assert first.latency_p50_ms < second.latency_p50_ms
    assert stats.latency_p50_ms >= second.latency_p50_ms
    assert 0 < second.fps <= 1000 / 5 * 1.1
    data = json.loads(json.dumps(stats.as_dict()))
    assert data["stages"][1]["name"] == "sleep" and data["results"] == 20
    table = format_stats(stats)
    assert "halve" in table and "sleep" in table and "end-to-end" in table
    assert isinstance(stats, PipelineStats)


def test_end_to_end_latency_counts_from_capture() -> None:
    source = open_source("synthetic:bars?width=64&height=8&fps=50&frames=10", "block")
    results: list[Result] = []
    stages = [Stage("wait", pause(0.02)), Stage("seq", lambda f: f.seq)]
    Pipeline(source, stages).run(on_result=results.append)
    assert [r.value for r in results] == list(range(10))
    assert all(r.latency_ms >= 20 for r in results)


def test_several_workers_share_a_stage() -> None:
    stats = Pipeline(range(40), [Stage("slow", slow, policy="block", maxsize=4, workers=2)]).run()
    assert stats.results == 40 and stats.stages[0].workers == 2
    # Two workers over 10 ms items: about 200 items/s, well above one worker's 100.
    assert stats.fps > 120


@pytest.mark.parametrize("ordered", [True, False])
def test_several_workers_keep_order_unless_told_not_to(ordered: bool) -> None:
    def first_is_slow(value: int) -> int | None:
        time.sleep(0.2 if value == 0 else 0.001)
        return None if value == 3 else value  # a filtered item must not stall the order

    stage = Stage("work", first_is_slow, policy="block", maxsize=8, workers=2, ordered=ordered)
    results: list[Result] = []
    stats = Pipeline(range(8), [stage]).run(on_result=results.append)
    values = [r.value for r in results]
    assert sorted(values) == [0, 1, 2, 4, 5, 6, 7]
    if ordered:
        assert values == [0, 1, 2, 4, 5, 6, 7]
    else:
        assert values[-1] == 0, "the slow first item finishes last"
    assert stats.stages[0].filtered == 1


def test_frames_are_released_after_the_first_stage() -> None:
    source = open_source(
        "synthetic:bars?width=64&height=8&fps=1000&frames=50", "block", maxsize=1, buffers=3
    )
    kept: dict[int, Frame] = {}

    def first(frame: Frame) -> int:
        kept[frame.seq] = frame
        return frame.seq

    stages = [
        Stage("read", first, policy="block"),
        Stage("check", lambda seq: kept[seq].released, policy="block"),
    ]
    results: list[Result] = []
    Pipeline(source, stages).run(on_result=results.append)
    assert len(results) == 50
    assert all(r.value is True for r in results), "frame still borrowed after the first stage"


def test_a_stage_may_pass_the_frame_on() -> None:
    source = open_source("synthetic:bars?width=64&height=8&fps=500&frames=5", "block")
    values = []
    with Pipeline(
        source,
        [Stage("same", lambda f: f, policy="block"), Stage("count", lambda f: f, policy="block")],
    ) as p:
        for result in p:
            values.append(read_counter(result.value.image))  # valid until the next result
    assert values == list(range(5))


def test_sink_sees_every_result() -> None:
    seen: list[int] = []
    stats = Pipeline(
        range(10), [Stage("double", lambda v: 2 * v, policy="block")], sink=seen.append
    ).run()
    assert seen == [2 * i for i in range(10)]
    assert [s.name for s in stats.stages] == ["double", "sink"]


def test_max_items_stops_an_endless_source() -> None:
    p = Pipeline("synthetic:noise?width=64&height=8&fps=200", [Stage("seq", lambda f: f.seq)])
    stats = p.run(max_items=5)
    assert stats.results == 5 and not stats.running
    assert stats.source is not None and stats.source.captured >= 5


def test_ctrl_c_stops_every_thread() -> None:
    main = threading.main_thread()
    assert threading.current_thread() is main
    timer = threading.Timer(0.3, signal.pthread_kill, args=(main.ident, signal.SIGINT))
    source = open_source("synthetic:bars?width=64&height=8&fps=100")
    p = Pipeline(source, [Stage("a", lambda f: f.seq), Stage("b", slow)])
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            p.run()
    finally:
        timer.join()
    stats = p.stats()
    assert not stats.running and stats.results > 5
    assert not [t for t in pipeline_threads() if t.is_alive()]


def test_ctrl_c_inside_a_for_loop_closes_on_leaving_the_with_block() -> None:
    main = threading.main_thread()
    timer = threading.Timer(0.3, signal.pthread_kill, args=(main.ident, signal.SIGINT))
    source = open_source("synthetic:bars?width=64&height=8&fps=100")
    seen = 0
    timer.start()
    try:
        with (
            pytest.raises(KeyboardInterrupt),
            Pipeline(source, [Stage("seq", lambda f: f.seq)]) as p,
        ):
            for _ in p:
                seen += 1
    finally:
        timer.join()
    assert seen > 5 and not p.stats().running
    with pytest.raises(Exception, match="closed"):
        source.read(timeout=1)


def test_breaking_out_of_the_loop_closes_everything() -> None:
    source = open_source("synthetic:bars?width=64&height=8&fps=200")
    with Pipeline(source, [Stage("seq", lambda f: f.seq), Stage("slow", slow)]) as p:
        for result in p:
            if result.value >= 3:
                break
    assert not p.stats().running


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": []}, "at least one stage"),
        ({"stages": [Stage("a", abs), Stage("a", abs)]}, "unique"),
        ({"stages": [Stage("source", abs)]}, "reserved"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineConfigError, match=message):
        Pipeline(range(3), **kwargs)


def test_bad_stage_arguments() -> None:
    with pytest.raises(PipelineConfigError, match="drop_oldest or block"):
        Stage("x", abs, policy="newest")  # type: ignore[arg-type]
    with pytest.raises(PipelineConfigError, match="at least 1"):
        Stage("x", abs, maxsize=0)


def test_closed_pipeline_cannot_restart() -> None:
    p = Pipeline(range(3), [Stage("id", abs)])
    p.run()
    with pytest.raises(EdgekitError, match="closed"):
        p.start()


def test_result_timeout_stops_a_pipeline_that_yields_nothing() -> None:
    source = open_source("synthetic:bars?width=64&height=8&fps=100")
    p = Pipeline(source, [Stage("reject", lambda f: None)], result_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(PipelineTimeout, match="no result within 0.3 s") as info:
        p.run()
    assert 0.3 <= time.monotonic() - t0 < 2.0
    assert isinstance(info.value, TimeoutError)
    stats = p.stats()
    assert not stats.running and stats.results == 0
    assert stats.stages[0].filtered == stats.stages[0].processed > 10


def test_live_source_with_drop_oldest_recycles_dropped_frames() -> None:
    # Four buffers and a stage ten times slower than the camera: frames dropped from the
    # stage's queue must go back to the pool, or capture would stall after four frames.
    def slow_counter(frame: Frame) -> int:
        time.sleep(0.025)
        return read_counter(frame.image)

    source = open_source("synthetic:bars?width=64&height=8&fps=200", buffers=4)
    with Pipeline(source, [Stage("slow", slow_counter, maxsize=1)]) as p:
        results = [r for _, r in zip(range(15), p, strict=False)]
        stats = p.stats()
    assert [r.value for r in results] == [r.seq for r in results]
    assert stats.source is not None and stats.source.captured > 40
    assert stats.source.dropped + stats.stages[0].dropped > 20


def test_real_models_chained_detect_crop_recognise(tmp_path: Path) -> None:
    """PP-OCRv4 text detection -> crops -> PP-OCRv4 recognition on a decoded video file."""
    import edgekit
    from edgekit.tasks import get_head
    from edgekit.tasks.ocr import crop_text, sort_reading_order

    det_model = edgekit.load("ppocr-v4-det", num_threads=1)
    rec_model = edgekit.load("ppocr-v4-rec", num_threads=1)
    det_head = get_head("text-detection")
    rec_head = get_head("text-recognition", metadata=rec_model.metadata())
    path = tmp_path / "text.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (640, 240))
    assert writer.isOpened()
    expected = []
    for index in range(4):
        lines = ["hello world", f"OCR on device {index}"]
        image = np.full((240, 640, 3), 255, dtype=np.uint8)
        for row, text in enumerate(lines):
            cv2.putText(image, text, (40, 80 + 90 * row), cv2.FONT_HERSHEY_SIMPLEX, 1.3,
                        (0, 0, 0), 2, cv2.LINE_AA)  # fmt: skip
        writer.write(image)
        expected.append(lines)
    writer.release()

    def detect(frame: Frame) -> tuple[np.ndarray, list[Any]]:
        rgb = np.ascontiguousarray(frame.image[..., ::-1])  # a copy: the frame goes back now
        feeds, context = det_head.prepare(rgb)
        return rgb, sort_reading_order(det_head.decode(det_model.run(feeds), context))

    def crop(found: tuple[np.ndarray, list[Any]]) -> list[np.ndarray]:
        image, boxes = found
        return [crop_text(image, box.quad) for box in boxes]

    def recognise(crops: list[np.ndarray]) -> list[str]:
        feeds, count = rec_head.prepare(crops)
        return [t.text for t in rec_head.decode(rec_model.run(feeds), count)]

    source = open_source(f"file:{path}", policy="block")
    stages = [
        Stage("detect", detect, policy="block"),
        Stage("crop", crop, policy="block"),
        Stage("recognise", recognise, policy="block"),
    ]
    results: list[Result] = []
    stats = Pipeline(source, stages).run(on_result=results.append)
    assert [r.value for r in results] == expected
    assert [r.seq for r in results] == [0, 1, 2, 3]
    assert [s.processed for s in stats.stages] == [4, 4, 4]
    assert stats.stages[0].latency_p50_ms > stats.stages[1].latency_p50_ms  # the det model


def test_audio_chunks_flow_with_their_own_sequence_and_time(tmp_path: Path) -> None:
    from edgekit.media import AudioChunk, WavSink, WavSource

    rate = 8000
    t = np.arange(rate // 10) / rate
    burst = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    silence = np.zeros_like(burst)
    with WavSink(tmp_path / "bursts.wav", rate=rate) as sink:
        for index in range(6):
            sink.write(burst if index % 2 else silence)

    def loud(chunk: AudioChunk) -> bool:
        return bool(np.sqrt(np.mean(chunk.samples**2)) > 0.1)

    seen: list[Result] = []
    with WavSource(tmp_path / "bursts.wav", realtime=True) as source:
        stages = [Stage("vad", loud, policy="block")]
        stats = Pipeline(source.chunks(rate // 10), stages).run(on_result=seen.append)
    assert stats.results == 6
    assert [r.seq for r in seen] == list(range(6))
    assert [r.value for r in seen] == [False, True] * 3
    # Each chunk exists when its last sample is due (real time): results follow within ms.
    assert all(0 <= r.latency_ms < 50 for r in seen)
