"""edgekit.pipeline against a naive sequential loop and against its slowest stage alone.

    python benchmarks/bench_pipeline.py [--model NAME] [--frames 300] [--size 640x480]
                                        [--rounds 3] [--json]

The work per frame: decode an MJPG video frame (OpenCV), prepare the model input (the task
head's letterbox and normalisation), run the model (one thread; by default
face-detection-short-range on LiteRT, which is about as expensive as decoding and preparing the
frame: the balanced case) and decode its results with the task head. With a heavier model
(``--model ppocr-v4-det --size 320x240``, the PP-OCRv4 text detector) inference dominates and
the pipeline should reach its slowest stage. The sequential loop does all of it in one thread.
The pipeline decodes on the source's capture thread and runs ``preprocess`` and ``infer`` as two
stages with blocking queues, so no frame is dropped and both do the same work. "Slowest stage
alone" runs only the most expensive step on inputs made beforehand: the ceiling for any pipeline.

A control repeats the measured stage timings with stages that sleep instead of compute: what
the pipeline machinery itself reaches when neither free cores nor the GIL limit it. The parallel
capacity line says how much of a second core the machine gave this process.

A second run paces the file at its frame rate (30 fps, latest-frame policy, drop-oldest
queues) and reports the end-to-end latency from capture to result when the pipeline keeps up.
Rounds alternate the order of the contenders; medians are reported. The machine is shared and
noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import edgekit
import edgekit.tasks as tasks
from edgekit.media import open_source
from edgekit.media.synthetic import embed_counter
from edgekit.pipeline import Pipeline, Stage, format_stats

MODEL = "face-detection-short-range"


def test_image(width: int, height: int) -> np.ndarray:
    """A photograph with a face (scikit-image's astronaut) if available, else colour bars."""
    try:
        from skimage import data

        image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]
    except ImportError:
        columns = np.arange(512) * 8 // 512
        palette = np.array([[235, 235, 235], [16, 235, 235], [235, 235, 16], [16, 235, 16],
                            [235, 16, 235], [16, 16, 235], [235, 16, 16], [16, 16, 16]],
                           dtype=np.uint8)  # fmt: skip
        image = np.ascontiguousarray(np.broadcast_to(palette[columns], (512, 512, 3)))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def write_clip(path: Path, frames: int, width: int, height: int, fps: float = 30.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        sys.exit(f"this OpenCV build cannot write MJPG video to {path}")
    base = test_image(width, height)
    for index in range(frames):
        image = base.copy()
        embed_counter(image, index)
        writer.write(image)
    writer.release()
    return path


class Work:
    """The per-frame steps, shared by every contender."""

    def __init__(self, threads: int, model: str = MODEL) -> None:
        self.model = edgekit.load(model, num_threads=threads)
        self.head: Any = tasks.head_for(self.model, color_order="BGR")

    def prepare(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Any]:
        feeds, context = self.head.prepare(image)
        return feeds, context

    def prepare_frame(self, frame: Any) -> tuple[dict[str, np.ndarray], Any]:
        return self.prepare(frame.image)

    def infer(self, prepared: tuple[dict[str, np.ndarray], Any]) -> list[Any]:
        feeds, context = prepared
        faces: list[Any] = self.head.decode(self.model.run(feeds), context)
        return faces


def sequential(path: Path, work: Work) -> tuple[float, int]:
    """Frames per second of one thread doing everything; and the frame count."""
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        work.infer(work.prepare(image))
        count += 1
    cap.release()
    return count / (time.perf_counter() - start), count


def pipelined(path: Path, work: Work) -> tuple[float, int, Any]:
    start = time.perf_counter()
    source = open_source(f"file:{path}", policy="block", maxsize=4)
    stages = [
        Stage("preprocess", work.prepare_frame, policy="block", maxsize=4),
        Stage("infer", work.infer, policy="block", maxsize=4),
    ]
    stats = Pipeline(source, stages).run()
    return stats.results / (time.perf_counter() - start), stats.results, stats


def stage_alone(name: str, fn: Callable[[Any], Any], inputs: list[Any]) -> float:
    start = time.perf_counter()
    for item in inputs:
        fn(item)
    return len(inputs) / (time.perf_counter() - start)


def decode_alone(path: Path) -> float:
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    buffer = None
    while True:
        ok, buffer = cap.read(buffer) if buffer is not None else cap.read()
        if not ok:
            break
        count += 1
    cap.release()
    return count / (time.perf_counter() - start)


def parallel_capacity(work: Work, work_b: Work, prepared: Any, calls: int = 300) -> float:
    """Model calls per second of two threads (separate models) over one thread.

    Near 2 on an idle 2-core machine; near 1 when other processes take the second core, in
    which case no pipeline can beat the sequential loop and the ratios below say so.
    """
    feeds = prepared[0][0]

    def loop(model: Any, out: list[float], index: int) -> None:
        start = time.perf_counter()
        for _ in range(calls):
            model.run(feeds)
        out[index] = calls / (time.perf_counter() - start)

    single = [0.0]
    loop(work.model, single, 0)
    both = [0.0, 0.0]
    threads = [
        threading.Thread(target=loop, args=(w.model, both, i)) for i, w in enumerate((work, work_b))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(both) / single[0]


def waiting_control(front_s: float, back_s: float, items: int) -> dict[str, float]:
    """The same stage timings with stages that sleep instead of compute: what the pipeline
    machinery reaches when CPU cores and the GIL are not the limit."""

    def front(value: int) -> int:
        time.sleep(front_s)
        return value

    def back(value: int) -> int:
        time.sleep(back_s)
        return value

    start = time.perf_counter()
    for value in range(items):
        back(front(value))
    sequential_fps = items / (time.perf_counter() - start)
    slowest = front if front_s >= back_s else back
    start = time.perf_counter()
    for value in range(items):
        slowest(value)
    slowest_fps = items / (time.perf_counter() - start)
    start = time.perf_counter()
    stages = [
        Stage("front", front, policy="block", maxsize=4),
        Stage("back", back, policy="block", maxsize=4),
    ]
    Pipeline(range(items), stages).run()
    pipeline_fps = items / (time.perf_counter() - start)
    return {"sequential": sequential_fps, "slowest": slowest_fps, "pipeline": pipeline_fps}


def paced_latency(path: Path, work: Work) -> Any:
    source = open_source(f"file:{path}?pace=1", policy="latest")
    stages = [Stage("preprocess", work.prepare_frame), Stage("infer", work.infer)]
    return Pipeline(source, stages).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=MODEL, help="a manifest name with a task head")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="640x480", help="video frame size WxH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.avi", args.frames, width, height)
        work = Work(threads=1, model=args.model)
        work2 = Work(threads=2, model=args.model)
        spare = Work(threads=1, model=args.model)
        # Inputs for the stages alone, made beforehand.
        cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
        images = []
        while True:
            ok, image = cap.read()
            if not ok:
                break
            images.append(image)
        cap.release()
        prepared = [work.prepare(image) for image in images]
        work.infer(prepared[0])  # warm-up
        work2.infer(prepared[0])

        runs: dict[str, list[float]] = {
            "sequential": [], "sequential (model on 2 threads)": [], "pipeline": [],
            "decode alone": [], "preprocess alone": [], "infer alone": [],
        }  # fmt: skip
        pipeline_stats = None
        capacity: list[float] = []
        for round_index in range(args.rounds):
            order = ["seq", "seq2", "pipe", "stages"]
            if round_index % 2:
                order.reverse()
            for what in order:
                if what == "seq":
                    runs["sequential"].append(sequential(clip, work)[0])
                elif what == "seq2":
                    runs["sequential (model on 2 threads)"].append(sequential(clip, work2)[0])
                elif what == "pipe":
                    rate, count, pipeline_stats = pipelined(clip, work)
                    if count != len(images):
                        sys.exit(f"the pipeline delivered {count} of {len(images)} frames")
                    runs["pipeline"].append(rate)
                else:
                    runs["decode alone"].append(decode_alone(clip))
                    runs["preprocess alone"].append(stage_alone("pre", work.prepare, images))
                    runs["infer alone"].append(stage_alone("infer", work.infer, prepared))
            capacity.append(parallel_capacity(work, spare, prepared))
        paced = paced_latency(clip, work)
        front_s = 1 / np.median(runs["decode alone"]) + 1 / np.median(runs["preprocess alone"])
        back_s = 1 / np.median(runs["infer alone"])
        control = waiting_control(float(front_s), float(back_s), len(images))

    fps = {name: float(np.median(values)) for name, values in runs.items()}
    slowest = min(("decode alone", "preprocess alone", "infer alone"), key=lambda n: fps[n])
    result = {
        "command": " ".join(["python", "benchmarks/bench_pipeline.py", *sys.argv[1:]]),
        "model": args.model,
        "frames": len(images),
        "size": f"{width}x{height}",
        "rounds": args.rounds,
        "fps": fps,
        "slowest_stage": slowest,
        "parallel_capacity": float(np.median(capacity)),
        "pipeline_vs_sequential": fps["pipeline"] / fps["sequential"],
        "pipeline_vs_sequential_2_threads": fps["pipeline"]
        / fps["sequential (model on 2 threads)"],
        "pipeline_vs_slowest_stage": fps["pipeline"] / fps[slowest],
        "saturated": pipeline_stats.as_dict() if pipeline_stats is not None else None,
        "paced": paced.as_dict(),
        "waiting_control": control,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"`{result['command']}`\n")
    print(
        f"{args.model} (1 thread), {len(images)} MJPG frames of {width}x{height}, median "
        f"of {args.rounds} rounds. Parallel capacity {result['parallel_capacity']:.2f} (two "
        "model threads over one; 2.0 means two free cores)\n"
    )
    print("| contender | frames/s | ratio |")
    print("|---|---:|---:|")
    for name in runs:
        ratio = fps["pipeline"] / fps[name]
        note = " (slowest stage)" if name == slowest else ""
        label = "" if name == "pipeline" else f"pipeline / this = {ratio:.2f}"
        print(f"| {name}{note} | {fps[name]:.1f} | {label} |")
    assert pipeline_stats is not None
    print()
    print("| end-to-end latency | p50 ms | p99 ms | results | dropped |")
    print("|---|---:|---:|---:|---:|")
    dropped = sum(s.dropped for s in paced.stages) + (paced.source.dropped if paced.source else 0)
    print(f"| saturated (block queues, every frame) | {pipeline_stats.latency_p50_ms:.1f} | "
          f"{pipeline_stats.latency_p99_ms:.1f} | {pipeline_stats.results} | 0 |")  # fmt: skip
    print(f"| paced at 30 fps (latest frame, drop oldest) | {paced.latency_p50_ms:.1f} | "
          f"{paced.latency_p99_ms:.1f} | {paced.results} | {dropped} |")  # fmt: skip
    over_sequential = control["pipeline"] / control["sequential"]
    over_slowest = control["pipeline"] / control["slowest"]
    print(
        f"\nControl, the same timings with stages that sleep ({front_s * 1e3:.2f} ms for decode "
        f"+ preprocess, {back_s * 1e3:.2f} ms for infer): pipeline {control['pipeline']:.1f}/s, "
        f"sequential {control['sequential']:.1f}/s (pipeline x{over_sequential:.2f}), slowest "
        f"stage alone {control['slowest']:.1f}/s (pipeline x{over_slowest:.2f})."
    )
    print("\nlast saturated pipeline run:\n")
    print("```\n" + format_stats(pipeline_stats) + "\n```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
