"""The reference model API of tests/test_reference_model_api.py, against the reference itself (parity session).

Each model is saved by plugformers and loaded by both libraries from the same folder.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import plugformers

from distributed_worker import tiny_config

transformers = pytest.importorskip("transformers")

BASES = {"bert": "BertModel", "distilbert": "DistilBertModel", "vit": "ViTModel", "wav2vec2": "Wav2Vec2Model"}
INPUTS = {
    "bert": lambda: {"input_ids": torch.randint(5, 100, (2, 7), generator=torch.Generator().manual_seed(0))},
    "distilbert": lambda: {"input_ids": torch.randint(5, 90, (2, 7), generator=torch.Generator().manual_seed(0))},
    "vit": lambda: {"pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))},
    "wav2vec2": lambda: {"input_values": torch.randn(2, 400, generator=torch.Generator().manual_seed(0))},
}


def _pair(tmp_path, name: str, family: str) -> tuple[Any, Any]:
    torch.manual_seed(0)
    getattr(plugformers, name)(tiny_config(family)).save_pretrained(tmp_path)
    ours = getattr(plugformers, name).from_pretrained(tmp_path).eval()
    ref = getattr(transformers, name).from_pretrained(tmp_path, dtype=torch.float32).eval()
    return ours, ref


@pytest.mark.parametrize("family", list(BASES))
def test_parity_hidden_states_selected_by_index(tmp_path, family):
    ours, ref = _pair(tmp_path, BASES[family], family)
    inputs = INPUTS[family]()
    for selection in ([0, -1], [1], -1, [5], [-2], (0, 2), []):
        with torch.no_grad():
            got = ours(**inputs, output_hidden_states=selection).hidden_states
            want = ref(**inputs, output_hidden_states=selection).hidden_states
        assert (got is None) == (want is None), selection
        if want is None:
            continue
        assert [s is None for s in got] == [s is None for s in want], selection
        for a, b in zip(got, want):
            if b is not None:
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _path(model: Any, module: Any) -> str:
    return next(name for name, m in model.named_modules() if m is module)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("BertModel", "bert"),
        ("BertForSequenceClassification", "bert"),
        ("DistilBertForMaskedLM", "distilbert"),
        ("ViTForImageClassification", "vit"),
        ("Wav2Vec2ForCTC", "wav2vec2"),
        ("ResNetForImageClassification", "resnet"),
    ],
)
def test_parity_get_encoder_can_generate_and_text_config(tmp_path, name, family):
    ours, ref = _pair(tmp_path, name, family)
    assert _path(ours, ours.get_encoder()) == _path(ref, ref.get_encoder())
    assert type(ours).can_generate() is type(ref).can_generate() is False
    assert ours.config.get_text_config() is ours.config and ref.config.get_text_config() is ref.config


@pytest.mark.parametrize(
    ("name", "family"),
    [("BertForMaskedLM", "bert"), ("BertForPreTraining", "bert"), ("DistilBertForMaskedLM", "distilbert")],
)
def test_parity_tied_weights_keys_and_what_peft_reads_from_them(tmp_path, name, family):
    ours, ref = _pair(tmp_path, name, family)
    assert type(ours)._tied_weights_keys == type(ref)._tied_weights_keys
    peft_other = pytest.importorskip("peft.utils.other")
    tied_modules = getattr(peft_other, "_get_module_names_tied_with_embedding", None)
    if tied_modules is None:
        pytest.skip("this PEFT version has no _get_module_names_tied_with_embedding")
    assert tied_modules(ours) == tied_modules(ref) != []
