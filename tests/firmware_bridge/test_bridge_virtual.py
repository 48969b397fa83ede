"""The host client against the real C virtual device (firmware_bridge/c) over a pty."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from firmware_bridge import AuthError, Bridge, RemoteError, Status
from firmware_bridge.auth import SessionAuth
from firmware_bridge.framing import Frame, FrameDecoder, encode_frame
from firmware_bridge.messages import (
    Channel,
    ControlType,
    DeviceInfo,
    Header,
    HelloRequest,
    RpcType,
    pack_request,
    unpack_response,
)
from firmware_bridge.virtual import VirtualDevice, VirtualDeviceApi, start_virtual_device

KEY = bytes.fromhex("8f" * 32)


def test_hello_describes_the_device(vdev: VirtualDevice) -> None:
    with Bridge.open(vdev.url, timeout=3) as bridge:
        info = bridge.info
        assert info.version == 1 and info.epoch >= 1
        assert info.firmware_version.startswith("virtual")
        assert info.frame_limit == 1024 and bridge.session_frame_limit == 1024
        for name in ("config.get", "config.set", "sim.tilt", "fw.slot", "sys.reboot"):
            assert name in info.methods
        assert info.streams["imu"].sample_size == 12
        sys_info = bridge.sys_info()
        assert sys_info["uid"] == info.uid_hex and int(sys_info["epoch"]) == info.epoch


def test_ping_sizes_up_to_the_frame_limit(vdev: VirtualDevice) -> None:
    with Bridge.open(vdev.url, timeout=3) as bridge:
        for size in (0, 1, 64, 253, 254, 255, bridge.max_payload - 2):
            payload = os.urandom(size)
            assert bridge.call("sys.ping", payload) == payload
        with pytest.raises(Exception, match="exceed this session's frame limit"):
            bridge.call("sys.ping", bytes(bridge.max_payload))


def test_config_led_motor(vdev: VirtualDevice) -> None:
    with Bridge.open(vdev.url, timeout=3) as bridge:
        api = VirtualDeviceApi(bridge)
        api.config_set("name", "kiosk-7")
        api.config_set("volume", "11")
        assert api.config_get("name") == "kiosk-7"
        assert api.config_get("absent") is None
        assert api.config_list() == {"name": "kiosk-7", "volume": "11"}
        with pytest.raises(RemoteError) as err:
            api.config_set("k", "v" * 40)
        assert err.value.status == Status.TOO_LARGE
        api.led(255, 0, 128)
        api.motor(-1000, 1000)
        with pytest.raises(RemoteError, match="BAD_ARGS"):
            api.motor(0, 1001)


def test_imu_stream_at_1khz_has_no_loss_and_shows_tilt(vdev: VirtualDevice) -> None:
    with Bridge.open(vdev.url, timeout=3) as bridge:
        api = VirtualDeviceApi(bridge)
        stream = bridge.subscribe("imu", 1000, maxlen=10000)
        time.sleep(1.5)
        api.tilt(60, 600)
        time.sleep(1.5)
        samples = stream.drain()
        stats = stream.stats()
        stream.close()
    assert stats.lost == 0 and stats.overruns == 0 and stats.dropped == 0
    assert 2400 <= stats.samples <= 3600 and stats.received <= stats.samples
    seqs = [s.seq for s in samples]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for a, b in itertools.pairwise(samples):  # batched samples keep the 1 ms grid
        assert b.timestamp_us - a.timestamp_us == 1000 * len(a.samples())
    imu = [v for s in samples for v in VirtualDeviceApi.imu_samples(s.data)]
    upright = [v for v in imu if v.az > 990]
    tilted = [v for v in imu if abs(v.ax + 866) < 60 and abs(v.az - 500) < 60]
    assert len(upright) > 1000, "gravity on z while level"
    assert 300 < len(tilted) < 900, "about 600 ms of 60 degrees pitch"
    assert stats.latency_p99_us is not None


def test_upload_firmware_and_reject_a_corrupted_one(vdev: VirtualDevice) -> None:
    image = os.urandom(64 * 1024 + 17)
    with Bridge.open(vdev.url, timeout=3) as bridge:
        api = VirtualDeviceApi(bridge)
        result = bridge.upload("fw0", image, timeout=20)
        slot = api.fw_slot()
        assert slot.valid and slot.size == len(image) and result.resumed_from == 0
        assert slot.sha256 == hashlib.sha256(image).digest() == bytes.fromhex(result.sha256)
        # the same image again: the device already holds it and nothing is sent
        assert bridge.upload("fw0", image).resumed_from == len(image)
        with pytest.raises(RemoteError) as err:
            bridge.upload("fw0", image, sha256=hashlib.sha256(image + b"x").digest())
        assert err.value.status == Status.INTEGRITY
        assert not api.fw_slot().valid
        with pytest.raises(RemoteError):
            bridge.upload("fw9", b"abc")


def test_replug_brings_the_session_and_stream_back(vdev: VirtualDevice) -> None:
    with Bridge.open(vdev.url, timeout=3) as bridge:
        stream = bridge.subscribe("imu", 500)
        stream.get(timeout=2)
        epoch = bridge.epoch
        vdev.replug()
        deadline = time.monotonic() + 5
        while bridge.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        info = bridge.wait_session(5)
        assert info.epoch > epoch
        assert bridge.reconnects == 1
        stream.drain()
        fresh = stream.get(timeout=3)
        assert fresh.seq < 400, "the stream restarted on the device without user code"
        assert bridge.ping(b"after replug") < 1


def test_reboot_starts_a_new_epoch(vdev: VirtualDevice) -> None:
    with Bridge.open(vdev.url, timeout=3) as bridge:
        epoch = bridge.epoch
        VirtualDeviceApi(bridge).reboot(boot_reason=3)
        deadline = time.monotonic() + 3
        while bridge.info.epoch == epoch and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bridge.info.epoch > epoch
        assert bridge.info.boot_reason_name == "software"
        assert bridge.ping() < 1


def test_device_logs_reach_the_callback(vdev: VirtualDevice) -> None:
    got: list[tuple[int, str]] = []
    event = threading.Event()

    def on_log(level: int, ts: int, text: str) -> None:
        got.append((level, text))
        event.set()

    with Bridge.open(vdev.url, timeout=3, on_log=on_log) as bridge:
        VirtualDeviceApi(bridge).log_emit(logging.ERROR, "motor driver overheated")
        assert event.wait(2)
    assert got == [(logging.ERROR, "motor driver overheated")]


def test_tcp_mode(virtual_binary: Path) -> None:
    with start_virtual_device(tcp_port=0) as dev:
        assert dev.url.startswith("tcp://127.0.0.1:")
        with Bridge.open(dev.url, timeout=3) as bridge:
            assert bridge.call("sys.ping", b"tcp") == b"tcp"
            epoch = bridge.epoch
            dev.replug()  # the device drops the connection and accepts the next one
            deadline = time.monotonic() + 5
            while bridge.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            assert bridge.wait_session(5).epoch > epoch
            assert bridge.call("sys.ping", b"again") == b"again"
            # bulk over a socket: frames encoded while the socket drains, sent with partial writes
            image = os.urandom(300_000)
            assert bridge.upload("fw0", image).sha256 == hashlib.sha256(image).hexdigest()
            assert VirtualDeviceApi(bridge).fw_slot().valid


# --- authentication ------------------------------------------------------------------------


def test_auth_required_and_wrong_key(tmp_path: Path, virtual_binary: Path) -> None:
    with start_virtual_device(link=tmp_path / "dev", auth_key=KEY) as dev:
        with pytest.raises(AuthError, match="requires authentication"):
            Bridge.open(dev.url, timeout=3)
        with Bridge.open(dev.url, timeout=3, auth_key=KEY) as bridge:
            api = VirtualDeviceApi(bridge)
            api.config_set("owner", "alice")
            assert api.config_get("owner") == "alice"
            # bulk frames of a signed session are signed as they are sent, never ahead
            image = os.urandom(20_000)
            result = bridge.upload("fw0", image)
            assert result.sha256 == hashlib.sha256(image).hexdigest()
            assert api.fw_slot().valid
        with (
            Bridge.open(dev.url, timeout=3, auth_key=bytes(32)) as bridge,
            pytest.raises(AuthError, match="unauthenticated"),
        ):
            bridge.call("config.set", b"\x05ownermallory", timeout=0.5)
        with Bridge.open(dev.url, timeout=3, auth_key=KEY) as bridge:
            assert VirtualDeviceApi(bridge).config_get("owner") == "alice"


class RawLink:
    """A hand-driven session on the device's pty, to send frames the client never would."""

    def __init__(self, path: str) -> None:
        import serial

        self.port = serial.Serial(path, timeout=0.05)
        self.decoder = FrameDecoder()
        self.host_nonce = os.urandom(16)
        req = HelloRequest(1, 1, 1024, 8, self.host_nonce).pack()
        self.port.write(b"\x00" + encode_frame(Header.make(Channel.CONTROL, 1), req))
        hello = self.expect(lambda f: f.header.type == ControlType.HELLO)
        self.info = DeviceInfo.unpack(hello.payload)

    def expect(self, match: object, timeout: float = 2.0) -> Frame:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.decoder.feed(self.port.read(4096)):
                if callable(match) and match(frame):
                    return frame
        raise AssertionError("expected frame did not arrive")

    def request(
        self, auth: SessionAuth, call_id: int, method: int, args: bytes, counter: int | None = None
    ) -> bytes:
        header = Header.make(Channel.RPC, RpcType.REQUEST, seq=call_id, id=call_id)
        payload = pack_request(method, args)
        if counter is not None:
            auth.tx_counter = counter - 1
        header, trailer = auth.sign(header, payload)
        wire = encode_frame(header, payload, trailer)
        self.port.write(wire)
        return wire

    def response(self, call_id: int) -> Frame:
        return self.expect(lambda f: f.header.channel == Channel.RPC and f.header.id == call_id)


