"""Framing: COBS, CRC-32, the frame decoder (docs/protocol.md 1), shared vectors and fuzzing."""

from __future__ import annotations

import hashlib
import hmac
import random
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import framing
from firmware_bridge.auth import SessionAuth, compute_tag
from firmware_bridge.errors import FrameError
from firmware_bridge.framing import (
    AuthTrailer,
    Frame,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    encode_frame,
    max_encoded_size,
)
from firmware_bridge.messages import Channel, Flags, Header, RpcType

VECTORS = Path(framing.__file__).resolve().parent / "vectors" / "frames.tsv"


def rpc_frame(call_id: int, payload: bytes) -> bytes:
    return encode_frame(Header.make(Channel.RPC, RpcType.REQUEST, seq=call_id, id=call_id), payload)


# --- COBS ----------------------------------------------------------------------------------

COBS_EXAMPLES = [  # Cheshire & Baker's examples (and the Wikipedia table)
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (b"", b"\x01"),
]


@pytest.mark.parametrize(("raw", "encoded"), COBS_EXAMPLES)
def test_cobs_known_examples(raw: bytes, encoded: bytes) -> None:
    assert cobs_encode(raw) == encoded
    assert framing._py_cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw
    assert framing._py_cobs_decode(encoded) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_pure_python_cobs_matches_extension(data: bytes) -> None:
    encoded = framing._py_cobs_encode(data)
    assert encoded == cobs_encode(data)
    assert b"\x00" not in encoded
    assert framing._py_cobs_decode(encoded) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_pure_python_cobs_decoder_agrees_on_garbage(data: bytes) -> None:
    try:
        expected: bytes | None = cobs_decode(data)
    except FrameError:
        expected = None
    try:
        got: bytes | None = framing._py_cobs_decode(data)
    except framing._CobsDecodeError:
        got = None
    assert got == expected


def test_crc_is_zlib_crc32_little_endian() -> None:
    header = Header.make(Channel.RPC, RpcType.REQUEST, seq=1, id=1)
    body = framing._cobs_decode(encode_frame(header, b"123456789")[:-1])
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert body[-4:] == zlib.crc32(body[:-4]).to_bytes(4, "little")


def test_encode_frame_layout() -> None:
    frame = encode_frame(Header.make(Channel.RPC, RpcType.REQUEST, seq=0x0102, id=7), b"\x01\x00")
    assert frame.endswith(b"\x00") and b"\x00" not in frame[:-1]
    assert frame[1] == 0x01  # the version byte follows the first COBS code (protocol 1.1 rule 4)
    body = cobs_decode(frame[:-1])
    assert body[:12] == bytes([1, 0, 1, 1, 2, 1, 0, 0, 7, 0, 0, 0])
    assert body[12:14] == b"\x01\x00"


def test_encode_frame_enforces_the_session_limit() -> None:
    with pytest.raises(FrameError, match="frame limit"):
        encode_frame(Header.make(Channel.RPC, RpcType.REQUEST), b"x" * 100, frame_limit=64)


def test_auth_trailer_round_trip() -> None:
    trailer = AuthTrailer(5, bytes(range(16)))
    frame = encode_frame(Header.make(Channel.RPC, RpcType.REQUEST, id=9), b"abc", trailer)
    (decoded,) = FrameDecoder().feed(frame)
    assert decoded.header.flags & Flags.AUTH
    assert decoded.auth == trailer
    assert decoded.payload == b"abc"
    assert decoded.signed == decoded.header.pack() + b"abc"


# --- decoder rules -------------------------------------------------------------------------


def test_decoder_counts_each_kind_of_bad_segment() -> None:
    dec = FrameDecoder()
    good = rpc_frame(1, b"hello")
    body = bytearray(cobs_decode(good[:-1]))
    body[5] ^= 0xFF
    bad_crc = cobs_encode(bytes(body)) + b"\x00"
    v2 = bytearray(body)
    v2[0] = 2
    v2[5] ^= 0xFF
    v2[-4:] = zlib.crc32(bytes(v2[:-4])).to_bytes(4, "little")
    bad_version = cobs_encode(bytes(v2)) + b"\x00"
    short = cobs_encode(b"\x01\x02\x03") + b"\x00"
    bad_cobs = b"\x05\x01\x02\x00"
    frames = dec.feed(b"\x00\x00" + bad_crc + bad_version + short + bad_cobs + good)
    assert [f.payload for f in frames] == [b"hello"]
    s = dec.stats
    assert (s.crc_errors, s.bad_version, s.short_frames, s.cobs_errors) == (1, 1, 1, 1)
    assert s.frames == 1 and s.oversize == 0


def test_oversize_run_is_skipped_and_the_next_frame_survives() -> None:
    dec = FrameDecoder(frame_limit=256)
    junk = b"\x01" * (max_encoded_size(256) + 1)
    frames = dec.feed(junk)
    assert frames == [] and dec.stats.oversize == 1 and dec.buffered == 0
    frames = dec.feed(b"\x02" * 5000 + b"\x00" + rpc_frame(3, b"x"))
    assert [f.header.id for f in frames] == [3]
    assert dec.stats.oversize == 1


