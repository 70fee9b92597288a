"""The host's sample input of each modality, and how one is read, preprocessed and fed to a model.

Shared by ``plugformers demo`` and the shipped-checkpoint check (:mod:`plugformers.demo_trained`); nothing here
knows a family.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
SENTENCE = "The quick brown fox jumps over the lazy dog."
#: The host's sample input of each modality (text: :data:`SENTENCE`).
SAMPLES = {"image": DATA / "cat.jpg", "audio": DATA / "speech.wav"}
#: The Auto class that reloads a saved preprocessor of each modality, and the demo's name for running it.
PREPROCESSOR_AUTO = {"text": "AutoTokenizer", "image": "AutoImageProcessor", "audio": "AutoFeatureExtractor"}


def read_sample(modality: str, path: str | Path | None = None) -> Any:
    """A sample input of ``modality`` from ``path`` (default: the host's): text, an RGB image, or ``(audio, rate)``."""
    if modality == "text":
        return SENTENCE if path is None else Path(path).read_text(encoding="utf-8").strip()
    path = SAMPLES[modality] if path is None else Path(path)
    if modality == "image":
        from PIL import Image

        with Image.open(path) as image:
            return image.convert("RGB")
    from plugformers.audio_utils import load_wav

    return load_wav(path)


def preprocess(modality: str, preprocessor: Any, sample: Any) -> Any:
    """Run one sample (as :func:`read_sample` returns it) through a preprocessor, as PyTorch tensors."""
    if modality == "audio":
        audio, rate = sample
        return preprocessor(audio, sampling_rate=rate, return_tensors="pt")
    return preprocessor(sample, return_tensors="pt")


def model_inputs(model: Any, batch: Any) -> dict[str, Any]:
    """The preprocessor's outputs that ``model.forward`` takes (a tokenizer may add what a model ignores)."""
    accepted = inspect.signature(model.forward).parameters
    return {k: v for k, v in batch.items() if k in accepted}
