"""The edgekit command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def edgekit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_info_json() -> None:
    data = json.loads(edgekit("info", "face-detection-short-range", "--json").stdout)
    assert data["backend"] == "litert"
    assert data["inputs"] == ["input: float32[1, 128, 128, 3] NHWC"]
    assert data["ops"]["CONV_2D"] == 21
    assert data["placement"]["nodes"] == {"litert:xnnpack": 164}
    assert data["manifest"]["task"] == "face-detection"


def test_info_text_with_placement() -> None:
    out = edgekit("info", "ppocr-v4-det", "--placement").stdout
    assert "x: float32[" in out and "CPUExecutionProvider" in out and "placement:" in out


def test_require_accelerator_fails_without_one(tmp_path: Path) -> None:
    result = edgekit(
        "info", "ppocr-cls", "--device", "ort:OpenVINOExecutionProvider",
        "--require-accelerator", check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "OpenVINOExecutionProvider" in result.stderr and "error" in result.stderr


def test_run_npy_raw(tmp_path: Path) -> None:
    x = np.zeros((3, 48, 192), np.float32)
    np.save(tmp_path / "x.npy", x)
    data = json.loads(
        edgekit("run", "ppocr-cls", "--input", str(tmp_path / "x.npy"), "--raw", "--json").stdout
    )
    (output,) = data["outputs"].values()
    assert output["shape"] == [1, 2]
    assert 0.0 <= output["min"] <= output["max"] <= 1.0


def test_run_face_detection_on_a_real_photo(tmp_path: Path) -> None:
    import cv2
    from skimage import data as photos

    cv2.imwrite(str(tmp_path / "astronaut.png"), photos.astronaut()[..., ::-1])
    out = edgekit(
        "run", "face-detection-short-range", "--input", str(tmp_path / "astronaut.png"), "--json"
    ).stdout
    (face,) = json.loads(out)["result"]
    box = face["box"]
    assert face["score"] > 0.8 and face["name"] == "face"
    # the face in scikit-image's astronaut photo sits around x 175-270, y 70-175
    assert 150 < box["x1"] < 200 and 250 < box["x2"] < 300 and 60 < box["y1"] < 110


def test_run_text_detection_finds_text(tmp_path: Path) -> None:
    import cv2

    image = np.full((240, 320, 3), 200, np.uint8)
    cv2.putText(image, "EDGE", (20, 140), cv2.FONT_HERSHEY_SIMPLEX, 3, (0, 0, 0), 8)
    cv2.imwrite(str(tmp_path / "text.png"), image)
    data = json.loads(
        edgekit("run", "ppocr-v4-det", "--input", str(tmp_path / "text.png"), "--json").stdout
    )
    assert len(data["result"]) == 1  # one line of text
    raw = json.loads(
        edgekit(
            "run", "ppocr-v4-det", "--input", str(tmp_path / "text.png"), "--raw", "--json"
        ).stdout
    )
    (output,) = raw["outputs"].values()
    assert output["shape"][:2] == [1, 1] and output["max"] > 0.5


def test_run_vad_on_a_wav(tmp_path: Path) -> None:
    import shutil

    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: apt-get install -y espeak-ng"
    wav = tmp_path / "speech.wav"
    subprocess.run([espeak, "-w", str(wav), "hello, this is edgekit speaking"], check=True)
    data = json.loads(edgekit("run", "silero-vad", "--input", str(wav), "--json").stdout)
    assert len(data["result"]) >= 1
    first = data["result"][0]
    assert 0.0 <= first["start_s"] < first["end_s"]


def test_run_rejects_unknown_input(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    result = edgekit("run", "ppocr-cls", "--input", str(tmp_path / "x.txt"), check=False)
    assert result.returncode == 2 and "reads images" in result.stderr
    result = edgekit("run", "silero-vad", "--input", str(tmp_path / "x.txt"), check=False)
    assert result.returncode == 2 and "give it a .wav file" in result.stderr


def test_bench_two_devices_json() -> None:
    data = json.loads(
        edgekit(
            "bench", "face-detection-short-range", "--device", "cpu", "--device",
            "tflite:reference", "--runs", "20", "--warmup", "2", "--json",
        ).stdout
    )  # fmt: skip
    assert [r["device"] for r in data] == ["litert:xnnpack", "litert:reference"]
    for r in data:
        assert r["runs"] == 20 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["peak_rss_mb"] > 10


def test_models_list_and_verify() -> None:
    rows = json.loads(edgekit("models", "list", "--json").stdout)
    assert {r["name"] for r in rows} >= {"silero-vad", "ppocr-v4-det"}
    out = edgekit("models", "verify", "silero-vad", "ppocr-cls").stdout
    assert out.count(": ok") == 2


def test_models_unknown_name_fails() -> None:
    result = edgekit("models", "verify", "no-such-model", check=False)
    assert result.returncode == 1 and "no model file or manifest" in result.stderr


def test_doctor_json() -> None:
    result = edgekit("doctor", "--json", check=False)
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["onnxruntime"]["ok"] and checks["litert"]["ok"]
    assert result.returncode == (0 if all(c["ok"] for c in checks.values()) else 1)
    for c in checks.values():
        assert c["ok"] or c["fix"], c


def test_bad_model_path_is_a_clean_error(tmp_path: Path) -> None:
    result = edgekit("info", str(tmp_path / "missing.onnx"), check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("edgekit: error:") and "Traceback" not in result.stderr


def test_import_is_cheap() -> None:
    code = (
        "import sys, edgekit\n"
        "heavy = [m for m in ('onnxruntime', 'ai_edge_litert', 'tflite_runtime', 'cv2',"
        " 'sounddevice', 'usb', 'serial', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_streams_a_real_video(tmp_path: Path) -> None:
    import cv2
    from skimage import data as photos

    video = tmp_path / "astronaut.avi"
    image = np.ascontiguousarray(photos.astronaut()[..., ::-1])
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (512, 512))
    for i in range(12):
        writer.write(np.ascontiguousarray(np.roll(image, 4 * i, axis=1)))  # the face moves right
    writer.release()
    saved = tmp_path / "annotated.avi"
    out = edgekit(
        "run", "face-detection-short-range", "--source", f"file:{video}", "--every-frame",
        "--json", "--max-frames", "12", "--save", str(saved),
    ).stdout  # fmt: skip
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in records] == list(range(12))  # every frame, in order
    lefts = [r["result"][0]["box"]["x1"] for r in records]
    assert all(len(r["result"]) == 1 for r in records)
    assert lefts[-1] - lefts[0] > 30  # the box follows the face (44 px of motion)
    assert all(r["latency_ms"] > 0 for r in records)
    capture = cv2.VideoCapture(str(saved))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 12


def test_demo_shows_real_answers() -> None:
    out = edgekit("demo").stdout
    assert "faces in scikit-image's astronaut photograph: 1 " in out
    assert "read back by PP-OCRv4: ['EDGEKIT 2026']" in out
    for name in ("face-detection-short-range", "silero-vad", "ppocr-v4-det", "shapes-cnn"):
        assert name in out


def test_demo_runs_a_sample_by_name() -> None:
    out = edgekit("demo", "robot", "--seconds", "2.5", "--json").stdout
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e.get("event") in ("connected", "tilt")] == [
        "connected",
        "tilt",
    ]
    result = edgekit("demo", "no-such-demo", check=False)
    assert result.returncode == 2 and "robot" in result.stderr and "glasses" in result.stderr
