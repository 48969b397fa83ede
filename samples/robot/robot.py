"""Companion-robot bring-up: stop the motors and show red when the robot falls over.

    python samples/robot/robot.py                      # starts the virtual device, runs the demo
    python samples/robot/robot.py --url serial:///dev/ttyACM0?baud=921600 --seconds 60
    python samples/robot/robot.py --json               # one JSON object per event

It subscribes to the IMU stream, computes the pitch of every sample and runs a tilt detector
with hysteresis. A fall (|pitch| above 45 degrees for 3 samples in a row) sends `motor.set(0, 0)`
and `led.set(255, 0, 0)`; level again (|pitch| below 20 degrees for 3 samples) sends
`led.set(0, 255, 0)`. Unplugging the board does not stop the program: the bridge reconnects and
restarts the stream by itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from firmware_bridge import Bridge, BridgeError, BridgeTimeout, Disconnected, RemoteError, Sample
from firmware_bridge.virtual import VirtualDevice, start_virtual_device

IMU_FORMAT = "<6h"  # ax, ay, az in milli-g; gx, gy, gz in centi-degrees per second

Transition = Literal["tilt", "level"]


# --- pure logic -----------------------------------------------------------------------------


def pitch_deg(ax: int, az: int) -> float:
    """Pitch in degrees from gravity in the x-z plane (ax = -g sin(pitch), az = g cos(pitch))."""
    return math.degrees(math.atan2(-ax, az))


def pitch_of(imu: tuple[int, ...]) -> float:
    """Pitch of one decoded IMU sample `(ax, ay, az, gx, gy, gz)`."""
    return pitch_deg(imu[0], imu[2])


@dataclass(frozen=True)
class TiltConfig:
    trip_deg: float = 45.0  # |pitch| above this counts towards a fall
    clear_deg: float = 20.0  # |pitch| below this counts towards level again
    samples: int = 3  # consecutive samples needed to change state


@dataclass(frozen=True)
class TiltState:
    tilted: bool = False
    run: int = 0  # consecutive samples that argue for the other state


def update_tilt(
    state: TiltState, pitch: float, config: TiltConfig = TiltConfig()
) -> tuple[TiltState, Transition | None]:
    """Feed one pitch; return the new state and the transition it caused, if any.

    Between `clear_deg` and `trip_deg` nothing changes (hysteresis), and any sample on the
    wrong side restarts the count, so a single spike neither trips nor clears.
    """
    if state.tilted:
        run = state.run + 1 if abs(pitch) < config.clear_deg else 0
        if run >= config.samples:
            return TiltState(tilted=False), "level"
    else:
        run = state.run + 1 if abs(pitch) > config.trip_deg else 0
        if run >= config.samples:
            return TiltState(tilted=True), "tilt"
    return TiltState(state.tilted, run), None


def sample_time_us(frame: Sample, index: int, rate_hz: int) -> int:
    """Device time of sample `index` of a DATA frame (docs/protocol.md 11, streams)."""
    return frame.timestamp_us + math.ceil(index * 1_000_000 / rate_hz)


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    method: str
    args: bytes
    label: str


def motor(left: int, right: int) -> Command:
    return Command("motor.set", struct.pack("<hh", left, right), f"motor.set({left}, {right})")


def led(r: int, g: int, b: int) -> Command:
    return Command("led.set", bytes([r, g, b]), f"led.set({r}, {g}, {b})")


def sim_tilt(pitch: int, duration_ms: int) -> Command:
    return Command(
        "sim.tilt", struct.pack("<hH", pitch, duration_ms), f"sim.tilt({pitch}, {duration_ms})"
    )


ON_TILT = (motor(0, 0), led(255, 0, 0))  # motors first: they are what hurts
ON_LEVEL = (led(0, 255, 0),)


def send(bridge: Bridge, command: Command, attempts: int = 3) -> bool:
    """Call a device method; True once the device acknowledged it.

    A stop command must not be lost to a link blip, so a dropped link is waited out and the
    call repeated (every command here is idempotent). A non-OK status is final.
    """
    for _ in range(attempts):
        try:
            bridge.call(command.method, command.args)
            return True
        except RemoteError:
            return False
        except (Disconnected, BridgeTimeout):
            try:
                bridge.wait_session(3.0)
            except BridgeError:
                continue
    return False


# --- events and summary ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    t_s: float  # seconds since the run started
    time: str  # UTC wall clock, ISO 8601
    event: str  # connected, tilt, level, link_lost, reconnected, resumed, demo
    epoch: int  # device session epoch
    pitch_deg: float | None = None
    device_ts_us: int | None = None
    acked: tuple[str, ...] = ()  # commands the device acknowledged
    failed: tuple[str, ...] = ()  # commands it did not
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["acked"], out["failed"] = list(self.acked), list(self.failed)
        return out

    def describe(self) -> str:
        text = f"{self.t_s:7.3f} s  {self.event.upper():<11} epoch {self.epoch}"
        if self.pitch_deg is not None:
            text += f"  pitch {self.pitch_deg:+6.1f} deg"
        if self.device_ts_us is not None:
            text += f"  device t={self.device_ts_us} us"
        if self.detail:
            text += f"  {self.detail}"
        commands = [f"{c} ok" for c in self.acked] + [f"{c} FAILED" for c in self.failed]
        if commands:
            text += "  -> " + ", ".join(commands)
        return text


@dataclass(frozen=True)
class DeviceLog:
    timestamp_us: int
    level: int
    text: str


@dataclass(frozen=True)
class Summary:
    seconds: float
    samples: int
    frames: int
    lost: int
    overruns: int
    dropped: int
    tilt_events: int
    level_events: int
    commands_sent: int
    commands_acked: int
    reconnects: int
    epochs: tuple[int, ...]
    events: tuple[Event, ...]
    device_log: tuple[DeviceLog, ...]

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        del out["events"], out["device_log"]
        out["epochs"] = list(self.epochs)
        return out

    def describe(self) -> str:
        return (
            f"{self.seconds:.1f} s: {self.samples} samples in {self.frames} frames, "
            f"{self.lost} lost, {self.overruns} overruns, {self.dropped} dropped; "
            f"{self.tilt_events} tilt events, {self.level_events} level events; "
            f"{self.commands_acked}/{self.commands_sent} commands acknowledged; "
            f"{self.reconnects} reconnects (epochs {', '.join(map(str, self.epochs))})"
        )


# --- demo scenario --------------------------------------------------------------------------


@dataclass
class DemoScript:
    """A fall at 1 s, an unplug/replug midway, a second fall once the stream is back."""

    replug_at: float
    first_tilt_at: float = 1.0
    settle_s: float = 0.5  # after the stream resumed, before the second fall
    tilt: Command = field(default_factory=lambda: sim_tilt(70, 800))
    done: set[str] = field(default_factory=set)

    def due(self, elapsed: float, resumed_at: float | None, can_replug: bool) -> list[str]:
        """Steps to take now: `tilt1`, `replug`, `tilt2`, each once."""
        if not can_replug:
            second_at: float | None = self.replug_at
        else:
            second_at = None if resumed_at is None else resumed_at + self.settle_s
        steps = [
            ("tilt1", elapsed >= self.first_tilt_at),
            ("replug", can_replug and elapsed >= self.replug_at),
            ("tilt2", "tilt1" in self.done and second_at is not None and elapsed >= second_at),
        ]
        out = [name for name, ready in steps if ready and name not in self.done]
        self.done.update(out)
        return out


# --- the program ----------------------------------------------------------------------------


class _Robot:
    """State of one run: the bridge, the detector, counters and the event list."""

    def __init__(
        self,
        bridge: Bridge,
        rate_hz: int,
        config: TiltConfig,
        on_event: Callable[[Event], None] | None,
    ) -> None:
        self.bridge = bridge
        self.rate_hz = rate_hz
        self.config = config
        self.on_event = on_event
        self.started = time.monotonic()
        self.state = TiltState()
        self.events: list[Event] = []
        self.sent = 0
        self.acked = 0
        self.epochs: list[int] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def epoch(self) -> int:
        epoch = self.bridge.info.epoch
        if not self.epochs or self.epochs[-1] != epoch:
            self.epochs.append(epoch)
        return epoch

    def emit(
        self,
        event: str,
        *,
        pitch: float | None = None,
        device_ts_us: int | None = None,
        acked: tuple[str, ...] = (),
        failed: tuple[str, ...] = (),
        detail: str = "",
    ) -> Event:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        record = Event(
            round(self.elapsed(), 3),
            now,
            event,
            self.epoch(),
            None if pitch is None else round(pitch, 2),
            device_ts_us,
            acked,
            failed,
            detail,
        )
        self.events.append(record)
        if self.on_event is not None:
            self.on_event(record)
        return record

    def command(self, commands: tuple[Command, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        acked: list[str] = []
        failed: list[str] = []
        for cmd in commands:
            self.sent += 1
            if send(self.bridge, cmd):
                self.acked += 1
                acked.append(cmd.label)
            else:
                failed.append(cmd.label)
        return tuple(acked), tuple(failed)

    def feed(self, frame: Sample) -> None:
        for index, imu in enumerate(frame.unpack(IMU_FORMAT)):
            pitch = pitch_of(imu)
            self.state, change = update_tilt(self.state, pitch, self.config)
            if change is None:
                continue
            acked, failed = self.command(ON_TILT if change == "tilt" else ON_LEVEL)
            self.emit(
                change,
                pitch=pitch,
                device_ts_us=sample_time_us(frame, index, self.rate_hz),
                acked=acked,
                failed=failed,
            )


def run(
    url: str | None,
    seconds: float,
    *,
    demo: bool | None = None,
    rate_hz: int = 200,
    config: TiltConfig = TiltConfig(),
    on_event: Callable[[Event], None] | None = None,
) -> Summary:
    """Watch the IMU for `seconds`; start the virtual device when `url` is None.

    `demo` (default: on when this function started the virtual device) scripts two falls with
    `sim.tilt` and, when the device is ours, an unplug/replug between them.
    """
    logs: list[DeviceLog] = []
    logs_lock = threading.Lock()

    def on_log(level: int, timestamp_us: int, text: str) -> None:
        with logs_lock:
            logs.append(DeviceLog(timestamp_us, level, text))

    with ExitStack() as stack:
        device: VirtualDevice | None = None
        if url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="edgekit-robot-"))
            # the link keeps its path across replugs, so the bridge reopens the same URL
            device = stack.enter_context(start_virtual_device(link=Path(folder) / "board"))
            url = device.url
        use_demo = device is not None if demo is None else demo
        script = DemoScript(replug_at=max(2.5, seconds / 2)) if use_demo else None
        bridge = stack.enter_context(Bridge.open(url, timeout=5.0, on_log=on_log))
        robot = _Robot(bridge, rate_hz, config, on_event)
        info = bridge.info
        robot.emit("connected", detail=f"{info.firmware_version} uid {info.uid_hex} at {url}")
        stream = stack.enter_context(bridge.subscribe("imu", rate_hz))
        seen_reconnects = bridge.reconnects
        was_connected = True
        resumed_at: float | None = None
        awaiting_resume = False
        while (elapsed := robot.elapsed()) < seconds:
            if script is not None:
                for step in script.due(elapsed, resumed_at, device is not None):
                    if step == "replug" and device is not None:
                        device.replug()
                        robot.emit("demo", detail="unplug and replug the board")
                    else:
                        acked, failed = robot.command((script.tilt,))
                        robot.emit(
                            "demo", detail=f"simulate a fall ({step})", acked=acked, failed=failed
                        )
            connected = bridge.connected
            if was_connected and not connected:
                robot.emit("link_lost", detail="waiting for the board to come back")
            if connected and bridge.reconnects != seen_reconnects:
                seen_reconnects = bridge.reconnects
                awaiting_resume = True
                robot.emit("reconnected", detail=f"reconnect #{seen_reconnects}")
            was_connected = connected
            try:
                frames = [stream.get(timeout=0.05)]
            except BridgeTimeout:
                continue
            frames += stream.drain()
            if awaiting_resume:
                awaiting_resume = False
                resumed_at = robot.elapsed()
                robot.emit(
                    "resumed",
                    device_ts_us=frames[0].timestamp_us,
                    detail="IMU stream restarted by the bridge",
                )
            for frame in frames:
                robot.feed(frame)
        stats = stream.stats()
        with logs_lock:
            device_log = tuple(logs)
        summary = Summary(
            seconds=round(robot.elapsed(), 3),
            samples=stats.samples,
            frames=stats.received,
            lost=stats.lost,
            overruns=stats.overruns,
            dropped=stats.dropped,
            tilt_events=sum(e.event == "tilt" for e in robot.events),
            level_events=sum(e.event == "level" for e in robot.events),
            commands_sent=robot.sent,
            commands_acked=robot.acked,
            reconnects=bridge.reconnects,
            epochs=tuple(robot.epochs),
            events=tuple(robot.events),
            device_log=device_log,
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        help="the board, e.g. serial:///dev/ttyACM0?baud=921600 "
        "(default: start the virtual device)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to run (8)")
    parser.add_argument("--rate", type=int, default=200, help="IMU rate in Hz (200)")
    parser.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="script two falls and an unplug (default: without --url)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    def show(event: Event) -> None:
        if args.json:
            print(json.dumps({"type": "event", **event.to_dict()}), flush=True)
        else:
            print(event.describe(), flush=True)

    try:
        summary = run(args.url, args.seconds, demo=args.demo, rate_hz=args.rate, on_event=show)
    except BridgeError as e:
        print(f"robot: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"type": "summary", **summary.to_dict()}))
    else:
        print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
