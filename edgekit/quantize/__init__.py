"""Post-training quantization that never hands back a model slower or worse than the float one
without saying so.

    result = edgekit.quantize.quantize("ppocr-cls", calibration="photos/", search=True)
    print(result.message, result.report.describe())

``quantize`` calibrates through the model manifest's own preprocessing, builds one recipe (or,
with ``search=True``, every candidate recipe), checks each against the float model on held-out
samples (the task metric the manifest's task implies, and tensor metrics), keeps the costliest
nodes in float while a recipe misses the accuracy budget, times each against the float model on
this device, and returns the fastest that passes, or the float model with a clear message.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import EdgekitError, InputError
from edgekit.quantize.calibration import CalibrationData, load_calibration
from edgekit.quantize.core import Candidate, QuantizationError, QuantizeResult, quantize_model
from edgekit.quantize.recipes import CANDIDATES, ORT_DEFAULT, Recipe
from edgekit.quantize.report import AccuracyReport

if TYPE_CHECKING:
    from edgekit.manifest import Manifest

Progress = Callable[[str], None]


def _resolve(model: Any) -> tuple[Path, Manifest | None]:
    from edgekit.manifest import Manifest
    from edgekit.model import Model, load

    if isinstance(model, Model):
        return model.path, model.manifest
    if isinstance(model, Manifest):
        loaded = load(model)
        return loaded.path, model
    loaded = load(model)
    return loaded.path, loaded.manifest


def quantize(
    model: Any,
    calibration: str | CalibrationData,
    *,
    mode: str = "static",
    recipe: Recipe | None = None,
    search: bool = False,
    max_drop: float | None = None,
    output: str | Path | None = None,
    count: int = 32,
    held_out: int = 16,
    size: tuple[int, int] | None = None,
    threads: Sequence[int] = (1,),
    progress: Progress | None = None,
    budget_rounds: int = 3,
    budget_segments: int = 12,
) -> QuantizeResult:
    """Quantize an ONNX or a TFLite model.

    ONNX models go through onnxruntime's tools; ``.tflite`` models through ai-edge-quantizer
    (static int8 with float inputs and outputs, or dynamic-range int8 weights; see
    :mod:`edgekit.quantize.tflite`).

    Args:
        model: a manifest name, a path, a Manifest or a loaded Model.
        calibration: an image folder, a video file, a WAV folder, ``.npy``/``.npz`` files, a
            live source URL (``cam:0``), or prepared :class:`CalibrationData`.
        mode: ``static``, ``dynamic`` or ``fp16`` (ignored when ``recipe`` is given).
        recipe: exactly what to do; see :class:`Recipe`.
        search: try every candidate recipe and keep the fastest that passes.
        max_drop: accuracy budget: the largest acceptable fall of the task metric (0.01 = 1 %).
            With ``search`` it defaults to 0.01.
        output: where to write the model; a manifest ``.toml`` is written beside it.
        count, held_out: calibration and held-out sample counts.
        size: (height, width) for models with dynamic image inputs.
        threads: thread counts to time both models with.
        progress: called with one line of text per step.
        budget_rounds, budget_segments: the budget loop cuts the graph into this many runs of
            nodes, keeps the costliest run in float, and repeats up to this many rounds.
    """
    from edgekit.model import load

    path, manifest = _resolve(model)
    suffix = path.suffix.lower()
    if suffix not in (".onnx", ".tflite"):
        raise InputError(
            f"{path.name}: edgekit quantizes .onnx and .tflite models; convert {suffix} "
            "models to one of them first"
        )
    chosen = recipe or (None if search else Recipe(mode=mode))
    options: dict[str, Any] = {}
    if suffix == ".tflite":
        from edgekit.quantize import tflite

        tflite.import_quantizer()
        if chosen is not None:
            chosen = tflite.check_recipe(chosen)
        options = {"job_type": tflite.TfliteJob, "search_recipes": tflite.TFLITE_CANDIDATES}
    if isinstance(calibration, CalibrationData):
        data = calibration
    else:
        float_model = load(path) if manifest is None else load(manifest)
        data = load_calibration(float_model, calibration, count=count, held_out=held_out, size=size)
    result, job = quantize_model(
        path,
        data,
        manifest=manifest,
        recipe=chosen,
        search=search,
        max_drop=max_drop,
        threads=threads,
        progress=progress,
        budget_rounds=budget_rounds,
        budget_segments=budget_segments,
        **options,
    )
    try:
        if result.used_float or result.recipe is None:
            return result
        name = _default_name(path, result.recipe)
        target = Path(output) if output is not None else Path.cwd() / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(result.path.read_bytes())
        manifest_path = write_manifest(target, manifest, result, data.source)
        return replace(result, path=target, manifest_path=manifest_path)
    finally:
        # The candidates' files go with the work folder; their reports stay in the result.
        shutil.rmtree(job.workdir, ignore_errors=True)


def _default_name(path: Path, recipe: Recipe) -> str:
    tag = "fp16" if recipe.mode == "fp16" else "int8"
    return f"{path.stem}-{tag}{path.suffix.lower()}"


def write_manifest(
    model_path: Path, original: Manifest | None, result: QuantizeResult, calibration: str
) -> Path:
    """A manifest beside the quantized model: where it came from and how it was made."""
    from edgekit.models import sha256_of
    from edgekit.quantize.toml import dumps

    assert result.recipe is not None and result.report is not None
    report = result.report
    fmt = "tflite" if model_path.suffix.lower() == ".tflite" else "onnx"
    recipe_label = result.recipe.label
    if fmt == "tflite":
        from edgekit.quantize import tflite

        recipe_label = tflite.label(result.recipe)
    data: dict[str, Any] = {
        "name": model_path.stem,
        "format": fmt,
        "license": original.license if original is not None else "same as the float model",
        "source": f"file:{model_path.name}",
        "sha256": sha256_of(model_path),
        "description": (
            f"{recipe_label} quantization of "
            f"{original.name if original is not None else model_path.name}"
        ),
    }
    if original is not None:
        if original.task:
            data["task"] = original.task
        data["input"] = _contract_dict(original.input)
        data["output"] = {
            k: v
            for k, v in (
                ("tensors", list(original.output.tensors)),
                ("labels", list(original.output.labels)),
                ("labels_from", original.output.labels_from),
            )
            if v
        }
        if original.head:
            data["head"] = dict(original.head)
    data["quantization"] = {
        "from": original.name if original is not None else str(result.path),
        "recipe": recipe_label,
        **{k: v for k, v in result.recipe.as_dict().items() if k != "exclude"},
        "kept_float": list(result.recipe.exclude),
        "calibration": calibration,
        "metric": report.metric_name,
        "metric_value": round(report.metric, 5),
        "held_out": report.samples,
        "speedup_1_thread": round(report.speedup, 3),
    }
    if fmt == "tflite":
        data["quantization"].update(tflite.manifest_fields(result.recipe))
        for onnx_only in ("format", "reduce_range"):
            del data["quantization"][onnx_only]
    target = model_path.with_suffix(".toml")
    target.write_text(dumps(data), encoding="utf-8")
    return target


def _contract_dict(contract: Any) -> dict[str, Any]:
    from dataclasses import fields

    default = type(contract)()
    out: dict[str, Any] = {}
    for f in fields(contract):
        value = getattr(contract, f.name)
        if value != getattr(default, f.name) and value is not None:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


__all__ = [
    "CANDIDATES",
    "ORT_DEFAULT",
    "AccuracyReport",
    "CalibrationData",
    "Candidate",
    "EdgekitError",
    "QuantizationError",
    "QuantizeResult",
    "Recipe",
    "load_calibration",
    "quantize",
    "write_manifest",
]
