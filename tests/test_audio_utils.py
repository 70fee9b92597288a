"""WAV reading and writing: 16-bit PCM, 32-bit float, stereo to mono, refused formats."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest

from plugformers.audio_utils import load_wav, write_wav


def _tone(n=400, rate=8000):
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)


def test_pcm16_round_trip(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, _tone(), 8000)
    samples, rate = load_wav(path)
    assert rate == 8000 and samples.dtype == np.float32 and samples.shape == (400,)
    np.testing.assert_allclose(samples, _tone(), atol=1 / 32767)


def test_float32_round_trip_is_exact(tmp_path):
    path = tmp_path / "f.wav"
    write_wav(path, _tone(), 16000, subtype="FLOAT")
    samples, rate = load_wav(path)
    assert rate == 16000
    np.testing.assert_array_equal(samples, _tone())


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = _tone(), np.full(400, 0.25, np.float32)
    for subtype in ("PCM_16", "FLOAT"):
        path = tmp_path / f"s_{subtype}.wav"
        write_wav(path, np.stack([left, right], axis=1), 8000, subtype=subtype)
        samples, _ = load_wav(path)
        np.testing.assert_allclose(samples, (left + right) / 2, atol=1 / 32767)


def test_pcm_scaling_of_extremes(tmp_path):
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(100)
        w.writeframes(struct.pack("<3h", -32768, 0, 32767))
    samples, _ = load_wav(path)
    np.testing.assert_allclose(samples, [-1.0, 0.0, 32767 / 32768])


def test_unsupported_and_broken_files(tmp_path):
    eight = tmp_path / "8bit.wav"
    with wave.open(str(eight), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(100)
        w.writeframes(bytes([128, 129]))
    with pytest.raises(ValueError, match="8-bit PCM"):
        load_wav(eight)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"hello world, not a wav")
    with pytest.raises(ValueError, match="not a WAV"):
        load_wav(junk)
    with pytest.raises(FileNotFoundError):
        load_wav(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="NaN"):
        write_wav(tmp_path / "n.wav", np.array([np.nan]), 100)
    with pytest.raises(ValueError, match="subtype"):
        write_wav(tmp_path / "n.wav", np.zeros(3), 100, subtype="MP3")
