"""Faults: the injecting proxy itself, and the client through it against the C device."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from firmware_bridge import Bridge, BridgeError, Disconnected
from firmware_bridge.framing import FrameDecoder, encode_frame
from firmware_bridge.messages import Channel, Header, RpcType
from firmware_bridge.proxy import FAULT_KINDS, FaultInjector, FaultProxy, Pacer
from firmware_bridge.virtual import VirtualDevice, VirtualDeviceApi

RPC_COUNT = int(os.environ.get("BRIDGE_FAULT_RPCS", "500"))


def frames(n: int) -> bytes:
    return b"".join(
        encode_frame(Header.make(Channel.RPC, RpcType.REQUEST, id=i), bytes(20)) for i in range(n)
    )


def test_injector_without_faults_is_transparent() -> None:
    data = frames(100)
    inj = FaultInjector(0.0)
    assert inj.apply(data) == [(0.0, data)]


def test_injector_rate_and_determinism() -> None:
    data = frames(4000)
    a = FaultInjector(0.01, seed=7, max_delay=0.0)
    b = FaultInjector(0.01, seed=7, max_delay=0.0)
    out_a, out_b = a.apply(data), b.apply(data)
    assert out_a == out_b, "same seed, same faults"
    total = sum(a.stats.faults.values())
    assert 0.8 * 0.01 * len(data) < total < 1.2 * 0.01 * len(data)
    assert all(a.stats.faults[k] > 0 for k in FAULT_KINDS)
    assert FaultInjector(0.01, seed=8).apply(data) != out_a


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_changes_the_stream_as_named(kind: str) -> None:
    data = frames(50)
    inj = FaultInjector(0.02, kinds=(kind,), seed=3, max_delay=0.01)
    pieces = inj.apply(data)
    out = b"".join(chunk for _, chunk in pieces)
    n = inj.stats.faults[kind]
    assert n > 0
    if kind == "drop":
        assert len(out) == len(data) - n
    elif kind == "flip":
        assert len(out) == len(data)
        diff = [x ^ y for x, y in zip(out, data, strict=True) if x != y]
        assert len(diff) == n and all(bin(d).count("1") == 1 for d in diff)
    elif kind == "duplicate":
        assert len(out) == len(data) + n
    elif kind == "truncate":
        assert len(out) < len(data) and out.count(0) == data.count(0)
    else:
        assert out == data and len(pieces) == n + 1 and all(d > 0 for d, _ in pieces[1:])
    dec = FrameDecoder()
    survivors = dec.feed(out)
    assert len(survivors) < 50 or kind == "delay"
    assert dec.stats.frames + dec.stats.errors <= 50 + n


def test_pacer_holds_the_uart_rate() -> None:
    pacer = Pacer(115200)
    stop = threading.Event()
    data = bytes(2304)  # 0.2 s of line time at 11520 bytes/s
    start = time.monotonic()
    for piece in pacer.slices(data):
        pacer.wait(len(piece), stop)
    elapsed = time.monotonic() - start
    assert 0.19 < elapsed < 0.4


def test_rpcs_through_one_percent_faults_complete_exactly_once(
    vdev: VirtualDevice, tmp_path: Path
) -> None:
    """Every call returns its own intact answer once; the device runs each call id once."""
    with FaultProxy(vdev.url, seed=1234, link=tmp_path / "proxy") as proxy:
        with Bridge.open(proxy.url, timeout=5, call_timeout=10) as bridge:
            api = VirtualDeviceApi(bridge)
            proxy.set_faults("to_device", 0.01)
            proxy.set_faults("to_host", 0.01)
            start = time.monotonic()
            last_set = None
            for i in range(RPC_COUNT):
                if i % 5 == 0:
                    # a re-executed older config.set would move the value backwards
                    api.config_set("n", str(i))
                    last_set = str(i)
                elif i % 50 == 1:
                    assert api.config_get("n") == last_set
                else:
                    payload = i.to_bytes(4, "little") * 8
                    assert bridge.call("sys.ping", payload) == payload
            elapsed = time.monotonic() - start
            proxy.set_faults("to_device", 0.0)
            proxy.set_faults("to_host", 0.0)
            assert api.config_get("n") == last_set
            stats = bridge.stats()
        faults = proxy.stats()
    assert stats["rpc"]["calls"] == RPC_COUNT + 1 and stats["rpc"]["failed"] == 0
    assert stats["rpc"]["retransmits"] > RPC_COUNT * 0.2, "the faults did hit"
    assert stats["decoder"]["crc_errors"] + stats["decoder"]["cobs_errors"] > 0
    assert sum(faults["to_device"].faults.values()) > 0
    assert elapsed < 30 * RPC_COUNT / 500


def test_replug_fails_the_call_in_flight(vdev: VirtualDevice, tmp_path: Path) -> None:
    with (
        FaultProxy(vdev.url, link=tmp_path / "proxy") as proxy,
        Bridge.open(proxy.url, timeout=5) as bridge,
    ):
        epoch = bridge.epoch
        proxy.set_faults("to_device", 1.0, kinds=("drop",))  # the request never arrives
        threading.Timer(0.3, vdev.replug).start()
        t0 = time.monotonic()
        with pytest.raises(Disconnected, match="dropped"):
            bridge.call("sys.ping", b"in flight", timeout=5)
        assert time.monotonic() - t0 < 3
        proxy.set_faults("to_device", 0.0)
        assert bridge.wait_session(5).epoch > epoch
        assert bridge.call("sys.ping", b"back") == b"back"
        assert proxy.replugs == 1


def test_bulk_through_a_paced_uart(vdev: VirtualDevice, tmp_path: Path) -> None:
    baud = 921600
    image = os.urandom(24 * 1024)
    with (
        FaultProxy(vdev.url, baud=baud, link=tmp_path / "proxy") as proxy,
        Bridge.open(proxy.url, timeout=5) as bridge,
    ):
        result = bridge.upload("fw0", image, timeout=20)
        assert VirtualDeviceApi(bridge).fw_slot().valid
    line_rate = baud / 10
    assert result.seconds >= len(image) / line_rate * 0.98, "the proxy paces like a UART"
    assert result.throughput / line_rate > 0.8


def test_proxy_rejects_bad_settings(vdev: VirtualDevice) -> None:
    with pytest.raises(BridgeError, match="probability"):
        FaultInjector(1.5)
    with pytest.raises(BridgeError, match="unknown fault kinds"):
        FaultInjector(0.1, kinds=("melt",))


def test_upload_resumes_after_replug(vdev: VirtualDevice, tmp_path: Path) -> None:
    image = os.urandom(200 * 1024)
    with (
        FaultProxy(vdev.url, baud=2_000_000, link=tmp_path / "proxy") as proxy,
        Bridge.open(proxy.url, timeout=5) as bridge,
    ):
        first_url = vdev.device_url
        threading.Timer(0.4, vdev.replug).start()
        result = bridge.upload("fw0", image, timeout=30)
        slot = VirtualDeviceApi(bridge).fw_slot()
    assert result.reconnects == 1 and result.resumed_from > 0
    assert slot.valid and slot.size == len(image)
    assert vdev.device_url != first_url or proxy.replugs == 1
