"""Post-training quantization of LiteRT (``.tflite``) models with ai-edge-quantizer.

ai-edge-quantizer needs no TensorFlow, but it calibrates through a model's SignatureDefs, reads
only constant fp32 weights, and identifies operators by their current builtin code. Models built
by older converters (MediaPipe's among them) have no SignatureDef, store fp16 weights behind
``DEQUANTIZE`` operators, keep their operator codes in the deprecated field, and leave RELUs as
separate operators (which XNNPACK does not run in int8). :func:`prepare` rewrites a copy of the
float model so the quantizer sees what it expects; the rewritten model gives bit-identical
outputs on LiteRT. The quantized models keep float inputs and outputs, so they replace
the float model without changes to the code that feeds and reads it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BackendUnavailable, EdgekitError
from edgekit.quantize.core import Job, QuantizationError
from edgekit.quantize.recipes import Recipe
from edgekit.quantize.report import Metric, Outputs, metric_for

SIGNATURE_KEY = "serving_default"
# Detection match: a quantized face matches a float one when the boxes overlap this much and the
# scores (0..1) differ by no more than this.
MIN_IOU = 0.5
MAX_SCORE_GAP = 0.1
INSTALL = "pip install 'edgekit[tflite-quantize]' (or pip install ai-edge-quantizer)"

# Tried by --search on .tflite models: int8 kernels first (the only recipes that can be faster),
# then dynamic-range int8 weights, which mostly shrink the file.
TFLITE_CANDIDATES: tuple[Recipe, ...] = (
    Recipe(activations="s8"),
    Recipe(activations="s8", per_channel=False),
    Recipe(mode="dynamic", weights="s8"),
)


def import_quantizer() -> Any:
    """The ``ai_edge_quantizer`` package, or a clear error naming what to install."""
    try:
        return importlib.import_module("ai_edge_quantizer.quantizer")
    except ImportError as e:
        raise BackendUnavailable(
            f"quantizing .tflite models needs ai-edge-quantizer, which needs no TensorFlow "
            f"({e}): {INSTALL}"
        ) from e


def _schema() -> tuple[Any, Any]:
    try:
        from ai_edge_litert import schema_py_generated
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as e:
        raise BackendUnavailable(f"rewriting .tflite models needs ai-edge-litert: {INSTALL}") from e
    return schema_py_generated, flatbuffer_utils


def quantizer_version() -> str:
    """The installed ai-edge-quantizer's version, for the manifest."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-quantizer")
    except PackageNotFoundError:
        return "unknown"


# -- rewriting the float model ---------------------------------------------------------------------
def read_model(path: Path) -> Any:
    """The flatbuffer of ``path`` as ai-edge-litert's mutable object tree (``ModelT``)."""
    _, fb = _schema()
    try:
        return fb.read_model(str(path))
    except Exception as e:  # flatbuffers raises bare errors on truncated files
        raise QuantizationError(f"{path} is not a readable .tflite flatbuffer: {e}") from e


def write_model(model: Any, path: Path) -> None:
    """Serialise a ``ModelT`` to ``path``."""
    _, fb = _schema()
    fb.write_model(model, str(path))


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def add_signature(model: Any, key: str = SIGNATURE_KEY) -> bool:
    """Give subgraph 0 a SignatureDef naming its inputs and outputs; False if it has one."""
    schema, _ = _schema()
    if model.signatureDefs:
        return False
    graph = model.subgraphs[0]

    def tensor_map(index: int) -> Any:
        entry = schema.TensorMapT()
        entry.name = _text(graph.tensors[index].name)
        entry.tensorIndex = int(index)
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey = key
    signature.subgraphIndex = 0
    signature.inputs = [tensor_map(i) for i in graph.inputs]
    signature.outputs = [tensor_map(i) for i in graph.outputs]
    model.signatureDefs = [signature]
    return True


def signature_of(path: Path) -> tuple[str, dict[str, str]]:
    """The SignatureDef of the main graph: its key, and its input names by tensor name."""
    model = read_model(path)
    graph = model.subgraphs[0]
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            names = {
                _text(graph.tensors[entry.tensorIndex].name): _text(entry.name)
                for entry in signature.inputs
            }
            return _text(signature.signatureKey), names
    raise QuantizationError(
        f"{path.name} has SignatureDefs, but none for its main graph; ai-edge-quantizer "
        "calibrates through one: re-export the model with a signature for it"
    )


