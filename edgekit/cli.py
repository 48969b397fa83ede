"""The ``edgekit`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from edgekit.errors import EdgekitError


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# -- info ----------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    import edgekit
    from edgekit.backends.devices import parse_device

    started = time.perf_counter()
    model = edgekit.load(args.model, args.device, fallback=not args.require_accelerator)
    load_ms = (time.perf_counter() - started) * 1e3
    placement = model.placement()
    size = model.path.stat().st_size
    data: dict[str, Any] = {
        "name": model.name,
        "path": str(model.path),
        "format": model.format,
        "size_bytes": size,
        "backend": model.backend,
        "device": model.device,
        "load_ms": round(load_ms, 1),
        "inputs": [spec.describe() for spec in model.inputs],
        "outputs": [spec.describe() for spec in model.outputs],
        "ops": dict(sorted(model.op_counts().items(), key=lambda kv: -kv[1])),
        "devices_here": _devices_for(model.format),
        "placement": {
            "nodes": dict(placement.nodes),
            "fallback": [list(f) for f in placement.fallback],
            "notes": list(placement.notes),
        },
    }
    if model.manifest is not None:
        m = model.manifest
        data["manifest"] = {
            "task": m.task,
            "license": m.license,
            "source": str(m.source),
            "sha256": m.sha256,
            "description": m.description,
        }
    if args.require_accelerator and parse_device(args.device).kind != "cpu":
        model.require_accelerator()
    if args.json:
        _print_json(data)
        return 0
    print(f"{data['name']}  ({model.format}, {size / 1e6:.2f} MB, loaded in {load_ms:.0f} ms)")
    print(f"  file:    {model.path}")
    if model.manifest is not None:
        print(f"  task:    {model.manifest.task or '-'}    license: {model.manifest.license}")
        print(f"  source:  {model.manifest.source}")
    print(f"  runs on: {model.backend} / {model.device}")
    print("  inputs:")
    for line in data["inputs"]:
        print(f"    {line}")
    print("  outputs:")
    for line in data["outputs"]:
        print(f"    {line}")
    ops = data["ops"]
    print(
        f"  ops ({sum(ops.values())}): " + ", ".join(f"{k} {v}" for k, v in list(ops.items())[:12])
    )
    print(f"  devices here: {', '.join(data['devices_here'])}")
    if args.placement:
        print("  placement:")
        print("    " + placement.describe().replace("\n", "\n    "))
    return 0


def _devices_for(model_format: str) -> list[str]:
    devices = ["cpu"]
    if model_format == "onnx":
        try:
            from edgekit.backends.onnx import available_providers

            remote = {"CPUExecutionProvider", "AzureExecutionProvider"}  # Azure is a cloud call
            devices += [f"ort:{p}" for p in available_providers() if p not in remote]
        except EdgekitError:
            return []
    elif model_format == "tflite":
        devices += ["tflite:xnnpack", "tflite:reference", "tflite-delegate:PATH"]
    return devices


# -- run -----------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    import edgekit
    from edgekit.errors import InputError

    model = edgekit.load(args.model, args.device, num_threads=args.threads)
    if args.source is not None:
        return _run_stream(model, args)
    if args.input is None:
        raise InputError("edgekit run needs --input FILE or --source URL")
    path = Path(args.input)
    if not path.exists():
        raise InputError(f"input file {path} does not exist")
    task = model.manifest.task if model.manifest is not None else None
    started = time.perf_counter()
    if task is not None and not args.raw:
        answer = _run_task(model, task, path)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        result = {"model": model.name, "task": task, "latency_ms": round(elapsed_ms, 3)}
        result["result"] = _plain(answer)
        if args.json:
            _print_json(result)
        else:
            print(f"{model.name} ({task}): {elapsed_ms:.1f} ms including pre/post-processing")
            items = answer if isinstance(answer, list) else [answer]
            if not items:
                print("  (nothing found)")
            for item in items:
                print(f"  {item}")
        return 0
    outputs = model.run(_raw_feeds(model, path))
    elapsed_ms = (time.perf_counter() - started) * 1e3
    summary = {
        name: {
            "shape": list(value.shape),
            "dtype": value.dtype.name,
            "min": float(value.min()) if value.size else None,
            "max": float(value.max()) if value.size else None,
            "mean": float(value.mean()) if value.size else None,
        }
        for name, value in outputs.items()
    }
    raw = {"model": model.name, "latency_ms": round(elapsed_ms, 3), "outputs": summary}
    if args.json:
        _print_json(raw)
        return 0
    print(f"{model.name}: {elapsed_ms:.2f} ms")
    for name, info in summary.items():
        print(
            f"  {name}: {info['dtype']}{info['shape']}  min {info['min']:.4g}  "
            f"max {info['max']:.4g}  mean {info['mean']:.4g}"
        )
    return 0


def _run_stream(model: Any, args: argparse.Namespace) -> int:
    """A source URL through the model and its task head, one result per frame, live."""
    from edgekit.errors import InputError
    from edgekit.media import open_source
    from edgekit.pipeline import Pipeline, Stage, format_stats
    from edgekit.tasks import head_for

    task = model.manifest.task if model.manifest is not None else None
    if task is None or task == "vad":
        raise InputError(
            f"{model.name}: --source streams images through a task head; this model has "
            f"{'an audio task' if task else 'no task in its manifest'}"
        )
    head = head_for(model, color_order="BGR")
    writer = _VideoSaver(args.save) if args.save else None

    def prepare(frame: Any) -> tuple[Any, Any, Any]:
        image = frame.image.copy() if writer is not None else None
        feeds, context = head.prepare(frame.image)
        return feeds, context, image

    def infer(item: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        feeds, context, image = item
        return model.run(feeds), context, image

    def decode(item: tuple[Any, Any, Any]) -> tuple[Any, Any]:
        outputs, context, image = item
        return head.decode(outputs, context), image

    policy: Literal["block", "drop_oldest"] = "block" if args.every_frame else "drop_oldest"
    source = open_source(args.source, policy="block" if args.every_frame else "latest")
    stages = [
        Stage("prepare", prepare, policy=policy),
        Stage("infer", infer, policy=policy),
        Stage("decode", decode, policy=policy),
    ]
    shown = 0
    started = time.monotonic()
    with Pipeline(source, stages, result_timeout=30.0) as pipeline:
        for result in pipeline:
            answer, image = result.value
            shown += 1
            if writer is not None and image is not None:
                writer.write(_annotate(image, answer))
            if args.json:
                record = {
                    "seq": result.seq,
                    "t_capture_ns": result.t_capture_ns,
                    "latency_ms": round(result.latency_ms, 3),
                    "result": _plain(answer),
                }
                print(json.dumps(record), flush=True)
            else:
                items = answer if isinstance(answer, list) else [answer]
                print(f"#{result.seq:<6} {result.latency_ms:7.1f} ms  {len(items)} result(s)")
            if args.max_frames is not None and shown >= args.max_frames:
                break
        stats = pipeline.stats()
    if writer is not None:
        writer.close()
    if not args.json:
        print(format_stats(stats))
        print(f"{shown} results in {time.monotonic() - started:.1f} s")
    return 0


class _VideoSaver:
    """Annotated frames to a video file (MJPG in .avi works with every OpenCV build)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: Any = None

    def write(self, image: Any) -> None:
        from edgekit.preprocess import import_cv2

        cv2 = import_cv2()
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.endswith(".mp4") else "MJPG"))
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(self.path, fourcc, 30.0, (width, height))
            if not self._writer.isOpened():
                raise EdgekitError(f"OpenCV cannot write {self.path}: use a .avi file name")
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def _annotate(image: Any, answer: Any) -> Any:
    """Draw boxes (detections, text boxes) and labels on a BGR image."""
    from edgekit.preprocess import import_cv2

    cv2 = import_cv2()
    for item in answer if isinstance(answer, list) else [answer]:
        box = getattr(item, "box", None)
        points = getattr(item, "quad", None)
        label = getattr(item, "name", None) or getattr(item, "label", None) or ""
        score = getattr(item, "score", None)
        if points is not None:
            import numpy as np

            polygon = np.asarray(points, dtype=np.int32).reshape(-1, 1, 2)
            cv2.polylines(image, [polygon], True, (0, 255, 0), 2)
        elif box is not None and hasattr(box, "x1"):
            p1, p2 = (int(box.x1), int(box.y1)), (int(box.x2), int(box.y2))
            cv2.rectangle(image, p1, p2, (0, 255, 0), 2)
            text = f"{label} {score:.2f}" if score is not None else str(label)
            cv2.putText(image, text, (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 255, 0), 1, cv2.LINE_AA)  # fmt: skip
    return image


