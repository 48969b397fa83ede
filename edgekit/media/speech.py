"""Speech synthesis with espeak-ng: text in, float32 samples out.

espeak-ng runs as a program (``apt-get install espeak-ng``), so nothing is imported and nothing
is loaded until :func:`synthesize` is called. Its voices, speeds and pitches make quick test
speech, keyword templates and spoken replies on a device without a network::

    from edgekit.media.speech import synthesize

    hello = synthesize("hello", voice="en-gb+f3", speed=185, rate=16000)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgekit.errors import BackendUnavailable
from edgekit.media.errors import MediaError, MediaTimeout
from edgekit.media.resample import resample

__all__ = [
    "SYNTHESIS_TIMEOUT_S",
    "SpeechSynthesisError",
    "SpeechSynthesisUnavailable",
    "synthesize",
]

#: seconds espeak-ng may take to speak one text.
SYNTHESIS_TIMEOUT_S = 60.0


class SpeechSynthesisUnavailable(BackendUnavailable):
    """espeak-ng, which synthesizes speech, is not installed."""


class SpeechSynthesisError(MediaError, RuntimeError):
    """espeak-ng ran but could not speak the text (an unknown voice, say)."""


def synthesize(
    text: str, *, voice: str = "en-us", speed: int = 160, pitch: int = 50, rate: int = 16000
) -> npt.NDArray[np.float32]:
    """Speak ``text`` with espeak-ng; mono float32 samples at ``rate`` Hz.

    Args:
        text: What to say.
        voice: An espeak-ng voice, optionally with a variant (``en-us``, ``en-gb+f3``).
        speed: Words per minute (espeak-ng's default is 175).
        pitch: 0..99 (50 is the voice's own).
        rate: The sample rate of the result (espeak-ng speaks at 22050 Hz; other rates are
            resampled).

    Raises:
        SpeechSynthesisUnavailable: espeak-ng is not installed.
        SpeechSynthesisError: espeak-ng failed, for example on an unknown voice.
        MediaTimeout: espeak-ng did not finish within :data:`SYNTHESIS_TIMEOUT_S`.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechSynthesisUnavailable(
            "espeak-ng is not installed, so speech cannot be synthesized: apt-get install espeak-ng"
        )
    with tempfile.TemporaryDirectory(prefix="edgekit-speech-") as folder:
        path = Path(folder) / "speech.wav"
        command = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=SYNTHESIS_TIMEOUT_S)
        except subprocess.CalledProcessError as e:
            detail = e.stderr.decode(errors="replace").strip()
            raise SpeechSynthesisError(
                f"espeak-ng could not speak {text!r} with voice {voice!r}: {detail or e}; "
                "list the voices with `espeak-ng --voices`"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise MediaTimeout(
                f"espeak-ng did not finish speaking {text!r} within {SYNTHESIS_TIMEOUT_S:.0f} s; "
                "split the text into shorter pieces"
            ) from e
        with wave.open(str(path), "rb") as wav:
            spoken_rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    samples = pcm.astype(np.float32) / np.float32(32768.0)
    return resample(samples, spoken_rate, rate) if spoken_rate != rate else samples
