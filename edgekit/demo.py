"""``edgekit demo``: short tours that run on any machine, with no camera, microphone or board."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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
    print()
    for line in _answers():
        print(line)
    print("\nNext: edgekit info face-detection-short-range --placement")
    print("      edgekit bench ppocr-v4-det --threads 1 --threads 2")
    return 0


def _answers() -> list[str]:
    """Two real answers: the face in a photograph, and text read back from an image."""
    import numpy as np

    import edgekit
    from edgekit.preprocess import import_cv2
    from edgekit.tasks import head_for
    from edgekit.tasks.ocr import charset_from_metadata, read_text

    lines = []
    try:
        from skimage import data as photos
    except ImportError:
        lines.append("(pip install scikit-image to see the face detector on a real photograph)")
    else:
        model = edgekit.load("face-detection-short-range")
        head = head_for(model, color_order="RGB")
        feeds, context = head.prepare(photos.astronaut())  # type: ignore[no-untyped-call]
        faces = head.decode(model.run(feeds), context)
        found = ", ".join(
            f"score {f.score:.2f} at ({f.box.x1:.0f}, {f.box.y1:.0f})-({f.box.x2:.0f}, "
            f"{f.box.y2:.0f})"
            for f in faces
        )
        lines.append(f"faces in scikit-image's astronaut photograph: {len(faces)} ({found})")
    cv2 = import_cv2()
    text = "EDGEKIT 2026"
    image = np.full((120, 640, 3), 255, np.uint8)
    cv2.putText(image, text, (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.8, (0, 0, 0), 4, cv2.LINE_AA)
    det, rec = edgekit.load("ppocr-v4-det"), edgekit.load("ppocr-v4-rec")
    charset = charset_from_metadata(rec.metadata()["character"])
    read = read_text(image, det.run, rec.run, charset)
    lines.append(f"text drawn as {text!r}, read back by PP-OCRv4: {[t.text for t in read]}")
    return lines


DEMOS: dict[str, Callable[[bool], int]] = {"runtime": runtime_tour}


SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def samples() -> list[str]:
    """Sample programs in the source tree (samples/NAME/NAME.py)."""
    if not SAMPLES.is_dir():
        return []
    return sorted(p.name for p in SAMPLES.iterdir() if (p / f"{p.name}.py").is_file())


def run_demo(name: str, json_output: bool = False, args: Sequence[str] = ()) -> int:
    demo = DEMOS.get(name)
    if demo is not None:
        return demo(json_output)
    if name in samples():
        return _run_sample(name, [*args, *(["--json"] if json_output else [])])
    known = sorted([*DEMOS, *samples()])
    raise EdgekitError(f"no demo called {name!r}; demos: {', '.join(known)}")


def _run_sample(name: str, args: list[str]) -> int:
    """Run samples/NAME/NAME.py as a program, with its built-in defaults."""
    import runpy
    import sys

    path = SAMPLES / name / f"{name}.py"
    saved = sys.argv
    sys.argv = [str(path), *args]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
    return 0