def _raw_feeds(model: Any, path: Path) -> Any:
    """An input file as the model's first input, preprocessed by the manifest's contract."""
    import numpy as np

    from edgekit.errors import InputError
    from edgekit.preprocess import IMAGE_SUFFIXES

    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim == len(model.inputs[0].shape) - 1:
            array = array[None]
        return array
    if suffix in IMAGE_SUFFIXES:
        from edgekit.manifest import InputContract
        from edgekit.preprocess import image_to_tensor, read_image

        contract = model.manifest.input if model.manifest is not None else InputContract()
        tensor, _ = image_to_tensor(read_image(path, "RGB"), contract, model.inputs[0], "RGB")
        return tensor
    raise InputError(
        f"{path}: edgekit run reads images ({', '.join(sorted(IMAGE_SUFFIXES))}), .npy arrays, "
        "and .wav files for audio models"
    )


def _run_task(model: Any, task: str, path: Path) -> Any:
    """Input file -> the task head's answer (detections, text boxes, speech segments, ...)."""
    from edgekit.errors import InputError
    from edgekit.preprocess import IMAGE_SUFFIXES, read_image, read_wav, resample
    from edgekit.tasks import head_for

    if task == "vad":
        if path.suffix.lower() != ".wav":
            raise InputError(f"{model.name} is a voice activity model: give it a .wav file")
        from edgekit.tasks.vad import segments

        samples, rate = read_wav(path)
        contract_rate = model.manifest.input.sample_rate or 16000
        return segments(resample(samples, rate, contract_rate), model.run)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(
            f"{model.name} ({task}) reads images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "pass --raw to feed a .npy array straight to the model"
        )
    head = head_for(model, color_order="RGB")
    feeds, context = head.prepare(read_image(path, "RGB"))
    return head.decode(model.run(feeds), context)


