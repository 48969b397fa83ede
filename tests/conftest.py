"""Fixtures shared by every test folder: real PortAudio sound devices on this machine (JACK's
dummy driver, paced like hardware, and ALSA's file plugin, sample-exact). One JACK server
serves the whole session."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest


def _require_program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package}", pytrace=False)
    return path


def rescan_portaudio() -> None:
    """PortAudio lists host APIs and devices once per process; make it look again."""
    from edgekit.media.audio import rescan_devices

    rescan_devices()


def _portaudio() -> None:
    try:
        import sounddevice  # noqa: F401
    except OSError as e:
        pytest.fail(f"PortAudio is missing ({e}): apt-get install libportaudio2", pytrace=False)


@pytest.fixture(scope="session")
def jack_device() -> Iterator[str]:
    """A JACK server on its dummy driver (16 kHz, 160-frame periods, 2 in / 2 out), paced like
    hardware; yields the PortAudio name of its device (indices change when PortAudio rescans).

    ``JACK_DEFAULT_SERVER`` names the server while the fixture lives, so programs started from a
    test see the device too; pass them an environment without it to hide the device.
    """
    jackd = _require_program("jackd", "jackd2")
    jack_wait = _require_program("jack_wait", "jackd2")
    _portaudio()
    import sounddevice

    name = f"edgekit-test-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    with tempfile.TemporaryFile() as log_file:
        server = subprocess.Popen(
            [
                jackd,
                "--no-realtime",
                "-n",
                name,
                "-d",
                "dummy",
                "-r",
                "16000",
                "-p",
                "160",
                "-C",
                "2",
                "-P",
                "2",
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
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
            rescan_portaudio()
            jack = [api for api in sounddevice.query_hostapis() if "JACK" in api["name"]]
            assert jack and jack[0]["devices"], (
                "PortAudio sees no JACK device: is libportaudio2 built with JACK?"
            )
            device = sounddevice.query_devices(jack[0]["devices"][0])["name"]
            yield str(device)
        finally:
            # Let PortAudio drop its JACK client while the server is still up: a JACK client
            # whose server vanished aborts the process when PortAudio terminates it.
            os.environ.pop("JACK_DEFAULT_SERVER", None)
            os.environ["JACK_NO_START_SERVER"] = "1"
            rescan_portaudio()
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


ASOUNDRC = """
pcm.{name} {{
    type plug
    slave {{
        pcm {{
            type file
            slave.pcm {{ type null }}
            file "{out}"
            infile "{inp}"
            format "raw"
        }}
        format FLOAT_LE
        rate {rate}
        channels 1
    }}
}}
"""


@pytest.fixture(scope="session")
def alsa_file_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An ALSA PCM over the `file` plugin: playback lands sample-exact (float32, 16 kHz, mono)
    in a raw file; unpaced. Configured through XDG_CONFIG_HOME/alsa/asoundrc."""
    _portaudio()
    import sounddevice

    root = tmp_path_factory.mktemp("alsa")
    (root / "alsa").mkdir()
    out, inp = root / "played.raw", root / "capture.raw"
    np.zeros(16, dtype="<f4").tofile(inp)
    name = "edgekit_file"
    (root / "alsa" / "asoundrc").write_text(
        ASOUNDRC.format(name=name, out=out, inp=inp, rate=16000)
    )
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(root)
    try:
        rescan_portaudio()
        names = [d["name"] for d in sounddevice.query_devices()]
        if name not in names:
            pytest.fail(
                f"ALSA did not pick up {root}/alsa/asoundrc (devices: {names}); the ALSA "
                "library comes with libasound2",
                pytrace=False,
            )
        yield {"name": name, "out": out, "in": inp, "rate": 16000}
    finally:
        if saved is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = saved
        rescan_portaudio()
