"""Quantization recipes side by side with the float model and onnxruntime's defaults.

    python benchmarks/bench_quantize.py [--models ppocr-v4-det,ppocr-cls] [--threads 1,2]

For each model: the float model, onnxruntime's quantize_static defaults (QDQ, s8/s8, per-tensor,
MinMax), edgekit's recipes, and what ``--search`` (fastest within a 1 % budget) picks. Calibration
and held-out data are real photographs (scikit-image) with rendered text, fed through each
model's manifest preprocessing. Latencies are medians of interleaved rounds (float and quantized
alternate), so the ratios hold on a noisy machine even when the absolute numbers drift.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import data as photos

import edgekit
from edgekit.quantize import ORT_DEFAULT, Recipe, load_calibration
from edgekit.quantize.core import Job, QuantizationError, quantize_model

WORDS = ("edge", "kit", "robot", "glasses", "hello", "world", "sensor", "camera", "toy", "kiosk")
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX)


def text_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Words drawn on a plain colour or a washed-out photograph (BGR uint8)."""
    backgrounds = (photos.astronaut(), photos.coffee(), photos.chelsea(), photos.rocket())
    if rng.random() < 0.4:
        image = np.full((height, width, 3), rng.integers(160, 256, 3), np.uint8)
    else:
        photo = backgrounds[int(rng.integers(len(backgrounds)))]
        image = cv2.resize(np.ascontiguousarray(photo[..., ::-1]), (width, height))
        image = (image * 0.4 + 150).astype(np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        text = " ".join(rng.choice(WORDS, int(rng.integers(1, 3))))
        scale = float(rng.uniform(0.6, 1.5)) * height / 320
        y = int(rng.integers(int(30 * height / 320), height - 5))
        cv2.putText(image, text, (int(rng.integers(0, max(1, width // 4))), y),
                    FONTS[int(rng.integers(len(FONTS)))], max(scale, 0.5), (30, 30, 30),
                    max(1, int(2 * scale)), cv2.LINE_AA)  # fmt: skip
    return image


def write_images(folder: Path, n: int, height: int, width: int, flip: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    if (height, width) == (64, 64):  # the project's own shapes model: its own data generator
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
        import shapes

        images, _ = shapes.make_dataset(n, seed=seed)
        for i, image in enumerate(images):
            cv2.imwrite(str(folder / f"{i:03d}.png"), np.ascontiguousarray(image[..., ::-1]))
        return
    for i in range(n):
        image = text_scene(rng, height, width)
        if flip and i % 2:
            image = np.ascontiguousarray(image[::-1, ::-1])
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)


CASES: dict[str, dict[str, Any]] = {
    "ppocr-v4-det": {"size": (320, 320), "image": (320, 320), "flip": False},
    "ppocr-cls": {"size": None, "image": (48, 192), "flip": True},
    "shapes-cnn": {"size": None, "image": (64, 64), "flip": False},
}

RECIPES = (
    ("onnxruntime defaults", ORT_DEFAULT),
    ("u8/s8 per-channel MinMax", Recipe()),
    ("u8/s8 per-channel Percentile", Recipe(method="percentile")),
    ("dynamic u8", Recipe(mode="dynamic", weights="u8", per_channel=False)),
)


def bench_model(
    name: str, threads: tuple[int, ...], count: int, held: int, budget: float
) -> list[dict[str, Any]]:
    case = CASES[name]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, count + held, *case["image"], flip=case["flip"], seed=11)
        model = edgekit.load(name)
        data = load_calibration(model, str(folder), count=count, held_out=held, size=case["size"])
        job = Job(model.path, data, manifest=model.manifest, threads=threads)
        float_size = model.path.stat().st_size
        for label, recipe in RECIPES:
            started = time.perf_counter()
            try:
                path = job.build(recipe)
                report = job.evaluate(path)
            except QuantizationError as e:
                rows.append({"model": name, "recipe": label, "error": str(e)})
                continue
            rows.append(_row(name, label, report, time.perf_counter() - started, float_size))
        started = time.perf_counter()
        result, search_job = quantize_model(model.path, data, manifest=model.manifest,
                                            search=True, max_drop=budget,
                                            threads=threads)  # fmt: skip
        for folder in (job.workdir, search_job.workdir):
            shutil.rmtree(folder, ignore_errors=True)
        label = f"search (fastest within {budget:.0%})"
        if result.report is None:
            rows.append({"model": name, "recipe": label, "result": result.message,
                         "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
        else:
            row = _row(name, label, result.report, time.perf_counter() - started, float_size)
            row["picked"] = result.recipe.label if result.recipe else None
            rows.append(row)
    return rows


def _row(name: str, label: str, report: Any, seconds: float, float_size: int) -> dict[str, Any]:
    return {
        "model": name,
        "recipe": label,
        "metric": report.metric_name,
        "value": round(report.metric, 4),
        "size_mb": round(report.quantized_bytes / 1e6, 2),
        "float_size_mb": round(float_size / 1e6, 2),
        "latency": [
            {
                "threads": lat.threads,
                "float_ms": round(lat.float_ms, 2),
                "quant_ms": round(lat.quantized_ms, 2),
                "speedup": round(lat.speedup, 2),
            }
            for lat in report.latency
        ],
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="ppocr-v4-det,ppocr-cls,shapes-cnn")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--held-out", type=int, default=24)
    parser.add_argument("--budget", type=float, default=0.01, help="largest metric drop allowed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    threads = tuple(int(t) for t in args.threads.split(","))
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        rows.extend(bench_model(name, threads, args.count, args.held_out, args.budget))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    heads = " | ".join(f"{t} thr float -> quant (x)" for t in threads)
    print(f"| model | recipe | metric | size MB | {heads} |")
    print("|---|---|---|---|" + "---|" * len(threads))
    for row in rows:
        if "value" not in row:
            print(f"| {row['model']} | {row['recipe']} | {row.get('result') or row.get('error')} |")
            continue
        lat = " | ".join(
            f"{x['float_ms']:.1f} -> {x['quant_ms']:.1f} ({x['speedup']:.2f}x)"
            for x in row["latency"]
        )
        recipe = row["recipe"] + (f" = {row['picked']}" if row.get("picked") else "")
        print(f"| {row['model']} | {recipe} | {row['metric']} {row['value']:.3f} | "
              f"{row['float_size_mb']} -> {row['size_mb']} | {lat} |")  # fmt: skip


if __name__ == "__main__":
    main()
