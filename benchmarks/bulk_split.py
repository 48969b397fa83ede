"""Where a bulk upload's time goes on the host, measured inside the bridge's reader thread.

    python benchmarks/bulk_split.py [--uploads 20] [--pin]

Uploads 4 MiB images (16 KiB frames) to the C virtual device and times, on the bridge's reader
thread, with wrappers around the real methods (nothing is replaced):
- the C writer (`_native.BulkWriter.send`): wall time, and the thread's CPU time in it (the
  rest is the writer waiting in poll() for the pty to drain, that is, for the device);
- the Python around it that handles each WINDOW (`bulk._Sender.deliver` minus the C writer);
- the rest of the reader's frame handling (`Bridge._ingest` minus `deliver`);
- the tail: from the C writer's last return to the END frame reaching `deliver` (the device
  reading the last frames and hashing what it had not hashed yet).
Each figure is the median over the uploads, and a share of the upload's wall time. What
Python adds per WINDOW is the most that moving the WINDOW handling into C could save.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bridge import _place, pin_cpus

from firmware_bridge import Bridge, _native, bulk
from firmware_bridge.virtual import start_virtual_device

TOTAL = 4 * 1024 * 1024
FRAME_LIMIT = 16384
KEYS = ("c_wall", "c_cpu", "c_calls", "c_last", "deliver", "windows", "ingest", "end_at")
_END = int(bulk.BulkType.END)


class Split:
    """Accumulated nanoseconds and counts of one upload."""

    def __init__(self) -> None:
        self.values = dict.fromkeys(KEYS, 0)

    def clear(self) -> None:
        for key in self.values:  # in place: the wrappers hold this dict
            self.values[key] = 0

    def timed(
        self, fn: Callable[..., Any], wall: str, cpu: str = "", count: str = "", last: str = ""
    ) -> Any:
        values = self.values

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            if wall == "deliver" and args[1] == _END:
                values["end_at"] = t0
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter_ns()
                values[wall] += t1 - t0
                if last:
                    values[last] = t1
                if cpu:
                    values[cpu] += time.thread_time_ns() - c0
                if count:
                    values[count] += 1

        return wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--pin", action="store_true", help="place processes as bench_bridge")
    args = parser.parse_args(argv)
    if args.pin and pin_cpus() is None:
        print("--pin needs two usable CPUs; left to the scheduler", file=sys.stderr)
    split = Split()
    bulk._Sender.deliver = split.timed(bulk._Sender.deliver, "deliver", count="windows")  # type: ignore[method-assign]
    _native.BulkWriter.send = split.timed(
        _native.BulkWriter.send, "c_wall", "c_cpu", "c_calls", "c_last"
    )  # type: ignore[method-assign]
    Bridge._ingest = split.timed(Bridge._ingest, "ingest")  # type: ignore[method-assign]
    rows: list[tuple[float, dict[str, int]]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        start_virtual_device(link=Path(tmp) / "link", frame_limit=FRAME_LIMIT) as dev,
    ):
        _place(dev.pid)
        with Bridge.open(dev.url, timeout=5, frame_limit=FRAME_LIMIT) as bridge:
            bridge.upload("fw0", os.urandom(TOTAL))  # warm up
            if _native.bulk_writer() is None:
                raise SystemExit(f"no C writer: {_native.status()}")
            for _ in range(args.uploads):
                image = os.urandom(TOTAL)
                digest = hashlib.sha256(image).digest()
                split.clear()
                result = bridge.upload("fw0", image, sha256=digest)
                if result.resumed_from != 0:
                    raise SystemExit("an upload resumed: the device kept an image")
                if split.values["c_calls"] == 0:
                    raise SystemExit(
                        f"the upload did not go through the C writer: {_native.status()}"
                    )
                rows.append((result.seconds, dict(split.values)))

    def median(fn: Callable[[float, dict[str, int]], float]) -> float:
        return statistics.median(fn(s, v) for s, v in rows)

    seconds = median(lambda s, v: s)
    print(f"{args.uploads} uploads of {TOTAL >> 20} MiB in {FRAME_LIMIT >> 10} KiB frames")
    print(f"upload: {seconds * 1e3:.1f} ms, {TOTAL / seconds / 1e6:.1f} MB/s (median)")
    print(
        f"WINDOWs handled: {median(lambda s, v: v['windows']):.0f}, "
        f"C writer calls: {median(lambda s, v: v['c_calls']):.0f}"
    )
    parts = (
        ("C writer, wall", lambda s, v: v["c_wall"]),
        ("C writer, CPU (framing and write calls)", lambda s, v: v["c_cpu"]),
        ("C writer, waiting for the link", lambda s, v: v["c_wall"] - v["c_cpu"]),
        ("Python handling WINDOWs", lambda s, v: v["deliver"] - v["c_wall"]),
        ("Python handling other frames", lambda s, v: v["ingest"] - v["deliver"]),
        (
            "last DATA written -> END read (device: rest of hash)",
            lambda s, v: v["end_at"] - v["c_last"],
        ),
    )
    width = max(len(name) for name, _ in parts)
    print(f"{'part':<{width}} {'ms':>7} {'of wall':>8}")
    for name, fn in parts:
        ms = median(fn) / 1e6
        share = median(lambda s, v, fn=fn: fn(s, v) / 1e9 / s)  # type: ignore[misc]
        print(f"{name:<{width}} {ms:7.2f} {share:8.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
