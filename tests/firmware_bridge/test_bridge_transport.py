"""Transport registry, URL parsing and reset strategies."""

from __future__ import annotations

import pytest

from firmware_bridge import Bridge, BridgeError, ResetFailed, TransportUnavailable
from firmware_bridge.proxy import FaultProxy
from firmware_bridge.simdevice import SimPtyServer
from firmware_bridge.transport import (
    RESET_STRATEGIES,
    ParsedUrl,
    get_reset_strategy,
    open_transport,
    register_transport,
    registered_schemes,
)
from firmware_bridge.transport.reset import LineSequence


class LineRecorder:
    url = "fake://lines"
    frame_limit = 1024
    poll_interval = 0.05

    def __init__(self) -> None:
        self.events: list[tuple[str, bool | float]] = []

    def set_dtr(self, level: bool) -> None:
        self.events.append(("dtr", level))

    def set_rts(self, level: bool) -> None:
        self.events.append(("rts", level))

    def read(self, max_bytes: int) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None


def test_url_parsing() -> None:
    url = ParsedUrl.parse("serial:///dev/ttyACM0?baud=115200")
    assert (url.scheme, url.location, url.int_param("baud", 0)) == (
        "serial",
        "/dev/ttyACM0",
        115200,
    )
    assert ParsedUrl.parse("/dev/ttyUSB1").scheme == "serial"
    assert ParsedUrl.parse("usb://303a:1001?serial=X").params == {"serial": "X"}
    with pytest.raises(BridgeError, match="not an integer"):
        ParsedUrl.parse("serial:///dev/x?baud=fast").int_param("baud", 0)


def test_registry_names_known_schemes() -> None:
    assert {"serial", "loop", "socket", "tcp", "usb"} <= set(registered_schemes())
    with pytest.raises(TransportUnavailable, match="no transport for scheme 'carrier'"):
        open_transport("carrier://pigeon")


def test_registered_opener_is_used() -> None:
    recorder = LineRecorder()
    register_transport("fake", lambda url: recorder)
    assert open_transport("fake://lines") is recorder


@pytest.mark.parametrize("name", sorted(RESET_STRATEGIES))
def test_reset_sequences_drive_the_lines(name: str) -> None:
    recorder = LineRecorder()
    strategy = get_reset_strategy(name)
    if isinstance(strategy, LineSequence):
        strategy = LineSequence(strategy.name, strategy.steps, sleep=lambda s: None)
    strategy.reset(recorder)
    if name == "none":
        assert recorder.events == []
    else:
        assert recorder.events and recorder.events[-1][1] is False, "ends released"


def test_custom_sequence_and_errors() -> None:
    recorder = LineRecorder()
    waits: list[float] = []
    LineSequence("custom", ("D1", "W0.25", "R1", "D0"), sleep=waits.append).reset(recorder)
    assert recorder.events == [("dtr", True), ("rts", True), ("dtr", False)]
    assert waits == [0.25]
    with pytest.raises(BridgeError, match="D0/D1/R0/R1"):
        LineSequence("bad", ("X1",)).reset(recorder)
    with pytest.raises(BridgeError, match="unknown reset strategy 'hard'"):
        get_reset_strategy("hard")


def test_pty_has_no_modem_lines(sim: SimPtyServer) -> None:
    with pytest.raises(ResetFailed, match="reset='none'"):
        Bridge.open(sim.url, timeout=1, reset="rts-pulse")


def test_loop_url_and_tcp_proxy(sim: SimPtyServer) -> None:
    transport = open_transport("loop://")
    transport.write(b"\x00abc\x00")
    got = b""
    for _ in range(20):
        got += transport.read(64)
        if len(got) >= 5:
            break
    transport.close()
    assert got == b"\x00abc\x00"
    with FaultProxy(sim.url, tcp_port=0) as proxy, Bridge.open(proxy.url, timeout=3) as bridge:
        assert proxy.url.startswith("tcp://127.0.0.1:")
        assert bridge.call("sys.ping", b"over tcp") == b"over tcp"


def test_pyserial_socket_url(sim: SimPtyServer) -> None:
    """socket:// goes through pyserial's own handler (no file descriptor fast path)."""
    with FaultProxy(sim.url, tcp_port=0) as proxy:
        url = proxy.url.replace("tcp://", "socket://")
        with Bridge.open(url, timeout=3) as bridge:
            for size in (1, 200, 900):
                assert bridge.call("sys.ping", bytes(size)) == bytes(size)