def _plain(value: Any) -> Any:
    """Dataclasses, arrays and tuples -> JSON-ready values."""
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# -- bench ---------------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    import edgekit
    from edgekit.bench import bench_model, example_feeds

    results = []
    for device in args.device or ["cpu"]:
        for threads in args.threads or [None]:
            started = time.perf_counter()
            model = edgekit.load(args.model, device, num_threads=threads)
            load_ms = (time.perf_counter() - started) * 1e3
            feeds = example_feeds(model)
            results.append(
                bench_model(
                    model,
                    feeds,
                    runs=args.runs,
                    warmup=args.warmup,
                    max_seconds=args.max_seconds,
                    load_ms=load_ms,
                    requested=device,
                    threads=threads,
                )
            )
            model.close()
    if args.json:
        _print_json([r.as_dict() for r in results])
        return 0
    header = (
        f"{'device':<28} {'threads':>7} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} "
        f"{'per s':>8} {'load ms':>8} {'RSS MB':>7}"
    )
    print(f"{results[0].model}: {results[0].runs} runs after {args.warmup} warm-up")
    print(header)
    for r in results:
        label = f"{r.requested} ({r.device})" if r.requested != r.device else r.device
        print(
            f"{label[:28]:<28} {r.threads or 'auto':>7} {r.p50_ms:>9.3f} {r.p90_ms:>9.3f} "
            f"{r.p99_ms:>9.3f} {r.throughput_per_s:>8.1f} {r.load_ms:>8.1f} {r.peak_rss_mb:>7.0f}"
        )
    return 0


