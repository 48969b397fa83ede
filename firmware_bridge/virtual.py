"""The C virtual device: build it, start it, and typed helpers for the methods it offers."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import struct
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .client import Bridge
from .errors import BridgeError, BridgeTimeout, RemoteError
from .messages import Status

logger = logging.getLogger(__name__)

C_DIR = Path(__file__).resolve().parent / "c"
BINARY = C_DIR / "build" / "bridge-virtual"
IMU_FORMAT = "<6h"
BUILD_TIMEOUT = 300.0


def _newest_source(root: Path) -> float:
    """Newest mtime among what `make` builds from (not tests, fuzz corpora or build/)."""
    newest = (root / "Makefile").stat().st_mtime if (root / "Makefile").exists() else 0.0
    for folder in ("src", "include", "virtual", "host"):
        for path in (root / folder).rglob("*"):
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    return newest


def build_virtual_device(force: bool = False) -> Path:
    """Run `make -C <package>/c` when the binary is missing or older than its sources."""
    if not force and BINARY.exists() and BINARY.stat().st_mtime >= _newest_source(C_DIR):
        return BINARY
    if not (C_DIR / "Makefile").exists():
        raise BridgeError(f"{C_DIR / 'Makefile'} is missing: the C sources are not installed")
    logger.info("building the virtual device in %s", C_DIR)
    try:
        proc = subprocess.run(
            ["make", "-C", str(C_DIR)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as e:
        raise BridgeError(
            "building the virtual device needs make and a C compiler: "
            "apt-get install build-essential"
        ) from e
    except subprocess.TimeoutExpired as e:
        raise BridgeTimeout(f"make -C {C_DIR} took more than {BUILD_TIMEOUT:.0f}s") from e
    if proc.returncode != 0 or not BINARY.exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise BridgeError(
            f"make -C {C_DIR} failed (exit {proc.returncode}); install build-essential and "
            f"check the output:\n{tail}"
        )
    return BINARY


class VirtualDevice:
    """A running `bridge-virtual` process. `url` is the link path when one was requested."""

    def __init__(self, proc: subprocess.Popen[bytes], device_url: str, link: str | None) -> None:
        self._proc = proc
        self.device_url = device_url
        self.link = link
        self.url = f"serial://{link}" if link else device_url
        self.output: deque[str] = deque(maxlen=200)
        self._drains = [
            threading.Thread(target=self._drain, args=(pipe,), name="virtual-device-output")
            for pipe in (proc.stdout, proc.stderr)
            if pipe is not None
        ]
        for thread in self._drains:
            thread.daemon = True
            thread.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line.startswith(("serial://", "tcp://")):
                self.device_url = line  # announced again after every replug
            self.output.append(line)
            logger.debug("bridge-virtual: %s", line)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def replug(self) -> None:
        """Simulate unplug and replug (SIGUSR1): the pty closes, reopens ~200 ms later."""
        if not self.running:
            raise BridgeError(f"virtual device {self.pid} is not running")
        self._proc.send_signal(signal.SIGUSR1)

    def close(self, timeout: float = 3.0) -> None:
        if self.running:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        for thread in self._drains:
            thread.join(timeout)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> VirtualDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_virtual_device(
    tcp_port: int | None = None,
    link: str | os.PathLike[str] | None = None,
    auth_key: bytes | str | None = None,
    *,
    uid: str | None = None,
    frame_limit: int | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 10.0,
) -> VirtualDevice:
    """Build if needed, start `bridge-virtual`, and read its URL line within a timeout."""
    binary = build_virtual_device()
    cmd = [str(binary)]
    if tcp_port is not None:
        cmd += ["--tcp", str(tcp_port)]
    if link is not None:
        cmd += ["--link", os.fspath(link)]
    if auth_key is not None:
        cmd += ["--auth-key", auth_key.hex() if isinstance(auth_key, bytes) else auth_key]
    if uid is not None:
        cmd += ["--uid", uid]
    if frame_limit is not None:
        cmd += ["--frame-limit", str(frame_limit)]
    cmd += list(extra_args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = _read_first_line(proc, startup_timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        raise
    return VirtualDevice(proc, url, None if link is None else os.fspath(link))


def _read_first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BridgeTimeout(f"bridge-virtual printed no URL within {timeout}s")
            if not sel.select(remaining):
                continue
            chunk = os.read(fd, 1)  # byte-wise: the rest of the pipe belongs to the drain thread
            if not chunk:
                err = b""
                if proc.stderr is not None:
                    with contextlib.suppress(OSError):
                        err = proc.stderr.read()
                raise BridgeError(
                    f"bridge-virtual exited with {proc.wait()} before printing its URL: "
                    f"{err.decode('utf-8', 'replace').strip()[-400:]}"
                )
            buf += chunk
    return buf.decode("utf-8", "replace").strip()


# --- typed helpers for the virtual device's methods -----------------------------------------


@dataclass(frozen=True)
class FirmwareSlot:
    size: int
    sha256: bytes
    valid: bool


@dataclass(frozen=True)
class ImuSample:
    ax: int
    ay: int
    az: int
    gx: int
    gy: int
    gz: int


class VirtualDeviceApi:
    """The virtual device's application methods (docs/protocol.md section 9) with types."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def config_get(self, key: str) -> str | None:
        try:
            return self.bridge.call("config.get", key.encode()).decode("utf-8")
        except RemoteError as e:
            if e.status == Status.NOT_FOUND:
                return None
            raise

    def config_set(self, key: str, value: str) -> None:
        kb = key.encode()
        self.bridge.call("config.set", bytes([len(kb)]) + kb + value.encode())

    def config_list(self) -> dict[str, str]:
        text = self.bridge.call("config.list").decode("utf-8", "replace")
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def tilt(self, pitch_deg: int, duration_ms: int) -> None:
        self.bridge.call("sim.tilt", struct.pack("<hH", pitch_deg, duration_ms))

    def led(self, r: int, g: int, b: int) -> None:
        self.bridge.call("led.set", bytes([r, g, b]))

    def motor(self, left: int, right: int) -> None:
        self.bridge.call("motor.set", struct.pack("<hh", left, right))

    def fw_slot(self) -> FirmwareSlot:
        raw = self.bridge.call("fw.slot")
        if len(raw) < 37:
            raise BridgeError(f"fw.slot answered {len(raw)} bytes, expected 37")
        size, sha, valid = struct.unpack_from("<I32sB", raw)
        return FirmwareSlot(size, sha, bool(valid))

    def log_emit(self, level: int, text: str) -> None:
        self.bridge.call("log.emit", bytes([level]) + text.encode())

    def reboot(self, boot_reason: int = 3) -> None:
        self.bridge.call("sys.reboot", bytes([boot_reason]))

    @staticmethod
    def imu_samples(data: bytes) -> list[ImuSample]:
        return [ImuSample(*v) for v in struct.iter_unpack(IMU_FORMAT, data)]
