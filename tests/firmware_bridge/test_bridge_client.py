"""The client against the Python SimDevice served over a real pseudo-terminal."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

import pytest

from firmware_bridge import (
    AuthError,
    Bridge,
    BridgeTimeout,
    DeviceNotFound,
    Disconnected,
    ProtocolError,
    RemoteError,
    Status,
)
from firmware_bridge.framing import encode_frame
from firmware_bridge.messages import Channel, ControlType, Header, RpcType, pack_response
from firmware_bridge.simdevice import SimPtyServer
from firmware_bridge.virtual import VirtualDeviceApi

KEY = bytes(range(32))


def bridge_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("bridge-")]


def test_hello_ping_config_and_remote_errors(sim: SimPtyServer) -> None:
    with Bridge.open(sim.url, timeout=2) as bridge:
        assert bridge.info.uid == sim.device.uid
        assert bridge.info.streams["imu"].sample_size == 12
        assert bridge.ping(b"\x00\x01\xff" * 20) < 1.0
        api = VirtualDeviceApi(bridge)
        api.config_set("mode", "demo")
        assert api.config_get("mode") == "demo"
        assert api.config_get("missing") is None
        assert api.config_list() == {"mode": "demo"}
        with pytest.raises(RemoteError) as err:
            bridge.call("config.get", b"missing")
        assert err.value.status == Status.NOT_FOUND and err.value.status_name == "NOT_FOUND"
        assert "NOT_FOUND" in str(err.value)
        with pytest.raises(RemoteError, match="UNKNOWN_METHOD"):
            bridge.call(0x7777)
        with pytest.raises(ProtocolError, match="offers no method 'nope'"):
            bridge.call("nope")
    assert bridge_threads() == []


def test_duplicated_and_late_responses_are_dropped(sim: SimPtyServer) -> None:
    sim.intercept = lambda out: out + out  # every frame arrives twice
    with Bridge.open(sim.url, timeout=2) as bridge:
        for i in range(50):
            assert bridge.call("sys.ping", bytes([i])) == bytes([i])
        executed = sim.device.calls_executed
        assert executed == 50
        assert bridge.stats()["rpc"]["late_responses"] >= 49


def test_lost_response_is_retransmitted_and_run_once(sim: SimPtyServer) -> None:
    dropped: list[bytes] = []

    def drop_first_response(out: bytes) -> bytes:
        if b"\x01\x02" not in out[:8]:
            return out
        if not dropped and sim.device.calls_executed == 1:
            dropped.append(out)
            return b""
        return out

    with Bridge.open(sim.url, timeout=2) as bridge:
        sim.intercept = drop_first_response
        api = VirtualDeviceApi(bridge)
        api.config_set("k", "v")
        assert dropped, "the first response was not intercepted"
        assert bridge.stats()["rpc"]["retransmits"] >= 1
        assert sim.device.calls_executed == 1
        assert api.config_get("k") == "v"


def test_silent_device_times_out_with_a_typed_error(sim: SimPtyServer) -> None:
    with Bridge.open(sim.url, timeout=2) as bridge:
        sim.intercept = lambda out: b""
        start = time.monotonic()
        with pytest.raises(BridgeTimeout) as err:
            bridge.call("sys.ping", b"x", timeout=0.5)
        assert isinstance(err.value, TimeoutError)
        assert 0.45 < time.monotonic() - start < 1.5
        assert "no response" in str(err.value)


def test_no_hello_is_a_timeout_naming_the_fix(sim: SimPtyServer) -> None:
    sim.intercept = lambda out: b""
    with pytest.raises(BridgeTimeout, match="no HELLO"):
        Bridge.open(sim.url, timeout=0.5)
    assert bridge_threads() == []


def test_missing_port_is_device_not_found(tmp_path: object) -> None:
    with pytest.raises(DeviceNotFound, match="does not exist"):
        Bridge.open("serial:///dev/nonexistent-bridge-port", timeout=0.5)


def test_unplug_fails_calls_in_flight(sim: SimPtyServer) -> None:
    with Bridge.open(sim.url, timeout=2, reconnect=False) as bridge:
        sim.intercept = lambda out: b""
        threading.Timer(0.2, sim.close).start()
        with pytest.raises(Disconnected):
            bridge.call("sys.ping", b"x", timeout=3)
    assert bridge_threads() == []


def test_new_epoch_fails_calls_in_flight_and_restarts_streams(sim: SimPtyServer) -> None:
    with Bridge.open(sim.url, timeout=2) as bridge:
        stream = bridge.subscribe("imu", 200)
        stream.get(timeout=2)
        old_epoch = bridge.epoch
        sim.intercept = lambda out: b""

        def reboot() -> None:  # an unsolicited HELLO, as after a device reboot
            dev = sim.device
            dev.epoch += 1
            dev._streams.clear()
            dev._responses.clear()
            hello = encode_frame(Header.make(Channel.CONTROL, ControlType.HELLO), dev.info().pack())
            sim.intercept = None
            sim.inject(hello)

        threading.Timer(0.2, reboot).start()
        with pytest.raises(Disconnected, match="new session"):
            bridge.call("sys.ping", b"x", timeout=3)
        assert bridge.epoch == old_epoch + 1
        deadline = time.monotonic() + 3
        stream.drain()
        while time.monotonic() < deadline:  # the stream comes back without user code
            sample = stream.get(timeout=3)
            if sample.seq < 50:
                break
        assert sample.seq < 50


def test_console_lines_and_device_logs_reach_callbacks(
    sim: SimPtyServer, caplog: pytest.LogCaptureFixture
) -> None:
    lines: list[str] = []
    logs: list[tuple[int, str]] = []
    caplog.set_level(logging.INFO, logger="firmware_bridge.device")
    with Bridge.open(
        sim.url, timeout=2, on_console=lines.append, on_log=lambda lv, ts, t: logs.append((lv, t))
    ) as bridge:
        sim.inject(b"Guru Meditation Error: Core 0 panic'ed\r\n")
        VirtualDeviceApi(bridge).log_emit(logging.WARNING, "battery low")
        deadline = time.monotonic() + 2
        while (not lines or not logs) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert lines == ["Guru Meditation Error: Core 0 panic'ed"]
    assert logs == [(logging.WARNING, "battery low")]
    assert "battery low" in caplog.text


def test_stream_counts_and_drops_oldest(sim: SimPtyServer) -> None:
    with Bridge.open(sim.url, timeout=2) as bridge:
        stream = bridge.subscribe("imu", 1000, maxlen=10)
        time.sleep(0.5)
        samples = stream.drain()
        assert len(samples) == 10
        seqs = [s.seq for s in samples]
        assert seqs == list(range(seqs[0], seqs[0] + 10)), "the newest samples are kept"
        stats = stream.stats()
        assert stats.lost == 0 and stats.dropped == stats.received - 10 > 0
        (values,) = samples[-1].unpack("<6h")
        assert 950 < values[2] < 1050
        stream.close()
        assert not sim.device._streams


def test_upload_checks_sha256(sim: SimPtyServer) -> None:
    data = bytes(i * 7 & 0xFF for i in range(20000))
    seen: list[int] = []
    with Bridge.open(sim.url, timeout=2) as bridge:
        result = bridge.upload("fw0", data, progress=lambda done, total: seen.append(done))
        assert sim.device.fw_slot == data
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        assert seen[-1] == len(data) and seen == sorted(seen)
        with pytest.raises(RemoteError, match="INTEGRITY"):
            bridge.upload("fw0", data[::-1], sha256=hashlib.sha256(b"other").digest())
        assert sim.device.fw_slot == data


def test_authenticated_session(sim: SimPtyServer) -> None:
    sim.device.auth_key = KEY
    with pytest.raises(AuthError, match="requires authentication"):
        Bridge.open(sim.url, timeout=2)
    with Bridge.open(sim.url, timeout=2, auth_key=KEY.hex()) as bridge:
        api = VirtualDeviceApi(bridge)
        api.config_set("armed", "no")
        assert api.config_get("armed") == "no"
        assert bridge.info.auth_required


def test_wrong_key_is_an_auth_error(sim: SimPtyServer) -> None:
    sim.device.auth_key = KEY
    with (
        Bridge.open(sim.url, timeout=2, auth_key=bytes(32)) as bridge,
        pytest.raises(AuthError, match="unauthenticated"),
    ):
        bridge.call("config.set", b"\x05armedyes", timeout=0.5)
    assert sim.device.config == {}


def test_forged_response_changes_no_host_state(sim: SimPtyServer) -> None:
    sim.device.auth_key = KEY
    with Bridge.open(sim.url, timeout=2, auth_key=KEY) as bridge:
        sim.intercept = lambda out: b""  # the real device stays silent
        forged = encode_frame(
            Header.make(Channel.RPC, RpcType.RESPONSE, id=bridge._next_call_id),
            pack_response(Status.OK, b"forged"),
        )
        threading.Timer(0.1, sim.inject, args=(forged,)).start()
        with pytest.raises(BridgeTimeout):
            bridge.call("sys.ping", b"real", timeout=0.6)
        assert bridge.stats()["auth_rejected"] >= 1


def test_hostile_bytes_from_the_device_change_nothing(sim: SimPtyServer) -> None:
    lines: list[str] = []
    with Bridge.open(sim.url, timeout=2, on_console=lines.append) as bridge:
        info = bridge.info
        bad_hello = encode_frame(Header.make(Channel.CONTROL, ControlType.HELLO), b"\x01\x00\xff")
        unknown_channel = encode_frame(Header.make(9, 1), b"???")
        stray_response = encode_frame(
            Header.make(Channel.RPC, RpcType.RESPONSE, id=0xDEAD), pack_response(0, b"")
        )
        short_response = encode_frame(Header.make(Channel.RPC, RpcType.RESPONSE, id=1), b"\x00")
        noise = bytes(range(1, 256)) * 40  # one long run without a delimiter: oversize
        sim.inject(bad_hello + unknown_channel + stray_response + short_response + noise + b"\x00")
        sim.inject(b"\x00" * 100 + b"\xff\xfe\xfd\x00" + b"ok after all that\n")
        assert bridge.ping(b"still fine") < 1
        deadline = time.monotonic() + 2
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = bridge.stats()
        assert bridge.info == info, "a malformed HELLO must not replace the session"
        assert stats["decoder"]["oversize"] >= 1 and stats["decoder"]["cobs_errors"] >= 1
        assert stats["rpc"]["late_responses"] >= 1
        assert lines == ["ok after all that"]
        assert bridge.connected


def test_stream_iteration_ends_when_closed(sim: SimPtyServer) -> None:
    with Bridge.open(sim.url, timeout=2) as bridge:
        stream = bridge.subscribe(1, 500)  # by id
        assert stream.name == "imu"
        seqs = []
        for sample in stream:
            seqs.append(sample.seq)
            if len(seqs) == 20:
                stream.close()
        assert seqs[:20] == list(range(seqs[0], seqs[0] + 20))
        assert list(stream) == []
        with pytest.raises(Disconnected, match="closed"):
            stream.get(timeout=0.1)
        with pytest.raises(ProtocolError, match="offers no stream 'gps'"):
            bridge.subscribe("gps", 10)


def test_call_completion_happens_once() -> None:
    from firmware_bridge.client import _PendingCall

    pending = _PendingCall(1, "sys.ping", 1)
    assert not pending.wait(0.01)
    pending.status, pending.result = 0, b"first"
    pending.set()
    assert pending.wait(0.0) and pending.wait(0.0)
    pending.set()  # a late duplicate or a link loss after the answer: no effect, no error
    assert pending.wait(0.0) and pending.result == b"first"
