"""Reading and writing WAV files without extra dependencies.

``load_wav`` reads 16-bit PCM (through the standard ``wave`` module) and 32-bit IEEE float (through a small
RIFF chunk reader, since ``wave`` only knows PCM) into float32 samples in [-1, 1] plus the sampling rate.
Anything else (8/24/32-bit PCM, 64-bit float, compressed formats) is refused with a message saying what
the file contains, rather than being decoded wrongly.
"""

from __future__ import annotations

import os
import struct
import wave
from typing import Any

import numpy as np

__all__ = ["load_wav", "write_wav"]

_PCM, _IEEE_FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def load_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a WAV file as mono float32 samples and its sampling rate: ``(samples, sampling_rate)``.

    Supported: 16-bit PCM (scaled by 1/32768) and 32-bit float, mono or multi-channel. Stereo and other
    multi-channel files are mixed down to mono by averaging the channels, because speech models take one
    channel; read the file yourself if you need the channels separately.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No WAV file at {path!r}.")
    fmt = _read_format(path)
    audio_format, channels, rate, bits, data = fmt
    if audio_format == _PCM:
        if bits != 16:
            raise ValueError(f"{path!r} is {bits}-bit PCM; only 16-bit PCM and 32-bit float WAV files are supported.")
        with wave.open(path, "rb") as wav:
            raw = wav.readframes(wav.getnframes())
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif audio_format == _IEEE_FLOAT:
        if bits != 32:
            raise ValueError(f"{path!r} is {bits}-bit float; only 32-bit float and 16-bit PCM WAV files are supported.")
        usable = len(data) - len(data) % 4
        samples = np.frombuffer(data[:usable], dtype="<f4").astype(np.float32)
    else:
        raise ValueError(
            f"{path!r} uses WAV format code {audio_format}; only PCM (1) and IEEE float (3) are supported."
        )
    frames = len(samples) // channels
    samples = samples[: frames * channels].reshape(frames, channels)
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    return np.ascontiguousarray(mono), rate


def _read_format(path: str) -> tuple[int, int, int, int, bytes]:
    """(format code, channels, sampling rate, bits per sample, data bytes) from the RIFF chunks."""
    with open(path, "rb") as fh:
        header = fh.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError(f"{path!r} is not a WAV file (no RIFF/WAVE header).")
        fmt: tuple[int, int, int, int] | None = None
        data: bytes | None = None
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                break
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            body = fh.read(size)
            if size % 2:
                fh.read(1)  # chunks are padded to an even size
            if cid == b"fmt ":
                if len(body) < 16:
                    raise ValueError(f"{path!r} has a truncated 'fmt ' chunk.")
                code, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                if code == _EXTENSIBLE and len(body) >= 26:
                    code = struct.unpack("<H", body[24:26])[0]  # first two bytes of the sub-format GUID
                fmt = (code, channels, rate, bits)
            elif cid == b"data":
                data = body
    if fmt is None or data is None:
        raise ValueError(f"{path!r} is missing its 'fmt ' or 'data' chunk.")
    code, channels, rate, bits = fmt
    if channels < 1 or rate < 1:
        raise ValueError(f"{path!r} declares {channels} channels at {rate} Hz.")
    return code, channels, rate, bits, data


def write_wav(
    path: str | os.PathLike[str], samples: Any, sampling_rate: int, *, subtype: str = "PCM_16"
) -> None:
    """Write samples in [-1, 1] (shape ``(n,)`` or ``(n, channels)``) as 16-bit PCM or 32-bit float WAV."""
    arr = np.asarray(samples, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"samples must have shape (n,) or (n, channels), got {np.shape(samples)}.")
    if not np.isfinite(arr).all():
        raise ValueError("samples contain NaN or infinite values.")
    if isinstance(sampling_rate, bool) or int(sampling_rate) <= 0:
        raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}.")
    channels = arr.shape[1]
    if subtype == "PCM_16":
        pcm = np.clip(np.round(arr * 32767.0), -32768, 32767).astype("<i2")
        with wave.open(os.fspath(path), "wb") as wav:
            wav.setnchannels(channels)
            wav.setsampwidth(2)
            wav.setframerate(int(sampling_rate))
            wav.writeframes(pcm.tobytes())
    elif subtype == "FLOAT":
        payload = arr.astype("<f4").tobytes()
        fmt = struct.pack("<HHIIHH", _IEEE_FLOAT, channels, int(sampling_rate), int(sampling_rate) * channels * 4, channels * 4, 32)
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
        with open(path, "wb") as fh:
            fh.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    else:
        raise ValueError(f"subtype must be 'PCM_16' or 'FLOAT', got {subtype!r}.")
