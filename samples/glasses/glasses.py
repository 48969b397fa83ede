"""Heads-up assistant for AI glasses: faces on a HUD, and the sign in view read aloud on request.

    python samples/glasses/glasses.py                       # bundled clip, one line per frame
    python samples/glasses/glasses.py --save hud.avi --read-this --speak sign.wav
    python samples/glasses/glasses.py --source cam:0 --max-frames 300 --json

Without ``--source`` a short clip is built at run time from scikit-image's astronaut photograph,
panning slightly, with a rendered sign in a corner. It is encoded to a temporary MJPG ``.avi``
and read back through ``open_source("file:...")``, so frames take the same decode path as a
recorded video.

Pipeline: frames -> face detection -> (sign reading every Nth frame) -> HUD overlay, then the
annotated frames are optionally saved and the text read is optionally spoken with espeak-ng.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

import edgekit
from edgekit import EdgekitError
from edgekit.media import (
    Frame,
    SpeechSynthesisUnavailable,
    WavSink,
    open_source,
    synthesize,
)
from edgekit.media.synthetic import write_pan_clip
from edgekit.pipeline import Pipeline, QueuePolicy, Stage
from edgekit.tasks import Detection, TaskHead, head_for
from edgekit.tasks.ocr import charset_from_metadata, read_text

Image = npt.NDArray[np.uint8]

SIGN_TEXT = "EXIT 12"
CLIP_FRAMES = 48
CLIP_FPS = 15.0
#: the pan moves the photograph this many pixels right (x) and down (y) over the clip.
PAN_X = (-16, 16)
PAN_Y = (-6, 6)
#: where the sign sits in the photograph (its top-left corner), before the pan. Bottom left: the
#: face detector scores it at most 0.27 there, while bottom right (near the flag) it can pass 0.5.
SIGN_AT = (40, 440)
HUD_COLOR = (0, 255, 0)
BANNER_LINE = 22
#: espeak-ng speaks at 22050 Hz: the text read is written at that rate, as spoken
SPEECH_RATE = 22050


class GlassesError(EdgekitError):
    """The assistant cannot do what was asked; the message names the fix."""


class SpeechUnavailable(GlassesError):
    """espeak-ng is not installed."""


@dataclass(frozen=True)
class Models:
    """The loaded models and their heads."""

    face: edgekit.Model
    face_head: TaskHead
    det: edgekit.Model | None = None
    rec: edgekit.Model | None = None
    charset: tuple[str, ...] = ()

    @classmethod
    def load(cls, with_text: bool) -> Models:
        face = edgekit.load("face-detection-short-range")
        head = head_for(face, color_order="BGR")
        if not with_text:
            return cls(face, head)
        det, rec = edgekit.load("ppocr-v4-det"), edgekit.load("ppocr-v4-rec")
        charset = tuple(charset_from_metadata(rec.metadata()["character"]))
        return cls(face, head, det, rec, charset)

    def close(self) -> None:
        for model in (self.face, self.det, self.rec):
            if model is not None:
                model.close()


@dataclass(frozen=True)
class View:
    """One frame on its way through the pipeline (an owned copy of the image)."""

    seq: int
    t_capture_ns: int
    image: Image
    faces: tuple[Detection, ...]
    text: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FrameReport:
    """What the assistant saw in one frame."""

    seq: int
    latency_ms: float
    faces: tuple[tuple[float, float, float, float, float], ...]  # x1, y1, x2, y2, score
    text: tuple[str, ...] | None  # None: the sign was not read on this frame

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "latency_ms": round(self.latency_ms, 2),
            "faces": [
                {"box": [round(v, 1) for v in face[:4]], "score": round(face[4], 3)}
                for face in self.faces
            ],
            "text": None if self.text is None else list(self.text),
        }


@dataclass(frozen=True)
class Summary:
    """The outcome of a run."""

    source: str
    frames: int
    faces_per_frame: tuple[int, ...]
    text_read: tuple[str, ...]
    fps: float
    latency_p50_ms: float
    reports: tuple[FrameReport, ...] = field(repr=False)
    saved: Path | None = None
    speech: Path | None = None
    speech_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "frames": self.frames,
            "faces_per_frame": list(self.faces_per_frame),
            "text_read": list(self.text_read),
            "fps": round(self.fps, 2),
            "latency_p50_ms": round(self.latency_p50_ms, 2),
            "saved": None if self.saved is None else str(self.saved),
            "speech": None if self.speech is None else str(self.speech),
            "speech_seconds": round(self.speech_seconds, 2),
        }


# ----------------------------------------------------------------------------- the bundled clip


def pan_offset(index: int, frames: int = CLIP_FRAMES) -> tuple[int, int]:
    """How far (x, y) frame ``index`` of the bundled clip shifts the photograph."""
    t = index / max(1, frames - 1)
    return round(PAN_X[0] + t * (PAN_X[1] - PAN_X[0])), round(PAN_Y[0] + t * (PAN_Y[1] - PAN_Y[0]))


def render_sign(text: str) -> Image:
    """A white sign with a green border and black lettering."""
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.3, 3)
    sign = np.full((height + baseline + 24, width + 28, 3), 255, np.uint8)
    cv2.rectangle(sign, (0, 0), (sign.shape[1] - 1, sign.shape[0] - 1), (0, 120, 0), 4)
    origin = (14, 12 + height)
    cv2.putText(sign, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 1.3, (0, 0, 0), 3, cv2.LINE_AA)
    return sign


def scene(sign_text: str = SIGN_TEXT) -> Image:
    """The astronaut photograph (BGR, 512x512) with the sign composited near a corner."""
    from skimage import data as photos

    photo = cv2.cvtColor(photos.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]
    sign = render_sign(sign_text)
    x, y = SIGN_AT
    h, w = sign.shape[:2]
    photo[y : y + h, x : x + w] = sign
    return np.ascontiguousarray(photo)


def make_clip(
    path: Path, frames: int = CLIP_FRAMES, fps: float = CLIP_FPS, sign_text: str = SIGN_TEXT
) -> Path:
    """Encode the panning scene to an MJPG ``.avi`` at ``path``."""
    return write_pan_clip(path, scene(sign_text), frames, fps, pan_offset)


# ----------------------------------------------------------------------------- per-frame work


def detect_faces(models: Models, image: Image) -> tuple[Detection, ...]:
    """Faces in a BGR image, in its pixels, best first."""
    feeds, context = models.face_head.prepare(image)
    return tuple(models.face_head.decode(models.face.run(feeds), context))


def read_sign(models: Models, image: Image) -> tuple[str, ...]:
    """The lines of text in a BGR image, in reading order."""
    if models.det is None or models.rec is None:
        raise GlassesError(
            "the text models are not loaded: build them with Models.load(with_text=True)"
        )
    lines = read_text(image, models.det.run, models.rec.run, models.charset)
    return tuple(line.text for line in lines)


def draw_hud(
    image: Image,
    faces: Sequence[Detection],
    fps: float,
    latency_ms: float,
    text: Sequence[str] | None = None,
) -> Image:
    """Draw face boxes and a status banner (face count, fps, latency, text read) in place."""
    for face in faces:
        p1 = (round(face.box.x1), round(face.box.y1))
        p2 = (round(face.box.x2), round(face.box.y2))
        cv2.rectangle(image, p1, p2, HUD_COLOR, 2)
        label = f"face {face.score:.2f}"
        at = (p1[0], max(12, p1[1] - 5))
        cv2.putText(image, label, at, cv2.FONT_HERSHEY_SIMPLEX, 0.5, HUD_COLOR, 1, cv2.LINE_AA)
    lines = [f"faces {len(faces)}  {fps:5.1f} fps  {latency_ms:5.0f} ms"]
    if text:
        lines.append("read: " + " / ".join(text))
    banner = image[: BANNER_LINE * len(lines) + 6]
    banner[:] = banner // 3  # darken, so the lettering stays legible on any scene
    for row, line in enumerate(lines):
        at = (8, BANNER_LINE * (row + 1))
        cv2.putText(image, line, at, cv2.FONT_HERSHEY_SIMPLEX, 0.6, HUD_COLOR, 1, cv2.LINE_AA)
    return image


def speak(text: str, path: Path) -> float:
    """Speak ``text`` in espeak-ng's default voice into the WAV file ``path``; its length in
    seconds."""
    try:
        samples = synthesize(text, voice="en", speed=175, pitch=50, rate=SPEECH_RATE)
    except SpeechSynthesisUnavailable as e:
        raise SpeechUnavailable(
            "espeak-ng is not installed, so the text cannot be spoken: apt-get install espeak-ng"
        ) from e
    with WavSink(path, SPEECH_RATE) as sink:
        sink.write(samples)
    return len(samples) / SPEECH_RATE


class _Saver:
    """Annotated frames to an MJPG ``.avi``, opened on the first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.frames = 0
        self._writer: Any = None

    def write(self, image: Image) -> None:
        if self._writer is None:
            height, width = image.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"MJPG")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise GlassesError(f"OpenCV cannot write {self.path}: give a writable .avi path")
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


