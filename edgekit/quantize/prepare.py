"""Make an ONNX model ready for onnxruntime's quantizer, working around its known traps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgekit.errors import BackendUnavailable, ModelFormatError

log = logging.getLogger(__name__)

MIN_OPSET = 13  # per-channel DequantizeLinear needs 'axis', which opset 12 does not have


def import_quantization() -> Any:
    try:
        import onnx
        from onnxruntime import quantization
    except ImportError as e:
        raise BackendUnavailable(
            "quantization needs onnx and onnxruntime's quantization tools: "
            "pip install 'edgekit[quantize]'"
        ) from e
    del onnx
    return quantization


def opset_of(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def prepare(source: Path, workdir: Path) -> tuple[Path, list[str]]:
    """Upgrade old opsets and run quant_pre_process; returns the prepared file and notes."""
    import onnx
    from onnx import version_converter

    quantization = import_quantization()
    notes: list[str] = []
    try:
        model = onnx.load(str(source))
    except Exception as e:  # onnx raises DecodeError and friends
        raise ModelFormatError(f"{source} is not a readable ONNX model: {e}") from e
    opset = opset_of(model)
    upgraded = workdir / "opset.onnx"
    if opset < MIN_OPSET:
        model = version_converter.convert_version(model, 17)
        notes.append(
            f"opset {opset} upgraded to 17 (per-channel quantization writes an invalid model "
            "on opset < 13)"
        )
    onnx.save(model, str(upgraded))
    prepared = workdir / "prepared.onnx"
    # On failure, onnxruntime's symbolic shape inference drops a debug copy of the model into
    # the current directory; remove it unless it was there before.
    litter = [
        Path.cwd() / "sym_shape_infer_temp.onnx",
        Path.cwd() / "sym_shape_infer_temp.onnx.data",
    ]
    existed = {p for p in litter if p.exists()}
    try:
        return _pre_process(quantization, upgraded, prepared, notes)
    finally:
        for path in litter:
            if path not in existed:
                path.unlink(missing_ok=True)


def _pre_process(
    quantization: Any, upgraded: Path, prepared: Path, notes: list[str]
) -> tuple[Path, list[str]]:
    for skip_symbolic in (False, True):
        try:
            quantization.quant_pre_process(
                str(upgraded), str(prepared), skip_symbolic_shape=skip_symbolic
            )
            if skip_symbolic:
                notes.append("symbolic shape inference failed; pre-processed without it")
            return prepared, notes
        except Exception as e:  # quant_pre_process raises bare Exceptions
            log.info("quant_pre_process (skip_symbolic_shape=%s) failed: %s", skip_symbolic, e)
    notes.append("quant_pre_process failed; quantizing the model as it is")
    return upgraded, notes