# -- models --------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from edgekit import models

    if args.action == "list":
        rows = []
        for m in models.list_manifests():
            path = models.cached_path(m)
            rows.append(
                {
                    "name": m.name,
                    "task": m.task,
                    "format": m.format,
                    "fetched": path.is_file(),
                    "source": str(m.source),
                    "license": m.license,
                }
            )
        if args.json:
            _print_json(rows)
            return 0
        for row in rows:
            mark = "fetched" if row["fetched"] else "-"
            print(f"{row['name']:<28} {row['task'] or '-':<18} {row['format']:<7} {mark:<8} "
                  f"{row['source']}")  # fmt: skip
        return 0
    names = [m.name for m in models.list_manifests()] if args.all else args.names
    if not names:
        raise EdgekitError(f"edgekit models {args.action}: name models, or pass --all")
    failures = 0
    for name in names:
        try:
            if args.action == "fetch":
                path = models.fetch(name, force=args.force, progress=lambda t: print(t, flush=True))
            elif args.action == "verify":
                path = models.verify(name)
                print(f"{name}: ok ({path})")
            else:
                print(models.cached_path(name))
        except EdgekitError as e:
            failures += 1
            print(f"{name}: {e}", file=sys.stderr)
    if args.action == "fetch" and not failures:
        print(f"{len(names)} model(s) ready in {models.cache_dir()}")
    return 1 if failures else 0


# -- quantize ------------------------------------------------------------------------------------
def cmd_quantize(args: argparse.Namespace) -> int:
    from edgekit.quantize import Recipe, quantize

    size = None
    if args.size:
        try:
            height, width = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise EdgekitError(
                f"--size takes HEIGHTxWIDTH, e.g. 320x320, not {args.size!r}"
            ) from None
        size = (height, width)
    recipe = None
    if not args.search:
        recipe = Recipe(
            mode=args.mode,
            format=args.format,
            activations=args.activations,
            weights=args.weights,
            per_channel=not args.per_tensor,
            method=args.method,
            reduce_range=args.reduce_range,
            exclude=tuple(args.exclude or ()),
        )
    say = (lambda text: None) if args.json else (lambda text: print(text, flush=True))
    result = quantize(
        args.model,
        args.calib,
        recipe=recipe,
        search=args.search,
        max_drop=args.max_drop,
        output=args.out,
        count=args.count,
        held_out=args.held_out,
        size=size,
        threads=tuple(args.threads or [1]),
        progress=say,
    )
    if args.json:
        _print_json(
            {
                "message": result.message,
                "used_float": result.used_float,
                "path": str(result.path),
                "manifest": str(result.manifest_path) if result.manifest_path else None,
                "recipe": result.recipe.as_dict() if result.recipe else None,
                "report": result.report.as_dict() if result.report else None,
                "kept_float": [list(k) for k in result.kept_float],
                "notes": list(result.notes),
                "candidates": [
                    {
                        "recipe": c.label or c.recipe.label,
                        "passed": c.passed,
                        "reason": c.reason,
                        "report": c.report.as_dict(),
                    }
                    for c in result.candidates
                ],
            }
        )
        return 0 if not result.used_float else 3
    print()
    for note in result.notes:
        print(f"note: {note}")
    if result.candidates and args.search:
        print(f"{'recipe':<48} {'metric':>8} {'speed':>6}  verdict")
        for c in result.candidates:
            verdict = "pass" if c.passed else c.reason
            name = c.label or c.recipe.label
            print(f"{name[:48]:<48} {c.report.metric:>8.4f} {c.report.speedup:>5.2f}x  "
                  f"{verdict}")  # fmt: skip
    print(result.message)
    if result.report is not None:
        print(result.report.describe())
    for name, cost in result.kept_float:
        print(f"  kept in float: {name} (SQNR loss {cost:.1f} dB)")
    if result.used_float:
        print(f"the float model stays: {result.path}")
        return 3
    print(f"wrote {result.path} and {result.manifest_path}")
    return 0


# -- doctor --------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from edgekit.doctor import run_checks

    checks = run_checks()
    if args.json:
        _print_json([c.as_dict() for c in checks])
    else:
        for c in checks:
            print(f"[{'ok' if c.ok else '!!'}] {c.name:<12} {c.detail}")
            if c.fix:
                print(f"     {'fix' if not c.ok else 'note'}: {c.fix}")
    return 0 if all(c.ok for c in checks) else 1


# -- bridge and devices: delegated to firmware_bridge ----------------------------------------------
def _bridge_main(argv: list[str]) -> int:
    import importlib

    try:
        bridge_cli = importlib.import_module("firmware_bridge.cli")
    except ImportError as e:
        raise EdgekitError(
            f"the bridge command line is not available ({e}): pip install 'edgekit[serial]'"
        ) from e
    result: int = bridge_cli.main(argv)
    return result