def current_operator_codes(model: Any) -> int:
    """Copy operator codes from the deprecated field (pre-2.4 converters) into the current one.

    ai-edge-quantizer reads only ``builtinCode``, which is 0 (``ADD``) in such models, so every
    convolution would be quantized as an addition, weights included.
    """
    changed = 0
    for code in model.operatorCodes:
        real = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if code.builtinCode != real:
            code.builtinCode = real
            changed += 1
    return changed


def dequantize_fp16_weights(model: Any) -> int:
    """Replace ``DEQUANTIZE`` of constant fp16 weights by the fp32 weights themselves.

    The quantizer treats a weight that is computed at run time as an activation; fp16 to fp32
    is exact, so the outputs do not change. Returns how many weights were converted.
    """
    schema, fb = _schema()
    graph = model.subgraphs[0]
    dequantize = {
        index
        for index, code in enumerate(model.operatorCodes)
        if fb.get_builtin_code_from_operator_code(code) == schema.BuiltinOperator.DEQUANTIZE
    }
    kept = []
    folded = 0
    for op in graph.operators:
        if op.opcodeIndex in dequantize:
            source = graph.tensors[op.inputs[0]]
            data = model.buffers[source.buffer].data
            if source.type == schema.TensorType.FLOAT16 and data is not None and len(data):
                weights = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float16)
                buffer = schema.BufferT()
                buffer.data = np.frombuffer(weights.astype("<f4").tobytes(), np.uint8)
                model.buffers.append(buffer)
                graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
                folded += 1
                continue
        kept.append(op)
    graph.operators = kept
    if folded:
        _drop_unused_tensors(model)
    return folded


def fuse_relu(model: Any) -> int:
    """Fold a standalone ``RELU`` into the ``ADD`` or convolution that feeds it (exact in float).

    Old converters left these separate; quantized, each is an int8 RELU with its own scale that
    XNNPACK does not take, so it runs on the reference kernel between two delegate partitions
    (measured: static int8 MediaPipe face detection 6x slower than float). Returns how many.
    """
    schema, fb = _schema()
    graph = model.subgraphs[0]

    def kind(op: Any) -> int:
        return int(fb.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))

    ops = schema.BuiltinOperator
    fusable = {ops.ADD, ops.CONV_2D, ops.DEPTHWISE_CONV_2D}
    producer = {out: op for op in graph.operators for out in op.outputs}
    readers: dict[int, int] = {}
    for op in graph.operators:
        for i in op.inputs:
            readers[i] = readers.get(i, 0) + 1
    removed = []
    for op in graph.operators:
        if kind(op) != ops.RELU:
            continue
        source = producer.get(op.inputs[0])
        if (
            source is None
            or kind(source) not in fusable
            or readers.get(op.inputs[0]) != 1
            or op.inputs[0] in graph.outputs
            or source.builtinOptions is None
            or source.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.NONE
        ):
            continue
        source.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU
        source.outputs = [op.outputs[0]]
        producer[op.outputs[0]] = source
        removed.append(op)
    if removed:
        graph.operators = [op for op in graph.operators if all(op is not r for r in removed)]
        _drop_unused_tensors(model)
    return len(removed)


def _drop_unused_tensors(model: Any) -> None:
    schema, _ = _schema()
    graph = model.subgraphs[0]
    used = {*graph.inputs, *graph.outputs}
    for op in graph.operators:
        used.update(i for i in op.inputs if i >= 0)
        used.update(op.outputs)
    order = [i for i in range(len(graph.tensors)) if i in used]
    index = {old: new for new, old in enumerate(order)}
    shared = {graph.tensors[i].buffer for i in order}
    for i in range(len(graph.tensors)):
        if i not in used and graph.tensors[i].buffer not in shared:
            model.buffers[graph.tensors[i].buffer] = schema.BufferT()
    graph.tensors = [graph.tensors[i] for i in order]
    for op in graph.operators:
        op.inputs = [index[i] if i >= 0 else i for i in op.inputs]
        op.outputs = [index[i] for i in op.outputs]
    graph.inputs = [index[i] for i in graph.inputs]
    graph.outputs = [index[i] for i in graph.outputs]
    for signature in model.signatureDefs or []:
        for entry in [*signature.inputs, *signature.outputs]:
            entry.tensorIndex = index[entry.tensorIndex]


