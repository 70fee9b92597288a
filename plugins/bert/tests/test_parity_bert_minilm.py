"""The real all-MiniLM-L6-v2 checkpoint gives the reference's sentence embeddings (within 1e-5).

Two references: the reference library's Auto classes with the checkpoint's mean pooling and normalisation, and,
where installed, sentence-transformers' own pipeline reading the same folder.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from bert_minilm import SENTENCES, minilm_folder, sentence_embeddings  # noqa: E402

import plugformers  # noqa: E402

ATOL = 1e-5
# Longer and odder inputs than the paraphrase set: padding across lengths, accents, CJK, a 300-word text (cut at 256).
TEXTS = [*SENTENCES, "Ünïcödé façade — naïve café, 東京!", "word " * 300, "", "[MASK] is a special token"]


def test_mean_pooled_embeddings_equal_the_reference_library():
    folder = minilm_folder()
    transformers.logging.set_verbosity_error()
    expected = sentence_embeddings(transformers, folder, TEXTS)
    got = sentence_embeddings(plugformers, folder, TEXTS)
    assert (got - expected).abs().max().item() <= ATOL


def test_embeddings_equal_sentence_transformers_encode():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    folder = minilm_folder()
    model = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    expected = torch.as_tensor(model.encode(TEXTS, convert_to_numpy=True))
    got = sentence_embeddings(plugformers, folder, TEXTS)
    assert (got - expected).abs().max().item() <= ATOL
