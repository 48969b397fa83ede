"""``edgekit demo``: short tours that run on any machine, with no camera, microphone or board."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from edgekit.errors import EdgekitError


def runtime_tour(json_output: bool = False) -> int:
    """Load every model the manifests name, run it, and time it against its own raw runtime."""
    import edgekit
    from edgekit import models
    from edgekit.bench import bench_model, example_feeds

    rows = []
    for manifest in models.list_manifests():
        started = time.perf_counter()
        model = edgekit.load(manifest, num_threads=1)
        load_ms = (time.perf_counter() - started) * 1e3
        result = bench_model(model, example_feeds(model), runs=50, warmup=5, load_ms=load_ms)
        placement = model.placement()
        rows.append(
            {
                "model": manifest.name,
                "task": manifest.task,
                "backend": model.backend,
                "device": model.device,
                "inputs": [s.describe() for s in model.inputs],
                "p50_ms": round(result.p50_ms, 3),
                "load_ms": round(load_ms, 1),
                "nodes": placement.total,
            }
        )
        model.close()
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    print("edgekit runtime tour: every model from models/*.toml, fetched and sha256-verified,")
    print("loaded through one API and run once per call on 1 thread.\n")
    print(f"{'model':<28} {'task':<18} {'runs on':<34} {'load ms':>8} {'p50 ms':>8}")
    for row in rows:
        where = f"{row['backend']}/{row['device']}"
        print(
            f"{row['model']:<28} {row['task'] or '-':<18} {where:<34} "
            f"{row['load_ms']:>8.1f} {row['p50_ms']:>8.3f}"
        )
    print("\nNext: edgekit info face-detection-short-range --placement")
    print("      edgekit bench ppocr-v4-det --threads 1 --threads 2")
    return 0


DEMOS: dict[str, Callable[[bool], int]] = {"runtime": runtime_tour}


def run_demo(name: str, json_output: bool = False) -> int:
    demo = DEMOS.get(name)
    if demo is None:
        raise EdgekitError(f"no demo called {name!r}; demos: {', '.join(sorted(DEMOS))}")
    return demo(json_output)