def test_decoded_body_over_limit_is_oversize() -> None:
    dec = FrameDecoder(frame_limit=64)
    frames = dec.feed(rpc_frame(1, b"y" * 60))
    assert frames == [] and dec.stats.oversize == 1


def test_console_lines_are_handed_over_and_frames_still_decode() -> None:
    lines: list[str] = []
    dec = FrameDecoder(on_console=lines.append)
    stream = (
        b"ESP-ROM:esp32s3\r\nboot: ok\n"
        + rpc_frame(1, b"a")
        + b"panic at 0x40\n"
        + rpc_frame(2, b"b")
    )
    frames = [f for i in range(0, len(stream), 3) for f in dec.feed(stream[i : i + 3])]
    assert lines == ["ESP-ROM:esp32s3", "boot: ok", "panic at 0x40"]
    assert [f.header.id for f in frames] == [1, 2]
    assert dec.stats.console_lines == 3


def test_binary_then_newline_is_not_console() -> None:
    lines: list[str] = []
    dec = FrameDecoder(on_console=lines.append)
    dec.feed(b"\x05\x06abc\n")
    assert lines == []
    dec.feed(b"\x00")
    assert dec.stats.cobs_errors + dec.stats.short_frames == 1


# --- shared vectors (the same table drives the C tests) ----------------------------------


def load_vectors() -> list[tuple[str, str, dict[str, str], bytes, str]]:
    rows = []
    for line in VECTORS.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        kind, name, params, data, expected = line.split("\t")
        kv = {} if params == "-" else dict(p.split("=", 1) for p in params.split(","))
        rows.append((kind, name, kv, b"" if data == "-" else bytes.fromhex(data), expected))
    return rows


def _header(params: dict[str, str]) -> Header:
    fields = ("version", "flags", "channel", "type", "seq", "ack", "id")
    return Header(*(int(params[f]) for f in fields))


def _body(frame: Frame) -> bytes:
    signed = frame.signed or frame.header.pack() + frame.payload
    body = signed + (frame.auth.pack() if frame.auth else b"")
    return body + zlib.crc32(body).to_bytes(4, "little")


def check_cobs(params: dict[str, str], data: bytes, expected: str) -> None:
    assert cobs_encode(data).hex() == expected
    assert framing._py_cobs_encode(data).hex() == expected
    assert cobs_decode(bytes.fromhex(expected)) == data


def check_cobs_bad(params: dict[str, str], data: bytes, expected: str) -> None:
    with pytest.raises(FrameError):
        cobs_decode(data)
    with pytest.raises(framing._CobsDecodeError):
        framing._py_cobs_decode(data)
    if 0 not in data:  # a zero inside is a delimiter on the wire, not part of the segment
        dec = FrameDecoder()
        assert dec.feed(data + b"\x00") == [] and dec.stats.cobs_errors == 1


def check_crc32(params: dict[str, str], data: bytes, expected: str) -> None:
    assert f"{zlib.crc32(data):08x}" == expected


def check_header(params: dict[str, str], data: bytes, expected: str) -> None:
    header = _header(params)
    assert header.pack().hex() == expected
    assert Header.unpack(bytes.fromhex(expected)) == header


def check_frame(params: dict[str, str], data: bytes, expected: str) -> None:
    header = _header(params)
    assert encode_frame(header, data).hex() == expected
    (frame,) = FrameDecoder().feed(bytes.fromhex(expected))
    assert frame.header == header and frame.payload == data


def check_auth_frame(params: dict[str, str], data: bytes, expected: str) -> None:
    header = _header(params)
    key, dev, host = (bytes.fromhex(params[k]) for k in ("key", "dev_nonce", "host_nonce"))
    counter = int(params["counter"])
    signer = SessionAuth(key, dev, host)
    signer.tx_counter = counter - 1
    signed_header, trailer = signer.sign(header._replace(flags=0), data)
    assert signed_header == header
    assert trailer.tag == compute_tag(key, dev, host, header.pack(), data, counter)
    assert encode_frame(header, data, trailer).hex() == expected
    (frame,) = FrameDecoder().feed(bytes.fromhex(expected))
    verifier = SessionAuth(key, dev, host)
    assert verifier.verify(frame) and verifier.rx_counter == counter
    assert not verifier.verify(frame), "a replayed frame must be rejected"
    forged = SessionAuth(bytes(32), dev, host)
    assert not forged.verify(frame)


