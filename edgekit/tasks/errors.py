"""Errors raised by the task heads."""

from __future__ import annotations

from edgekit.errors import EdgekitError


class TaskInputError(EdgekitError, ValueError):
    """A head was given an array of the wrong shape, dtype or size; the message says the fix."""


class UnknownTaskError(EdgekitError, KeyError):
    """No head is registered under the task name a manifest or caller asked for."""

    def __str__(self) -> str:
        # KeyError quotes its argument; the message reads better without the quotes.
        return str(self.args[0]) if self.args else ""


__all__ = ["TaskInputError", "UnknownTaskError"]
