"""Fields of a Wav2Vec2 ``config.json`` read the way the reference reads them."""

from __future__ import annotations

import pytest
import torch
from plugformers_wav2vec2.configuration_wav2vec2 import Wav2Vec2Config
from plugformers_wav2vec2.modeling_wav2vec2 import Wav2Vec2ForCTC

TINY = dict(
    hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, conv_dim=[16, 16],
    conv_stride=[5, 4], conv_kernel=[10, 4], num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    vocab_size=12, add_adapter=True, num_adapter_layers=1,
)


@pytest.mark.parametrize("unset", [None, 0])
def test_unset_output_hidden_size_is_the_hidden_size(unset: int | None) -> None:
    """0 counts as unset, as in the reference: the adapter and CTC head keep the transformer's width."""
    config = Wav2Vec2Config.from_dict({**TINY, "output_hidden_size": unset})
    assert config.output_hidden_size == 32
    model = Wav2Vec2ForCTC(config).eval()
    assert model.lm_head.weight.shape == (12, 32)
    with torch.no_grad():
        assert model(torch.randn(1, 800)).logits.shape[-1] == 12
