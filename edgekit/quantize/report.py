"""How a quantized model compares with its float original: task metric, tensors, size, speed."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from edgekit.manifest import Manifest
    from edgekit.model import Model

Outputs = list[dict[str, npt.NDArray[Any]]]
Metric = Callable[[Outputs, Outputs, "Manifest | None"], float]


@dataclass(frozen=True)
class TensorAgreement:
    name: str
    cosine: float
    snr_db: float
    max_abs_error: float


@dataclass(frozen=True)
class Latency:
    threads: int
    float_ms: float
    quantized_ms: float

    @property
    def speedup(self) -> float:
        return self.float_ms / self.quantized_ms if self.quantized_ms else 0.0


@dataclass(frozen=True)
class AccuracyReport:
    """Quantized against float on held-out samples."""

    metric_name: str
    metric: float
    samples: int
    tensors: tuple[TensorAgreement, ...]
    float_bytes: int
    quantized_bytes: int
    latency: tuple[Latency, ...] = field(default=())

    @property
    def drop(self) -> float:
        """How far the task metric falls short of perfect agreement with the float model."""
        return max(0.0, 1.0 - self.metric)

    @property
    def speedup(self) -> float:
        """Float time / quantized time on one thread (or the first measured)."""
        return self.latency[0].speedup if self.latency else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["drop"] = self.drop
        data["latency"] = [{**asdict(lat), "speedup": lat.speedup} for lat in self.latency]
        return data

    def describe(self) -> str:
        lines = [
            f"{self.metric_name}: {self.metric:.4f} on {self.samples} held-out samples",
            f"size: {self.float_bytes / 1e6:.2f} MB -> {self.quantized_bytes / 1e6:.2f} MB",
        ]
        lines.extend(
            f"{lat.threads} thread{'s' if lat.threads > 1 else ''}: {lat.float_ms:.2f} ms -> "
            f"{lat.quantized_ms:.2f} ms ({lat.speedup:.2f}x)"
            for lat in self.latency
        )
        lines.extend(
            f"  {t.name}: cosine {t.cosine:.5f}, SNR {t.snr_db:.1f} dB, "
            f"max error {t.max_abs_error:.4g}"
            for t in self.tensors
        )
        return "\n".join(lines)


# -- task metrics: agreement of the quantized model with the float model -------------------------
def _first(outputs: Outputs) -> list[npt.NDArray[Any]]:
    return [next(iter(o.values())) for o in outputs]


def top1_agreement(ref: Outputs, quant: Outputs, manifest: Manifest | None) -> float:
    a = np.concatenate([x.reshape(x.shape[0], -1).argmax(1) for x in _first(ref)])
    b = np.concatenate([x.reshape(x.shape[0], -1).argmax(1) for x in _first(quant)])
    return float((a == b).mean())


def mask_iou(ref: Outputs, quant: Outputs, manifest: Manifest | None) -> float:
    threshold = float(manifest.head.get("thresh", 0.3)) if manifest is not None else 0.3
    a = np.concatenate([x.ravel() for x in _first(ref)]) > threshold
    b = np.concatenate([x.ravel() for x in _first(quant)]) > threshold
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0


def decision_agreement(ref: Outputs, quant: Outputs, manifest: Manifest | None) -> float:
    threshold = float(manifest.head.get("threshold", 0.5)) if manifest is not None else 0.5
    a = np.concatenate([x.ravel() for x in _first(ref)]) > threshold
    b = np.concatenate([x.ravel() for x in _first(quant)]) > threshold
    return float((a == b).mean())


def score_agreement(ref: Outputs, quant: Outputs, manifest: Manifest | None) -> float:
    """Detection: anchors above the score threshold, matched (IoU of the positive sets)."""
    threshold = float(manifest.head.get("score_threshold", 0.5)) if manifest is not None else 0.5
    logit = float(np.log(threshold / (1 - threshold)))
    names = manifest.output.tensors if manifest is not None and manifest.output.tensors else None
    key = names[-1] if names else None
    a = np.concatenate([(o[key] if key else list(o.values())[-1]).ravel() for o in ref]) > logit
    b = np.concatenate([(o[key] if key else list(o.values())[-1]).ravel() for o in quant]) > logit
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0


METRICS: dict[str, tuple[str, Metric]] = {
    "classification": ("top-1 agreement", top1_agreement),
    "text-detection": ("text-mask IoU", mask_iou),
    "vad": ("speech decision agreement", decision_agreement),
    "face-detection": ("detection agreement (IoU of positive anchors)", score_agreement),
}


def tensor_agreement(ref: Outputs, quant: Outputs) -> tuple[TensorAgreement, ...]:
    result = []
    for name in ref[0]:
        a = np.concatenate([o[name].astype(np.float64).ravel() for o in ref])
        b = np.concatenate([o[name].astype(np.float64).ravel() for o in quant])
        noise = float(np.sum((a - b) ** 2))
        signal = float(np.sum(a**2))
        denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
        result.append(
            TensorAgreement(
                name=name,
                cosine=float(a @ b / denominator) if denominator else 1.0,
                snr_db=10 * float(np.log10(signal / noise)) if noise else float("inf"),
                max_abs_error=float(np.max(np.abs(a - b))) if a.size else 0.0,
            )
        )
    return tuple(result)


def run_all(model: Model, feeds: Sequence[Mapping[str, npt.NDArray[Any]]]) -> Outputs:
    return [model.run(dict(f)) for f in feeds]


def interleaved_latency(
    a: Model, b: Model, feeds: Sequence[Mapping[str, npt.NDArray[Any]]], rounds: int = 7
) -> tuple[float, float]:
    """Median per-call milliseconds of two models, measured in alternating rounds."""
    sample = [dict(f) for f in feeds[: max(1, min(len(feeds), 8))]]
    for model in (a, b):
        for f in sample[:2]:
            model.run(f)
    times: dict[int, list[float]] = {0: [], 1: []}
    clock = time.perf_counter
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for which in order:
            model = (a, b)[which]
            start = clock()
            for f in sample:
                model.run(f)
            times[which].append((clock() - start) / len(sample) * 1e3)
    return float(np.median(times[0])), float(np.median(times[1]))


def metric_for(manifest: Manifest | None) -> tuple[str, Metric]:
    task = manifest.task if manifest is not None else None
    if task in METRICS:
        return METRICS[task]
    return "output cosine similarity", _cosine_metric


def _cosine_metric(ref: Outputs, quant: Outputs, manifest: Manifest | None) -> float:
    return min(t.cosine for t in tensor_agreement(ref, quant))