def test_forged_and_replayed_frames_change_no_state(tmp_path: Path, virtual_binary: Path) -> None:
    with start_virtual_device(link=tmp_path / "dev", auth_key=KEY) as dev:
        link = RawLink(str(tmp_path / "dev"))
        good = SessionAuth(KEY, link.info.dev_nonce, link.host_nonce)
        verify = SessionAuth(KEY, link.info.dev_nonce, link.host_nonce)
        evil = SessionAuth(bytes(32), link.info.dev_nonce, link.host_nonce)
        config_set, config_get = link.info.methods["config.set"], link.info.methods["config.get"]

        first = link.request(good, 1, config_set, b"\x04mode" + b"safe", counter=1)
        ok = link.response(1)
        assert verify.verify(ok) and unpack_response(ok.payload)[0] == Status.OK

        link.request(evil, 2, config_set, b"\x04mode" + b"evil", counter=2)  # forged tag
        forged = link.response(2)
        assert forged.auth is None
        assert unpack_response(forged.payload)[0] == Status.UNAUTHENTICATED

        link.request(good, 3, config_set, b"\x04mode" + b"old", counter=1)  # replayed counter
        assert unpack_response(link.response(3).payload)[0] == Status.UNAUTHENTICATED

        link.port.write(first)  # the first frame again, byte for byte
        time.sleep(0.2)

        # counter 2 was never accepted, so it is still fresh: the device state moved only once
        link.request(good, 4, config_get, b"mode", counter=2)
        answer = link.response(4)
        assert verify.verify(answer)
        assert unpack_response(answer.payload) == (Status.OK, b"safe")
        link.port.close()
        assert dev.running


def test_concurrent_callers_and_a_stream(vdev: VirtualDevice) -> None:
    """Calls from several threads (one may read its own answer) while a stream runs."""
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(150):
                payload = bytes([n]) * (i % 50)
                assert bridge.call("sys.ping", payload, timeout=5) == payload
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    with Bridge.open(vdev.url, timeout=3) as bridge:
        stream = bridge.subscribe("imu", 1000, maxlen=100000)
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        time.sleep(0.2)
        stats = stream.stats()
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)
    assert stats.lost == 0 and stats.samples > 100
    assert bridge.stats()["rpc"]["failed"] == 0
