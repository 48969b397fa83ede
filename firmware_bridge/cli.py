"""Command line: `devices` and `bridge info|ping|call|stream|upload|virtual|proxy`.

The argv layout matches the edgekit CLI, which delegates `edgekit devices` and
`edgekit bridge ...` here: `main(["bridge", "info", URL])`.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import Bridge
from .discovery import list_devices
from .errors import BridgeError

Command = Callable[[argparse.Namespace], int]


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, sort_keys=True))
    else:
        print(text)


def _open(args: argparse.Namespace) -> Bridge:
    return Bridge.open(
        args.url,
        timeout=args.timeout,
        auth_key=args.auth_key,
        reset=args.reset,
        reconnect=False,
        on_console=lambda line: print(f"console: {line}", file=sys.stderr),
    )


def cmd_devices(args: argparse.Namespace) -> int:
    devices = list_devices()
    lines = [f"{d.url:40} {d.kind:6} {d.description}" for d in devices] or ["no devices found"]
    _emit(args, [d.to_dict() for d in devices], "\n".join(lines))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with _open(args) as bridge:
        info = bridge.info.to_dict()
    lines = [f"{k:17} {v}" for k, v in info.items() if k not in ("methods", "streams")]
    lines.append(
        "methods           " + ", ".join(f"{n} ({i:#x})" for n, i in bridge.info.methods.items())
    )
    lines.append(
        "streams           "
        + ", ".join(
            f"{s.name} (id {s.id}, {s.sample_size} B)" for s in bridge.info.streams.values()
        )
    )
    _emit(args, info, "\n".join(lines))
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    payload = bytes(i & 0xFF for i in range(args.size))
    with _open(args) as bridge:
        rtts = [bridge.ping(payload) * 1e6 for _ in range(args.count)]
    rtts.sort()
    result = {
        "count": len(rtts),
        "size": args.size,
        "median_us": statistics.median(rtts),
        "p99_us": rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))],
        "max_us": rtts[-1],
    }
    text = (
        f"{result['count']} pings of {args.size} B: median {result['median_us']:.0f} us, "
        f"p99 {result['p99_us']:.0f} us, max {result['max_us']:.0f} us"
    )
    _emit(args, result, text)
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    method: str | int = int(args.method, 0) if args.method[:1].isdigit() else args.method
    call_args = args.text.encode() if args.text is not None else bytes.fromhex(args.args or "")
    with _open(args) as bridge:
        result = bridge.call(method, call_args)
    text = result.decode("utf-8", "replace") if result.isascii() else result.hex()
    _emit(args, {"method": args.method, "result_hex": result.hex()}, text)
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    with _open(args) as bridge:
        stream = bridge.subscribe(args.name, args.rate)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            try:
                sample = stream.get(timeout=max(0.01, deadline - time.monotonic()))
            except BridgeError:
                break
            if not args.json and not args.quiet:
                print(f"{sample.seq:8} {sample.timestamp_us:12} {sample.data.hex()}")
        stats = stream.stats()
        stream.close()
    _emit(
        args,
        stats.to_dict(),
        f"received {stats.received}, lost {stats.lost}, overruns {stats.overruns}, "
        f"dropped {stats.dropped}, latency p99 {stats.latency_p99_us} us",
    )
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    bar = not args.json and sys.stderr.isatty()  # a redirected stderr gets only the result
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        share = done / total if total else 1.0
        rate = done / max(time.monotonic() - started, 1e-6)
        line = f"[{'#' * round(share * 30):<30}] {share:6.1%} {done}/{total} B"
        print(f"\r{line} {rate / 1e3:,.0f} kB/s", end="", file=sys.stderr, flush=True)

    with _open(args) as bridge:
        result = bridge.upload(
            args.name, data, progress=progress if bar else None, timeout=args.upload_timeout
        )
    if bar:
        print(file=sys.stderr)
    if result.resumed_from >= result.size > 0:
        text = f"{result.name} already holds these {result.size} B, sha256 {result.sha256}"
    else:
        text = (
            f"uploaded {result.size} B to {result.name} in {result.seconds:.2f} s "
            f"({result.throughput / 1e3:.0f} kB/s), sha256 {result.sha256}"
        )
        if result.resumed_from:
            text += f" (resumed at byte {result.resumed_from})"
    _emit(args, {**result.__dict__, "throughput": result.throughput}, text)
    return 0


def cmd_virtual(args: argparse.Namespace) -> int:
    from .virtual import start_virtual_device

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with start_virtual_device(tcp_port=args.tcp, link=args.link, auth_key=args.auth_key) as dev:
            # The try opens before the URL goes out: a client may connect, and Ctrl-C come,
            # before this process has run another line.
            try:
                print(dev.url, flush=True)
                while dev.running and not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    from .proxy import FaultProxy

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    kinds = tuple(k for k in args.faults.split(",") if k)
    try:
        with FaultProxy(
            args.url,
            rate=args.rate,
            kinds=kinds,
            seed=args.seed,
            baud=args.baud,
            link=args.link,
            tcp_port=args.tcp,
        ) as proxy:
            try:
                print(proxy.url, flush=True)
                while not stop.wait(1.0):
                    pass
            except KeyboardInterrupt:
                pass
            stats = {k: {"bytes": v.bytes_in, **v.faults} for k, v in proxy.stats().items()}
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(stats, sort_keys=True), file=sys.stderr)
    return 0


def _add_common(p: argparse.ArgumentParser, url: bool = True) -> None:
    if url:
        p.add_argument(
            "url", help="serial:///dev/ttyACM0?baud=921600, tcp://HOST:PORT, usb://VID:PID"
        )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for HELLO")
    p.add_argument("--auth-key", default=None, help="hex key when the device requires auth")
    p.add_argument("--reset", default="none", help="none, rts-pulse, dtr-pulse, classic")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firmware_bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    devices = sub.add_parser("devices", help="list serial ports and USB devices")
    devices.add_argument("--json", action="store_true")
    devices.set_defaults(func=cmd_devices)

    bridge = sub.add_parser("bridge", help="talk to a device over the bridge protocol")
    actions = bridge.add_subparsers(dest="action", required=True)
    p = actions.add_parser("info", help="HELLO: firmware, uid, methods, streams")
    _add_common(p)
    p.set_defaults(func=cmd_info)
    p = actions.add_parser("ping", help="sys.ping round trips")
    _add_common(p)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--size", type=int, default=64)
    p.set_defaults(func=cmd_ping)
    p = actions.add_parser("call", help="call a method by name or id")
    _add_common(p)
    p.add_argument("method")
    p.add_argument("args", nargs="?", default="", help="arguments as hex")
    p.add_argument("--text", default=None, help="arguments as utf-8 text instead of hex")
    p.set_defaults(func=cmd_call)
    p = actions.add_parser("stream", help="subscribe to a stream and print samples")
    _add_common(p)
    p.add_argument("name")
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--quiet", action="store_true", help="only the summary")
    p.set_defaults(func=cmd_stream)
    p = actions.add_parser("upload", help="bulk upload a file (e.g. firmware to fw0)")
    _add_common(p)
    p.add_argument("file")
    p.add_argument("--name", default="fw0")
    p.add_argument("--upload-timeout", type=float, default=60.0)
    p.set_defaults(func=cmd_upload)
    p = actions.add_parser("virtual", help="build and run the C virtual device until Ctrl-C")
    p.add_argument("--tcp", type=int, default=None, help="serve TCP on 127.0.0.1:PORT")
    p.add_argument("--link", default=None, help="keep a symlink to the current pty here")
    p.add_argument("--auth-key", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_virtual)
    p = actions.add_parser("proxy", help="serve URL through a fault-injecting proxy")
    p.add_argument("url", help="the device's URL")
    p.add_argument("--rate", type=float, default=0.0, help="fault probability per byte")
    p.add_argument("--faults", default="drop,flip,duplicate,truncate,delay")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baud", type=int, default=None, help="pace like a UART of this rate")
    p.add_argument("--link", default=None, help="keep a symlink to the host-side pty here")
    p.add_argument("--tcp", type=int, default=None, help="offer 127.0.0.1:PORT instead of a pty")
    p.set_defaults(func=cmd_proxy)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except BridgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