def prepare(source: Path, workdir: Path) -> tuple[Path, list[str]]:
    """Write the float model as ai-edge-quantizer needs it; returns the file and notes."""
    model = read_model(source)
    if len(model.subgraphs) != 1:
        raise QuantizationError(
            f"{source.name} has {len(model.subgraphs)} subgraphs; edgekit quantizes single-graph "
            ".tflite models (control flow and multi-signature models are not supported)"
        )
    if any(getattr(b, "offset", 0) for b in model.buffers):
        raise QuantizationError(
            f"{source.name} keeps its weights outside the flatbuffer (a model over 2 GB); "
            "quantize it with ai-edge-quantizer directly"
        )
    notes: list[str] = []
    if add_signature(model):
        notes.append(f"added a SignatureDef {SIGNATURE_KEY!r} (the model has none)")
    if current_operator_codes(model):
        notes.append("operator codes moved from the deprecated field (old converter)")
    folded = dequantize_fp16_weights(model)
    if folded:
        notes.append(f"{folded} fp16 weights converted to fp32 for the quantizer (exact)")
    fused = fuse_relu(model)
    if fused:
        notes.append(f"{fused} standalone RELU ops fused into the op before them (exact)")
    prepared = workdir / "prepared.tflite"
    write_model(model, prepared)
    return prepared, notes


def restore_io_names(quantized: Path, reference: Path) -> None:
    """Give the quantized model's inputs and outputs the float model's tensor names.

    The quantizer names the float outputs of its DEQUANTIZE ops ``NAME_dequant``; manifests
    and task heads find outputs by name.
    """
    model = read_model(quantized)
    graph = model.subgraphs[0]
    float_graph = read_model(reference).subgraphs[0]
    wanted = [
        _text(float_graph.tensors[i].name) for i in [*float_graph.inputs, *float_graph.outputs]
    ]
    names = [_text(t.name) for t in graph.tensors]
    for index, name in zip([*graph.inputs, *graph.outputs], wanted, strict=True):
        if names[index] == name:
            continue
        if name in names:
            other = names.index(name)
            names[other] = graph.tensors[other].name = f"{name}_quantized"
        names[index] = graph.tensors[index].name = name
    write_model(model, quantized)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep ai-edge-quantizer's own tqdm bars and its debugging-mode warning off the terminal.

    Its bars (one per calibration chunk) would interleave with edgekit's progress lines, and
    its calibrator keeps every intermediate tensor on purpose, which LiteRT warns about.
    Errors still propagate as exceptions.
    """
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.filterwarnings("ignore", message=".*preserve_all_tensors.*")
        yield


# -- recipes ---------------------------------------------------------------------------------------
def check_recipe(recipe: Recipe) -> Recipe:
    """The recipe as ai-edge-quantizer can build it, or a QuantizationError saying why not."""
    if recipe.mode == "fp16":
        raise QuantizationError(
            "edgekit builds no fp16 .tflite models: export the model with fp16 weights instead "
            "(the MediaPipe models already store them), or use mode static or dynamic"
        )
    if recipe.weights != "s8":
        raise QuantizationError(
            f"{recipe.label}: TFLite integer kernels take s8 weights, not {recipe.weights}"
        )
    if recipe.method != "minmax":
        raise QuantizationError(
            f"{recipe.label}: ai-edge-quantizer calibrates by min/max only; use method minmax"
        )
    if recipe.reduce_range:
        raise QuantizationError(f"{recipe.label}: reduce-range has no meaning for TFLite")
    # TFLite's int8 specification: activations are int8; u8 (the ONNX default) means the same
    # choice here, and QDQ/QOperator is an ONNX distinction.
    return replace(recipe, activations="s8", format="qdq")


def tool_recipe(recipe: Recipe) -> str:
    """The ai-edge-quantizer recipe name this recipe corresponds to."""
    if recipe.mode == "dynamic":
        return "dynamic_wi8_afp32"
    return "static_wi8_ai8"


def label(recipe: Recipe) -> str:
    """What the recipe does to a .tflite model, and the ai-edge-quantizer recipe it uses."""
    granularity = "per-channel" if recipe.per_channel else "per-tensor"
    text = f"{'dynamic' if recipe.mode == 'dynamic' else 'static'} int8 {granularity}"
    if recipe.exclude:
        text += f", {len(recipe.exclude)} ops in float"
    return f"{text} [{tool_recipe(recipe)}]"


def manifest_fields(recipe: Recipe) -> dict[str, Any]:
    """What a quantized model's manifest records beyond the recipe: the tool and its recipe."""
    return {
        "tool": f"ai-edge-quantizer {quantizer_version()}",
        "tool_recipe": tool_recipe(recipe),
        "float_io": True,
    }


