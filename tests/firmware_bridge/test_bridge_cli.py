"""The command line, in process, against the simulated device on a pty."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_bridge.cli import main
from firmware_bridge.simdevice import SimPtyServer


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_devices_json_lists_serial_ports(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "devices", "--json")
    assert code == 0
    entries = json.loads(out)
    assert isinstance(entries, list)
    assert all(e["url"].startswith(("serial://", "usb://")) for e in entries)


def test_info_ping_call_json(sim: SimPtyServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "bridge", "info", sim.url, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["uid"] == sim.device.uid.hex() and "config.get" in info["methods"]

    code, out, _ = run(capsys, "bridge", "ping", sim.url, "--count", "5", "--json")
    assert code == 0 and json.loads(out)["count"] == 5

    code, out, _ = run(capsys, "bridge", "call", sim.url, "config.set", "036b6579763132")
    assert code == 0
    code, out, _ = run(capsys, "bridge", "call", sim.url, "config.get", "--text", "key")
    assert (code, out.strip()) == (0, "v12")


def test_stream_and_upload(
    sim: SimPtyServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "bridge", "stream", sim.url, "imu", "--rate", "200", "--seconds", "0.5", "--json"
    )
    assert code == 0
    stats = json.loads(out)
    assert stats["received"] >= 50 and stats["lost"] == 0
    image = tmp_path / "fw.bin"
    image.write_bytes(bytes(range(256)) * 40)
    code, out, _ = run(capsys, "bridge", "upload", sim.url, str(image), "--json")
    assert code == 0 and json.loads(out)["size"] == 10240
    assert sim.device.fw_slot == image.read_bytes()


def test_errors_are_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bridge", "info", "serial:///dev/no-such-port", "--timeout", "0.3")
    assert code == 1
    assert err.startswith("error: serial port /dev/no-such-port does not exist")


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "firmware_bridge", "devices", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), list)


def _default_sigint() -> None:
    """Give the child the default SIGINT, as a shell's foreground job gets.

    A background job of a non-interactive shell inherits SIGINT ignored, and Python keeps it
    ignored, so without this the Ctrl-C below would do nothing when the suite itself runs in the
    background.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_bridge_virtual_serves_until_interrupted(virtual_binary: Path) -> None:
    import os
    import selectors
    import signal

    from firmware_bridge import Bridge

    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge", "bridge", "virtual"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=20), "no URL line within 20 s"
        url = proc.stdout.readline().strip()
        assert url.startswith("serial:///dev/")
        with Bridge.open(url, timeout=3) as bridge:
            assert bridge.call("sys.ping", b"cli") == b"cli"
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bridge_proxy_command(sim: SimPtyServer) -> None:
    import os
    import selectors
    import signal

    from firmware_bridge import Bridge

    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge", "bridge", "proxy", sim.url, "--rate", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=20), "no URL line within 20 s"
        url = proc.stdout.readline().strip()
        with Bridge.open(url, timeout=3) as bridge:
            assert bridge.call("sys.ping", b"via proxy") == b"via proxy"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert json.loads(err.strip().splitlines()[-1])["to_device"]["bytes"] > 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
