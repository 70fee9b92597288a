"""What every installed family declares as data: modality, tiny config, example inputs and preprocessor."""

from __future__ import annotations

import pytest
import torch

from plugformers import vocabulary
from plugformers.plugins import FamilySpec, PluginError, get_registry, import_object

SENTENCE = "The quick brown fox, 42 times: jumps over (the) lazy dog!"


def _families() -> list[FamilySpec]:
    return [spec for _, spec in sorted(get_registry().families.items()) if spec.models and spec.plugin != "tiny-test-plugin"]


FAMILIES = _families()
IDS = [spec.model_type for spec in FAMILIES]


@pytest.mark.parametrize("spec", FAMILIES, ids=IDS)
def test_every_family_declares_its_data(spec: FamilySpec) -> None:
    assert spec.modality in vocabulary.MODALITIES
    assert spec.tiny_config, "no tiny_config"
    assert spec.example_inputs and spec.example_preprocessor
    config = spec.build_config(tiny=True)
    assert type(config) is import_object(spec.config)
    for key, value in spec.tiny_config.items():
        if not isinstance(value, dict):  # nested configs become config objects
            assert getattr(config, key) == value, key
    # The registration's dict is copied, never changed by building configs from it.
    before = repr(spec.tiny_config)
    spec.build_config(tiny=True).num_labels = 7
    assert repr(spec.tiny_config) == before


@pytest.mark.parametrize("spec", FAMILIES, ids=IDS)
def test_example_inputs_are_deterministic_padded_and_grow_labels(spec: FamilySpec) -> None:
    config = spec.build_config(tiny=True)
    for name, keys in spec.model_names().items():
        cls = import_object(spec.models[keys[0]])
        plain = spec.build_example_inputs(config, cls)
        again = spec.build_example_inputs(config, name)  # by registered name, same result
        assert plain.keys() == again.keys()
        for key, value in plain.items():
            assert torch.equal(value, again[key]), f"{name}: {key} is not deterministic"
        main = plain[vocabulary.MODALITIES[spec.modality][0]]
        assert main.shape[0] == 2
        assert spec.build_example_inputs(config, cls, batch_size=3)[vocabulary.MODALITIES[spec.modality][0]].shape[0] == 3
        if "attention_mask" in plain:
            mask = plain["attention_mask"]
            assert bool(mask[0].all()) and not bool(mask[-1].all()), f"{name}: the last row should be padded"
        labelled = spec.build_example_inputs(config, cls, labels=True)
        assert set(plain) <= set(labelled)
        for key, value in plain.items():
            assert torch.equal(value, labelled[key]), f"{name}: {key} changed with labels=True"
        if "AutoModel" not in keys and "AutoBackbone" not in keys:
            assert set(labelled) > set(plain), f"{name}: labels=True added nothing for a head"


@pytest.mark.parametrize("spec", FAMILIES, ids=IDS)
def test_example_preprocessor_works_offline_on_any_input_of_its_modality(spec: FamilySpec, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = spec.build_config(tiny=True)
    pre = spec.build_example_preprocessor(config)
    if spec.modality == "text":
        ids = pre(SENTENCE)["input_ids"]
        assert pre.unk_token_id not in ids, pre.convert_ids_to_tokens(ids)
        assert max(ids) < config.vocab_size
        assert pre.decode(ids, skip_special_tokens=True).replace(" ", "") == SENTENCE.lower().replace(" ", "")
    elif spec.modality == "image":
        from plugformers.testing.preprocessing_tests import make_test_images

        pixels = pre(make_test_images(1), return_tensors="pt")["pixel_values"]
        assert pixels.ndim == 4 and pixels.shape[1] == 3
    else:
        values = pre([0.1 * torch.randn(1600).numpy()], sampling_rate=16000, return_tensors="pt")["input_values"]
        assert values.shape == (1, 1600)


def test_a_family_without_example_data_says_so() -> None:
    spec = get_registry().family("tiny-test")
    with pytest.raises(PluginError, match=r"'tiny-test'.*registers no example_inputs"):
        spec.build_example_inputs(spec.build_config(), "TinyModel")
    with pytest.raises(PluginError, match="registers no example_preprocessor"):
        spec.build_example_preprocessor(spec.build_config())
