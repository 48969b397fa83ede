"""The C library's bulk frame encoder (firmware_bridge._native) against the Python one."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge import Bridge, _native, client
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import FrameDecoder, encode_body
from firmware_bridge.messages import PROTOCOL_VERSION, BulkType, Channel
from firmware_bridge.virtual import VirtualDevice, VirtualDeviceApi, start_virtual_device

BULK = (PROTOCOL_VERSION, int(Channel.BULK), int(BulkType.DATA))


@pytest.fixture
def native(virtual_binary: Path) -> _native.Encoder:
    # make builds build/libbridge_host.so along with the virtual device
    encode, why = _native.load()
    assert encode is not None, why
    return encode


def _bodies() -> Iterator[bytes]:
    rng = random.Random(7)
    for size in (0, 1, 253, 254, 255, 1000, 1024, 4093, 16364, 16380):
        yield os.urandom(size)
        yield bytes(size)  # all zeros
        yield b"\x42" * size  # no zeros: full COBS blocks
        yield bytes(rng.choice((0, 0, 1, 255)) for _ in range(size))


def test_native_frames_are_the_python_frames_byte_for_byte(native: _native.Encoder) -> None:
    for body in _bodies():
        assert bytes(native(bytearray(body), 0)) == encode_body(body), len(body)


def test_native_frames_decode(native: _native.Encoder) -> None:
    header = bytes([1, 0, 3, 3, 9, 0, 0, 0, 5, 0, 0, 0])
    payload = os.urandom(16000)
    frames = FrameDecoder(16384).feed(bytes(native(bytearray(header + payload), 16384)))
    assert len(frames) == 1 and frames[0].payload == payload and frames[0].header.id == 5


def test_native_checks_the_frame_limit(native: _native.Encoder) -> None:
    with pytest.raises(FrameError, match="over the session frame limit 1024"):
        native(bytearray(1021), 1024)


def test_native_is_optional(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    encode, why = _native.load(tmp_path / "libbridge_host.so")
    assert encode is None and "not built" in why
    monkeypatch.setenv("FIRMWARE_BRIDGE_NATIVE", "0")
    encode, why = _native.load()
    assert encode is None and "FIRMWARE_BRIDGE_NATIVE=0" in why


def test_library_decoder_takes_python_frames_in_any_pieces(virtual_binary: Path) -> None:
    # bridge_host_decode runs the device's streaming decoder on the host (bench_bridge times
    # the device's share of the framing work with it): it must count what Python framed, and
    # refuse a stream with one flipped bit
    lib, why = _native._open(_native.LIBRARY)
    assert lib is not None, why
    counter = _native.FrameCounter(lib)
    header = bytes([1, 0, 3, 3, 9, 0, 0, 0, 5, 0, 0, 0])
    payloads = [os.urandom(n) for n in (0, 1, 254, 4000, 16000)] + [bytes(9000)]
    wire = b"".join(encode_body(header + p) for p in payloads)
    for piece in (1, 7, 4096, len(wire)):
        assert counter.count(wire, 16384, piece) == len(payloads), piece
    flipped = bytearray(wire)
    flipped[len(wire) // 2] ^= 0x10
    assert counter.count(bytes(flipped), 16384, 4096) == -1
    assert counter.count(wire, 16384, 0) == -1


@pytest.fixture
def writer(virtual_binary: Path) -> _native.BulkWriter:
    lib, why = _native._open(_native.LIBRARY)
    assert lib is not None, why
    return _native.BulkWriter(lib)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    """(master, slave) of a raw pty; the slave is non-blocking, as the host's port is."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(slave, False)
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):  # a test closed it already
            os.close(fd)


def _python_frames(data: bytes, start: int, end: int, chunk: int, seq: int, id: int) -> bytes:
    out = b""
    for off in range(start, end, chunk):
        head = client._BULK_DATA_HEAD.pack(*BULK[:1], 0, *BULK[1:], seq, 0, id, off)
        out += encode_body(head + data[off : min(off + chunk, end)])
        seq = (seq + 1) & 0xFFFF
    return out


def _read_all(fd: int, size: int, into: bytearray, seconds: float = 10.0) -> None:
    """Read fd into `into` until it holds size bytes, or give up after `seconds`."""
    deadline = time.monotonic() + seconds
    while len(into) < size and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            into += os.read(fd, 65536)


