"""firmware_bridge.aio against the Python SimDevice and the C virtual device, over real ptys."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import pytest

from firmware_bridge import Bridge, BridgeTimeout, Disconnected, RemoteError, Status
from firmware_bridge.aio import AsyncBridge
from firmware_bridge.simdevice import SimPtyServer
from firmware_bridge.virtual import VirtualDevice, VirtualDeviceApi


def test_gathered_calls_are_in_flight_together(sim: SimPtyServer) -> None:
    """The device answers nothing until it has run eight calls: only calls that are all on
    the link at once can finish (one after another, the first would time out)."""
    held = bytearray()

    def hold_until_eight(out: bytes) -> bytes:
        held.extend(out)
        if sim.device.calls_executed < 8:
            return b""
        released = bytes(held)
        held.clear()
        return released

    async def main() -> list[bytes]:
        async with await AsyncBridge.open(sim.url, timeout=2) as board:
            sim.intercept = hold_until_eight
            return await asyncio.gather(
                *(board.call("sys.ping", bytes([i]) * 3, timeout=3) for i in range(8))
            )

    answers = asyncio.run(main())
    assert answers == [bytes([i]) * 3 for i in range(8)]
    assert sim.device.calls_executed == 8  # retransmits while held ran nothing twice


def test_errors_are_the_synchronous_ones(sim: SimPtyServer) -> None:
    async def main() -> None:
        async with await AsyncBridge.open(sim.url, timeout=2) as board:
            assert board.connected and board.info.uid_hex
            with pytest.raises(RemoteError) as err:
                await board.call("config.set", b"\x05", timeout=1)  # a key length that lies
            assert err.value.status == Status.BAD_ARGS
            sim.intercept = lambda out: b""  # a hung firmware
            started = time.monotonic()
            with pytest.raises(BridgeTimeout, match="no response"):
                await board.call("sys.ping", b"x", timeout=0.3)
            assert time.monotonic() - started < 1.5
        with pytest.raises(Disconnected, match="closed"):
            await board.call("sys.ping")
        assert not [t for t in threading.enumerate() if t.name.startswith("bridge-aio")]

    asyncio.run(main())


def test_the_loop_keeps_running_while_a_call_waits(sim: SimPtyServer) -> None:
    async def main() -> int:
        async with await AsyncBridge.open(sim.url, timeout=2) as board:
            sim.intercept = lambda out: b""
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            with pytest.raises(BridgeTimeout):
                await board.call("sys.ping", b"x", timeout=0.4)
            task.cancel()
            return ticks

    assert asyncio.run(main()) >= 10  # 0.4 s of 10 ms ticks: the loop was never blocked


def test_stream_get_times_out_and_leaves_no_waker(sim: SimPtyServer) -> None:
    async def main() -> None:
        async with await AsyncBridge.open(sim.url, timeout=2) as board:
            imu = await board.subscribe("imu", 200)
            first = await imu.get(timeout=2)
            assert first.stream_id == imu.stream.id
            sim.intercept = lambda out: b""  # the board stops sending
            await asyncio.sleep(0.05)
            imu.drain()
            with pytest.raises(BridgeTimeout, match="no sample of stream 'imu'"):
                await imu.get(timeout=0.2)
            assert imu.stream._wakers == []
            task = asyncio.create_task(imu.get(timeout=None))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert imu.stream._wakers == []
            sim.intercept = None
            await imu.close()
            assert imu.closed
            # samples that arrived before the close are still delivered, then iteration ends
            kept = [s.seq async for s in imu]
            assert kept == sorted(kept) and all(seq > first.seq for seq in kept)
            assert [s async for s in imu] == []
            with pytest.raises(Disconnected, match="closed"):
                await imu.get(timeout=0.1)

    asyncio.run(main())


def test_stream_upload_and_replug_on_the_c_device(vdev: VirtualDevice) -> None:
    image = os.urandom(96 * 1024 + 5)

    async def main() -> None:
        async with await AsyncBridge.open(vdev.url, timeout=3) as board:
            loop_thread = threading.get_ident()
            reports: list[tuple[int, int, int]] = []

            def progress(done: int, total: int) -> None:
                reports.append((done, total, threading.get_ident()))

            result = await board.upload("fw0", image, progress=progress, timeout=20)
            await asyncio.sleep(0)  # the last report is scheduled on the loop
            assert result.resumed_from == 0 and bytes.fromhex(result.sha256) == (
                hashlib.sha256(image).digest()
            )
            assert reports[-1][:2] == (len(image), len(image))
            assert {t for _, _, t in reports} == {loop_thread}
            assert [d for d, _, _ in reports] == sorted(d for d, _, _ in reports)
            slot = await asyncio.to_thread(VirtualDeviceApi(board.bridge).fw_slot)
            assert slot.valid and slot.size == len(image)

            async with await board.subscribe("imu", 1000, maxlen=10000) as imu:
                seqs = []
                async for sample in imu:
                    seqs.append(sample.seq)
                    if len(seqs) == 300:
                        break
                assert seqs == list(range(seqs[0], seqs[0] + 300))
                assert imu.stats().lost == 0
                epoch = board.info.epoch
                vdev.replug()
                while board.connected:
                    await asyncio.sleep(0.01)
                info = await board.wait_session(5)
                assert info.epoch > epoch
                imu.drain()
                fresh = await imu.get(timeout=3)
                assert fresh.seq < 1000, "the stream restarted without user code"
            assert imu.closed
            assert await board.ping(b"after") < 1

    asyncio.run(main())


def test_wrapping_an_open_bridge_leaves_it_open(vdev: VirtualDevice) -> None:
    with Bridge.open(vdev.url, timeout=3) as bridge:

        async def main() -> dict[str, str]:
            async with AsyncBridge(bridge) as board:
                return await board.sys_info()

        info = asyncio.run(main())
        assert info["uid"] == bridge.info.uid_hex
        assert bridge.ping(b"still open") < 1


def test_calls_threads_and_an_upload_share_the_link(vdev: VirtualDevice) -> None:
    """Awaited calls (the loop reads the link while they are in flight), calls from a thread
    and an upload at once: every answer reaches its caller, the image arrives whole."""
    image = os.urandom(512 * 1024)

    async def main() -> None:
        async with await AsyncBridge.open(vdev.url, timeout=3) as board:
            bridge = board.bridge
            failures: list[BaseException] = []

            def thread_calls() -> None:
                try:
                    for i in range(200):
                        assert bridge.call("sys.ping", b"t%d" % i) == b"t%d" % i
                except BaseException as e:  # reported below
                    failures.append(e)

            worker = threading.Thread(target=thread_calls)
            worker.start()
            upload = asyncio.create_task(board.upload("fw0", image, timeout=20))
            for i in range(100):
                answers = await asyncio.gather(
                    *(board.call("sys.ping", b"a%d.%d" % (i, k)) for k in range(4))
                )
                assert answers == [b"a%d.%d" % (i, k) for k in range(4)]
            result = await upload
            await asyncio.to_thread(worker.join)
            assert not failures
            assert result.resumed_from == 0
            slot = await asyncio.to_thread(VirtualDeviceApi(bridge).fw_slot)
            assert slot.valid and slot.sha256 == hashlib.sha256(image).digest()
            assert bridge._direct_callers == 0  # the link went back to the reader thread
            assert board.stats()["rpc"]["failed"] == 0

    asyncio.run(main())
