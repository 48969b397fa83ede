"""Bulk uploads through several virtual devices at once, against the raw pty, in paired rounds.

    python benchmarks/ab_bulk.py [--rounds 30] [--repeat 4] [--pin] NAME=[BINARY][,ARG...] ...

Each NAME=... starts one device: the built C virtual device (BINARY left empty) or another
build of it, with extra arguments, e.g.

    python benchmarks/ab_bulk.py c16= c64=,--bulk-credit,64

Every round measures the raw pty (64 KiB writes and reads, the bench's fastest shape) and then
each device (the median of three 4 MiB uploads), in alternating order, so that all see the same
machine. A change to the device or the host shows as the median of its per-round ratio to the
first device: on a shared machine that is steadier than throughputs measured minutes apart.
--repeat runs the whole comparison again that many times, one line each; --pin places the
processes as bench_bridge.py --pin does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bridge import _place, pin_cpus, raw_pty_throughput, upload_rate

from firmware_bridge import Bridge
from firmware_bridge.virtual import build_virtual_device

TOTAL = 4 * 1024 * 1024
FRAME_LIMIT = 16384


def parse_device(spec: str, default_binary: Path) -> tuple[str, list[str]]:
    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"{spec!r}: expected NAME=[BINARY][,ARG...]")
    binary, *args = rest.split(",")
    return name, [binary or str(default_binary), "--frame-limit", str(FRAME_LIMIT), *args]


def compare(devices: list[tuple[str, list[str]]], rounds: int) -> str:
    procs = []
    bridges: list[tuple[str, Bridge]] = []
    try:
        for name, cmd in devices:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            procs.append(proc)
            _place(proc.pid)
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url:
                raise SystemExit(f"{name}: {' '.join(cmd)} printed no URL")
            bridge = Bridge.open(url, timeout=5, frame_limit=FRAME_LIMIT)
            bridges.append((name, bridge))
            bridge.upload("fw0", os.urandom(TOTAL))  # warm up
        runs: list[tuple[str, Callable[[], float]]] = [
            ("raw", lambda: raw_pty_throughput(TOTAL, 65536, 65536))
        ]
        runs += [(name, lambda b=bridge: upload_rate(b, TOTAL, 3)) for name, bridge in bridges]
        results: dict[str, list[float]] = {name: [] for name, _ in runs}
        for r in range(rounds):
            for name, measure in runs if r % 2 == 0 else runs[::-1]:
                results[name].append(measure())
    finally:
        for _, bridge in bridges:
            bridge.close()
        for proc in procs:
            proc.terminate()
            proc.wait(5)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(results[a], results[b], strict=True))

    first = bridges[0][0]
    parts = [f"raw {statistics.median(results['raw']) / 1e6:.0f} MB/s"]
    for name, _ in bridges:
        text = f"{name} {statistics.median(results[name]) / 1e6:.0f} MB/s ({ratio(name, 'raw'):.3f}"
        text += f", {ratio(name, first):.3f} of {first})" if name != first else ")"
        parts.append(text)
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("devices", nargs="+", metavar="NAME=[BINARY][,ARG...]")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument(
        "--pin", action="store_true", help="host on one CPU, devices and raw peers on another"
    )
    args = parser.parse_args()
    if args.pin and pin_cpus() is None:
        raise SystemExit("--pin needs two usable CPUs")
    default_binary = build_virtual_device()
    devices = [parse_device(spec, default_binary) for spec in args.devices]
    for _ in range(args.repeat):
        print(compare(devices, args.rounds), flush=True)
    print("command: python benchmarks/ab_bulk.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