# ----------------------------------------------------------------------------- the run


def run(
    source: str | None = None,
    *,
    save: Path | None = None,
    read_this: bool = False,
    read_every: int = 10,
    speak_to: Path | None = None,
    max_frames: int | None = None,
    json_lines: bool = False,
    workdir: Path | None = None,
    echo: Callable[[str], None] = print,
) -> Summary:
    """Run the assistant and return what it saw.

    Args:
        source: A frame source URL (``cam:0``, ``file:clip.avi``); ``None`` builds the bundled
            clip in ``workdir``.
        save: Write the annotated frames to this ``.avi``.
        read_this: Read the text in view on every ``read_every``-th frame (from the first).
        read_every: See ``read_this``.
        speak_to: Speak the text read into this WAV file (implies ``read_this``).
        max_frames: Stop after this many frames.
        json_lines: Echo one JSON object per frame and one for the summary.
        workdir: Where the bundled clip is written (a temporary folder when ``None``).
        echo: Where the lines go.
    """
    if read_every < 1:
        raise GlassesError(f"read_every must be at least 1, got {read_every}")
    read_this = read_this or speak_to is not None
    with contextlib.ExitStack() as stack:
        if source is None:
            folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            # pace=1: frames arrive at the clip's frame rate, like a camera's.
            source = f"file:{make_clip(folder / 'glasses-clip.avi')}?pace=1"
        models = Models.load(read_this)  # before the source opens, so no frame waits for it
        stack.callback(models.close)
        every_frame = source.startswith("file:")
        frames = stack.enter_context(
            contextlib.closing(open_source(source, policy="block" if every_frame else "latest"))
        )
        summary = _stream(
            frames, source, models, save, read_this, read_every, max_frames, json_lines, echo,
            every_frame,
        )  # fmt: skip
    text = " ".join(summary.text_read)
    if speak_to is not None:
        if text:
            summary = replace(summary, speech=speak_to, speech_seconds=speak(text, speak_to))
        else:
            echo("nothing was read, so nothing was spoken")
    _echo_summary(summary, json_lines, echo)
    return summary


