"""Latency and throughput of a model on this machine."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.model import Model
from edgekit.tensor import Dim


@dataclass(frozen=True)
class BenchResult:
    model: str
    backend: str
    device: str
    requested: str
    threads: int | None
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput_per_s: float
    load_ms: float
    peak_rss_mb: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def time_calls(
    fn: Callable[[], object], runs: int, warmup: int, max_seconds: float | None = None
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Per-call wall times in seconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter
    deadline = clock() + max_seconds if max_seconds else None
    done = 0
    for i in range(runs):
        start = clock()
        fn()
        times[i] = clock() - start
        done = i + 1
        if deadline is not None and times[i] + start > deadline:
            break
    return times[:done]


def bench_model(
    model: Model,
    feeds: Any,
    *,
    runs: int = 200,
    warmup: int = 20,
    max_seconds: float | None = 30.0,
    load_ms: float = 0.0,
    requested: str = "cpu",
    threads: int | None = None,
) -> BenchResult:
    times = time_calls(lambda: model.run(feeds), runs, warmup, max_seconds) * 1e3
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return BenchResult(
        model=model.name,
        backend=model.backend,
        device=model.device,
        requested=requested,
        threads=threads,
        runs=int(times.size),
        warmup=warmup,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(times.mean()),
        min_ms=float(times.min()),
        throughput_per_s=float(1e3 / times.mean()),
        load_ms=load_ms,
        peak_rss_mb=peak_rss_mb(),
    )


def example_feeds(model: Model, dynamic: int = 1) -> dict[str, Any]:
    """Inputs that fit the model: the manifest's size for images, else small dynamic dims."""
    feeds: dict[str, Any] = {}
    contract = model.manifest.input if model.manifest is not None else None
    for spec in model.inputs:
        shape: list[Dim] = list(spec.shape)
        layout = spec.layout or ""
        if contract is not None and contract.size is not None and len(shape) == 4:
            h_axis, w_axis = (2, 3) if layout == "NCHW" else (1, 2)
            shape[h_axis], shape[w_axis] = contract.size
        if contract is not None and contract.kind == "audio" and len(shape) == 2:
            shape = [1, (contract.chunk or 512) + (contract.context or 0)]
        if len(shape) == 4 and layout == "NCHW" and not isinstance(shape[1], int):
            shape[1] = 3
        if len(shape) == 4:
            spatial = (2, 3) if layout == "NCHW" else (1, 2)
            for axis in spatial:
                if not isinstance(shape[axis], int):
                    shape[axis] = 320
        concrete = [d if isinstance(d, int) else dynamic for d in shape]
        if spec.dtype.kind == "i" and not concrete and contract is not None:
            feeds[spec.name] = np.array(contract.sample_rate or 16000, dtype=spec.dtype)
            continue
        rng = np.random.default_rng(0)
        if spec.dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(concrete).astype(spec.dtype) * 0.1
        else:
            feeds[spec.name] = np.zeros(concrete, dtype=spec.dtype)
    return feeds
