"""samples/kiosk: the dashboard on its defaults, read over HTTP and in real headless Chromium.

The server runs as a program (the built-in clip, the C virtual device); the page is loaded by
Debian's Chromium driven with Playwright, and must show frames that advance, the astronaut's
face and the IMU telemetry changing, as a person at the kiosk would see them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from firmware_bridge.virtual import start_virtual_device

ROOT = Path(__file__).resolve().parents[2]
KIOSK = ROOT / "samples" / "kiosk" / "kiosk.py"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: as root, on a machine without network: no sandbox, no GPU, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_S = 60.0


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kiosk_sample", KIOSK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


kiosk = _load()


# --- the program, as a subprocess -------------------------------------------------------------


@dataclass
class Server:
    """A running kiosk program: its URL, and every line it printed so far."""

    proc: subprocess.Popen[str]
    stderr: Path
    lines: list[str] = field(default_factory=list)
    url: str = ""

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)


def start(args: list[str], stderr: Path, json_lines: bool = False) -> Server:
    """Start ``args`` and wait for the URL on its first line."""
    with stderr.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    server = Server(proc, stderr)
    first = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server.lines.append(line.rstrip("\n"))
            first.set()
        first.set()

    threading.Thread(target=read, daemon=True).start()
    if not first.wait(STARTUP_S) or not server.lines:
        proc.kill()
        proc.wait()
        pytest.fail(f"the kiosk printed no URL; stderr:\n{stderr.read_text()[-2000:]}")
    line = server.lines[0]
    server.url = json.loads(line)["url"] if json_lines else line.removeprefix("kiosk: ")
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/"), line
    return server


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def status_when(server: Server, ready: Any, timeout: float = 15.0) -> dict[str, Any]:
    """Poll ``/api/status`` until ``ready(status)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, _, body = get(server.url + "api/status")
        except urllib.error.URLError as e:
            server.proc.wait(20)  # it is going away: let it say why
            pytest.fail(
                f"the kiosk stopped answering ({e.reason}) and exited with "
                f"{server.proc.returncode}; stdout: {server.lines}; stderr:\n"
                f"{server.stderr.read_text()[-3000:]}"
            )
        assert code == 200
        state: dict[str, Any] = json.loads(body)
        if ready(state):
            return state
        assert time.monotonic() < deadline, f"status never became ready: {state}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("kiosk")
    running = start(
        [sys.executable, str(KIOSK), "--port", "0", "--max-seconds", "120"], folder / "stderr"
    )
    yield running
    running.stop()


# --- over plain HTTP --------------------------------------------------------------------------


def test_the_status_endpoint_answers_without_a_browser(server: Server) -> None:
    state = status_when(
        server,
        lambda s: s["frame"] is not None and s["stats"] is not None
        and (s["telemetry"] or {}).get("samples", 0) > 50,
    )  # fmt: skip
    assert state["source"] == "built-in clip" and state["virtual_device"] is True
    assert state["model"] == "face-detection-short-range"
    frame = state["frame"]
    assert frame["width"] == frame["height"] == 512
    (face,) = frame["faces"]
    x1, y1, x2, y2 = face["box"]
    dx, dy = kiosk.pan_offset(frame["seq"] % kiosk.CLIP_FRAMES)
    # the face in the unshifted 512x512 photograph is at about (178, 81)-(272, 175)
    assert 150 <= x1 - dx <= 210 and 60 <= y1 - dy <= 110, (frame, dx, dy)
    assert 70 <= x2 - x1 <= 130 and 70 <= y2 - y1 <= 130 and face["score"] > 0.7
    assert 0 < frame["latency_ms"] < 1000
    assert [st["name"] for st in state["stats"]["stages"]] == ["detect", "annotate", "encode"]
    telemetry = state["telemetry"]
    assert telemetry["connected"] is True and telemetry["lost"] == 0
    assert telemetry["device"]["firmware"].startswith("virtual-")
    assert telemetry["device"]["streams"] == ["imu"]
    assert abs(telemetry["imu"]["pitch_deg"]) < 5 and telemetry["imu"]["tilted"] is False
    assert telemetry["imu"]["accel_g"][2] == pytest.approx(1.0, abs=0.01)
    assert telemetry["rtt_ms"] is not None and telemetry["rtt_ms"] > 0

    code, kind, body = get(server.url + "frame.jpg")
    assert code == 200 and kind == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (512, 512, 3)
    assert image[:26].mean() < image[26:].mean()  # the darkened banner

    code, kind, body = get(server.url)
    assert code == 200 and kind.startswith("text/html")
    assert b'src="/static/app.js"' in body
    code, kind, _ = get(server.url + "static/app.js")
    assert code == 200 and "javascript" in kind


