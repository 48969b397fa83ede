"""Input contracts: colour order, resize modes, normalisation, layout, WAV reading."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.manifest import InputContract
from edgekit.preprocess import (
    image_to_tensor,
    read_image,
    read_wav,
    resample,
    resize,
    target_size,
)
from edgekit.tensor import TensorSpec


def test_letterbox_maps_back_to_image_pixels() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 90:110] = 255  # a white square centred at (100, 50)
    boxed, box = resize(image, (128, 128), "letterbox")
    assert boxed.shape == (128, 128, 3)
    ys, xs = np.nonzero(boxed[..., 0] > 127)
    cx, cy = box.to_image(np.array(xs.mean()), np.array(ys.mean()))
    assert abs(float(cx) - 100) < 1.5 and abs(float(cy) - 50) < 1.5
    assert box.pad_y == 32 and box.pad_x == 0  # 200x100 -> 128x64, centred vertically


def test_keep_aspect_pad_is_top_left() -> None:
    image = np.full((24, 96, 3), 7, np.uint8)
    padded, box = resize(image, (48, 320), "keep-aspect-pad")
    assert padded.shape == (48, 320, 3)
    assert (padded[:, :192] == 7).all() and (padded[:, 192:] == 0).all()
    assert box.pad_x == 0 and box.pad_y == 0


def test_image_to_tensor_nchw_bgr_mean_std() -> None:
    contract = InputContract(
        layout="NCHW", color="BGR", size=(4, 4), scale=1 / 255, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    spec = TensorSpec("x", (1, 3, 4, 4), np.dtype(np.float32))
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # pure red in RGB
    x, _ = image_to_tensor(rgb, contract, spec, color="RGB")
    assert x.shape == (1, 3, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 2], 1.0)  # red is the last channel in BGR
    np.testing.assert_allclose(x[0, 0], -1.0)


def test_dynamic_size_rounds_to_multiple() -> None:
    contract = InputContract(layout="NCHW", size_multiple=32, max_side=736)
    spec = TensorSpec("x", ("N", 3, "H", "W"), np.dtype(np.float32))
    assert target_size(contract, spec, 480, 640) == (480, 640)
    assert target_size(contract, spec, 1080, 1920) == (416, 736)
    assert target_size(contract, spec, 10, 10) == (32, 32)


def test_read_image_and_errors(tmp_path: Path) -> None:
    import cv2

    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = read_image(tmp_path / "red.png", "RGB")
    assert rgb[0, 0].tolist() == [200, 0, 0]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "bad.png")


def test_read_wav_and_resample(tmp_path: Path) -> None:
    rate = 8000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    stereo = np.stack([tone, tone], axis=1)
    with wave.open(str(tmp_path / "tone.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(stereo.tobytes())
    samples, got_rate = read_wav(tmp_path / "tone.wav")
    assert got_rate == rate and samples.shape == (rate,)
    assert abs(float(np.abs(samples).max()) - 0.5) < 1e-3
    up = resample(samples, rate, 16000)
    assert up.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 s at 16 kHz: 1 Hz per bin
    (tmp_path / "junk.wav").write_bytes(b"RIFF....nope")
    with pytest.raises(InputError, match="not a PCM WAV"):
        read_wav(tmp_path / "junk.wav")
