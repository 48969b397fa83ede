"""edgekit.Model.run side by side with the raw runtimes, in one process.

    python benchmarks/bench_runtime.py [--rounds 15] [--calls 200] [--json]

Each round times a block of raw calls and a block of edgekit calls on the same inputs, in a
shuffled order; the result is the median over rounds of the per-round medians,
and the ratio edgekit / raw. Ratios are what to read: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter
from onnx import TensorProto, helper

import edgekit
from edgekit import models

Call = Callable[[], object]


def per_call_us(fn: Call, calls: int) -> float:
    clock = time.perf_counter
    samples = np.empty(calls)
    for i in range(calls):
        start = clock()
        fn()
        samples[i] = clock() - start
    return float(np.median(samples) * 1e6)


def compare(contenders: dict[str, Call], rounds: int, calls: int) -> dict[str, float]:
    names = list(contenders)
    for fn in contenders.values():  # warm-up
        for _ in range(max(10, calls // 10)):
            fn()
    results: dict[str, list[float]] = {n: [] for n in names}
    shuffle = np.random.default_rng(0)  # a fresh order every round: no contender owns a slot
    for _ in range(rounds):
        for index in shuffle.permutation(len(names)):
            name = names[index]
            results[name].append(per_call_us(contenders[name], calls))
    return {n: float(np.median(v)) for n, v in results.items()}


def one_op_model(directory: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = directory / "relu.onnx"
    onnx.save(model, str(path))
    return path


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_onnx(path: Path, x: np.ndarray, threads: int, rounds: int, calls: int) -> dict[str, Any]:
    session = ort_session(path, threads)
    twin = ort_session(path, threads)
    name = session.get_inputs()[0].name
    model = edgekit.load(path, num_threads=threads)
    contenders: dict[str, Call] = {
        "raw session.run": lambda: session.run(None, {name: x}),
        "edgekit Model.run": lambda: model.run(x),
        "raw twin": lambda: twin.run(None, {name: x}),
    }
    binding = session.io_binding()
    binding.bind_cpu_input(name, x)
    binding.bind_output(session.get_outputs()[0].name)
    contenders["raw I/O binding (pre-bound)"] = lambda: session.run_with_iobinding(binding)
    return compare(contenders, rounds, calls)


def bench_litert(
    path: Path, x: np.ndarray, threads: int, rounds: int, calls: int
) -> dict[str, Any]:
    def raw_interpreter() -> Call:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        in_index = interpreter.get_input_details()[0]["index"]
        out_index = [d["index"] for d in interpreter.get_output_details()]

        def raw() -> object:
            interpreter.set_tensor(in_index, x)
            interpreter.invoke()
            return [interpreter.get_tensor(i) for i in out_index]

        return raw

    model = edgekit.load(path, num_threads=threads)
    contenders = {
        "raw invoke": raw_interpreter(),
        "edgekit Model.run": lambda: model.run(x),
        "raw twin": raw_interpreter(),
    }
    return compare(contenders, rounds, calls)


def import_time_ms() -> float:
    """edgekit's own modules' self time in ``python -X importtime -c 'import edgekit'``."""
    best = float("inf")
    for _ in range(5):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import edgekit"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        total = 0
        for line in result.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s+(\S.*)$", line)
            if match and match.group(3).strip().startswith("edgekit"):
                total += int(match.group(1))
        best = min(best, total / 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("one-op ONNX (Relu 1x4)", "onnx", one_op_model(Path(tmp)),
             rng.standard_normal((1, 4)).astype(np.float32), args.calls * 10),
            ("face detector (LiteRT, 128x128)", "tflite",
             models.fetch("face-detection-short-range"),
             rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32), args.calls),
            ("PP-OCRv4 det (ONNX, 320x320)", "onnx", models.fetch("ppocr-v4-det"),
             rng.standard_normal((1, 3, 320, 320)).astype(np.float32), max(10, args.calls // 20)),
        ]  # fmt: skip
        for label, kind, path, x, calls in cases:
            bench = bench_onnx if kind == "onnx" else bench_litert
            timings = bench(path, x, args.threads, args.rounds, calls)
            raw_key = "raw session.run" if kind == "onnx" else "raw invoke"
            ours = timings["edgekit Model.run"]
            rows.append(
                {
                    "case": label,
                    "timings_us": {k: round(v, 2) for k, v in timings.items()},
                    "ratio": round(ours / timings[raw_key], 3),
                    "added_us": round(ours - timings[raw_key], 2),
                    # the same raw call on a second session: how far apart two identical
                    # contenders land on this machine in this run (the noise floor)
                    "twin_ratio": round(timings["raw twin"] / timings[raw_key], 3),
                }
            )
    imports = import_time_ms()
    if args.json:
        print(json.dumps({"rows": rows, "import_ms": imports}, indent=2))
        return
    print(f"threads={args.threads}, rounds={args.rounds}; median of per-round medians (us)\n")
    print("| case | raw | edgekit | ratio | added per call | raw twin ratio (noise) | other |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        t = dict(row["timings_us"])
        raw_key = "raw session.run" if "raw session.run" in t else "raw invoke"
        raw, ours = t.pop(raw_key), t.pop("edgekit Model.run")
        t.pop("raw twin")
        other = ", ".join(f"{k} {v:.2f}" for k, v in t.items())
        print(f"| {row['case']} | {raw:.2f} | {ours:.2f} | {row['ratio']:.3f} | "
              f"{row['added_us']:+.2f} us | {row['twin_ratio']:.3f} | {other} |")  # fmt: skip
    print(f"\nimport edgekit: {imports:.2f} ms of its own (best of 5, python -X importtime)")


if __name__ == "__main__":
    main()