def _frame_seq(payload: bytes) -> int:
    (length,) = struct.unpack(">I", payload[:4])
    return int(json.loads(payload[4 : 4 + length])["seq"])


def test_a_new_frame_waits_until_the_last_one_was_shown(server: Server) -> None:
    async def watch() -> tuple[dict[str, Any], list[bytes], list[dict[str, Any]], bytes]:
        loop = asyncio.get_running_loop()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.url + "ws") as ws,
        ):
            hello = await ws.receive_json(timeout=5)
            frames: list[bytes] = []
            texts: list[dict[str, Any]] = []
            deadline = loop.time() + 1.5
            while (left := deadline - loop.time()) > 0:
                try:
                    message = await ws.receive(timeout=left)
                except asyncio.TimeoutError:
                    break
                if message.type == aiohttp.WSMsgType.BINARY:
                    frames.append(message.data)
                else:
                    texts.append(json.loads(message.data))
            await ws.send_str("ready")
            while (message := await ws.receive(timeout=5)).type != aiohttp.WSMsgType.BINARY:
                pass
            return hello, frames, texts, message.data

    hello, frames, texts, after = asyncio.run(watch())
    assert hello["type"] == "hello" and hello["model"] == "face-detection-short-range"
    # without "ready" the browser gets one frame, while stats and telemetry keep coming
    assert len(frames) == 1
    kinds = [t["type"] for t in texts]
    assert kinds.count("telemetry") >= 8 and kinds.count("stats") >= 2
    # after "ready" comes the newest frame, not the one after the first: about 20 were skipped
    assert _frame_seq(after) >= _frame_seq(frames[0]) + 10


# --- in a real browser --------------------------------------------------------------------------


