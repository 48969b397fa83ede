"""Message layouts, and fuzzing of everything that parses bytes from a device."""

from __future__ import annotations

import contextlib
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import Bridge, ProtocolError
from firmware_bridge.framing import Frame
from firmware_bridge.messages import (
    DeviceInfo,
    Header,
    HelloRequest,
    StreamInfo,
    pack_begin,
    pack_end,
    pack_log,
    pack_stream_data,
    status_name,
    unpack_begin,
    unpack_end,
    unpack_log,
    unpack_stream_data,
)

INFO = DeviceInfo(
    version=1,
    epoch=7,
    boot_reason=2,
    uid=bytes.fromhex("a1b2c3d4"),
    firmware_version="board-2.1.0",
    firmware_sha256=bytes(range(32)),
    frame_limit=1024,
    rx_window=8,
    dev_nonce=bytes(range(16, 32)),
    auth_required=True,
    methods={"sys.ping": 1, "motor.set": 0x121},
    streams={"imu": StreamInfo(1, "imu", 12), "mic": StreamInfo(2, "mic", 320)},
)


def test_hello_round_trip() -> None:
    assert DeviceInfo.unpack(INFO.pack()) == INFO
    assert INFO.boot_reason_name == "watchdog"
    assert INFO.to_dict()["streams"] == {
        "imu": {"id": 1, "sample_size": 12},
        "mic": {"id": 2, "sample_size": 320},
    }


def test_truncated_hello_names_the_problem() -> None:
    with pytest.raises(ProtocolError, match="HELLO payload truncated"):
        DeviceInfo.unpack(INFO.pack()[:-3])


def test_other_layouts_round_trip() -> None:
    req = HelloRequest(1, 1, 1024, 16, bytes(16))
    assert HelloRequest.unpack(req.pack()) == req
    assert unpack_stream_data(pack_stream_data(5, 1234, 2, b"xy")) == (5, 1234, 2, b"xy")
    assert unpack_begin(pack_begin(10, bytes(32), "fw0")) == (10, bytes(32), "fw0")
    assert unpack_end(pack_end(8, 99)) == (8, 99)
    assert unpack_log(pack_log(30, 5, "hot")) == (30, 5, "hot")
    assert status_name(9) == "STALE" and status_name(77) == "STATUS_77"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_hello_parser_only_raises_protocol_errors(payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        DeviceInfo.unpack(payload)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 6), st.integers(0, 5), st.integers(0, 2**32 - 1), st.binary(max_size=80)
        ),
        max_size=12,
    )
)
def test_dispatch_survives_any_frame(frames: list[tuple[int, int, int, bytes]]) -> None:
    """Whatever a device sends, the client's handlers log and drop it; they never raise."""
    bridge = Bridge("loop://")
    logging.getLogger("firmware_bridge").setLevel(logging.CRITICAL)
    try:
        for channel, msg_type, ident, payload in frames:
            header = Header.make(channel, msg_type, id=ident)
            bridge._dispatch(Frame(header, payload), 0)
    finally:
        logging.getLogger("firmware_bridge").setLevel(logging.NOTSET)
        bridge.close()
