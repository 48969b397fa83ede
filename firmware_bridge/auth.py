"""HMAC-SHA256 frame authentication (docs/protocol.md section 8)."""

from __future__ import annotations

import hashlib
import hmac

from .errors import AuthError
from .framing import AuthTrailer, Frame
from .messages import NONCE_SIZE, Flags, Header

TAG_SIZE = 16
_COUNTER_MAX = 0xFFFFFFFF


def compute_tag(
    key: bytes, dev_nonce: bytes, host_nonce: bytes, header: bytes, payload: bytes, counter: int
) -> bytes:
    """tag = HMAC-SHA256(key, dev_nonce || host_nonce || header || payload || counter)[0:16]."""
    mac = hmac.new(key, dev_nonce + host_nonce, hashlib.sha256)
    mac.update(header + payload + counter.to_bytes(4, "little"))
    return mac.digest()[:TAG_SIZE]


class SessionAuth:
    """Signs outgoing frames and verifies incoming ones for one session (one pair of nonces).

    The receive counter moves only after a tag verified, so forged or replayed frames change
    nothing.
    """

    def __init__(self, key: bytes, dev_nonce: bytes, host_nonce: bytes) -> None:
        if not key:
            raise AuthError("auth key is empty; pass the device's key as bytes or hex")
        if len(dev_nonce) != NONCE_SIZE or len(host_nonce) != NONCE_SIZE:
            raise AuthError(f"nonces must be {NONCE_SIZE} bytes")
        self._base = hmac.new(key, dev_nonce + host_nonce, hashlib.sha256)
        self.tx_counter = 0
        self.rx_counter = 0
        self.rejected = 0

    def _tag(self, signed: bytes, counter: int) -> bytes:
        mac = self._base.copy()
        mac.update(signed + counter.to_bytes(4, "little"))
        return mac.digest()[:TAG_SIZE]

    def sign(self, header: Header, payload: bytes) -> tuple[Header, AuthTrailer]:
        if self.tx_counter >= _COUNTER_MAX:
            raise AuthError("auth counter exhausted; reconnect to start a new session")
        self.tx_counter += 1
        header = header._replace(flags=header.flags | Flags.AUTH)
        tag = self._tag(header.pack() + payload, self.tx_counter)
        return header, AuthTrailer(self.tx_counter, tag)

    def verify(self, frame: Frame) -> bool:
        trailer = frame.auth
        if trailer is None or trailer.counter <= self.rx_counter:
            self.rejected += 1
            return False
        if not hmac.compare_digest(self._tag(frame.signed, trailer.counter), trailer.tag):
            self.rejected += 1
            return False
        self.rx_counter = trailer.counter
        return True


def parse_key(key: bytes | str) -> bytes:
    """Accept raw bytes or a hex string (as on the virtual device's --auth-key)."""
    if isinstance(key, bytes):
        return key
    try:
        return bytes.fromhex(key)
    except ValueError as e:
        raise AuthError(f"auth key {key!r} is not hex; pass bytes or a hex string") from e