def _browser() -> Any:
    """Playwright over Debian's Chromium; a missing one fails (CI installs both), never skips."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            "needs Chromium: apt-get install chromium (bash scripts/dev.sh setup does)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("needs Playwright: pip install -e .[dev]", pytrace=False)
    return sync_playwright


def _number(page: Any, selector: str) -> float:
    return float(page.text_content(selector))


def test_the_page_shows_advancing_frames_faces_and_telemetry(
    server: Server, tmp_path: Path
) -> None:
    sync_playwright = _browser()
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server.url)
            assert page.title() == "edgekit kiosk"
            page.wait_for_function(
                "Number(document.getElementById('frames-shown').textContent) >= 3 && "
                "Number(document.getElementById('imu-samples').textContent) > 0",
                timeout=15_000,
            )
            seq, shown = _number(page, "#frame-seq"), _number(page, "#frames-shown")
            video = page.locator("#video").screenshot()
            samples = _number(page, "#imu-samples")
            pitches = set()
            for _ in range(8):
                page.wait_for_timeout(200)
                pitches.add(page.text_content("#pitch"))

            # frames advance: the counter, the frames shown and the picture itself
            assert _number(page, "#frame-seq") >= seq + 10
            assert _number(page, "#frames-shown") >= shown + 10
            assert 5 <= _number(page, "#view-fps") <= 20
            assert page.locator("#video").screenshot() != video
            assert page.evaluate("document.getElementById('video').width") == 512

            # results: the one face, with its score and box
            assert page.text_content("#face-count") == "1"
            faces = page.locator("#faces li.face")
            assert faces.count() == 1
            assert float(faces.first.get_attribute("data-score") or 0) > 0.7
            pattern = r"score 0\.\d\d at \(\d+, \d+\)-\(\d+, \d+\)"
            assert re.fullmatch(pattern, faces.first.text_content() or "")
            stages = page.locator("#stages tr").evaluate_all(
                "rows => rows.map(r => r.dataset.stage)"
            )
            assert stages == ["source", "detect", "annotate", "encode"]
            assert _number(page, "#pipeline-fps") > 5
            assert _number(page, "#latency-p50") > 0

            # telemetry: the virtual device, its IMU samples counting up, the pitch wobbling
            assert page.text_content("#device-link") == "connected"
            assert (page.text_content("#device-fw") or "").startswith("virtual-")
            assert len(page.text_content("#device-uid") or "") == 16
            assert page.text_content("#tilt-state") == "level"
            assert _number(page, "#imu-samples") >= samples + 100
            assert 80 <= _number(page, "#imu-rate") <= 120
            assert len(pitches) >= 2, pitches
            assert all(abs(float(p)) < 5 for p in pitches)
            assert page.text_content("#link-state") == "live"

            shot = tmp_path / "kiosk.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert errors == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (800, 1280, 3)
    assert image.std() > 30  # a photograph and panels, not a blank page
    # the astronaut's orange suit fills the lower part of the video panel
    suit = image[500:700, 200:500].reshape(-1, 3).astype(int)
    assert np.mean((suit[:, 2] > 150) & (suit[:, 0] < 100)) > 0.2


def test_ctrl_c_stops_the_server_cleanly(server: Server) -> None:
    status_when(server, lambda s: s["frame"] is not None)
    assert server.stop() == 0
    time.sleep(0.1)  # the reader thread takes the last line
    assert server.lines[-1].startswith(f"kiosk: served {server.url} for ")
    assert "(stopped by signal)" in server.lines[-1]
    assert "Traceback" not in server.stderr.read_text()
    with pytest.raises(urllib.error.URLError):
        get(server.url + "api/status")


def test_edgekit_demo_kiosk_runs_on_the_defaults(tmp_path: Path) -> None:
    edgekit = Path(sys.executable).with_name("edgekit")
    args = [str(edgekit), "demo", "kiosk", "--port", "0", "--max-seconds", "4", "--json"]
    demo = start(args, tmp_path / "stderr", json_lines=True)
    state = status_when(demo, lambda s: s["frame"] is not None)
    assert state["source"] == "built-in clip"
    assert demo.proc.wait(20) == 0
    time.sleep(0.1)
    summary = json.loads(demo.lines[-1])["summary"]
    assert summary["url"] == demo.url and summary["stopped_by"] == "time"
    assert summary["frames"] >= 30 and summary["frames_with_faces"] == summary["frames"]
    assert 12 <= summary["fps"] <= 17 and summary["latency_p50_ms"] < 200
    assert summary["imu_samples"] >= 200


def test_a_finite_source_ends_and_its_last_frame_stays(tmp_path: Path) -> None:
    source = "synthetic:bars?width=320&height=240&fps=15&frames=20"
    args = [sys.executable, str(KIOSK), "--source", source, "--device", "none", "--port", "0"]
    finite = start(args, tmp_path / "stderr")
    try:
        state = status_when(finite, lambda s: (s["stats"] or {}).get("ended", False))
        assert state["source"] == source and state["device"] is None
        assert state["telemetry"] is None
        # live semantics: on a busy machine a frame or two may be dropped, never queued
        results = state["stats"]["results"]
        assert 12 <= results <= 20 and 15 <= state["frame"]["seq"] <= 19
        assert get(finite.url + "frame.jpg")[0] == 200
    finally:
        assert finite.stop() == 0
    time.sleep(0.1)
    assert f": {results} frames at" in finite.lines[-1], finite.lines
    assert "0 IMU samples" in finite.lines[-1]


def test_a_board_given_by_url_is_followed_through_a_replug(tmp_path: Path) -> None:
    with start_virtual_device(link=tmp_path / "board") as board:
        source = "synthetic:bars?width=320&height=240&fps=15"
        args = [sys.executable, str(KIOSK), "--source", source, "--device", board.url]
        running = start([*args, "--port", "0"], tmp_path / "stderr")
        try:
            before = status_when(running, lambda s: (s["telemetry"] or {}).get("samples", 0) > 20)
            assert before["device"] == board.url and before["virtual_device"] is False
            assert before["telemetry"]["device"]["epoch"] == 1
            board.replug()
            after = status_when(
                running,
                lambda s: s["telemetry"]["reconnects"] >= 1 and s["telemetry"]["connected"]
                and s["telemetry"]["samples"] > before["telemetry"]["samples"] + 50,
            )  # fmt: skip
            assert after["telemetry"]["device"]["epoch"] >= 2
            assert after["frame"]["seq"] > before["frame"]["seq"]  # the camera never stopped
        finally:
            assert running.stop() == 0


# --- errors -------------------------------------------------------------------------------------


def test_a_missing_source_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.avi"
    assert kiosk.main(["--source", f"file:{missing}", "--device", "none", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kiosk: error: file:") and "does not exist" in err


def test_a_busy_port_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["--source", "synthetic:bars?width=64&height=48", "--device", "none"]
        assert kiosk.main([*args, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: address already in use; choose" in err


@pytest.mark.parametrize(
    ("option", "value"), [("--quality", "0"), ("--stream-fps", "0"), ("--port", "70000")]
)
def test_bad_settings_are_refused(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kiosk.main([option, value]) == 2
    assert f"{option} must be" in capsys.readouterr().err


# --- the pieces ---------------------------------------------------------------------------------


def test_the_clip_loops_without_a_jump() -> None:
    assert kiosk.pan_offset(0) == kiosk.pan_offset(kiosk.CLIP_FRAMES)
    steps = [
        math.dist(kiosk.pan_offset(i), kiosk.pan_offset(i + 1)) for i in range(kiosk.CLIP_FRAMES)
    ]
    assert max(steps) <= 2.5
    xs = [kiosk.pan_offset(i)[0] for i in range(kiosk.CLIP_FRAMES)]
    assert max(xs) == kiosk.PAN_RADIUS and min(xs) == -kiosk.PAN_RADIUS


def test_a_frame_message_is_length_json_then_jpeg() -> None:
    jpeg = kiosk.encode_jpeg(np.full((48, 64, 3), 128, np.uint8), 80)
    packet = kiosk.FramePacket.build({"type": "frame", "seq": 7, "faces": []}, jpeg)
    (length,) = struct.unpack(">I", packet.payload[:4])
    assert json.loads(packet.payload[4 : 4 + length]) == {"type": "frame", "seq": 7, "faces": []}
    assert packet.payload[4 + length :] == jpeg and jpeg[:2] == b"\xff\xd8"
    assert packet.seq == 7


@pytest.mark.parametrize(("pitch", "roll"), [(0, 0), (30, 0), (-60, 0), (0, 20), (10, -50)])
def test_imu_sample_to_tilt(pitch: float, roll: float) -> None:
    # gravity for a board pitched, then rolled (x forward, y left, z up), in milli-g
    p, r = math.radians(pitch), math.radians(roll)
    ax, ay, az = (
        -1000 * math.sin(p),
        1000 * math.cos(p) * math.sin(r),
        1000 * math.cos(p) * math.cos(r),
    )
    sample = kiosk.imu_dict((round(ax), round(ay), round(az), 150, -250, 0), 1234)
    assert sample["pitch_deg"] == pytest.approx(pitch, abs=0.2)
    assert sample["roll_deg"] == pytest.approx(roll, abs=0.2)
    assert sample["gyro_dps"] == [1.5, -2.5, 0.0] and sample["t_us"] == 1234
    assert sample["tilted"] is (max(abs(pitch), abs(roll)) > kiosk.TILT_DEG)


def test_rate_meter() -> None:
    meter = kiosk.RateMeter(window=5)
    assert meter.rate() == 0.0
    for i in range(10):
        meter.tick(i * 0.1)
    assert meter.rate() == pytest.approx(10.0)
    meter.tick(1.0, count=3)
    assert meter.rate() > 10.0