def check_decode(params: dict[str, str], data: bytes, expected: str) -> None:
    want = dict(item.split("=", 1) for item in expected.split(";"))
    for split in (len(data) or 1, 1, 7):  # whole, byte by byte, odd chunks: same result
        console: list[str] = []
        dec = FrameDecoder(int(params["limit"]), on_console=console.append)
        frames = [f for i in range(0, len(data), split) for f in dec.feed(data[i : i + split])]
        stats = dec.stats.as_dict()
        for counter in (
            "frames",
            "cobs_errors",
            "short_frames",
            "crc_errors",
            "bad_version",
            "oversize",
            "console_lines",
        ):
            assert stats[counter] == int(want[counter]), (counter, split)
        bodies = "|".join(_body(f).hex() for f in frames) or "-"
        assert bodies == want["bodies"], split
        raw = [] if want["console"] == "-" else want["console"].split("|")
        assert console == [bytes.fromhex(x).decode().rstrip("\r\n") for x in raw], split
        assert dec.buffered <= 2 * int(params["limit"])


def check_sha256(params: dict[str, str], data: bytes, expected: str) -> None:
    assert hashlib.sha256(data).hexdigest() == expected


def check_hmac(params: dict[str, str], data: bytes, expected: str) -> None:
    assert hmac.new(bytes.fromhex(params["key"]), data, hashlib.sha256).hexdigest() == expected


VECTOR_CHECKS = {
    "cobs": check_cobs,
    "cobs_bad": check_cobs_bad,
    "crc32": check_crc32,
    "header": check_header,
    "frame": check_frame,
    "auth_frame": check_auth_frame,
    "decode": check_decode,
    "sha256": check_sha256,
    "hmac": check_hmac,
}

ROWS = load_vectors() if VECTORS.exists() else []


def test_vector_table_covers_every_kind() -> None:
    assert VECTORS.exists(), "firmware_bridge/vectors/frames.tsv is missing"
    assert {row[0] for row in ROWS} <= set(VECTOR_CHECKS)
    assert {"cobs", "frame", "decode", "auth_frame"} <= {row[0] for row in ROWS}


@pytest.mark.parametrize(
    ("kind", "params", "data", "expected"),
    [pytest.param(k, p, d, e, id=f"{k}-{n}") for k, n, p, d, e in ROWS],
)
def test_vector(kind: str, params: dict[str, str], data: bytes, expected: str) -> None:
    VECTOR_CHECKS[kind](params, data, expected)


# --- fuzzing -------------------------------------------------------------------------------

LIMIT = 256
frame_payloads = st.lists(st.binary(max_size=LIMIT - 16), min_size=1, max_size=8)
garbage = st.binary(max_size=3 * LIMIT)


@settings(max_examples=200, deadline=None)
@given(payloads=frame_payloads, noise=st.lists(garbage, min_size=8, max_size=8), seed=st.integers())
def test_every_intact_frame_survives_garbage_between_frames(
    payloads: list[bytes], noise: list[bytes], seed: int
) -> None:
    """Each frame is delimited on both sides: garbage before it may cost nothing."""
    stream = bytearray()
    for i, payload in enumerate(payloads):
        stream += noise[i] + b"\x00" + rpc_frame(i + 1, payload)
    stream += noise[-1]
    dec = FrameDecoder(frame_limit=LIMIT, on_console=lambda _line: None)
    rng = random.Random(seed)
    got = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 700)
        got += dec.feed(bytes(stream[pos : pos + step]))
        assert dec.buffered <= 2 * LIMIT
        pos += step
    intact = [(f.header.id, f.payload) for f in got if f.header.channel == Channel.RPC]
    expected = [(i + 1, p) for i, p in enumerate(payloads)]
    # garbage may itself decode as a frame only with a valid CRC-32: practically never
    assert [x for x in intact if x in expected] == expected


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=2000), max_size=10))
def test_decoder_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    dec = FrameDecoder(frame_limit=LIMIT, on_console=lambda _line: None)
    for chunk in chunks:
        for frame in dec.feed(chunk):
            assert len(frame.payload) <= LIMIT
        assert dec.buffered <= 2 * LIMIT


@settings(max_examples=100, deadline=None)
@given(payloads=frame_payloads, cuts=st.lists(st.integers(0, 4000), max_size=20))
def test_chunking_does_not_change_the_result(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(rpc_frame(i, p) for i, p in enumerate(payloads))
    whole = FrameDecoder(frame_limit=LIMIT).feed(stream)
    dec = FrameDecoder(frame_limit=LIMIT)
    pieces = []
    prev = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        pieces += dec.feed(stream[prev:cut])
        prev = cut
    assert pieces == whole
    assert [f.payload for f in whole] == payloads


def test_feed_is_linear_in_input_size() -> None:
    """One big read of many frames must not be quadratic (pyserial's Packetizer is)."""
    import time

    frame = rpc_frame(1, bytes(200))

    def best_time(n: int) -> float:
        best = float("inf")
        for _ in range(5):
            dec = FrameDecoder()
            t0 = time.perf_counter()
            assert len(dec.feed(frame * n)) == n
            best = min(best, time.perf_counter() - t0)
        return best

    # 10x the input may cost about 10x the time; quadratic behaviour would cost 100x
    assert best_time(5000) < 40 * best_time(500)