@pytest.mark.parametrize(
    ("start", "end", "chunk"),
    [(0, 200_000, 16364), (5, 5 + 16364 * 3, 16364), (1000, 1001, 16364), (0, 9000, 1004)],
)
def test_bulk_writer_writes_the_python_frames(
    writer: _native.BulkWriter, pty_pair: tuple[int, int], start: int, end: int, chunk: int
) -> None:
    """Through a real pty (which takes ~12 KiB at a time, so the writer waits for room and
    encodes ahead), byte for byte what the Python path would have written; seqs wrap."""
    master, slave = pty_pair
    data = bytes(random.Random(end).choice((0, 0, 1, 7, 255)) for _ in range(end + 10))
    want = _python_frames(data, start, end, chunk, 0xFFFE, 77)
    got = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, len(want), got), daemon=True)
    reader.start()
    rc, frames = writer.send(slave, data, start, end, chunk, BULK, 0xFFFE, 77, 5.0)
    reader.join(10)
    assert (rc, frames) == (0, -(-(end - start) // chunk))
    assert bytes(got) == want
    decoded = FrameDecoder(16384).feed(bytes(got))
    assert [f.header.seq for f in decoded][:3] == [0xFFFE, 0xFFFF, 0][: len(decoded)]


def test_bulk_writer_times_out_when_nobody_reads(
    writer: _native.BulkWriter, pty_pair: tuple[int, int]
) -> None:
    _, slave = pty_pair
    started = time.monotonic()
    rc, frames = writer.send(slave, os.urandom(1 << 20), 0, 1 << 20, 16364, BULK, 0, 1, 0.2)
    assert rc == -errno.ETIMEDOUT and 1 <= frames < 64
    assert 0.15 < time.monotonic() - started < 2


def test_bulk_writer_reports_a_hang_up(
    writer: _native.BulkWriter, pty_pair: tuple[int, int]
) -> None:
    master, slave = pty_pair
    os.close(master)
    rc, frames = writer.send(slave, os.urandom(50_000), 0, 50_000, 16364, BULK, 0, 1, 1.0)
    assert rc == -errno.EIO and frames == 1


def test_bulk_writer_refuses_frames_over_its_size(
    writer: _native.BulkWriter, pty_pair: tuple[int, int]
) -> None:
    _, slave = pty_pair
    assert writer.send(slave, b"x" * 70_000, 0, 70_000, 65000, BULK, 0, 1, 1.0) == (
        -errno.EINVAL,
        0,
    )
    with pytest.raises(ValueError, match="outside"):
        writer.send(slave, b"abc", 2, 9, 100, BULK, 0, 1, 1.0)


def test_raw_writer_writes_every_byte(virtual_binary: Path, pty_pair: tuple[int, int]) -> None:
    # the raw C writer (bench_bridge's C baseline): 1 MiB through a pty that takes ~12 KiB at
    # a time arrives whole and in order; nobody reading is a timeout, a closed reader a hang-up
    writer = _native.raw_writer()
    assert writer is not None, _native.status()
    master, slave = pty_pair
    data = os.urandom(1 << 20)
    got = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, len(data), got), daemon=True)
    reader.start()
    assert writer.write(slave, data, 5.0) == 0
    reader.join(10)
    assert bytes(got) == data
    started = time.monotonic()
    assert writer.write(slave, data, 0.2) == -errno.ETIMEDOUT
    assert 0.15 < time.monotonic() - started < 2
    os.close(master)
    assert writer.write(slave, data, 1.0) == -errno.EIO


def test_pty_sink_reads_the_total_then_answers(virtual_binary: Path) -> None:
    # build/pty_sink, the raw pty's reader in C: it reads exactly TOTAL bytes, answers "k", and
    # stays until its stdin closes; a stdin closed before TOTAL (the benchmark gave up) is
    # exit 2, not a sink left waiting
    sink = _native.C_DIR / "build" / "pty_sink"
    for total, close_early in ((300_000, False), (300_000, True)):
        proc = subprocess.Popen(
            [str(sink), str(total), "65536"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stdin is not None
        path = proc.stdout.readline().decode().strip()
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            if close_early:
                os.write(fd, bytes(1000))
                proc.stdin.close()
                assert proc.wait(5) == 2
                continue
            block = os.urandom(total)
            sent = 0
            while sent < total:
                sent += os.write(fd, block[sent:])
            assert select.select([fd], [], [], 5)[0] and os.read(fd, 10) == b"k"
            assert proc.poll() is None  # waits for its stdin
            proc.stdin.close()
            assert proc.wait(5) == 0
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
            proc.stdout.close()


@pytest.fixture
def slot_device(virtual_binary: Path, tmp_path: Path) -> Iterator[VirtualDevice]:
    dev = start_virtual_device(link=tmp_path / "vdev", frame_limit=16384)
    yield dev
    dev.close()


@pytest.mark.parametrize("encoder", ["direct", "native", "python"])
def test_upload_with_either_encoder(
    slot_device: VirtualDevice, monkeypatch: pytest.MonkeyPatch, encoder: str
) -> None:
    """The device takes the same 1 MiB image whichever path framed it: whole windows written
    by the C library (direct), frames encoded in C and written by Python, or all Python."""
    loaded = _native.load()
    if encoder != "python":
        assert loaded[0] is not None, loaded[1]
    monkeypatch.setattr(_native, "_loaded", loaded if encoder != "python" else (None, "off"))
    paths: list[str] = []
    send_bulk = Bridge._send_bulk
    send_direct = Bridge._send_bulk_direct

    def spy_bulk(self: Bridge, *args: object, **kwargs: object) -> None:
        paths.append("frames")
        send_bulk(self, *args, **kwargs)  # type: ignore[arg-type]

    def spy_direct(self: Bridge, *args: object, **kwargs: object) -> bool:
        if encoder != "direct":
            return False
        done = send_direct(self, *args, **kwargs)  # type: ignore[arg-type]
        paths.append("direct" if done else "declined")
        return done

    monkeypatch.setattr(Bridge, "_send_bulk", spy_bulk)
    monkeypatch.setattr(Bridge, "_send_bulk_direct", spy_direct)
    image = os.urandom(1 << 20)
    with Bridge.open(slot_device.url, timeout=5, frame_limit=16384) as bridge:
        result = bridge.upload("fw0", image)
        slot = VirtualDeviceApi(bridge).fw_slot()
    assert result.size == len(image) and slot.valid and slot.size == len(image)
    assert set(paths) == ({"direct"} if encoder == "direct" else {"frames"})