def _stream(
    frames: Any,
    source: str,
    models: Models,
    save: Path | None,
    read_this: bool,
    read_every: int,
    max_frames: int | None,
    json_lines: bool,
    echo: Callable[[str], None],
    every_frame: bool,
) -> Summary:
    def detect(frame: Frame) -> View:
        faces = detect_faces(models, frame.image)
        return View(frame.seq, frame.t_capture_ns, frame.copy(), faces)

    def read(view: View) -> View:
        if view.seq % read_every:
            return view
        return replace(view, text=read_sign(models, view.image))

    shown: deque[int] = deque(maxlen=16)
    last_read: list[tuple[str, ...]] = [()]

    def hud(view: View) -> View:
        now = time.monotonic_ns()
        shown.append(now)
        span = (shown[-1] - shown[0]) / 1e9
        fps = (len(shown) - 1) / span if span > 0 else 0.0
        if view.text is not None:
            last_read[0] = view.text  # the banner keeps showing what was read last
        draw_hud(view.image, view.faces, fps, (now - view.t_capture_ns) / 1e6, last_read[0])
        return view

    policy: QueuePolicy = "block" if every_frame else "drop_oldest"
    stages = [Stage("detect", detect, policy=policy)]
    if read_this:
        stages.append(Stage("read", read, policy=policy))
    stages.append(Stage("hud", hud, policy=policy))
    saver = _Saver(save, CLIP_FPS) if save is not None else None
    reports: list[FrameReport] = []
    text_read: list[str] = []
    first_capture_ns = last_done_ns = 0
    try:
        with Pipeline(frames, stages, close_source=False, result_timeout=30.0) as pipeline:
            for result in pipeline:
                view: View = result.value
                if saver is not None:
                    saver.write(view.image)
                report = FrameReport(
                    view.seq,
                    result.latency_ms,
                    tuple((f.box.x1, f.box.y1, f.box.x2, f.box.y2, f.score) for f in view.faces),
                    view.text,
                )
                reports.append(report)
                text_read += [t for t in view.text or () if t not in text_read]
                echo(json.dumps(report.as_dict()) if json_lines else _frame_line(report))
                first_capture_ns = first_capture_ns or result.t_capture_ns
                last_done_ns = result.t_done_ns
                if max_frames is not None and len(reports) >= max_frames:
                    break
    finally:
        if saver is not None:
            saver.close()
    latencies = sorted(r.latency_ms for r in reports)
    span_ns = last_done_ns - first_capture_ns  # first capture to last result: the throughput
    return Summary(
        source=source,
        frames=len(reports),
        faces_per_frame=tuple(len(r.faces) for r in reports),
        text_read=tuple(text_read),
        fps=len(reports) * 1e9 / span_ns if span_ns > 0 else 0.0,
        latency_p50_ms=latencies[len(latencies) // 2] if latencies else math.nan,
        reports=tuple(reports),
        saved=save,
    )


def _frame_line(report: FrameReport) -> str:
    boxes = " ".join(
        f"({x1:.0f},{y1:.0f})-({x2:.0f},{y2:.0f})" for x1, y1, x2, y2, _ in report.faces
    )
    line = f"#{report.seq:<5} {report.latency_ms:7.1f} ms  faces {len(report.faces)} {boxes}"
    if report.text is not None:
        line += f"  read {list(report.text)}"
    return line.rstrip()


def _echo_summary(summary: Summary, json_lines: bool, echo: Callable[[str], None]) -> None:
    if json_lines:
        echo(json.dumps({"summary": summary.as_dict()}))
        return
    with_faces = sum(1 for n in summary.faces_per_frame if n)
    echo(
        f"{summary.frames} frames from {summary.source} at {summary.fps:.1f} fps "
        f"(p50 latency {summary.latency_p50_ms:.1f} ms); a face in {with_faces} of them"
    )
    echo(f"faces per frame: {' '.join(map(str, summary.faces_per_frame))}")
    if summary.text_read:
        echo(f"text read: {' / '.join(summary.text_read)}")
    if summary.saved is not None:
        echo(f"annotated video: {summary.saved}")
    if summary.speech is not None:
        echo(f"spoken: {summary.speech} ({summary.speech_seconds:.1f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", help="frame source URL (cam:0, file:clip.avi); default: a clip")
    parser.add_argument("--save", type=Path, help="write the annotated frames to this .avi")
    parser.add_argument("--read-this", action="store_true", help="read the text in view")
    parser.add_argument("--read-every", type=int, default=10, help="read every Nth frame")
    parser.add_argument("--speak", type=Path, help="speak the text read into this WAV file")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--json", action="store_true", help="one JSON object per frame")
    args = parser.parse_args(argv)
    try:
        run(
            args.source,
            save=args.save,
            read_this=args.read_this,
            read_every=args.read_every,
            speak_to=args.speak,
            max_frames=args.max_frames,
            json_lines=args.json,
        )
    except EdgekitError as e:
        print(f"glasses: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
