"""The glasses sample on its bundled clip: real models, a real MJPG file, real espeak-ng speech."""

from __future__ import annotations

import importlib.util
import json
import sys
import wave
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edgekit.media import SourceNotFound, UnknownSourceError

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "glasses" / "glasses.py"
FRAMES = 20


def _load_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location("glasses_sample", SAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


glasses = _load_sample()


@dataclass(frozen=True)
class Scenario:
    summary: Any
    lines: list[str]
    clip: Path
    saved: Path
    speech: Path


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    folder = tmp_path_factory.mktemp("glasses")
    lines: list[str] = []
    summary = glasses.run(
        save=folder / "hud.avi",
        read_this=True,
        speak_to=folder / "sign.wav",
        max_frames=FRAMES,
        workdir=folder,
        echo=lines.append,
    )
    return Scenario(
        summary, lines, folder / "glasses-clip.avi", folder / "hud.avi", folder / "sign.wav"
    )


def _decode(path: Path) -> list[npt.NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def test_every_frame_arrives_in_order(scenario: Scenario) -> None:
    assert scenario.summary.frames == FRAMES
    assert [r.seq for r in scenario.summary.reports] == list(range(FRAMES))
    assert scenario.summary.fps > 1.0
    assert all(r.latency_ms > 0 for r in scenario.summary.reports)


def test_the_astronauts_face_is_found_where_the_pan_puts_it(scenario: Scenario) -> None:
    reports = scenario.summary.reports
    assert sum(1 for r in reports if len(r.faces) == 1) >= FRAMES - 1
    for report in reports:
        assert report.faces, f"no face in frame {report.seq}"
        x1, y1, x2, y2, score = report.faces[0]
        dx, dy = glasses.pan_offset(report.seq)
        # the face in the unshifted 512x512 photograph is at about (178, 81)-(272, 175)
        assert 150 <= x1 - dx <= 210, (report.seq, x1, dx)
        assert 60 <= y1 - dy <= 110, (report.seq, y1, dy)
        assert 70 <= x2 - x1 <= 130 and 70 <= y2 - y1 <= 130
        assert score > 0.7
    # the box follows the pan: from frame 0 to the last it moves right by the pan's distance
    moved = reports[-1].faces[0][0] - reports[0].faces[0][0]
    panned = glasses.pan_offset(FRAMES - 1)[0] - glasses.pan_offset(0)[0]
    assert panned >= 10
    assert abs(moved - panned) <= 6, (moved, panned)


def test_the_sign_is_read_back_exactly(scenario: Scenario) -> None:
    read = {r.seq: r.text for r in scenario.summary.reports if r.text is not None}
    assert read == {0: ("EXIT 12",), 10: ("EXIT 12",)}
    assert scenario.summary.text_read == ("EXIT 12",)
    assert "text read: EXIT 12" in scenario.lines


def test_it_prints_a_line_per_frame_and_a_summary(scenario: Scenario) -> None:
    frame_lines = [line for line in scenario.lines if line.startswith("#")]
    assert len(frame_lines) == FRAMES
    assert all("faces 1" in line or "faces 2" in line for line in frame_lines)
    assert any(line.startswith(f"{FRAMES} frames from file:") for line in scenario.lines)


def test_the_saved_video_carries_the_hud(scenario: Scenario) -> None:
    saved = _decode(scenario.saved)
    source = _decode(scenario.clip)[:FRAMES]
    assert len(saved) == FRAMES
    assert len(source) == FRAMES
    for seq, (hud, raw) in enumerate(zip(saved, source, strict=True)):
        assert hud.shape == raw.shape == (512, 512, 3)
        diff = np.abs(hud.astype(np.int16) - raw.astype(np.int16))
        # the status banner darkens the top rows and writes on them
        assert diff[:40].mean() > 30, seq
        # the face box outline is green where the detector put it
        x1, y1, x2, _, _ = (round(v) for v in scenario.summary.reports[seq].faces[0])
        edge = hud[y1, x1 + 10 : x2 - 10].astype(np.int16)
        assert edge[:, 1].mean() > 180 and edge[:, 2].mean() < 120, seq
        assert diff[y1, x1 + 10 : x2 - 10].mean() > 40, seq
        # away from the overlay only the second JPEG encoding differs
        assert diff[250:420, 300:500].mean() < 6, seq


def test_the_text_is_spoken(scenario: Scenario) -> None:
    assert scenario.summary.speech == scenario.speech
    with wave.open(str(scenario.speech), "rb") as wav:
        assert wav.getsampwidth() == 2
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    seconds = len(samples) / rate
    assert 0.4 <= seconds <= 4.0, seconds
    assert seconds == pytest.approx(scenario.summary.speech_seconds)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert rms > 500, rms
    assert f"spoken: {scenario.speech} ({seconds:.1f} s)" in scenario.lines


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert glasses.main(["--max-frames", "3", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in records[:-1]] == [0, 1, 2]
    for record in records[:-1]:
        assert len(record["faces"]) == 1
        assert len(record["faces"][0]["box"]) == 4
        assert record["text"] is None
        assert record["latency_ms"] > 0
    assert records[-1]["summary"]["frames"] == 3
    assert records[-1]["summary"]["faces_per_frame"] == [1, 1, 1]


def test_a_missing_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound, match="does not exist"):
        glasses.run(f"file:{tmp_path / 'missing.avi'}", echo=lambda line: None)


def test_an_unknown_scheme_is_a_typed_error() -> None:
    with pytest.raises(UnknownSourceError, match="unknown source scheme"):
        glasses.run("camera:0", echo=lambda line: None)


def test_the_command_reports_a_bad_source_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert glasses.main(["--source", f"file:{tmp_path / 'missing.avi'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glasses: error: file:")
    assert "does not exist" in err
    assert "Traceback" not in err


def test_speaking_without_espeak_ng_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(glasses.SpeechUnavailable, match="apt-get install espeak-ng"):
        glasses.speak("EXIT 12", tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()
