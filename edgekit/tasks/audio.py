"""Audio input checks shared by the audio task heads (VAD, keyword spotting)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from edgekit.tasks.errors import TaskInputError


def mono_samples(
    audio: Any,
    dtype: type[np.floating[Any]] = np.float32,
    *,
    what: str = "audio",
    error: type[TaskInputError] = TaskInputError,
) -> npt.NDArray[Any]:
    """``audio`` as a 1-D float array of ``dtype`` in [-1, 1]: ``[samples]`` or a one-channel
    ``[samples, 1]`` / ``[1, samples]``, float or int16 (scaled by 1/32768). Anything else raises
    ``error`` naming the fix."""
    arr = np.asarray(audio)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise error(
            f"{what} must be mono [samples], got shape {list(arr.shape)}; "
            "mix down with audio.mean(axis=1)"
        )
    if arr.dtype == np.int16:
        scaled: npt.NDArray[Any] = arr.astype(dtype) / dtype(32768.0)
        return scaled
    if not np.issubdtype(arr.dtype, np.floating):
        raise error(
            f"{what} must be float in [-1, 1] or int16, got {arr.dtype}; "
            "convert with audio.astype(np.float32) / 32768"
        )
    return arr.astype(dtype, copy=False)