def _scope(name: str) -> str:
    # ai-edge-quantizer matches regexes against an op's output tensor names joined by ";".
    return f"(^|;){re.escape(name)};"


def build_recipe(recipe: Recipe) -> list[dict[str, Any]]:
    """ai-edge-quantizer's recipe (a list of op configs) for ``recipe``."""
    import_quantizer()
    manager_module = importlib.import_module("ai_edge_quantizer.recipe_manager")
    qtyping = importlib.import_module("ai_edge_quantizer.qtyping")
    algorithms = importlib.import_module("ai_edge_quantizer.algorithm_manager")
    granularity = (
        qtyping.QuantGranularity.CHANNELWISE
        if recipe.per_channel
        else qtyping.QuantGranularity.TENSORWISE
    )
    every = qtyping.TFLOperationName.ALL_SUPPORTED
    manager = manager_module.RecipeManager()
    if recipe.mode == "dynamic":
        manager.add_dynamic_config(".*", every, 8, granularity)
    else:
        manager.add_static_config(".*", every, 8, 8, granularity)
        # Float inputs and outputs: a QUANTIZE op in front, DEQUANTIZE ops behind.
        for boundary in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            manager.add_quantization_config(
                ".*", boundary, None, algorithms.AlgorithmName.NO_QUANTIZE
            )
    for name in recipe.exclude:
        manager.add_quantization_config(
            _scope(name), every, None, algorithms.AlgorithmName.NO_QUANTIZE
        )
    result: list[dict[str, Any]] = manager.get_quantization_recipe()
    return result


def operator_outputs(path: Path) -> list[str]:
    """The first output tensor name of every operator, in graph order."""
    graph = read_model(path).subgraphs[0]
    return [_text(graph.tensors[op.outputs[0]].name) for op in graph.operators if op.outputs]


def output_heads(path: Path) -> list[tuple[str, ...]]:
    """For each model output, the operators that feed it and no other output (its head).

    Heads are where ranges go wrong: a score head's logits span thousands below zero and a few
    above, which one int8 scale cannot hold.
    """
    graph = read_model(path).subgraphs[0]
    producer = {out: op for op in graph.operators for out in op.outputs}
    reaches: dict[int, set[int]] = {}
    for position, output in enumerate(graph.outputs):
        stack = [output]
        seen: set[int] = set()
        while stack:
            tensor = stack.pop()
            op = producer.get(tensor)
            if tensor in seen or op is None:
                continue
            seen.add(tensor)
            reaches.setdefault(id(op), set()).add(position)
            stack.extend(i for i in op.inputs if i >= 0)
    heads = []
    for position in range(len(graph.outputs)):
        head = tuple(
            _text(graph.tensors[op.outputs[0]].name)
            for op in graph.operators
            if op.outputs and reaches.get(id(op)) == {position}
        )
        if head:
            heads.append(head)
    return heads


# -- the detection metric ----------------------------------------------------------------------
def detection_match(ref: Outputs, quant: Outputs, manifest: Any) -> float:
    """Faces decoded from both models by the manifest's head, matched one to one: a pair matches
    when its boxes overlap by IoU >= 0.5 and its scores differ by at most 0.1. Returns matched
    pairs / the larger of the two face counts, over all held-out samples (1.0 when neither
    model finds a face).

    The score condition matters: a quantized score head can collapse every logit onto the
    decision threshold, which still "finds" each face but loses all of them at any stricter
    threshold.
    """
    from edgekit.tasks.face import FaceDetectionHead, decode_faces

    head = FaceDetectionHead.from_manifest(manifest)
    matched = total = 0
    for a, b in zip(ref, quant, strict=True):
        faces_a = decode_faces(
            a[head.regressors_name], a[head.scores_name], head.anchors, head.config
        )
        faces_b = decode_faces(
            b[head.regressors_name], b[head.scores_name], head.anchors, head.config
        )
        total += max(len(faces_a), len(faces_b))
        free = list(faces_b)
        for face in faces_a:
            ious = [
                box_iou(face.box, other.box)
                if abs(face.score - other.score) <= MAX_SCORE_GAP
                else 0.0
                for other in free
            ]
            if ious and max(ious) >= MIN_IOU:
                free.pop(int(np.argmax(ious)))
                matched += 1
    return matched / total if total else 1.0


def box_iou(a: Any, b: Any) -> float:
    """Intersection over union of two :class:`~edgekit.tasks.types.Box` values."""
    x1, y1 = max(a.x1, b.x1), max(a.y1, b.y1)
    x2, y2 = min(a.x2, b.x2), min(a.y2, b.y2)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return float(inter / union) if union > 0 else 0.0


