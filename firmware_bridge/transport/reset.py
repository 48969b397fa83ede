"""Reset strategies: what to do with DTR/RTS after opening a port, as small pluggable classes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import BridgeError, ResetFailed
from .base import SupportsModemLines, Transport

__all__ = ["RESET_STRATEGIES", "LineSequence", "NoReset", "ResetStrategy", "get_reset_strategy"]


class ResetStrategy(Protocol):
    @property
    def name(self) -> str: ...

    def reset(self, transport: Transport) -> None: ...


@dataclass(frozen=True)
class NoReset:
    """Leave the lines alone (pseudo-terminals, TCP, devices without an auto-reset circuit)."""

    name: str = "none"

    def reset(self, transport: Transport) -> None:
        return None


@dataclass(frozen=True)
class LineSequence:
    """Drive DTR/RTS through a sequence of steps such as `("R1", "W0.1", "R0")`.

    `D<0|1>` sets DTR, `R<0|1>` sets RTS, `W<seconds>` waits (esptool's custom reset format).
    """

    name: str
    steps: Sequence[str]
    sleep: Callable[[float], None] = time.sleep

    def reset(self, transport: Transport) -> None:
        if not isinstance(transport, SupportsModemLines):
            raise ResetFailed(
                f"reset strategy {self.name!r} needs DTR/RTS lines, which {transport.url} "
                "does not have; open it with reset='none'"
            )
        for step in self.steps:
            op, arg = step[0].upper(), step[1:]
            if op == "D":
                transport.set_dtr(arg == "1")
            elif op == "R":
                transport.set_rts(arg == "1")
            elif op == "W":
                self.sleep(float(arg))
            else:
                raise BridgeError(f"reset step {step!r} is not D0/D1/R0/R1/W<seconds>")


RESET_STRATEGIES: Mapping[str, ResetStrategy] = {
    "none": NoReset(),
    # EN wired to RTS through a transistor, as on most dev boards: pulse RTS low-high-low.
    "rts-pulse": LineSequence("rts-pulse", ("D0", "R1", "W0.1", "R0", "W0.05")),
    # Arduino-style: the auto-reset capacitor on DTR.
    "dtr-pulse": LineSequence("dtr-pulse", ("R0", "D1", "W0.1", "D0", "W0.05")),
    # ESP32-style two-transistor circuit, run the app (not the ROM loader).
    "classic": LineSequence("classic", ("D0", "R1", "W0.1", "D0", "R0", "W0.05")),
}


def get_reset_strategy(reset: str | ResetStrategy) -> ResetStrategy:
    if not isinstance(reset, str):
        return reset
    try:
        return RESET_STRATEGIES[reset]
    except KeyError:
        known = ", ".join(sorted(RESET_STRATEGIES))
        raise BridgeError(f"unknown reset strategy {reset!r}; use one of: {known}") from None