# -- demo ----------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from edgekit.demo import run_demo

    return run_demo(args.name, json_output=args.json, args=args.sample_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit", description="Run, inspect and benchmark on-device models; talk to boards."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug information")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="inputs, outputs, ops, size and placement of a model")
    p.add_argument("model", help="a .onnx/.tflite file, a manifest .toml, or a manifest name")
    p.add_argument("--device", default="cpu", help="cpu, auto, ort:PROVIDER, tflite-delegate:PATH")
    p.add_argument("--placement", action="store_true", help="show which nodes run where")
    p.add_argument(
        "--require-accelerator",
        action="store_true",
        help="fail instead of falling back to the CPU",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("run", help="run a model on an input file and print the outputs")
    p.add_argument("model")
    p.add_argument("--input", help="an image, a .wav file or a .npy array")
    p.add_argument(
        "--source", help="stream a source: cam:0, file:clip.mp4, rtsp://..., synthetic:bars"
    )
    p.add_argument("--max-frames", type=int, default=None, help="stop after N results")
    p.add_argument("--save", help="write an annotated video (.avi) of the stream")
    p.add_argument(
        "--every-frame", action="store_true", help="process every frame (files), not the latest"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--raw", action="store_true", help="print output tensors, not the task head's answer"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="latency percentiles, throughput and memory of a model")
    p.add_argument("model")
    p.add_argument("--device", action="append", help="repeat to compare devices side by side")
    p.add_argument("--threads", type=int, action="append", help="repeat to compare thread counts")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=30.0, help="stop a device after this long")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("models", help="list, fetch and verify the models named by manifests")
    p.add_argument("action", choices=["list", "fetch", "verify", "path"])
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true", help="every manifest on the search path")
    p.add_argument("--force", action="store_true", help="fetch again even if cached")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "quantize", help="post-training quantization, checked for accuracy and speed"
    )
    p.add_argument("model", help="an ONNX or TFLite model: manifest name or path")
    p.add_argument(
        "--calib",
        required=True,
        help="image folder, video file, WAV folder, .npy/.npz files, or a source URL (cam:0)",
    )
    p.add_argument("--mode", choices=["static", "dynamic", "fp16"], default="static")
    p.add_argument("--format", choices=["qdq", "qoperator"], default="qdq")
    p.add_argument("--activations", choices=["u8", "s8"], default="u8")
    p.add_argument("--weights", choices=["u8", "s8"], default="s8")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    p.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="7-bit weights (default: on for x86 CPUs without VNNI, where u8 x s8 saturates)",
    )
    p.add_argument("--exclude", action="append", help="a node to keep in float (repeatable)")
    p.add_argument(
        "--max-drop",
        type=float,
        default=None,
        help="accuracy budget: largest acceptable fall of the task metric (0.01 = 1%%)",
    )
    p.add_argument(
        "--search", action="store_true", help="try all recipes, keep the fastest passing"
    )
    p.add_argument("--out", help="output .onnx or .tflite path (a manifest .toml beside it)")
    p.add_argument("--count", type=int, default=32, help="calibration samples")
    p.add_argument("--held-out", type=int, default=16, help="samples for the accuracy check")
    p.add_argument("--size", help="HEIGHTxWIDTH for models with dynamic image inputs")
    p.add_argument("--threads", type=int, action="append", help="thread counts to time with")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("doctor", help="check what this machine can run, with fixes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="a tour of edgekit on this machine, or a sample by name")
    p.add_argument("name", nargs="?", default="runtime", help="runtime, or a samples/ program")
    p.add_argument("sample_args", nargs=argparse.REMAINDER, help="passed to the sample")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)

    sub.add_parser("devices", help="serial ports and USB devices (see: edgekit devices -h)")
    sub.add_parser("bridge", help="talk to a board over the bridge (see: edgekit bridge -h)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("bridge", "devices"):
        try:
            return _bridge_main(argv)
        except EdgekitError as e:
            print(f"edgekit: error: {e}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.simplefilter("default")
    try:
        code: int = args.func(args)
        return code
    except EdgekitError as e:
        print(f"edgekit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
