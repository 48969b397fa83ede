"""What this machine can run, and how to fix what it cannot."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check(
        "python",
        ok,
        f"{platform.python_version()} on {platform.machine()} {platform.system()}",
        "" if ok else "edgekit needs Python 3.10 or newer",
    )


def check_numpy() -> Check:
    import numpy

    return Check("numpy", True, numpy.__version__)


def check_onnxruntime() -> Check:
    try:
        import onnxruntime
    except ImportError:
        return Check("onnxruntime", False, "not installed", "pip install 'edgekit[onnx]'")
    providers = ", ".join(onnxruntime.get_available_providers())
    return Check("onnxruntime", True, f"{onnxruntime.__version__}; providers: {providers}")


def check_litert() -> Check:
    from edgekit.backends.litert import import_interpreter_module, runtime_name

    try:
        import_interpreter_module()
    except ImportError:
        return Check("litert", False, "not installed", "pip install 'edgekit[tflite]'")
    name = runtime_name()
    version = _version(name) or "?"
    detail = f"{name} {version}; delegates: XNNPACK (built in), external by path"
    if name == "tflite-runtime":
        import numpy

        if int(numpy.__version__.split(".")[0]) >= 2:
            return Check(
                "litert",
                False,
                f"tflite-runtime {version} with numpy {numpy.__version__}",
                "tflite-runtime needs numpy<2: pip install 'numpy<2', or use ai-edge-litert",
            )
    return Check("litert", True, detail)


def check_opencv() -> Check:
    try:
        import cv2
    except ImportError:
        return Check("opencv", False, "not installed", "pip install 'edgekit[vision]'")
    return Check("opencv", True, str(cv2.__version__))


def check_portaudio() -> Check:
    try:
        import sounddevice
    except ImportError:
        return Check("audio", False, "sounddevice not installed", "pip install 'edgekit[audio]'")
    except OSError as e:
        return Check("audio", False, f"PortAudio missing ({e})", "apt-get install libportaudio2")
    devices = sounddevice.query_devices()
    count = len(devices) if hasattr(devices, "__len__") else 0
    hint = "" if count else "no sound devices: start JACK (jackd -d dummy) or plug one in"
    return Check("audio", True, f"{sounddevice.get_portaudio_version()[1].split(',')[0]}; "
                 f"{count} devices", hint)  # fmt: skip


def check_serial() -> Check:
    try:
        from serial.tools import list_ports
    except ImportError:
        return Check("serial", False, "pyserial not installed", "pip install 'edgekit[serial]'")
    ports = [p.device for p in list_ports.comports()]
    return Check("serial", True, f"{len(ports)} ports" + (f": {', '.join(ports)}" if ports else ""))


def check_usb() -> Check:
    try:
        import usb.core
    except ImportError:
        return Check("usb", False, "pyusb not installed", "pip install 'edgekit[usb]'")
    try:
        devices = list(usb.core.find(find_all=True) or [])
    except usb.core.NoBackendError:
        return Check("usb", False, "no libusb backend", "apt-get install libusb-1.0-0")
    except usb.core.USBError as e:
        return Check("usb", False, f"USB access failed: {e}", "run as root or add a udev rule")
    return Check("usb", True, f"libusb ok; {len(devices)} devices visible")


def check_compiler() -> Check:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return Check(
            "c compiler",
            False,
            "none found (needed to build the virtual bridge device)",
            "apt-get install build-essential",
        )
    return Check("c compiler", True, cc)


CHECKS: tuple[Callable[[], Check], ...] = (
    check_python,
    check_numpy,
    check_onnxruntime,
    check_litert,
    check_opencv,
    check_portaudio,
    check_serial,
    check_usb,
    check_compiler,
)


def run_checks() -> list[Check]:
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as e:  # a broken install must show up as a failed check, not a crash
            name = check.__name__.removeprefix("check_")
            results.append(Check(name, False, f"{type(e).__name__}: {e}", "reinstall the package"))
    return results
