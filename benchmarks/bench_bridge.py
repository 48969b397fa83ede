"""firmware_bridge against the raw pseudo-terminal, side by side in one process.

    python benchmarks/bench_bridge.py [--seconds 60] [--fault-rpcs 10000] [--pin] [--quick]

Measures, against the C virtual device (built on first use):
  * bulk upload throughput vs raw pty throughput, the fastest of three write/read shapes
    (target ratio >= 0.85), with the CPU of each side per 4 MiB (the host, the peer and the
    kernel's worker threads that move pty data) and the codec work an upload adds (framing,
    unframing, SHA-256): the ceiling of that ratio when the raw pty keeps every CPU busy, and
    the bytes a pty holds between its writer and its reader; and, outside the target, bulk
    against the pty with C on both ends (build/pty_sink and the C writer without framing)
  * RPC round trip (sys.ping, 64 B) vs a raw 64-byte echo over a pty (target ratio <= 1.5);
    the same awaited through firmware_bridge.aio, one at a time and eight gathered, and
    eight threads calling at once
  * a 1 kHz IMU stream for --seconds: loss and latency p99
  * framing overhead in bytes per payload byte
  * bulk goodput through the fault proxy paced at 921600 baud (target >= 0.97 of line rate)
  * --fault-rpcs calls through the proxy at 1% faults per byte, each checked
Prints a markdown table and the command line. With --pin the host side (this process and its
threads) runs on one CPU and every peer (the virtual device, the raw reader and echo processes)
on another, as a host and a device are two processors; otherwise the scheduler places them.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import serial

from firmware_bridge import Bridge, _native
from firmware_bridge.aio import AsyncBridge
from firmware_bridge.framing import encode_frame
from firmware_bridge.messages import (
    BULK_DATA_HEADER,
    PROTOCOL_VERSION,
    BulkType,
    Channel,
    Header,
    RpcType,
)
from firmware_bridge.proxy import FaultProxy
from firmware_bridge.virtual import VirtualDeviceApi, start_virtual_device

Row = tuple[str, str, str, str]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- placement -----------------------------------------------------------------------------

# The CPUs the peers run on under --pin (None: wherever the scheduler puts them).
_peer_cpus: set[int] | None = None


def pin_cpus() -> tuple[int, int] | None:
    """Put this thread (and the threads it starts later) on one CPU and the peers started
    from now on on another; None, changing nothing, where fewer than two CPUs are usable."""
    global _peer_cpus
    if not hasattr(os, "sched_setaffinity"):
        return None
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None
    host, peer = usable[0], usable[1]
    os.sched_setaffinity(0, {host})
    _peer_cpus = {peer}
    return host, peer


def _place(pid: int) -> None:
    """Under --pin, move every thread of a peer process to the peers' CPU."""
    if _peer_cpus is None:
        return
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), _peer_cpus)
        except ProcessLookupError:
            continue  # a thread that ended meanwhile


# --- raw baselines -------------------------------------------------------------------------


# The raw peer runs in its own process and owns the pty master, as the device does; the host
# side uses pyserial on the slave, as the bridge does.
PEER = r"""
import os, pty, select, sys, tty
mode, total, read_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
master, slave = pty.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
if mode == "sink":
    got = 0
    while got < total:
        got += len(os.read(master, read_size))
    os.write(master, b"k")
    sys.stdin.read()
else:
    while True:
        ready, _, _ = select.select([master, sys.stdin], [], [])
        if sys.stdin in ready:
            break
        os.write(master, os.read(master, 4096))
"""


