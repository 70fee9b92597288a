"""Parity of config.json fields: a file the reference accepts builds the same Wav2Vec2 here, both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from plugformers_wav2vec2.modeling_wav2vec2 import Wav2Vec2ForCTC  # noqa: E402
from test_wav2vec2_config_fields import TINY  # noqa: E402


def test_parity_zero_output_hidden_size_means_the_hidden_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**TINY)).eval()
    ref.save_pretrained(tmp_path / "ref")
    data = json.loads((tmp_path / "ref" / "config.json").read_text())
    data["output_hidden_size"] = 0
    (tmp_path / "ref" / "config.json").write_text(json.dumps(data))
    audio = torch.randn(2, 1600, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(audio).logits
        ref_loaded = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "ref").eval()
        torch.testing.assert_close(ref_loaded(audio).logits, expected)

    ours, info = Wav2Vec2ForCTC.from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(audio).logits, expected, atol=1e-4, rtol=1e-4)
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(audio).logits, expected, atol=1e-4, rtol=1e-4)
