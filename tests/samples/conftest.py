"""Fixtures for the sample tests: a real PortAudio sound device on JACK's dummy driver."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest


def _require_program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package}", pytrace=False)
    return path


def _rescan_portaudio() -> None:
    """PortAudio lists host APIs and devices once per process; make it look again."""
    from edgekit.media.audio import rescan_devices

    rescan_devices()


@pytest.fixture(scope="session")
def jack_device() -> Iterator[str]:
    """A JACK server on its dummy driver (16 kHz, 160-frame periods, 2 in / 2 out), paced like
    hardware; yields the PortAudio name of its device.

    ``JACK_DEFAULT_SERVER`` names the server while the fixture lives, so programs started from a
    test see the device too; pass them an environment without it to hide the device.
    """
    jackd = _require_program("jackd", "jackd2")
    jack_wait = _require_program("jack_wait", "jackd2")
    try:
        import sounddevice
    except OSError as e:
        pytest.fail(f"PortAudio is missing ({e}): apt-get install libportaudio2", pytrace=False)

    name = f"edgekit-samples-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    command = [jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", "16000", "-p", "160"]
    with tempfile.TemporaryFile() as log_file:
        server = subprocess.Popen(
            [*command, "-C", "2", "-P", "2"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
        try:
            ready = subprocess.run(
                [jack_wait, "-s", name, "-w", "-t", "10"], env=env, capture_output=True, timeout=15
            )
            if ready.returncode != 0 or server.poll() is not None:
                log_file.seek(0)
                pytest.fail(f"jackd did not start: {log_file.read().decode(errors='replace')}")
            os.environ["JACK_DEFAULT_SERVER"] = name
            os.environ["JACK_NO_START_SERVER"] = "1"
            _rescan_portaudio()
            jack = [api for api in sounddevice.query_hostapis() if "JACK" in api["name"]]
            assert jack and jack[0]["devices"], (
                "PortAudio sees no JACK device: is libportaudio2 built with JACK?"
            )
            yield str(sounddevice.query_devices(jack[0]["devices"][0])["name"])
        finally:
            # Let PortAudio drop its JACK client while the server is still up: a JACK client
            # whose server vanished aborts the process when PortAudio terminates it.
            os.environ.pop("JACK_DEFAULT_SERVER", None)
            os.environ["JACK_NO_START_SERVER"] = "1"
            _rescan_portaudio()
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
