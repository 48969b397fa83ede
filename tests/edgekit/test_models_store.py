"""Manifests and the model store: every shipped manifest parses, fetches and verifies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit import models
from edgekit.manifest import Manifest, Source

SHIPPED = {
    "face-detection-short-range",
    "silero-vad",
    "ppocr-v4-det",
    "ppocr-v4-rec",
    "ppocr-cls",
}


def test_shipped_manifests_are_listed() -> None:
    names = {m.name for m in models.list_manifests()}
    assert names >= SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_fetch_and_verify(name: str) -> None:
    path = models.fetch(name)
    manifest = models.get_manifest(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest.sha256
    assert models.verify(name) == path
    model = edgekit.load(name)
    assert model.manifest is not None and model.manifest.name == name
    for tensor in manifest.output.tensors:
        assert tensor in [s.name for s in model.outputs]
    if manifest.input.name:
        assert manifest.input.name in [s.name for s in model.inputs]


def test_file_source_relative_to_manifest(tmp_path: Path) -> None:
    data = models.fetch("ppocr-cls").read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cls.onnx").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    manifest_path = tmp_path / "cls.toml"
    manifest_path.write_text(
        f'name = "cls-local"\nformat = "onnx"\nlicense = "Apache-2.0"\n'
        f'source = "file:sub/cls.onnx"\nsha256 = "{digest}"\ntask = "classification"\n'
        '[output]\nlabels = ["0", "180"]\n'
    )
    model = edgekit.load(manifest_path)
    assert model.path == (tmp_path / "sub" / "cls.onnx").resolve()
    assert model.manifest is not None and model.manifest.output.labels == ("0", "180")


def test_url_source_is_fetched_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = models.fetch("silero-vad").read_bytes()
    served = tmp_path / "served.onnx"
    served.write_bytes(data)
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    # The URL loader is urllib; a file:// URL exercises it without any network.
    manifest = Manifest(
        name="vad-by-url",
        format="onnx",
        source=Source("url", served.as_uri()),
        license="MIT",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    path = models.fetch(manifest)
    assert path == tmp_path / "cache" / "vad-by-url" / "served.onnx"
    assert path.read_bytes() == data
    served.write_bytes(data[:-1] + b"x")
    with pytest.raises(edgekit.ChecksumMismatch, match="nothing was installed"):
        models.fetch(manifest, force=True)
    assert path.read_bytes() == data  # the verified copy was kept


def test_manifest_search_path_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = models.fetch("ppocr-cls").read_bytes()
    (tmp_path / "mine.onnx").write_bytes(data)
    (tmp_path / "my-model.toml").write_text(
        'name = "my-model"\nformat = "onnx"\nlicense = "x"\nsource = "file:mine.onnx"\n'
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"\n'
    )
    monkeypatch.setenv("EDGEKIT_MODELS", str(tmp_path))
    assert "my-model" in {m.name for m in models.list_manifests()}
    assert edgekit.load("my-model").path.name == "mine.onnx"


def test_built_model_is_verified_against_its_recorded_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = models.fetch("shapes-cnn")  # built by models/build_shapes.py on first fetch
    record = built.with_name(built.name + ".sha256")
    assert record.read_text().split()[0] == hashlib.sha256(built.read_bytes()).hexdigest()
    model = edgekit.load("shapes-cnn")
    assert model.manifest is not None and model.manifest.output.labels[0] == "circle"
    # a copy of the cache with one flipped byte is refused
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    copy = models.cached_path("shapes-cnn")
    copy.parent.mkdir(parents=True)
    data = bytearray(built.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    copy.with_name(copy.name + ".sha256").write_text(record.read_text())
    with pytest.raises(edgekit.ChecksumMismatch):
        edgekit.load("shapes-cnn")
    # without its record the copy is not trusted: it is built again, and then verifies
    copy.with_name(copy.name + ".sha256").unlink()
    rebuilt = edgekit.load("shapes-cnn")
    assert rebuilt.path == copy and copy.read_bytes() != bytes(data)


BUILD_SCRIPT = """
import argparse, pathlib, onnx
from onnx import TensorProto, helper
parser = argparse.ArgumentParser()
parser.add_argument("--out")
parser.add_argument("--quiet", action="store_true")
args = parser.parse_args()
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
graph = helper.make_graph([helper.make_node("{op}", ["x"], ["y"])], "g", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 9
onnx.save(model, str(pathlib.Path(args.out) / "tiny.onnx"))
"""


def test_build_source_rebuilds_when_its_script_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "build_tiny.py").write_text(BUILD_SCRIPT.replace("{op}", "Relu"))
    manifest = tmp_path / "tiny.toml"
    manifest.write_text(
        'name = "tiny"\nformat = "onnx"\nlicense = "x"\nsource = "build:build_tiny.py#tiny.onnx"\n'
    )
    said: list[str] = []
    first = models.fetch(Manifest.from_file(manifest), progress=said.append)
    assert any("building with build_tiny.py" in s for s in said)
    said.clear()
    assert models.fetch(Manifest.from_file(manifest), progress=said.append) == first
    assert said == []  # cached, nothing rebuilt
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    assert edgekit.load(manifest).run(x)["y"].tolist() == [[0.0, 2.0, 0.0, 4.0]]
    (tmp_path / "build_tiny.py").write_text(BUILD_SCRIPT.replace("{op}", "Neg"))
    models.fetch(Manifest.from_file(manifest), progress=said.append)
    assert any("build script changed" in s for s in said)
    assert edgekit.load(manifest).run(x)["y"].tolist() == [[1.0, -2.0, 3.0, -4.0]]


def test_listing_skips_foreign_toml_but_loading_it_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "settings.toml").write_text('theme = "dark"\n')
    monkeypatch.setenv("EDGEKIT_MODELS", str(tmp_path))
    names = {m.name for m in models.list_manifests()}
    assert "silero-vad" in names
    assert "settings.toml" in caplog.text and "unknown key theme" in caplog.text
    with pytest.raises(edgekit.ManifestError, match="unknown key theme"):
        edgekit.load(tmp_path / "settings.toml")