def _peer(
    mode: str, total: int = 0, read_size: int = 4096
) -> tuple[subprocess.Popen[str], serial.Serial]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PEER, mode, str(total), str(read_size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    _place(proc.pid)
    return proc, serial.Serial(path, timeout=2)


def _stop_peer(proc: subprocess.Popen[str], port: serial.Serial) -> None:
    port.close()
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(5)


def _task_ns(task: str) -> int:
    """CPU time so far of one thread (/proc/PID/task/TID; 0 when it has ended meanwhile)."""
    try:
        with open(task + "/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def cpu_ns(pid: int) -> int:
    """CPU time of all threads of a process so far (Linux schedstat; 0 where there is none)."""
    return sum(_task_ns(task) for task in glob.glob(f"/proc/{pid}/task/*"))


def _is_kernel_worker(task: str) -> bool:
    try:
        with open(task + "/comm") as f:
            return f.read().startswith("kworker")
    except OSError:
        return False


def kernel_worker_ns() -> int:
    """CPU time so far of the kernel's worker threads (kworker/*). The tty layer moves pty
    data from the writer's buffer to the reader's in them, so they do part of every
    transfer's work on one of the same CPUs; 0 where /proc does not say."""
    tasks = glob.glob("/proc/[0-9]*/task/[0-9]*")
    return sum(_task_ns(task) for task in tasks if _is_kernel_worker(task))


class CpuSample(NamedTuple):
    """CPU nanoseconds of one transfer: the host process, the peer process, the kernel's
    workers; and the transfer's wall-clock nanoseconds."""

    host: int
    peer: int
    kernel: int
    wall: int


class _CpuMeter:
    """Snapshots around one transfer (the kernel-worker scan stays outside the host's time)."""

    def __init__(self, peer_pid: int) -> None:
        self.peer_pid = peer_pid
        self.kernel0 = kernel_worker_ns()
        self.host0, self.peer0 = cpu_ns(os.getpid()), cpu_ns(peer_pid)
        self.wall0 = time.perf_counter_ns()

    def sample(self) -> CpuSample:
        wall = time.perf_counter_ns() - self.wall0
        host, peer = cpu_ns(os.getpid()) - self.host0, cpu_ns(self.peer_pid) - self.peer0
        return CpuSample(host, peer, kernel_worker_ns() - self.kernel0, wall)


# CPU of each transfer, appended by the measurements that are given a list: CPU per byte is
# steadier than throughput on a shared machine, and says which side works
CpuLog = list[CpuSample]


def raw_pty_throughput(
    total: int, read_size: int, chunk: int = 4096, cpu: CpuLog | None = None
) -> float:
    """Bytes/s written through a pty to a reader process (the direction of an upload)."""
    proc, port = _peer("sink", total, read_size)
    block = os.urandom(chunk)
    meter = _CpuMeter(proc.pid) if cpu is not None else None
    start = time.perf_counter()
    sent = 0
    while sent < total:
        sent += port.write(block[: min(chunk, total - sent)])
    done = port.read(1)
    elapsed = time.perf_counter() - start
    if meter is not None and cpu is not None:
        cpu.append(meter.sample())
    _stop_peer(proc, port)
    assert done == b"k"
    return total / elapsed


def c_pty_throughput(total: int, read_size: int = 65536, cpu: CpuLog | None = None) -> float | None:
    """Bytes/s through a pty with its writer and its reader in C (_native.RawWriter, the bulk
    writer's write and poll() loop without the framing, into build/pty_sink): the pty's
    ceiling, with no Python on either side. None when the C library is not built."""
    writer = _native.raw_writer()
    sink = _native.C_DIR / "build" / "pty_sink"
    if writer is None or not sink.exists():
        return None
    proc = subprocess.Popen(
        [str(sink), str(total), str(read_size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    path = proc.stdout.readline().strip()
    _place(proc.pid)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        image = os.urandom(total)
        meter = _CpuMeter(proc.pid) if cpu is not None else None
        start = time.perf_counter()
        rc = writer.write(fd, image, 5.0)
        done = os.read(fd, 1) if select.select([fd], [], [], 5)[0] else b""
        elapsed = time.perf_counter() - start
        if meter is not None and cpu is not None:
            cpu.append(meter.sample())
    finally:
        os.close(fd)
        proc.stdin.close()
        proc.wait(5)
        proc.stdout.close()
    if rc != 0 or done != b"k":
        raise RuntimeError(f"the C pty pair failed: {os.strerror(-rc) if rc else done!r}")
    return total / elapsed


def pty_buffer_bytes() -> int:
    """Bytes a pty takes from the writer (the slave side, as an upload) while its reader
    reads nothing: all the slack there is between a writer and a reader, whatever they do."""
    master, slave = pty.openpty()
    try:
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(slave, False)
        taken = 0
        while True:
            try:
                taken += os.write(slave, bytes(65536))
            except BlockingIOError:
                return taken
    finally:
        os.close(slave)
        os.close(master)


def raw_echo_rtts(count: int, size: int = 64) -> list[float]:
    """Round trips of `size` bytes through a pty to an os.read/os.write echo process."""
    proc, port = _peer("echo")
    payload = os.urandom(size)
    rtts = []
    for i in range(count + 50):
        start = time.perf_counter()
        port.write(payload)
        got = b""
        while len(got) < size:
            got += port.read(size - len(got))
        if i >= 50:
            rtts.append(time.perf_counter() - start)
    _stop_peer(proc, port)
    return rtts


# --- bridge measurements -------------------------------------------------------------------

MACHINE_CPUS = os.cpu_count() or 1


def codec_work_ns(total: int, frame_limit: int) -> dict[str, int] | None:
    """Thread CPU nanoseconds of what a bulk upload of `total` bytes adds to moving them:
    framing on the host (CRC-32 and COBS in the C encoder the bridge uses), unframing on the
    device (COBS decode and CRC-32 from the same C library) and the image's SHA-256 (hashlib,
    on the same SHA extensions as the virtual device's hash engine). Best of five passes;
    None without the C library. When the raw pty alone keeps every CPU busy, the bridge can
    go no faster than raw CPU / (raw CPU + this) of it, whatever the host and device do."""
    encode = _native.encoder()
    if encode is None:
        return None
    counter = _native.frame_counter()
    writer = _native.bulk_writer()
    assert counter is not None and writer is not None  # the encoder loaded: the library is there
    image = os.urandom(total)
    chunk = frame_limit - 16 - BULK_DATA_HEADER  # data per frame: 12 B header, offset, CRC
    head = Header(PROTOCOL_VERSION, 0, Channel.BULK, BulkType.DATA, 0, 0, 1).pack()
    offsets = range(0, total, chunk)
    wire = b"".join(
        encode(bytearray(head + o.to_bytes(4, "little") + image[o : o + chunk]), 0) for o in offsets
    )
    fields = (PROTOCOL_VERSION, int(Channel.BULK), int(BulkType.DATA))
    null = os.open(os.devnull, os.O_WRONLY | os.O_NONBLOCK)
    best = {"encode": 0, "decode": 0, "sha256": 0}
    for attempt in range(5):
        # the C writer framing all of it, to a sink that costs a write(2) and nothing else
        t0 = time.thread_time_ns()
        rc, _ = writer.send(null, image, 0, total, chunk, fields, 0, 1, 5.0)
        t1 = time.thread_time_ns()
        # in the 4 KiB pieces a pty read brings
        frames = counter.count(wire, frame_limit, 4096)
        t2 = time.thread_time_ns()
        if frames != len(offsets):
            raise RuntimeError(f"the C decoder took {frames} of {len(offsets)} encoded frames")
        hashlib.sha256(image).digest()
        t3 = time.thread_time_ns()
        if rc != 0:
            raise RuntimeError(f"the C writer failed on {os.devnull}: {os.strerror(-rc)}")
        for key, ns in (("encode", t1 - t0), ("decode", t2 - t1), ("sha256", t3 - t2)):
            best[key] = ns if attempt == 0 else min(best[key], ns)
    os.close(null)
    return best


def bulk_throughput(
    url: str,
    frame_limit: int,
    total: int,
    repeats: int,
    cpu: CpuLog | None = None,
    device_pid: int = 0,
) -> float:
    """Payload bytes/s of fw0 uploads on a bridge opened for them, after one to warm up."""
    with Bridge.open(url, timeout=5, frame_limit=frame_limit) as bridge:
        bridge.upload("fw0", os.urandom(total))  # warm up
        return upload_rate(bridge, total, repeats, cpu, device_pid)


def upload_rate(
    bridge: Bridge, total: int, repeats: int, cpu: CpuLog | None = None, device_pid: int = 0
) -> float:
    """Payload bytes/s of `repeats` fw0 uploads, the median (fresh data each time: the same
    image would resume). The SHA-256 is given, as from a release manifest, so CPU counts the
    transfer alone."""
    seconds = []
    for _ in range(repeats):
        image = os.urandom(total)
        digest = hashlib.sha256(image).digest()
        meter = _CpuMeter(device_pid) if cpu is not None else None
        result = bridge.upload("fw0", image, sha256=digest)
        if meter is not None and cpu is not None:
            cpu.append(meter.sample())
        assert result.resumed_from == 0
        seconds.append(result.seconds)
    assert VirtualDeviceApi(bridge).fw_slot().valid
    return total / statistics.median(seconds)


def rpc_rtts(url: str, count: int, size: int = 64) -> list[float]:
    payload = os.urandom(size)
    with Bridge.open(url, timeout=5) as bridge:
        for _ in range(50):
            bridge.ping(payload)
        return [bridge.ping(payload) for _ in range(count)]


def async_rpc(url: str, count: int, size: int = 64) -> dict[str, list[float] | float]:
    """sys.ping awaited through AsyncBridge against Bridge.call on the same bridge (rounds
    alternate), and calls per second with eight gathered at a time (the call window)."""
    payload = os.urandom(size)
    batches = max(1, count // 8)
    with Bridge.open(url, timeout=5) as bridge:

        async def main() -> dict[str, list[float] | float]:
            board = AsyncBridge(bridge)
            for _ in range(50):
                await board.call("sys.ping", payload)
            sync: list[float] = []
            awaited: list[float] = []
            for _ in range(4):
                for _ in range(count // 4):
                    start = time.perf_counter()
                    bridge.call("sys.ping", payload)
                    sync.append(time.perf_counter() - start)
                for _ in range(count // 4):
                    start = time.perf_counter()
                    await board.call("sys.ping", payload)
                    awaited.append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(batches):
                await asyncio.gather(*(board.call("sys.ping", payload) for _ in range(8)))
            gathered = 8 * batches / (time.perf_counter() - start)
            await board.close()
            return {"sync": sync, "async": awaited, "gathered": gathered}

        result = asyncio.run(main())
        # the same number of calls from eight threads calling Bridge.call at once
        retransmits = bridge.stats()["rpc"]["retransmits"]

        def calls() -> None:
            for _ in range(batches):
                bridge.call("sys.ping", payload)

        threads = [threading.Thread(target=calls) for _ in range(8)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["threads"] = 8 * batches / (time.perf_counter() - start)
        result["thread_retransmits"] = bridge.stats()["rpc"]["retransmits"] - retransmits
        return result


def imu_stream(url: str, seconds: float) -> dict[str, float]:
    with Bridge.open(url, timeout=5) as bridge:
        stream = bridge.subscribe("imu", 1000, maxlen=1 << 20)
        time.sleep(seconds)
        stats = stream.stats()
        stream.close()
    expected = seconds * 1000
    return {
        "samples": stats.samples,
        "frames": stats.received,
        "lost": stats.lost,
        "overruns": stats.overruns,
        "rate": stats.samples / seconds,
        "completeness": stats.samples / expected,
        "p50": stats.latency_p50_us or 0.0,
        "p99": stats.latency_p99_us or 0.0,
    }


def overhead(payload: int, extra_header: int = 0) -> float:
    """Wire bytes that are not payload, per payload byte, for one frame."""
    wire = len(encode_frame(Header.make(Channel.RPC, RpcType.REQUEST), os.urandom(payload)))
    return (wire - payload + extra_header) / payload


def paced_goodput(url: str, tmp: Path, baud: int, total: int) -> float:
    with (
        FaultProxy(url, baud=baud, link=tmp / "paced") as proxy,
        Bridge.open(proxy.url, timeout=5) as bridge,
    ):
        result = bridge.upload("fw0", os.urandom(total), timeout=120)
    return result.throughput / (baud / 10)


def fault_rpcs(url: str, tmp: Path, count: int, rate: float) -> dict[str, float]:
    with (
        FaultProxy(url, seed=20261129, link=tmp / "faulty") as proxy,
        Bridge.open(proxy.url, timeout=5, call_timeout=10) as bridge,
    ):
        api = VirtualDeviceApi(bridge)
        proxy.set_faults("to_device", rate)
        proxy.set_faults("to_host", rate)
        start = time.monotonic()
        wrong = 0
        last = ""
        for i in range(count):
            if i % 5 == 0:
                last = str(i)
                api.config_set("n", last)
            else:
                payload = i.to_bytes(4, "little") * 8
                wrong += bridge.call("sys.ping", payload) != payload
        elapsed = time.monotonic() - start
        proxy.set_faults("to_device", 0.0)
        proxy.set_faults("to_host", 0.0)
        final_ok = api.config_get("n") == last
        stats = bridge.stats()
        faults = {k: sum(v.faults.values()) for k, v in proxy.stats().items()}
    return {
        "calls": count,
        "seconds": elapsed,
        "wrong": wrong,
        "final_ok": float(final_ok),
        "retransmits": stats["rpc"]["retransmits"],
        "failed": stats["rpc"]["failed"],
        "late": stats["rpc"]["late_responses"],
        "faults": sum(faults.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="IMU stream duration")
    parser.add_argument("--fault-rpcs", type=int, default=10000)
    parser.add_argument("--fault-rate", type=float, default=0.01)
    parser.add_argument("--rpcs", type=int, default=5000, help="round trips per RPC measurement")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="host on one CPU, the device and the raw peers on another (less placement noise)",
    )
    parser.add_argument("--quick", action="store_true", help="short run for a smoke test")
    args = parser.parse_args(argv)
    placement = "left to the scheduler"
    if args.pin:
        cpus = pin_cpus()
        placement = (
            f"host on CPU {cpus[0]}, device and raw peers on CPU {cpus[1]} (--pin)"
            if cpus
            else "left to the scheduler (--pin needs two usable CPUs)"
        )
    if args.quick:
        args.seconds, args.fault_rpcs, args.rpcs = 3.0, 300, 500
    rows: list[Row] = []

    def step(what: str) -> None:
        print(f"... {what}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        total = 4 * 1024 * 1024  # the virtual device's whole firmware slot
        repeats = 15 if not args.quick else 3
        step("bulk upload throughput (16 KiB frames) and raw pty throughput, interleaved")
        # The virtual device reads its pty up to 64 KiB at a time. The raw pair is measured in
        # three shapes (host writes of 4 or 64 KiB, reads of 4 or 64 KiB) and the fastest is
        # the baseline: fewer, larger writes cost the writer less (each pty write queues the
        # kernel's flush work), so 64 KiB writes are the raw pty at its best.
        raw_shapes: dict[tuple[int, int], list[float]] = {
            (4096, 4096): [],
            (4096, 65536): [],
            (65536, 65536): [],
        }
        raw_cpu: dict[tuple[int, int], CpuLog] = {shape: [] for shape in raw_shapes}
        bulk_runs: list[float] = []
        bulk_cpu: CpuLog = []
        with start_virtual_device(link=tmp / "big", frame_limit=16384) as dev:
            _place(dev.pid)
            runs: list[tuple[list[float], Callable[[], float]]] = [
                (
                    results,
                    lambda w=write, r=read: raw_pty_throughput(total, r, w, raw_cpu[(w, r)]),
                )
                for (write, read), results in raw_shapes.items()
            ]
            runs.append(
                (bulk_runs, lambda: bulk_throughput(dev.url, 16384, total, 3, bulk_cpu, dev.pid))
            )
            # the pty with C on both ends: reported beside the target's baseline, not in it
            c_runs: list[float] = []
            c_cpu: CpuLog = []
            if c_pty_throughput(65536) is not None:
                runs.append((c_runs, lambda: c_pty_throughput(total, 65536, c_cpu) or 0.0))
            # rounds, so all see the same machine load; the order alternates, because
            # whichever runs first after a switch is measurably slower on a shared machine
            for r in range(repeats):
                for results, measure in runs if r % 2 == 0 else runs[::-1]:
                    results.append(measure())
        raw_medians = {shape: statistics.median(v) for shape, v in raw_shapes.items()}
        best_shape = max(raw_medians, key=lambda shape: raw_medians[shape])
        raw_bps = raw_medians[best_shape]
        bulk_bps = statistics.median(bulk_runs)
        # per round, against that round's fastest raw shape: the machine's speed drifts
        per_round = statistics.median(
            b / max(v[i] for v in raw_shapes.values()) for i, b in enumerate(bulk_runs)
        )
        raw_small_writes = max(raw_medians[(4096, 4096)], raw_medians[(4096, 65536)])

        def cpu_text(log: CpuLog, peer_name: str) -> str:
            if not log or not any(c.host or c.peer for c in log):
                return "not measured (no /proc schedstat)"
            host, peer, kernel = (statistics.median(c[i] for c in log) / 1e6 for i in range(3))
            everything = statistics.median(c.host + c.peer + c.kernel for c in log) / 1e6
            busy = statistics.median(
                (c.host + c.peer + c.kernel) / (MACHINE_CPUS * c.wall) for c in log if c.wall
            )
            return (
                f"{everything:.1f} ms: host {host:.1f}, {peer_name} {peer:.1f}, kernel workers "
                f"{kernel:.1f}; {busy:.0%} of {MACHINE_CPUS} CPUs busy"
            )

        def total_cpu(log: CpuLog) -> float:
            return statistics.median(c.host + c.peer + c.kernel for c in log) if log else 0.0

        shapes_text = ", ".join(
            f"{w // 1024}/{r // 1024} KiB {raw_medians[(w, r)] / 1e6:.0f}" for w, r in raw_shapes
        )
        with start_virtual_device(link=tmp / "small") as dev:
            _place(dev.pid)
            step("bulk upload throughput (1 KiB frames)")
            bulk_small = bulk_throughput(dev.url, 1024, total, repeats)
            rows.append(
                (
                    "bulk upload fw0, 4 MiB, 16 KiB frames",
                    f"{bulk_bps / 1e6:.1f} MB/s",
                    f"raw pty {raw_bps / 1e6:.1f} MB/s (writes/reads {shapes_text} MB/s): "
                    f"ratio {bulk_bps / raw_bps:.2f}, per round {per_round:.2f}; against "
                    f"4 KiB writes {bulk_bps / raw_small_writes:.2f}",
                    ">= 0.85",
                )
            )
            if c_runs:
                c_bps = statistics.median(c_runs)
                c_round = statistics.median(b / c for b, c in zip(bulk_runs, c_runs, strict=True))
                rows.append(
                    (
                        "bulk against the pty with C on both ends (C writer, C reader, 64 KiB "
                        "reads; not the target's baseline)",
                        f"{bulk_bps / 1e6:.1f} MB/s",
                        f"C pair {c_bps / 1e6:.1f} MB/s: ratio {bulk_bps / c_bps:.2f}, per "
                        f"round {c_round:.2f}; the raw baseline above reaches "
                        f"{raw_bps / c_bps:.2f} of it; C pair CPU {cpu_text(c_cpu, 'reader')}",
                        "",
                    )
                )
            rows.append(
                (
                    "CPU per 4 MiB, 16 KiB frames (schedstat, medians)",
                    f"bridge {cpu_text(bulk_cpu, 'device')}",
                    f"raw {best_shape[0] // 1024}/{best_shape[1] // 1024} KiB "
                    f"{cpu_text(raw_cpu[best_shape], 'reader')}",
                    "",
                )
            )
            work = codec_work_ns(total, 16384)
            raw_all = total_cpu(raw_cpu[best_shape])
            if work is not None and raw_all > 0:
                extra = sum(work.values())
                rows.append(
                    (
                        "codec work per 4 MiB the raw pty does not do (thread CPU, best of 5)",
                        f"{extra / 1e6:.1f} ms: encode {work['encode'] / 1e6:.1f}, decode "
                        f"{work['decode'] / 1e6:.1f}, SHA-256 {work['sha256'] / 1e6:.1f}",
                        f"ceiling with both CPUs busy: raw's {raw_all / 1e6:.1f} ms / "
                        f"({raw_all / 1e6:.1f} + {extra / 1e6:.1f}) = "
                        f"{raw_all / (raw_all + extra):.2f}",
                        "",
                    )
                )
            slack = pty_buffer_bytes()
            rows.append(
                (
                    "pty buffering between writer and reader (reader idle)",
                    f"{slack} B",
                    f"{slack / raw_bps * 1e6:.0f} us of the raw pty's throughput: a writer or "
                    "reader held up longer than that stalls the other",
                    "",
                )
            )
            rows.append(
                (
                    "bulk upload fw0, 4 MiB, 1 KiB frames",
                    f"{bulk_small / 1e6:.1f} MB/s",
                    f"ratio {bulk_small / raw_bps:.2f}",
                    "",
                )
            )
            step("RPC round trips")
            raw, rpc = [], []
            round_ratios = []
            for r in range(6):  # interleaved rounds in alternating order, as above
                if r % 2 == 0:
                    raw_round = raw_echo_rtts(args.rpcs // 6)
                    rpc_round = rpc_rtts(dev.url, args.rpcs // 6)
                else:
                    rpc_round = rpc_rtts(dev.url, args.rpcs // 6)
                    raw_round = raw_echo_rtts(args.rpcs // 6)
                raw += raw_round
                rpc += rpc_round
                round_ratios.append(statistics.median(rpc_round) / statistics.median(raw_round))
            med_ratio = statistics.median(rpc) / statistics.median(raw)
            p99_ratio = percentile(rpc, 99) / percentile(raw, 99)
            rows.append(
                (
                    "RPC sys.ping 64 B round trip",
                    f"median {statistics.median(rpc) * 1e6:.0f} us, "
                    f"p99 {percentile(rpc, 99) * 1e6:.0f} us",
                    f"raw echo median {statistics.median(raw) * 1e6:.0f} us, "
                    f"p99 {percentile(raw, 99) * 1e6:.0f} us: ratio {med_ratio:.2f} / "
                    f"{p99_ratio:.2f}; rounds {min(round_ratios):.2f}-{max(round_ratios):.2f}",
                    "<= 1.5",
                )
            )
            step("RPC round trips awaited through AsyncBridge")
            ar = async_rpc(dev.url, args.rpcs // 2)
            sync_rtts, async_rtts = ar["sync"], ar["async"]
            assert isinstance(sync_rtts, list) and isinstance(async_rtts, list)
            one_at_a_time = 1 / statistics.median(sync_rtts)
            rows.append(
                (
                    "RPC sys.ping 64 B from 8 threads at once (Bridge.call)",
                    f"{ar['threads']:.0f} calls/s, {ar['thread_retransmits']:.0f} retransmits",
                    f"{float(ar['threads']) / one_at_a_time:.1f}x the calls/s of one at a time",
                    "",
                )
            )
            rows.append(
                (
                    "RPC sys.ping 64 B awaited (firmware_bridge.aio)",
                    f"median {statistics.median(async_rtts) * 1e6:.0f} us, p99 "
                    f"{percentile(async_rtts, 99) * 1e6:.0f} us; 8 gathered at a time: "
                    f"{ar['gathered']:.0f} calls/s",
                    f"Bridge.call median {statistics.median(sync_rtts) * 1e6:.0f} us: ratio "
                    f"{statistics.median(async_rtts) / statistics.median(sync_rtts):.2f}; "
                    f"gathered {float(ar['gathered']) / one_at_a_time:.1f}x the calls/s of "
                    "one at a time",
                    "",
                )
            )
            step(f"IMU stream at 1 kHz for {args.seconds:g} s")
            imu = imu_stream(dev.url, args.seconds)
            rows.append(
                (
                    f"IMU stream 1 kHz, {args.seconds:g} s",
                    f"{imu['samples']:.0f} samples in {imu['frames']:.0f} frames, "
                    f"lost {imu['lost']:.0f}, overruns {imu['overruns']:.0f}",
                    f"latency p50 {imu['p50']:.0f} us, p99 {imu['p99']:.0f} us; "
                    f"{imu['completeness'] * 100:.2f}% of the nominal samples",
                    "no loss",
                )
            )
            for label, size in (("IMU DATA (16 + 12 B)", 28), ("RPC ping 64 B", 66)):
                rows.append((f"framing overhead, {label}", f"{overhead(size):.3f} B/B", "", ""))
            bulk_payload = 1024 - 16 - BULK_DATA_HEADER
            rows.append(
                (
                    "framing overhead, bulk 1 KiB frame",
                    f"{overhead(bulk_payload + BULK_DATA_HEADER, BULK_DATA_HEADER):.3f} B/B",
                    f"{overhead(16384 - 16 - 4, 4):.4f} B/B with 16 KiB frames",
                    "",
                )
            )
            step("bulk through the proxy paced at 921600 baud")
            goodput = paced_goodput(dev.url, tmp, 921600, 256 * 1024)
            rows.append(
                (
                    "bulk fw0 256 KiB via proxy at 921600 baud",
                    f"{goodput * 92160 / 1e3:.1f} kB/s",
                    f"{goodput:.3f} of line rate (92.16 kB/s)",
                    ">= 0.97",
                )
            )
            step(f"{args.fault_rpcs} RPCs through {args.fault_rate:.0%} faults per byte")
            fr = fault_rpcs(dev.url, tmp, args.fault_rpcs, args.fault_rate)
            rows.append(
                (
                    f"{fr['calls']:.0f} RPCs, {args.fault_rate:.0%} faults/byte each way",
                    f"{fr['seconds']:.1f} s ({fr['seconds'] / fr['calls'] * 1e3:.1f} ms/call)",
                    f"wrong {fr['wrong']:.0f}, failed {fr['failed']:.0f}, final state "
                    f"{'ok' if fr['final_ok'] else 'WRONG'}, {fr['retransmits']:.0f} "
                    f"retransmits, {fr['late']:.0f} late responses dropped, "
                    f"{fr['faults']:.0f} faults injected",
                    "all exactly once",
                )
            )

    print("| measurement | firmware_bridge | comparison | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(f"host bulk frame encoder: {_native.status()}")
    print(f"placement: {placement}")
    print("command: python benchmarks/bench_bridge.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