# -- the job -------------------------------------------------------------------------------------
class TfliteJob(Job):
    """A .tflite float model quantized by ai-edge-quantizer, measured on LiteRT."""

    _qsvs: dict[str, Any] | None = None
    # Small LiteRT models run in 1-3 ms, where a busy board's noise swamps 7 rounds (measured:
    # int8/float ratios from 0.8x to 1.5x on one model); 41 rounds take about a second.
    latency_rounds: ClassVar[int] = 41

    def _prepare(self) -> tuple[Path, list[str]]:
        return prepare(self.source, self.workdir)

    def label(self, recipe: Recipe) -> str:
        return label(recipe)

    def for_this_cpu(self, recipe: Recipe) -> Recipe:
        # LiteRT's integer kernels do not saturate: nothing to decide
        return recipe if recipe.reduce_range is not None else replace(recipe, reduce_range=False)

    def metric(self) -> tuple[str, Metric]:
        if self.manifest is not None and self.manifest.task == "face-detection":
            return f"detection match (IoU >= {MIN_IOU}, score within {MAX_SCORE_GAP})", (
                detection_match
            )
        return metric_for(self.manifest)

    def build(self, recipe: Recipe) -> Path:
        aeq = import_quantizer()
        recipe = check_recipe(recipe)
        self._built += 1
        out = self.workdir / f"candidate-{self._built}.tflite"
        try:
            with _quiet():
                quantizer = aeq.Quantizer(str(self.prepared), build_recipe(recipe))
                calibration = self.calibrate(quantizer) if quantizer.need_calibration else None
                result = quantizer.quantize(
                    calibration, enable_progress_bar=False, enable_progress_report=False
                )
        except EdgekitError:
            raise
        except Exception as e:  # ai-edge-quantizer raises ValueError/RuntimeError and friends
            raise QuantizationError(
                f"{label(recipe)}: ai-edge-quantizer could not quantize the model: {e}"
            ) from e
        out.write_bytes(bytes(result.quantized_model))
        restore_io_names(out, self.prepared)
        return out

    def calibrate(self, quantizer: Any) -> dict[str, Any]:
        """Activation ranges over the calibration samples (computed once per job).

        Fed in a few chunks, each continuing the ranges of the one before, so that progress
        can be reported; the ranges are the same as from one pass.
        """
        if self._qsvs is None:
            samples = self.data.calibration
            total = len(samples)
            step = max(1, -(-total // 8))
            threads = max(1, min(4, os.cpu_count() or 1))
            # Feeds are keyed by tensor name; the signature may name its inputs differently.
            key, names = signature_of(self.prepared)
            qsvs: dict[str, Any] | None = None
            for start in range(0, total, step):
                chunk = [
                    {names.get(name, name): value for name, value in sample.items()}
                    for sample in samples[start : start + step]
                ]
                qsvs = quantizer.calibrate(
                    {key: chunk}, previous_calibration_result=qsvs, num_threads=threads
                )
                done = start + len(chunk)
                self.say(f"  calibrating {_bar(done, total)} {done}/{total} samples")
            self._qsvs = qsvs or {}
        return self._qsvs

    def segments(self, recipe: Recipe, count: int) -> list[tuple[str, ...]]:
        """Runs of operators (by output tensor) to try in float: each output's own head first,
        then the rest of the graph in order, cut into as many runs as remain of ``count``."""
        heads = [
            run
            for head in output_heads(self.prepared)
            if (run := tuple(n for n in head if n not in recipe.exclude))
        ]
        taken = {name for head in heads for name in head}
        names = [
            n for n in operator_outputs(self.prepared) if n not in recipe.exclude and n not in taken
        ]
        if not names:
            return heads
        runs = max(1, count - len(heads))
        size = max(1, -(-len(names) // runs))
        return heads + [tuple(names[i : i + size]) for i in range(0, len(names), size)]


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


__all__ = [
    "SIGNATURE_KEY",
    "TFLITE_CANDIDATES",
    "TfliteJob",
    "add_signature",
    "box_iou",
    "build_recipe",
    "check_recipe",
    "current_operator_codes",
    "dequantize_fp16_weights",
    "detection_match",
    "fuse_relu",
    "import_quantizer",
    "label",
    "manifest_fields",
    "output_heads",
    "prepare",
    "restore_io_names",
    "signature_of",
    "tool_recipe",
]
