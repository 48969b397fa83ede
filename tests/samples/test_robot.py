"""samples/robot: pitch and tilt detector on crafted samples, then the demo on the C device."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROBOT = Path(__file__).resolve().parents[2] / "samples" / "robot" / "robot.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("robot_sample", ROBOT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


robot = _load()


def imu_at(pitch: float) -> tuple[int, ...]:
    """A sample as the virtual device makes it: gravity rotated by `pitch` in the x-z plane."""
    rad = math.radians(pitch)
    raw = struct.pack("<6h", round(-1000 * math.sin(rad)), 0, round(1000 * math.cos(rad)), 0, 0, 0)
    return struct.unpack("<6h", raw)


# --- pure functions -------------------------------------------------------------------------


@pytest.mark.parametrize("pitch", [-170, -90, -70, -45, -10, 0, 3, 30, 60, 89, 135])
def test_pitch_of_a_rotated_gravity_vector(pitch: float) -> None:
    assert robot.pitch_of(imu_at(pitch)) == pytest.approx(pitch, abs=0.1)


def test_pitch_from_axes() -> None:
    assert robot.pitch_deg(0, 1000) == 0.0
    assert robot.pitch_deg(-866, 500) == pytest.approx(60, abs=0.01)
    assert robot.pitch_deg(866, 500) == pytest.approx(-60, abs=0.01)
    assert robot.pitch_deg(-1000, 0) == 90.0
    assert abs(robot.pitch_deg(0, -1000)) == 180.0  # upside down


def feed(pitches: list[float], state: object = None) -> tuple[object, list[tuple[int, str]]]:
    state = robot.TiltState() if state is None else state
    changes = []
    for i, pitch in enumerate(pitches):
        state, change = robot.update_tilt(state, pitch)
        if change is not None:
            changes.append((i, change))
    return state, changes


def test_detector_trips_on_the_third_sample_beyond_45_degrees() -> None:
    state, changes = feed([0, 1, 46, 50, 70, 70])
    assert changes == [(4, "tilt")]
    assert state.tilted
    _, changes = feed([0, -46, -60, -89])  # either direction
    assert changes == [(3, "tilt")]


def test_detector_ignores_short_spikes_and_the_threshold_itself() -> None:
    _, changes = feed([0, 80, 80, 0, 80, 80, 44, 80, 80, 45.0, 45.0, 45.0, 10])
    assert changes == []


def test_detector_has_hysteresis() -> None:
    tilted, changes = feed([60, 60, 60])
    assert changes == [(2, "tilt")]
    # between 20 and 45 degrees the robot is neither fallen again nor level
    state, changes = feed([40, 30, 21, 25, 30, 44, 21], tilted)
    assert changes == [] and state.tilted
    # level needs 3 samples in a row below 20 degrees; a 30 degree sample starts the count over
    state, changes = feed([10, 5, 30, 5, -5, 2, 0], state)
    assert changes == [(5, "level")] and not state.tilted
    _, changes = feed([50, 50, 50, 0, 0, 0, 70, 70, 70], state)
    assert changes == [(2, "tilt"), (5, "level"), (8, "tilt")]


def test_detector_config() -> None:
    config = robot.TiltConfig(trip_deg=30.0, clear_deg=10.0, samples=1)
    state, change = robot.update_tilt(robot.TiltState(), 31.0, config)
    assert change == "tilt" and state.tilted
    state, change = robot.update_tilt(state, 9.0, config)
    assert change == "level" and not state.tilted


def test_demo_script_waits_for_the_stream_to_come_back() -> None:
    script = robot.DemoScript(replug_at=3.0)
    assert script.due(0.5, None, True) == []
    assert script.due(1.0, None, True) == ["tilt1"]
    assert script.due(2.0, None, True) == []
    assert script.due(3.0, None, True) == ["replug"]
    assert script.due(5.0, None, True) == []  # not back yet
    assert script.due(5.1, 5.0, True) == []
    assert script.due(5.5, 5.0, True) == ["tilt2"]
    assert script.due(6.0, 5.0, True) == []
    other = robot.DemoScript(replug_at=3.0)  # a board we cannot unplug: second fall at 3 s
    assert other.due(1.0, None, False) == ["tilt1"]
    assert other.due(2.9, None, False) == []
    assert other.due(3.0, None, False) == ["tilt2"]


# --- the demo against the real C virtual device ---------------------------------------------

STOP = ("motor.set(0, 0)", "led.set(255, 0, 0)")
GREEN = ("led.set(0, 255, 0)",)


def test_demo_survives_a_replug_and_catches_a_fall_on_each_side() -> None:
    seen: list[object] = []
    summary = robot.run(None, 7.0, on_event=seen.append)
    events = list(summary.events)
    assert seen == events
    kinds = [e.event for e in events]
    replug = next(i for i, e in enumerate(events) if "unplug" in e.detail)
    assert kinds[0] == "connected"
    assert "reconnected" in kinds[replug:] and "resumed" in kinds[replug:]

    tilts = [i for i, kind in enumerate(kinds) if kind == "tilt"]
    assert len(tilts) == 2 and tilts[0] < replug < tilts[1], kinds
    for i in tilts:
        tilt = events[i]
        assert tilt.acked == STOP and tilt.failed == ()
        assert 60 < tilt.pitch_deg < 80
        level = next(e for e in events[i:] if e.event == "level")
        assert level.acked == GREEN and level.failed == ()
        assert abs(level.pitch_deg) < 20
        # sim.tilt held 70 degrees for 800 ms of device time; both edges take 3 samples
        assert 770_000 <= level.device_ts_us - tilt.device_ts_us <= 830_000
    before, after = events[tilts[0]], events[tilts[1]]
    assert before.epoch == summary.epochs[0] and after.epoch > before.epoch

    # the device itself reports what it did, in order
    applied = [
        log.text for log in summary.device_log if log.text.startswith(("motor.set", "led.set"))
    ]
    stop = ["motor.set left=0 right=0", "led.set r=255 g=0 b=0"]
    assert applied == [*stop, "led.set r=0 g=255 b=0", *stop, "led.set r=0 g=255 b=0"]

    assert summary.tilt_events == 2 and summary.level_events == 2
    assert summary.commands_sent == summary.commands_acked == 8  # 2 falls, 4 stops, 2 green
    assert summary.reconnects >= 1 and len(summary.epochs) == 2
    assert 800 < summary.samples <= 200 * 7 and summary.frames <= summary.samples


def test_cli_prints_one_json_object_per_event() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROBOT), "--json", "--seconds", "2.5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    events, summary = lines[:-1], lines[-1]
    assert [e["event"] for e in events] == ["connected", "demo", "tilt", "level"]
    tilt = events[2]
    assert tilt["acked"] == list(STOP) and tilt["epoch"] == events[0]["epoch"]
    assert tilt["pitch_deg"] > 45 and tilt["device_ts_us"] > 0 and "T" in tilt["time"]
    assert summary["type"] == "summary" and summary["tilt_events"] == 1
    assert summary["commands_acked"] == summary["commands_sent"] == 4
    assert summary["reconnects"] == 0 and summary["samples"] > 300
